"""Regression tests for the 2026-12 security review's findings in fedchain.vy, slashing.vy
and the nodes (challenges.vy's are in test_review_fixes.py).

* H-1 (high): a validator counted its whole stake once selected with probability k*w/T, so
  its expected committee weight grew with w**2; joining and staying silent stalled rounds for
  free. Committee weight is now the seats a stake stands for (max(1, k*w/T)), a quorum needs
  2/3 of at least k/3 seats, and a member that joined and never voted is slashed
  (``slash_absent``).
* H-2 (high): ``advance`` on a task id that did not exist yet failed that future task's
  round 0 and made the reference node skip the task.
* L-2 (low, fedchain's half): ``finalize`` ignored ``min_reveals``.
* M-2 (medium): a guilty node could withdraw before its slash landed (a round could be as long
  as the unbonding delay, and ``slash_rejected`` waited for a ``finalize`` nobody is paid to
  send). A round plus the deployment's slash grace must now be shorter than the unbonding delay,
  and a rejected update is slashable as soon as the challenge window is over.
* L-3 (low): a challenge sent during the vote phase could be dodged by an equivocation; the
  watcher now challenges only after ``validate_end``.

M-3 is in tests/contracts/test_rounds.py (the commitment cap), M-5 in
tests/contracts/test_tasks.py and tests/security/test_challenges.py (burned slashes,
forfeited bonds), L-7 in tests/contracts/test_tasks.py and below (the deploy command).
"""

from __future__ import annotations

import pytest
import typer
from eth_abi import encode
from eth_utils import keccak

from conftest import MAX_UINT, STAKE, TOKEN, ZERO32, committed, make_net, reverts
from fedchain.chain import commitments as cm
from fedchain.chain.deploy import ProtocolParams
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import account_from_seed
from fedchain.cli.deploy import PUBLIC_MIN_CHALLENGE, least_challenge_window
from fedchain.protocol.node import FAILED, FINALIZED, OPEN, TaskLog
from fedchain.sim.network import SimConfig, build_network, play_to_vote

SEAT = 10_000
ROLE_VALIDATOR = 2
SLASH_ABSENT = 5
FAIL_NO_QUORUM = 2


@pytest.fixture
def task(net):
    return net.create_task()


def whale_net(whale_stake: int = 300 * TOKEN, honest: int = 9):
    """The review's H-1 network: ``honest`` validators of 100 tokens and one whale."""
    net = make_net(EmbeddedChain(), validators=honest)
    whale = account_from_seed("whale")
    net.fund([whale], ROLE_VALIDATOR, amount=whale_stake)
    net.chain.mine(1)
    return net, whale


def selected(net, task, rnd, nodes):
    net.to_seed(task, rnd)
    return [v for v in nodes if net.fc.call("is_selected", task, rnd, v.address, ROLE_VALIDATOR)]


# ---------------------------------------------------------------- H-1


def test_a_silent_whale_no_longer_stalls_rounds_and_pays_for_each_one_it_joins():
    """The review's scenario: nine honest validators of 100 tokens, a whale of 300 (25%),
    k = 4; every selected honest validator joins and votes, the whale joins and stays silent.
    Before the fix 7 of 8 rounds failed for lack of quorum and the whale lost nothing."""
    net, whale = whale_net()
    rounds = 8
    task = net.create_task(num_rounds=rounds, validators_per_round=4, trainers_per_round=4)
    finalized, slashed, liveness = 0, 0, net.params.liveness_penalty
    for rnd in range(rounds):
        honest = selected(net, task, rnd, net.validators)
        # at the cap in round 0 (k * w = T); below it once slashed, so then selected by chance
        whale_in = bool(selected(net, task, rnd, [whale]))
        assert whale_in or rnd > 0
        if whale_in:
            net.fc.tx("join", task, rnd, sender=whale)
            assert net.fc.call("committee_weight", task, rnd, whale.address) == SEAT  # one seat, not 300 tokens
        result = net.play_round(task, rnd, voters=honest, finalize=False)
        leads = net.fc.call("rounds", task, rnd)["leader"] != ZERO32
        # the contract's quorum is its Python twin's: honest seats against max(committee, k/3)
        assert leads == cm.has_quorum(len(honest) * SEAT, (len(honest) + whale_in) * SEAT, 4)
        net.to_finalizable(task, rnd)
        if leads:
            net.finalize(task, result)
            finalized += 1
        else:
            net.fc.tx("advance", task, sender=net.owner)
        if whale_in:
            before = net.stake_of(whale)["active"]
            r = net.slashing.tx("slash_absent", task, rnd, whale.address, sender=net.validators[0])
            assert (r.event("Slashed").args["reason"], r.event("Slashed").args["amount"]) == (SLASH_ABSENT, liveness)
            assert net.stake_of(whale)["active"] == before - liveness
            slashed += 1
    assert slashed >= 1
    assert finalized >= rounds // 2, f"only {finalized} of {rounds} rounds finalized"
    net.assert_conserved()


