"""SECURITY-REVIEW M-1: a challenge's reward cannot be taken by copying its transaction.

A challenge's calldata is its whole proof. Before the fix a bot that saw a watcher's pending
challenge sent a copy with a higher fee, became the round's challenger, got the bond back and
the reporter share of every ``slash_wrong_vote``; the watcher's own transaction reverted. Now
every challenge that can pay needs its sender's commitment (``commit_challenge``) to that exact
calldata from an earlier block of the round. The review's attack is run against a simulated
watcher (the bot sends every copy first, in the same block), then each new refusal is shown on
the conftest network.
"""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from conftest import MAX_UINT, ZERO32, committed, reverts
from fedchain.chain.deploy import TOKEN
from fedchain.chain.interface import account_from_seed, artifact
from fedchain.errors import Reverted
from fedchain.protocol.challenge import commit
from fedchain.protocol.distances import combined_scores_root, leaf_hash, node_hash
from fedchain.protocol.node import FAILED
from fedchain.sim.network import SimConfig, build_network, play_round

JSON_HASH = keccak(b"recipe")
RULE0 = (0, 0, 1, 1, JSON_HASH)  # any rule: challenge_total does not depend on it
KRUM = (4, 0, 1, 1, JSON_HASH)


def rule_hash(rule: tuple) -> bytes:
    return keccak(encode(["uint256"] * 4 + ["bytes32"], list(rule)))


# ---------------------------------------------------------------- the review's attack


class FrontRunner:
    """The watcher's view of the challenge contract, with a bot that sees every transaction the
    watcher sends there before it is mined and lands its own first, in the same block: a copy of
    each commitment, and for each challenge a copy sent as is, then one sent after committing to
    it itself. What each of the bot's transactions did is kept in ``tried``."""

    def __init__(self, contract, bot):
        self.contract, self.bot = contract, bot
        self.tried: list[tuple[str, str]] = []

    def __getattr__(self, name):
        return getattr(self.contract, name)

    def tx(self, fn, *args, sender, gas=None):
        if fn == "commit_challenge":
            self._copy(fn, args)
        elif fn.startswith("challenge"):
            self._copy(fn, args)
            commit(self.contract, self.bot, fn, args)
            self._copy(fn, args)
        return self.contract.tx(fn, *args, sender=sender, gas=gas)

    def _copy(self, fn, args):
        try:
            self.contract.tx(fn, *args, sender=self.bot)
            self.tried.append((fn, "ok"))
        except Reverted as e:
            self.tried.append((fn, e.reason))


