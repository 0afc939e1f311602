"""On-chain fraud proofs: a colluding committee, a single honest watcher, and every
way a challenge can be refused.

Networks are real (trained logistic-regression updates, the blob store, the
fedchain and challenge contracts); the colluders vote for the parent model moved
against the aggregate (``sim/adversaries/colluder.py``). The anvil case of the
collusion test runs the same network against an anvil node over JSON-RPC.
"""

from __future__ import annotations

import dataclasses

import pytest
from eth_utils import keccak

from conftest import committed, reverts
from fedchain.chain.deploy import TOKEN
from fedchain.chain.interface import account_from_seed
from fedchain.errors import Reverted
from fedchain.learning import aggregate
from fedchain.learning import fixedpoint as fp
from fedchain.protocol.audit import Auditor, ContractEvents
from fedchain.protocol.challenge import Unchallengeable, find_fault, find_score_fault, gather
from fedchain.protocol.node import FAILED, FINALIZED, OPEN
from fedchain.protocol.round import Vote
from fedchain.protocol.validator import Validator
from fedchain.sim.adversaries import colluder
from fedchain.sim.network import SimConfig, build_network, leading_evidence, play_round, play_to_vote
from fedchain.storage.merkle import merkle_root, score_leaf

FAIL_CHALLENGED = 3
SLASH_WRONG_VOTE = 4


def config(tmp_path, **kw) -> SimConfig:
    base = dict(trainers=4, validators=3, rounds=2, model="logreg", epochs=1, batch_size=32, seed=3, out=tmp_path)
    return SimConfig(**base | kw)


def challenger(net, name="challenger", tokens=100 * TOKEN):
    acct = account_from_seed(name)
    net.chain.fund(acct.address, 10**20)
    net.deployment.token.tx("mint", acct.address, tokens, sender=owner(net))
    return acct


def owner(net):
    return account_from_seed(f"{net.cfg.seed}:sponsor")


def approve_bond(net, acct):
    ch = net.deployment.challenges
    net.deployment.token.tx("approve", ch.address, ch.call("bond"), sender=acct)


# ---------------------------------------------------------------- the collusion test


def test_one_watcher_reverts_a_colluding_committee_and_gets_it_slashed(chain, tmp_path):
    # anvil mines a block per transaction: longer phases leave room for every node's sends
    net = build_network(config(tmp_path, colluders=3, watchers=1, phase_blocks=12), chain=chain)
    fc, tok, t = net.deployment.fedchain, net.deployment.token, net.task_id
    stakes = {n.address: fc.call("stakes", n.address)["active"] for n in [*net.trainers, *net.validators]}
    initial_root = fc.call("tasks", t)["model_root"]
    watcher = net.watchers[0]
    balance = tok.call("balanceOf", watcher.address)

    outcome = play_round(net)

    assert not outcome.finalized
    assert watcher.challenged == [(t, 0, True)]
    failed = [e for e in fc.events() if e.name == "RoundFailed" and e.args["round_id"] == 0]
    assert [e.args["reason"] for e in failed] == [FAIL_CHALLENGED]
    assert fc.call("rounds", t, 0)["status"] == FAILED
    # the wrong model never became the task's model; the next round builds on the last good one
    assert fc.call("tasks", t)["model_root"] == initial_root
    assert fc.call("tasks", t)["round"] == 1
    # every colluder lost the safety penalty (half its stake), once; no trainer lost anything
    slashes = [e.args for e in fc.events() if e.name == "Slashed"]
    assert sorted(s["node"] for s in slashes) == sorted(v.address for v in net.validators)
    assert all(s["reason"] == SLASH_WRONG_VOTE for s in slashes)
    for v in net.validators:
        assert fc.call("stakes", v.address)["active"] == stakes[v.address] // 2
    for tr in net.trainers:
        assert fc.call("stakes", tr.address)["active"] == stakes[tr.address]
    # the watcher: bond back, the reporter share of each slash (much less than the penalty)
    penalty = stakes[net.validators[0].address] // 2
    assert fc.call("payouts", watcher.address) == 3 * penalty // 10
    assert tok.call("balanceOf", watcher.address) == balance
    assert fc.call("rounds", t, 0)["challenger"] == watcher.address
    assert net.conservation_gap() == 0
    # the auditor agrees: the reverted result was wrong, the history is consistent
    report = Auditor(ContractEvents(fc, net.deployment.block), net.store, t).run()
    assert report.versions[0].status == "failed: challenged: the leading result was proven wrong or its data withheld"