@pytest.mark.parametrize("stakes, k", [((100, 100, 200, 400), 3), ((100, 300, 600), 2), ((100,) * 4, 4)])
def test_committee_seats_and_quorum_are_their_python_twins(stakes, k):
    net = make_net(EmbeddedChain(), validators=0)
    vals = [account_from_seed(f"seated{i}") for i in range(len(stakes))]
    for v, s in zip(vals, stakes):
        net.fund([v], ROLE_VALIDATOR, amount=s * TOKEN)
    net.chain.mine(1)
    net.validators = vals
    task = net.create_task(validators_per_round=k)
    total = sum(stakes) * TOKEN
    members = selected(net, task, 0, vals)
    net.join(task, 0, members)
    seats = {v.address: cm.seats_bps(k, s * TOKEN, total) for v, s in zip(vals, stakes)}
    for v in members:
        assert net.fc.call("committee_weight", task, 0, v.address) == seats[v.address]
    committee = sum(seats[v.address] for v in members)
    assert net.fc.call("rounds", task, 0)["committee_seats"] == committee
    net.to_vote_phase(task, 0)
    res, tally = net.result(task, 0), 0
    for v in members:
        net.vote(task, 0, v, res)
        tally += seats[v.address]
        leads = net.fc.call("rounds", task, 0)["leader"] == res.hash
        assert leads == cm.has_quorum(tally, committee, k)


def test_a_quorum_needs_at_least_a_third_of_k_seats():
    # nine validators of equal stake, k = 6: each below the cap, one seat; a floor of 2 seats
    net = make_net(EmbeddedChain(), validators=9)
    task = net.create_task(validators_per_round=6)
    v = selected(net, task, 0, net.validators)[0]
    net.join(task, 0, [v])  # the only member: 100% of the committee, 1 of the 2 seats the floor asks for
    assert net.fc.call("committee_weight", task, 0, v.address) == SEAT
    net.commit(task, 0, net.trainers[0])
    net.to_reveal_phase(task, 0)
    net.reveal(task, 0, net.trainers[0])
    net.to_vote_phase(task, 0)
    res = net.result(task, 0, {net.trainers[0]: 1})
    net.vote(task, 0, v, res)
    assert net.fc.call("rounds", task, 0)["leader"] == ZERO32
    net.chain.mine_to(net.schedule(task, 0)[3] + 1)
    assert net.fc.tx("advance", task, sender=net.owner).event("RoundFailed").args["reason"] == FAIL_NO_QUORUM
    net.assert_conserved()


def absent_round(net, task, *, reveal: bool = True):
    """Round 0: three trainers commit (and reveal), every validator joins, validator 0 never votes."""
    for t in net.trainers[:3]:
        net.commit(task, 0, t)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    scored = {}
    if reveal:
        for i, t in enumerate(net.trainers[:3]):
            net.reveal(task, 0, t)
            scored[t] = i + 1
    net.to_vote_phase(task, 0)
    res = net.result(task, 0, scored)
    for v in net.validators[1:]:
        net.vote(task, 0, v, res)
    return res