@pytest.mark.parametrize("collusion", ["model", "total"])
def test_a_copied_challenge_is_refused_and_the_watcher_keeps_its_reward(tmp_path, collusion):
    cfg = SimConfig(
        trainers=4,
        validators=3,
        rounds=2,
        model="logreg",
        epochs=1,
        batch_size=32,
        seed=3,
        out=tmp_path,
        colluders=3,
        collusion=collusion,
        watchers=1,
    )
    net = build_network(cfg)
    fc, tok, ch, t = net.deployment.fedchain, net.deployment.token, net.deployment.challenges, net.task_id
    watcher = net.watchers[0]
    bot = account_from_seed("front-runner")
    net.chain.fund(bot.address, 10**20)
    tok.tx("mint", bot.address, 100 * TOKEN, sender=account_from_seed(f"{cfg.seed}:sponsor"))
    tok.tx("approve", ch.address, MAX_UINT, sender=bot)
    watcher.challenges = FrontRunner(ch, bot)
    stake = fc.call("stakes", net.validators[0].address)["active"]
    held = {a: tok.call("balanceOf", a) for a in (bot.address, watcher.address)}

    assert not play_round(net).finalized

    fn = {"model": "challenge", "total": "challenge_total"}[collusion]
    assert watcher.challenges.tried == [
        ("commit_challenge", "ok"),
        (fn, "challenges: not committed"),
        (fn, "challenges: committed in this block"),
    ]
    assert watcher.challenged == [(t, 0, True)]
    r = fc.call("rounds", t, 0)
    assert (r["status"], r["challenger"]) == (FAILED, watcher.address)
    # the watcher reported every wrong voter and earned every reporter share; the bot nothing
    assert fc.call("payouts", watcher.address) == 3 * (stake // 2) // 10
    assert fc.call("payouts", bot.address) == 0
    assert {a: tok.call("balanceOf", a) for a in held} == held  # both bonds where they were
    challenged = [e.args for e in ch.events() if e.name == "Challenged"]
    assert [(c["challenger"], c["success"]) for c in challenged] == [(watcher.address, True)]
    assert net.conservation_gap() == 0


# ---------------------------------------------------------------- every refusal


@pytest.fixture
def ch(net):
    return net.chain.at(artifact("challenges"), net.fc.call("challenges"))


@pytest.fixture
def voted(net, ch):
    """A round-0 vote on a rule-0 task whose scores tree is right: its total challenge is
    sound and fails (it costs the bond); the challenger is an outsider with the bond approved."""
    t = net.create_task(recipe_hash=rule_hash(RULE0))
    res = net.play_round(t, revealers=net.trainers[:3], finalize=False)
    acct = net.outsiders[0]
    net.token.tx("approve", ch.address, MAX_UINT, sender=acct)
    s = res.scores
    return t, (t, 0, res.args, RULE0, list(s.nodes), list(s.scores), ZERO32), acct


def test_the_commitment_is_the_sender_and_the_exact_calldata(net, ch, voted):
    t, call, acct = voted
    data = ch.artifact.codec.encode_call("challenge_total", call)
    h = ch.call("commitment", acct.address, data)
    assert h == keccak(encode(["address", "bytes32"], [acct.address, keccak(data)]))
    assert h != ch.call("commitment", net.outsiders[1].address, data)
    rc = ch.tx("commit_challenge", h, sender=acct)
    assert rc.event("ChallengeCommitted").args == {"challenger": acct.address, "commitment": h}
    assert ch.call("committed", acct.address, h) == rc.block
    net.chain.mine(1)
    again = ch.tx("commit_challenge", h, sender=acct)  # a repeated commitment counts from its latest block
    assert again.block > rc.block and ch.call("committed", acct.address, h) == again.block
    with reverts("challenges: committed in this block"):
        ch.tx("challenge_total", *call, sender=acct)


def test_a_challenge_without_its_senders_commitment_is_refused(net, ch, voted):
    t, call, acct = voted
    with reverts("challenges: not committed"):
        ch.tx("challenge_total", *call, sender=acct)
    # another address's commitment to the very same calldata does not count
    committed(net.chain, ch, net.outsiders[1], ("challenge_total", call))
    with reverts("challenges: not committed"):
        ch.tx("challenge_total", *call, sender=acct)
    # nor does a copy of that commitment's hash: it names the other address
    other = ch.call("commitment", net.outsiders[1].address, ch.artifact.codec.encode_call("challenge_total", call))
    ch.tx("commit_challenge", other, sender=acct)
    net.chain.mine(1)
    with reverts("challenges: not committed"):
        ch.tx("challenge_total", *call, sender=acct)
    # nor one to other arguments
    committed(net.chain, ch, acct, ("challenge_total", (*call[:5], [s + 1 for s in call[5]], call[6])))
    with reverts("challenges: not committed"):
        ch.tx("challenge_total", *call, sender=acct)


def test_a_challenge_in_its_commitments_block_is_refused_and_one_block_later_judged(net, ch, voted):
    t, call, acct = voted
    commit(ch, acct, "challenge_total", call)
    with reverts("challenges: committed in this block"):
        ch.tx("challenge_total", *call, sender=acct)
    net.chain.mine(1)
    held, forfeited = net.balance(acct), ch.call("forfeited")
    assert ch.tx("challenge_total", *call, sender=acct).event("Challenged").args["success"] is False
    assert (net.balance(acct), ch.call("forfeited")) == (held - ch.call("bond"), forfeited + ch.call("bond"))
    # the commitment is used up: the same challenge again needs a new one
    with reverts("challenges: not committed"):
        ch.tx("challenge_total", *call, sender=acct)
    committed(net.chain, ch, acct, ("challenge_total", call))
    assert ch.tx("challenge_total", *call, sender=acct).event("Challenged").args["success"] is False


def test_a_commitment_does_not_stretch_the_window(net, ch, voted):
    t, call, acct = voted
    commit(ch, acct, "challenge_total", call)
    end = net.schedule(t, 0)[3] + net.fc.call("tasks", t)["challenge_blocks"]
    net.chain.mine_to(end)  # the window's last block: still in time
    assert net.chain.block_number() == end
    net.chain.mine(1)
    with reverts("challenges: window closed"):
        ch.tx("challenge_total", *call, sender=acct)


def test_a_commitment_made_before_its_round_opened_is_refused(net, ch):
    """A commitment counts from its round's opening block: the call below names round 1, whose
    vote is known in advance, committed to while round 0 still runs."""
    acct = net.outsiders[0]
    net.token.tx("approve", ch.address, MAX_UINT, sender=acct)
    t = net.create_task(recipe_hash=rule_hash(KRUM))

    def vote_without_reveals(rnd, table):
        net.join(t, rnd)
        net.to_vote_phase(t, rnd)
        vote = (keccak(b"model%d" % rnd), keccak(b"cid%d" % rnd), combined_scores_root(ZERO32, table), 0, 0)
        for v in net.validators:
            net.fc.tx("vote", t, rnd, *vote, sender=v)
        return vote

    # round 0: a table of the wrong size (one entry where no reveal has a pair): provably wrong
    wrong = (
        t,
        0,
        vote_without_reveals(0, node_hash(leaf_hash(0, [7]), leaf_hash(1, [0]), [7])),
        KRUM,
        ZERO32,
        1,
        0,
        [7],
        (ZERO32, ZERO32, [7]),
        (ZERO32, ZERO32, [0]),
        [],
        [],
    )
    empty = (ZERO32, ZERO32, [])
    early = (
        t,
        1,
        (
            keccak(b"model1"),
            keccak(b"cid1"),
            combined_scores_root(ZERO32, node_hash(leaf_hash(0, []), leaf_hash(1, []), [])),
            0,
            0,
        ),
        KRUM,
        ZERO32,
        1,
        0,
        [],
        empty,
        empty,
        [],
        [],
    )
    committed(net.chain, ch, acct, ("challenge_distance_sum", wrong), ("challenge_distance_sum", early))
    assert ch.tx("challenge_distance_sum", *wrong, sender=acct).event("Challenged").args["success"] is True
    assert net.fc.call("tasks", t)["round"] == 1
    assert vote_without_reveals(1, node_hash(leaf_hash(0, []), leaf_hash(1, []), [])) == early[2]
    with reverts("challenges: committed before the round"):
        ch.tx("challenge_distance_sum", *early, sender=acct)
    committed(net.chain, ch, acct, ("challenge_distance_sum", early))  # committed again, in the round: judged
    assert ch.tx("challenge_distance_sum", *early, sender=acct).event("Challenged").args["success"] is False


def test_open_table_needs_no_commitment(net, ch):
    """open_table pays and records no one (its record is a function of the committed table root),
    so anyone may send it, a copy included."""
    acct = net.outsiders[1]
    t = net.create_task(recipe_hash=rule_hash(KRUM))
    net.join(t, 0)
    net.to_vote_phase(t, 0)
    lo, hi = leaf_hash(0, []), leaf_hash(1, [])
    vote = (keccak(b"m"), keccak(b"c"), combined_scores_root(ZERO32, node_hash(lo, hi, [])), 0, 0)
    for v in net.validators:
        net.fc.tx("vote", t, 0, *vote, sender=v)
    for sender in (acct, net.outsiders[2]):
        opened = ch.tx("open_table", t, 0, vote, KRUM, [], (ZERO32, lo, hi, []), sender=sender).event("TableOpened")
        assert (opened.args["malformed"], opened.args["selection"]) == (False, 0)