def test_a_watcher_leaves_an_honest_committee_alone(tmp_path):
    net = build_network(config(tmp_path, watchers=1))
    outcomes = [play_round(net) for _ in range(2)]
    assert all(o.finalized for o in outcomes)
    assert net.watchers[0].challenged == [] and net.watchers[0].unprovable == {}
    assert not [e for e in net.deployment.fedchain.events() if e.name == "Slashed"]


# ---------------------------------------------------------------- failed and late challenges


RULES = [("fedavg", {}), ("fedmedian", {}), ("fedtrimmedavg", {"beta": 0.25})]
# one identity holding two of five stakes: seats 1, 1, 1, 2 (the median and the trimmed mean count seats)
WHALE = {"trainers": 5, "attack": "sybil", "byzantine": 0.4, "sybil_split": False}


@pytest.mark.parametrize("stakes", [{}, WHALE], ids=["equal-stakes", "one-with-two-stakes"])
@pytest.mark.parametrize("rule,params", RULES)
def test_a_false_challenge_loses_its_bond_and_changes_nothing(tmp_path, rule, params, stakes):
    net = build_network(config(tmp_path, rule=rule, rule_params=params, **stakes))  # an honest committee
    fc, tok, ch, t = net.deployment.fedchain, net.deployment.token, net.deployment.challenges, net.task_id
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    assert ev.first_wrong() is None  # the honest result is right everywhere
    if stakes:
        assert sorted(e.seats_bps for e in ev.accepted) == [10_000] * 3 + [20_000]
    bond = ch.call("bond")
    chunks = fp.chunks(ev.parent).shape[0]
    # every value of chunk 0 and one value of every other chunk (the last one
    # zero-padded): the contract's integers (floor division of signed sums, sorting,
    # clipping) agree with the validators' numpy, bit for bit
    values = [(0, j) for j in range(fp.CHUNK_SIZE)] + [(c, c % fp.CHUNK_SIZE) for c in range(1, chunks)]
    acct = challenger(net, tokens=len(values) * bond)
    committed(net.chain, ch, acct, *[("challenge", ev.challenge(c, j).args()) for c, j in values])
    for c, j in values:
        approve_bond(net, acct)
        pool, held, lost = fc.call("tasks", t)["pool"], tok.call("balanceOf", acct.address), ch.call("forfeited")
        rc = ch.tx("challenge", *ev.challenge(c, j).args(), sender=acct)
        assert rc.event("Challenged").args["success"] is False
        # the bond is forfeited to nobody: not to the task's pool, which its sponsor reclaims (M-5)
        assert fc.call("tasks", t)["pool"] == pool
        assert ch.call("forfeited") == lost + bond
        assert tok.call("balanceOf", acct.address) == held - bond
        assert fc.call("rounds", t, v.round_id)["status"] == OPEN
    assert net.conservation_gap() == 0
    net.chain.mine_to(v.challenge_end + 1)
    for node in net.nodes:
        node.step(t)
    assert fc.call("rounds", t, v.round_id)["status"] == FINALIZED
    assert not [e for e in fc.events() if e.name == "Slashed"]


def test_a_challenge_after_the_window_is_refused(tmp_path):
    net = build_network(config(tmp_path, colluders=3))
    fc, ch = net.deployment.fedchain, net.deployment.challenges
    v = play_to_vote(net)
    reveals = net.validators[0].task(net.task_id).reveals[v.round_id]
    challenge = find_fault(
        net.task_id,
        v.round_id,
        leading_evidence(net, v).parent,
        reveals,
        leading_evidence(net, v).vote,
        net.store,
        net.recipe,
        net.validators[0].shapes,
    )
    assert challenge is not None
    acct = challenger(net)
    approve_bond(net, acct)
    committed(net.chain, ch, acct, ("challenge", challenge.args()))
    net.chain.mine_to(v.challenge_end + 1)
    with reverts("challenges: window closed"):
        ch.tx("challenge", *challenge.args(), sender=acct)
    for node in net.nodes:
        node.step(net.task_id)  # the (wrong) result finalizes: the window is over
    assert fc.call("rounds", net.task_id, v.round_id)["status"] == FINALIZED
    with reverts("challenges: not the current round"):
        ch.tx("challenge", *challenge.args(), sender=acct)