def test_slash_absent_takes_the_liveness_penalty_once(net, task):
    absent_round(net, task)
    silent, reporter = net.validators[0], net.outsiders[0]
    with reverts("slashing: vote phase not over"):
        net.slashing.tx("slash_absent", task, 0, silent.address, sender=reporter)
    net.chain.mine_to(net.schedule(task, 0)[3] + 1)
    with reverts("slashing: cannot report yourself"):
        net.slashing.tx("slash_absent", task, 0, silent.address, sender=silent)
    with reverts("slashing: voted"):
        net.slashing.tx("slash_absent", task, 0, net.validators[1].address, sender=reporter)
    with reverts("slashing: not in committee"):
        net.slashing.tx("slash_absent", task, 0, net.trainers[0].address, sender=reporter)
    r = net.slashing.tx("slash_absent", task, 0, silent.address, sender=reporter)
    assert r.event("Slashed").args == {
        "node": silent.address,
        "amount": net.params.liveness_penalty,
        "reason": SLASH_ABSENT,
        "reporter": reporter.address,
    }
    assert net.fc.call("payouts", reporter.address) == net.params.liveness_penalty // 10
    with reverts("slashing: already slashed"):
        net.slashing.tx("slash_absent", task, 0, silent.address, sender=reporter)
    with reverts("slashing: no such round"):
        net.slashing.tx("slash_absent", task, 5, silent.address, sender=reporter)


def test_slash_absent_spares_a_round_that_could_not_be_voted_on(net):
    task = net.create_task(min_reveals=3)
    absent_round(net, task, reveal=False)  # nobody revealed: too few reveals to vote on
    net.chain.mine_to(net.schedule(task, 0)[3] + 1)
    with reverts("slashing: round exempt"):
        net.slashing.tx("slash_absent", task, 0, net.validators[0].address, sender=net.outsiders[0])


def test_an_equivocator_is_slashed_once_not_again_for_absence(net, task):
    absent_round(net, task)
    v = net.validators[1]
    net.vote(task, 0, v, net.result(task, 0, tag="other"))  # equivocation: slashed in vote, vote withdrawn
    assert net.fc.call("equivocated", task, 0, v.address)
    net.chain.mine_to(net.schedule(task, 0)[3] + 1)
    with reverts("slashing: voted"):
        net.slashing.tx("slash_absent", task, 0, v.address, sender=net.outsiders[0])


def test_only_the_slashing_contract_penalizes(net, task):
    with reverts("slashing: not allowed"):
        net.fc.tx("penalize", task, 0, net.trainers[0].address, 1, net.outsiders[0].address, sender=net.outsiders[0])
    with reverts("slashing: not the deployer"):
        net.slashing.tx("bind", net.outsiders[0].address, sender=net.outsiders[0])
    with reverts("slashing: already bound"):
        net.slashing.tx("bind", net.outsiders[0].address, sender=net.owner)


# ---------------------------------------------------------------- H-2


def test_nothing_can_be_done_to_a_task_that_does_not_exist(net):
    nxt = net.fc.call("next_task_id")
    for t in (nxt, nxt + 1, nxt + 100):
        with reverts("rounds: no such task"):
            net.fc.tx("advance", t, sender=net.outsiders[2])
    net.chain.mine(1)
    t = net.create_task()
    assert t == nxt
    assert net.fc.call("rounds", t, 0)["status"] == OPEN
    log = TaskLog(net.fc, t).poll()
    assert not log.finished and 0 not in log.outcome
    net.play_round(t, 0)  # round 0 is an ordinary round
    assert net.fc.call("rounds", t, 0)["status"] == FINALIZED


class _Log:
    """A contract stand-in that replays a given event list (the chain can no longer make
    ghost events: this checks the node's own defence)."""

    def __init__(self, events, task):
        self._events, self._task, self.chain = events, task, self

    def call(self, fn, *args):
        return {"challenge_blocks": 5}

    def events(self, *_):
        return self._events

    def block_number(self):
        return 100


def test_the_node_ignores_a_tasks_events_from_before_its_creation():
    from fedchain.chain.abi import Event

    def ev(name, block, **args):
        ev.n += 1
        return Event(name, {"task_id": 7, **args}, block, "0x0", ev.n)

    ev.n = 0

    ghosts = [ev("RoundFailed", 3, round_id=0, reason=1), ev("TaskFinished", 3)]
    real = [
        ev(
            "TaskCreated",
            5,
            sponsor="0x0",
            recipe_hash=ZERO32,
            model_root=ZERO32,
            model_cid=ZERO32,
            num_rounds=1,
            pool=0,
        ),
        ev(
            "RoundOpened",
            5,
            round_id=0,
            seed=ZERO32,
            commit_end=10,
            reveal_end=15,
            validate_end=20,
            trainer_total=1,
            validator_total=1,
        ),
    ]
    log = TaskLog(_Log(ghosts + real, 7), 7).poll()
    assert not log.finished and log.outcome == {} and list(log.rounds) == [0]


# ---------------------------------------------------------------- L-2


def test_a_round_with_too_few_reveals_cannot_be_finalized_even_with_a_quorum(net):
    task = net.create_task(min_reveals=2)
    res = net.play_round(task, 0, revealers=net.trainers[:1], finalize=False)  # one reveal, a quorum votes
    assert net.fc.call("rounds", task, 0)["leader"] == res.hash
    net.to_finalizable(task, 0)
    with reverts("rounds: too few reveals"):
        net.finalize(task, res)
    net.fc.tx("advance", task, sender=net.owner)
    assert net.fc.call("rounds", task, 0)["status"] == FAILED
    assert net.fc.call("total_owed") == 0  # no budget locked for a round nobody can claim
    net.assert_conserved()


# ---------------------------------------------------------------- M-2


def test_a_round_as_long_as_the_unbonding_delay_is_refused(net):
    # the review's configuration: 5 + 5 + 5 + 84 = 99 blocks against an unbonding delay of 100
    with reverts("tasks: round + slash grace not shorter than unbonding delay"):
        net.create_task(challenge_blocks=84)
    longest = net.params.unbonding_delay - net.params.slash_grace - 15 - 1
    net.create_task(challenge_blocks=longest)


def test_a_wrong_voter_that_unbonds_at_the_opening_is_still_slashed_after_the_challenge(net):
    """The review's M-2 run: validators join and unbond everything in the round's opening
    block, a challenge lands in the window's last block; every slash comes a block later."""
    recipe = (1, 0, 1, 1, keccak(b"recipe"))  # FedAvg, cosine scores
    longest = net.params.unbonding_delay - net.params.slash_grace - 15 - 1
    t = net.create_task(
        recipe_hash=keccak(encode(["uint256"] * 4 + ["bytes32"], list(recipe))), challenge_blocks=longest
    )
    opened = net.schedule(t, 0)[0]
    for v in net.validators:
        net.fc.tx("join", t, 0, sender=v)
        net.fc.tx("unbond", STAKE, sender=v)
    release = net.stake_of(net.validators[0])["release_block"]
    trainers = net.trainers[:2]
    for tr in trainers:
        net.commit(t, 0, tr)
    net.to_reveal_phase(t, 0)
    for tr in trainers:
        net.reveal(t, 0, tr)
    net.to_vote_phase(t, 0)
    # a quorum votes a scores tree with a phantom third leaf: provably wrong (L-1)
    phantom = net.result(t, 0, {trainers[0]: 1, trainers[1]: 2, net.outsiders[2]: 3})
    for v in net.validators:
        net.vote(t, 0, v, phantom)
    window_end = net.schedule(t, 0)[3] + longest
    ch, attacker = net.challenges, net.outsiders[0]
    net.token.tx("approve", ch.address, MAX_UINT, sender=attacker)
    s = phantom.scores
    total = (t, 0, phantom.args, recipe, list(s.nodes), list(s.scores), ZERO32)
    net.chain.mine_to(window_end - 1)
    committed(net.chain, ch, attacker, ("challenge_total", total))  # the window's last block
    r = ch.tx("challenge_total", *total, sender=attacker)
    assert r.event("Challenged").args["success"] and r.block == window_end
    assert release >= window_end + net.params.slash_grace, (opened, release, window_end)
    net.chain.mine_to(window_end + net.params.slash_grace)  # the last block of the grace
    for v in net.validators:
        with reverts("staking: still unbonding"):
            net.fc.tx("withdraw", sender=v)
        taken = net.slashing.tx("slash_wrong_vote", t, 0, v.address, sender=attacker).event("Slashed").args["amount"]
        assert taken == STAKE // 2
    net.assert_conserved()