# ---------------------------------------------------------------- every refusal


@pytest.fixture
def colluded(tmp_path):
    """A colluding committee's leading vote in round 0, a garbage trainer's update
    rejected (reveal index set by reveal order), and a valid challenge of it."""
    net = build_network(config(tmp_path, trainers=5, colluders=3, adversaries={"garbage": 1}))
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    assert ev.vote.rejected != 0 and len(ev.accepted) == 4
    wrong = ev.first_wrong()
    assert wrong is not None
    acct = challenger(net)
    approve_bond(net, acct)
    return net, v, ev, ev.challenge(*wrong), acct


def test_every_malformed_challenge_is_refused(colluded):
    net, v, ev, good, acct = colluded
    ch = net.deployment.challenges
    other = next(tr for tr in net.trainers if tr.address not in good.nodes)  # the rejected one
    rep = dataclasses.replace
    flip = lambda b: bytes([b[0] ^ 1]) + b[1:]  # noqa: E731
    cases = {
        "challenges: not the task's rule": rep(good, recipe_json_hash=flip(good.recipe_json_hash)),
        "challenges: not the current round": rep(good, round_id=1),
        "challenges: not the leading vote": rep(good, vote=(*good.vote[:3], good.vote[3] + 1, good.vote[4])),
        "challenges: bad chunk index": rep(good, chunk=2**good.depth),
        "challenges: ragged inputs": rep(good, salts=good.salts[:-1]),
        "challenges: bad parent proof": rep(good, parent_chunk=flip(good.parent_chunk)),
        "challenges: bad claimed proof": rep(good, claimed_chunk=flip(good.claimed_chunk)),
        "challenges: not the averaged updates in reveal order": rep(good, nodes=good.nodes[::-1]),
        "challenges: not revealed": rep(good, nodes=[acct.address, *good.nodes[1:]]),
        "challenges: root does not match commitment": rep(
            good, update_roots=[flip(good.update_roots[0]), *good.update_roots[1:]]
        ),
        "challenges: bad update proof": rep(good, update_chunks=flip(good.update_chunks)),
        "challenges: an averaged update is missing": rep(
            good,
            nodes=good.nodes[:-1],
            update_roots=good.update_roots[:-1],
            salts=good.salts[:-1],
            update_chunks=good.update_chunks[:-256],
            update_proofs=good.update_proofs[: -good.depth],
        ),
    }
    for reason, bad in [
        *cases.items(),
        ("challenges: bad chunk index", rep(good, coordinate=fp.CHUNK_SIZE)),
        ("challenges: not the task's rule", rep(good, rule=(2, 0, 1, 1))),
    ]:  # a median proof of a mean
        with reverts(reason):
            ch.tx("challenge", *bad.args(), sender=acct)
    # the rejected update cannot be slipped in
    log = net.validators[0].task(net.task_id)
    rejected = next(e for e in log.reveals[v.round_id] if e.node == other.address)
    with reverts("challenges: not the averaged updates in reveal order"):
        ch.tx(
            "challenge",
            *rep(
                good,
                nodes=[*good.nodes, other.address],
                update_roots=[*good.update_roots, rejected.update_root],
                salts=[*good.salts, rejected.salt],
                update_chunks=good.update_chunks + good.update_chunks[-256:],
                update_proofs=good.update_proofs + good.update_proofs[-good.depth :],
            ).args(),
            sender=acct,
        )
    # no bond, no challenge
    poor = challenger(net, "poor", tokens=0)
    committed(net.chain, ch, poor, ("challenge", good.args()))
    with pytest.raises(Reverted):
        ch.tx("challenge", *good.args(), sender=poor)
    # and the good one still works
    committed(net.chain, ch, acct, ("challenge", good.args()))
    assert ch.tx("challenge", *good.args(), sender=acct).event("Challenged").args["success"] is True