def rejecting_round(net, task):
    """Two trainers reveal; every validator votes a result that rejects trainer 0's update."""
    bad, good = net.trainers[0], net.trainers[1]
    for tr in (bad, good):
        net.commit(task, 0, tr)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    for tr in (bad, good):
        net.reveal(task, 0, tr)
    net.to_vote_phase(task, 0)
    res = net.result(task, 0, {bad: 0, good: 1}, rejected=1)  # reveal 0 rejected
    for v in net.validators:
        net.vote(task, 0, v, res)
    return bad, good, res


def test_a_rejected_update_is_slashable_without_waiting_for_finalize(net, task):
    bad, good, res = rejecting_round(net, task)
    sl, reporter = net.slashing, net.outsiders[0]
    with reverts("slashing: challenge window open"):
        sl.tx("slash_rejected_before_finalize", task, 0, bad.address, *res.args, sender=reporter)
    net.to_finalizable(task, 0)
    other = net.result(task, 0, {bad: 0, good: 1}, rejected=3, tag="other")
    with reverts("slashing: not the leading vote"):
        sl.tx("slash_rejected_before_finalize", task, 0, good.address, *other.args, sender=reporter)
    with reverts("slashing: not rejected"):
        sl.tx("slash_rejected_before_finalize", task, 0, good.address, *res.args, sender=reporter)
    with reverts("slashing: cannot report yourself"):
        sl.tx("slash_rejected_before_finalize", task, 0, bad.address, *res.args, sender=bad)
    r = sl.tx("slash_rejected_before_finalize", task, 0, bad.address, *res.args, sender=reporter)
    assert (r.event("Slashed").args["reason"], r.event("Slashed").args["amount"]) == (3, net.params.liveness_penalty)
    net.finalize(task, res)
    with reverts("slashing: already slashed"):  # once, before or after finalize
        sl.tx("slash_rejected", task, 0, bad.address, sender=reporter)
    with reverts("slashing: round not open"):
        sl.tx("slash_rejected_before_finalize", task, 0, bad.address, *res.args, sender=reporter)
    net.assert_conserved()


def test_an_open_availability_request_holds_a_rejected_updates_slash(net, task):
    # an unanswered request can still revert the round after its window: its rejected set is not final
    bad, _, res = rejecting_round(net, task)
    sl, reporter, av = net.slashing, net.outsiders[0], net.availability
    net.token.tx("approve", av.address, MAX_UINT, sender=net.outsiders[1])
    net.chain.mine_to(net.schedule(task, 0)[3] + net.fc.call("tasks", task)["challenge_blocks"])  # the window's last
    rid = (
        av.tx("request", task, 0, res.args, (1, 0, 1, 1, keccak(b"recipe")), 1, 0, 0, 0, sender=net.outsiders[1])
        .event("Requested")
        .args["request_id"]
    )
    net.to_finalizable(task, 0)
    with reverts("slashing: availability request open"):
        sl.tx("slash_rejected_before_finalize", task, 0, bad.address, *res.args, sender=reporter)
    net.chain.mine_to(av.call("requests", rid)["deadline"] + 1)
    av.tx("settle", rid, sender=reporter)  # nobody answered (the scripted model has no tree): reverted
    with reverts("slashing: round not open"):  # a reverted round's rejected set slashes nobody
        sl.tx("slash_rejected_before_finalize", task, 0, bad.address, *res.args, sender=reporter)
    assert net.stake_of(bad)["active"] == STAKE
    net.assert_conserved()


# ---------------------------------------------------------------- L-3


def test_the_watcher_challenges_only_after_the_vote_phase(tmp_path):
    net = build_network(
        SimConfig(
            trainers=4,
            validators=3,
            rounds=2,
            model="logreg",
            epochs=1,
            batch_size=32,
            seed=3,
            out=tmp_path,
            colluders=3,
            watchers=1,
        )
    )
    watcher, t = net.watchers[0], net.task_id
    v = play_to_vote(net)  # the colluders' wrong result leads; the vote phase is still open
    assert net.deployment.fedchain.call("rounds", t, v.round_id)["leader"] != ZERO32
    watcher.step(t)
    assert watcher.challenged == []  # an equivocating colluder could still dodge it
    net.chain.mine_to(v.validate_end + 1)
    watcher.step(t)  # it commits to the challenge (M-1) and sends it one block later
    assert watcher.challenged == [] and (t, v.round_id) in watcher.pending
    net.chain.mine(1)
    watcher.step(t)
    assert watcher.challenged == [(t, v.round_id, True)]
    assert net.conservation_gap() == 0


# ---------------------------------------------------------------- L-7


def test_deploy_refuses_a_short_challenge_window_on_a_public_chain():
    assert least_challenge_window(31337, None) == 5
    assert least_challenge_window(31337, 1) == 1
    assert least_challenge_window(1, None) == PUBLIC_MIN_CHALLENGE
    assert least_challenge_window(1, 600) == 600
    with pytest.raises(typer.BadParameter, match="could be censored"):
        least_challenge_window(11155111, PUBLIC_MIN_CHALLENGE - 1)


# ---------------------------------------------------------------- M-4


def _hash_of(chain, number: int) -> bytes:
    if isinstance(chain, EmbeddedChain):
        from fedchain.chain.embedded import block_hash

        return block_hash(number)
    return bytes(chain.w3.eth.get_block(number)["hash"])


def test_nobody_can_compute_a_round_seed_before_its_opening_block_exists(chain):
    """M-4: the old seed, keccak(task, round, prevrandao, blockhash(n - 1)) of the opening
    block n, was known to anyone once block n - 1 was out, so whoever opened a round could
    hold the transaction for a block whose seed selected its identities. The seed is now
    keccak(task, round, blockhash(n)): it does not exist while the opening transaction
    runs, nothing can be selected in that block, and from the next block on it is the
    opening block's hash, whatever the block before it was."""
    net = make_net(chain)
    before = chain.block_number()
    predicted = keccak(
        encode(["uint256", "uint256", "bytes32", "bytes32"], [1, 0, bytes(32), _hash_of(chain, before - 1)])
    )  # the old formula
    r = net.fc.tx("create_task", net.task_config(), sender=net.owner)
    n = r.block
    if chain.block_number() == n:  # the embedded chain: still in the opening block
        assert net.fc.call("seed_of", 1, 0) == ZERO32
        assert not any(net.fc.call("is_selected", 1, 0, t.address, 1) for t in net.trainers)
        with reverts("rounds: seed not drawn yet"):
            net.fc.tx(
                "commit",
                1,
                0,
                net.commitment(1, 0, net.trainers[0], net.update_for(1, 0, net.trainers[0])),
                sender=net.trainers[0],
            )
        chain.mine(1)
    seed = net.fc.call("seed_of", 1, 0)
    assert seed == cm.round_seed(1, 0, _hash_of(chain, n)) != predicted
    chosen = next(t for t in net.trainers if net.fc.call("is_selected", 1, 0, t.address, 1))
    drawn = (
        net.fc.tx("commit", 1, 0, net.commitment(1, 0, chosen, net.update_for(1, 0, chosen)), sender=chosen)
        .event("SeedDrawn")
        .args
    )
    assert drawn == {"task_id": 1, "round_id": 0, "seed": seed} and net.fc.call("rounds", 1, 0)["seed"] == seed
    net.assert_conserved()