def test_only_the_challenge_contract_reverts_rounds_and_only_wrong_voters_are_slashed(colluded):
    net, v, ev, good, acct = colluded
    fc, ch, t = net.deployment.fedchain, net.deployment.challenges, net.task_id
    sl = net.deployment.slashing
    with reverts("challenges: not allowed"):
        fc.tx("revert_round", t, 0, acct.address, sender=acct)
    with reverts("slashing: not allowed"):
        fc.tx("penalize", t, 0, net.validators[0].address, 4, acct.address, sender=acct)
    with reverts("slashing: round not challenged"):
        sl.tx("slash_wrong_vote", t, 0, net.validators[0].address, sender=acct)
    with reverts("challenges: not the deployer"):
        ch.tx("bind", acct.address, sender=acct)
    with reverts("challenges: already bound"):
        ch.tx("bind", acct.address, sender=owner(net))
    committed(net.chain, ch, acct, ("challenge", good.args()))
    ch.tx("challenge", *good.args(), sender=acct)
    with reverts("slashing: no wrong vote"):  # a trainer never voted
        sl.tx("slash_wrong_vote", t, 0, net.trainers[0].address, sender=acct)
    before = fc.call("stakes", net.validators[0].address)["active"]
    sl.tx("slash_wrong_vote", t, 0, net.validators[0].address, sender=acct)
    assert fc.call("stakes", net.validators[0].address)["active"] == before - before // 2
    with reverts("slashing: already slashed"):  # once per round
        sl.tx("slash_wrong_vote", t, 0, net.validators[0].address, sender=acct)
    assert fc.call("payouts", acct.address) == (before // 2) // 10
    assert net.conservation_gap() == 0


def test_fund_pool_and_future_rounds(tmp_path):
    net = build_network(config(tmp_path, colluders=3))
    fc, tok, t = net.deployment.fedchain, net.deployment.token, net.task_id
    acct = challenger(net)
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    good = ev.challenge(*ev.first_wrong())
    # a later round has no votes yet
    with reverts("challenges: not the current round"):
        net.deployment.challenges.tx(
            "challenge", *dataclasses.replace(good, round_id=v.round_id + 1).args(), sender=acct
        )
    tok.tx("approve", fc.vault.address, 5 * TOKEN, sender=acct)
    with reverts("tasks: no such task"):
        fc.tx("fund_pool", 99, TOKEN, sender=acct)
    with reverts("tasks: empty amount"):
        fc.tx("fund_pool", t, 0, sender=acct)
    pool = fc.call("tasks", t)["pool"]
    fc.tx("fund_pool", t, 5 * TOKEN, sender=acct)
    assert fc.call("tasks", t)["pool"] == pool + 5 * TOKEN
    assert net.conservation_gap() == 0


def test_no_quorum_means_nothing_to_challenge(tmp_path):
    net = build_network(config(tmp_path, colluders=3))
    fc, ch, t = net.deployment.fedchain, net.deployment.challenges, net.task_id
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    good = ev.challenge(*ev.first_wrong())
    # round 1 opens when round 0 is reverted; before its votes there is no quorum
    acct = challenger(net)
    approve_bond(net, acct)
    committed(net.chain, ch, acct, ("challenge", good.args()))
    ch.tx("challenge", *good.args(), sender=acct)
    assert fc.call("tasks", t)["round"] == 1
    with reverts("challenges: no quorum"):
        ch.tx("challenge", *dataclasses.replace(good, round_id=1).args(), sender=acct)


@pytest.mark.parametrize("rule,params", RULES[1:])
def test_a_committee_counting_identities_not_seats_is_proven_wrong(tmp_path, monkeypatch, rule, params):
    # every validator runs the rule without the seats (the median of the four updates, not of
    # the five seats); the contract, which reads the seats from the reveal records, disagrees
    net = build_network(config(tmp_path, rule=rule, rule_params=params, **WHALE))
    seated = aggregate.RULES[rule]
    with monkeypatch.context() as m:
        m.setitem(
            aggregate.RULES,
            rule,
            dataclasses.replace(seated, run=lambda x, s, p, e: seated.run(x, s, p, dataclasses.replace(e, seats=None))),
        )
        v = play_to_vote(net)
    ev = leading_evidence(net, v)
    wrong = ev.first_wrong()
    assert wrong is not None
    acct = challenger(net)
    approve_bond(net, acct)
    committed(net.chain, net.deployment.challenges, acct, ("challenge", ev.challenge(*wrong).args()))
    rc = net.deployment.challenges.tx("challenge", *ev.challenge(*wrong).args(), sender=acct)
    assert rc.event("Challenged").args["success"] is True
    assert net.deployment.fedchain.call("rounds", net.task_id, v.round_id)["status"] == FAILED


@pytest.mark.parametrize("rule,params", RULES[1:])
def test_a_watcher_reverts_colluders_under_median_and_trimmed_mean(tmp_path, rule, params):
    net = build_network(config(tmp_path, colluders=3, watchers=1, rule=rule, rule_params=params))
    assert not play_round(net).finalized
    assert net.watchers[0].challenged == [(net.task_id, 0, True)]
    assert net.conservation_gap() == 0


def test_rules_the_contract_cannot_recompute_are_refused(tmp_path):
    # NNM mixes updates before the median: not coordinate-wise any more
    params = {"nnm": True, "num_malicious_nodes": 1}
    net = build_network(config(tmp_path, colluders=3, rule="fedmedian", rule_params=params))
    assert net.recipe.challenge_rule == (0, 0, 1, 1)
    v = play_to_vote(net)
    # a proof built as if the task were a plain median: refused whatever rule it names
    plain = dataclasses.replace(net.recipe, rule_params={})
    log, fc = net.validators[0].task(net.task_id), net.deployment.fedchain
    vote = Vote.from_event(
        next(
            e
            for e in log.votes[v.round_id]
            if e.args["vote_hash"] == fc.call("rounds", net.task_id, v.round_id)["leader"]
        )
    )
    ev = gather(
        net.task_id,
        v.round_id,
        net.validators[0].current_model(net.task_id).q,
        log.reveals[v.round_id],
        vote,
        net.store,
        plain,
        net.validators[0].shapes,
    )
    acct = challenger(net)
    approve_bond(net, acct)
    median = ev.challenge(0, 0)
    with reverts("challenges: not the task's rule"):
        net.deployment.challenges.tx("challenge", *median.args(), sender=acct)
    with pytest.raises(Unchallengeable, match="not challengeable on chain"):
        find_fault(
            net.task_id,
            v.round_id,
            ev.parent,
            log.reveals[v.round_id],
            vote,
            net.store,
            net.recipe,
            net.validators[0].shapes,
        )
    honest_hash = dataclasses.replace(median, rule=(0, 0, 1, 1), recipe_json_hash=keccak(net.recipe.to_bytes()))
    with reverts("challenges: rule not challengeable"):
        net.deployment.challenges.tx("challenge", *honest_hash.args(), sender=acct)


# ---------------------------------------------------------------- scores


def challenged_events(net):
    return [e.args for e in net.chain.events(net.deployment.challenges) if e.name == "Challenged"]


@pytest.mark.parametrize("collusion,kind", [("score", 2), ("total", 3)])
def test_a_watcher_reverts_wrong_scores_and_totals(tmp_path, collusion, kind):
    net = build_network(config(tmp_path, colluders=3, watchers=1, collusion=collusion))
    stake = net.deployment.fedchain.call("stakes", net.validators[0].address)["active"]
    assert not play_round(net).finalized
    assert net.watchers[0].challenged == [(net.task_id, 0, True)]
    assert [(e["kind"], e["success"]) for e in challenged_events(net)] == [(kind, True)]
    for v in net.validators:
        assert net.deployment.fedchain.call("stakes", v.address)["active"] == stake // 2
    assert net.conservation_gap() == 0


@pytest.mark.parametrize(
    "extra",
    [{}, {"attack": "sybil", "byzantine": 0.4, "sybil_split": False}],
    ids=["equal-stakes", "one-with-two-stakes"],
)
def test_every_honest_score_and_total_survives_a_challenge(tmp_path, extra):
    # one rejected update (score 0); with extra, one trainer holds two stakes (2 of 5 seats' worth:
    # its paid score is twice its cosine score, and the contract must agree)
    net = build_network(config(tmp_path, trainers=5, adversaries={"garbage": 1}, **extra))
    ch, t = net.deployment.challenges, net.task_id
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    assert find_score_fault(ev) is None
    if extra:
        assert sorted(e.seats_bps for e in ev.revealed) == [10_000] * 3 + [20_000]
    attempts = [ev.score_challenge(i) for i in range(len(ev.revealed))] + [ev.total_challenge()]
    acct = challenger(net, tokens=len(attempts) * ch.call("bond"))
    committed(net.chain, ch, acct, *[(c.fn, c.args()) for c in attempts])
    for c in attempts:
        approve_bond(net, acct)
        assert ch.tx(c.fn, *c.args(), sender=acct).event("Challenged").args["success"] is False, c.fn
    assert net.deployment.fedchain.call("rounds", t, v.round_id)["status"] == OPEN
    assert net.conservation_gap() == 0


def test_every_malformed_score_challenge_is_refused(tmp_path):
    net = build_network(config(tmp_path, colluders=3, collusion="score"))
    ch = net.deployment.challenges
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    good = find_score_fault(ev)
    assert good.fn == "challenge_score"
    acct = challenger(net)
    approve_bond(net, acct)
    rep = dataclasses.replace
    flip = lambda b: bytes([b[0] ^ 1]) + b[1:]  # noqa: E731
    cases = [
        ("challenges: no such reveal", rep(good, index=len(ev.revealed))),
        ("challenges: bad score proof", rep(good, score=good.score + 1)),
        ("challenges: root does not match commitment", rep(good, salt=flip(good.salt))),
        ("challenges: bad vector length", rep(good, parent=good.parent[:-256])),
        ("challenges: bad update", rep(good, update=flip(good.update))),
        ("challenges: bad parent", rep(good, parent=flip(good.parent))),
        ("challenges: bad claimed model", rep(good, claimed=flip(good.claimed))),
        ("challenges: not the leading vote", rep(good, vote=(*good.vote[:3], good.vote[3] + 1, good.vote[4]))),
    ]
    total = ev.total_challenge()
    cases += [
        ("challenges: not the scores tree", rep(total, scores=[s + 1 for s in total.scores])),
        ("challenges: ragged inputs", rep(total, scores=total.scores[:-1])),
        ("challenges: ragged inputs", rep(total, nodes=[], scores=[])),
    ]
    for reason, bad in cases:
        with reverts(reason):
            ch.tx(bad.fn, *bad.args(), sender=acct)
    committed(net.chain, ch, acct, (good.fn, good.args()))
    assert ch.tx(good.fn, *good.args(), sender=acct).event("Challenged").args["success"] is True


def test_a_score_leaf_naming_the_wrong_trainer_is_wrong(tmp_path, monkeypatch):
    class Misnamer(Validator):
        """Swaps the first two leaves' trainers (so each claim proof fails)."""

        def compute(self, log, v):
            honest = super().compute(log, v)
            (a, sa), (b, sb), *rest = honest.scores
            swapped = [(b, sa), (a, sb), *rest]
            return dataclasses.replace(
                honest, scores=swapped, scores_root=merkle_root([score_leaf(x, s) for x, s in swapped])
            )

    monkeypatch.setitem(colluder.COLLUDERS, "misname", Misnamer)
    net = build_network(config(tmp_path, colluders=3, collusion="misname"))
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    # the lineage in the blob still has the honest order: rebuild the committee's list
    (a, sa), (b, sb), *rest = ev.claimed_scores
    ev = dataclasses.replace(ev, claimed_scores=[(b, sa), (a, sb), *rest])
    c = find_score_fault(ev)
    assert (c.fn, c.index) == ("challenge_score", 0)
    acct = challenger(net)
    approve_bond(net, acct)
    committed(net.chain, net.deployment.challenges, acct, (c.fn, c.args()))
    assert net.deployment.challenges.tx(c.fn, *c.args(), sender=acct).event("Challenged").args["success"] is True


def test_root_set_scores_are_not_challengeable(tmp_path):
    net = build_network(config(tmp_path, colluders=3, collusion="score", score="validation"))
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    with pytest.raises(Unchallengeable, match="not challengeable on chain"):
        find_score_fault(ev)