def test_a_round_whose_seed_was_never_drawn_fails_cleanly():
    """M-4's other half: the EVM keeps 256 block hashes, so a round nobody committed in or
    joined within 256 blocks of its opening can no longer draw its seed. Its commits and
    joins revert with a clear reason, it fails for too few reveals at `advance`, nobody is
    slashed, and the next round opens with a seed of its own."""
    net = make_net(EmbeddedChain(), ProtocolParams(unbonding_delay=2_000))
    task = net.create_task(commit_blocks=300, reveal_blocks=5)
    opened = net.schedule(task, 0)[0]
    net.chain.mine_to(opened + 257)
    t, v = net.trainers[0], net.validators[0]
    assert net.fc.call("seed_of", task, 0) == ZERO32
    assert not net.fc.call("is_selected", task, 0, t.address, 1)
    with reverts("rounds: seed expired"):
        net.fc.tx("commit", task, 0, net.commitment(task, 0, t, net.update_for(task, 0, t)), sender=t)
    with reverts("rounds: seed expired"):
        net.fc.tx("join", task, 0, sender=v)
    net.to_vote_phase(task, 0)
    failed = net.fc.tx("advance", task, sender=net.owner).event("RoundFailed").args
    assert (failed["round_id"], failed["reason"]) == (0, 1)  # too few reveals
    net.to_seed(task, 1)
    assert net.fc.call("seed_of", task, 1) != ZERO32
    net.play_round(task, 1)
    assert net.fc.call("rounds", task, 1)["status"] == FINALIZED
    assert not [e for e in net.fc.events() if e.name == "Slashed"]


def test_a_seed_drawn_in_time_serves_a_long_commit_phase():
    """Once the first commit stored the seed, commits later than 256 blocks still count."""
    net = make_net(EmbeddedChain(), ProtocolParams(unbonding_delay=2_000))
    task = net.create_task(commit_blocks=300, reveal_blocks=5)
    first, late = net.trainers[0], net.trainers[1]
    net.commit(task, 0, first)
    net.chain.mine_to(net.schedule(task, 0)[0] + 280)
    net.commit(task, 0, late)
    assert net.fc.call("commitment", task, 0, late.address) != ZERO32


# ---------------------------------------------------------------- I-5


def test_nobody_can_push_a_krum_round_past_what_a_challenge_can_judge(tmp_path):
    """I-5: a Krum-rule round with more than 64 reveals cannot be challenged (the distance
    table covers 64), so a party with 65 identities could make one unchallengeable. The
    sponsor now caps a round's commitments (TaskConfig.max_commits, at most 256); the
    reference sponsor sets 64 for the Krum rules and 24 for Bulyan, and the 65th commitment
    of a Krum round is refused (refused, not slashed: it never committed)."""
    from fedchain.learning.aggregate import get

    assert [get(r).max_commits for r in ("krum", "multikrum", "bulyan", "fedavg")] == [64, 64, 24, 256]
    sim = build_network(
        SimConfig(
            trainers=3, validators=3, rounds=1, partition="iid", rule="krum", rule_params={"num_malicious_nodes": 0}
        ),
        EmbeddedChain(),
    )
    assert sim.deployment.fedchain.call("tasks", sim.task_id)["max_commits"] == 64

    net = make_net(EmbeddedChain())
    crowd = [account_from_seed(f"sybil{i}") for i in range(65)]
    net.fund(crowd, stake_role=1)
    net.chain.mine(1)
    task = net.create_task(trainers_per_round=1_000, max_commits=64)  # everyone is selected
    for node in crowd[:64]:
        net.commit(task, 0, node)
    with reverts("rounds: too many commitments"):
        net.commit(task, 0, crowd[64])
    assert net.fc.call("rounds", task, 0)["commits"] == 64
    net.to_vote_phase(task, 0)
    with reverts("slashing: no commitment"):
        net.slashing.tx("slash_missing_reveal", task, 0, crowd[64].address, sender=net.validators[0])
