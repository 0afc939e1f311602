"""Rounds: commit, reveal, join, vote, finalize, advance; their revert reasons and
every phase boundary at b-1, b and b+1 (the embedded chain lets several
transactions share a block, so ``mine_to(b)`` puts the next one in block b)."""

import pytest

from conftest import ZERO32, h32, reverts
from fedchain.chain import commitments as cm
from fedchain.chain.interface import account_from_seed
from fedchain.errors import Reverted

OK = None  # expected outcome: success


def expect(outcome, fn):
    """Run ``fn``: it must succeed if ``outcome`` is OK, else revert with that reason."""
    if outcome is OK:
        return fn()
    with reverts(outcome):
        fn()


@pytest.fixture
def task(net):
    return net.create_task()


# ---------------------------------------------------------------- commit


def test_commit_records_the_commitment(net, task):
    t = net.trainers[0]
    upd = net.update_for(task, 0, t)
    c = net.commitment(task, 0, t, upd)
    r = net.fc.tx("commit", task, 0, c, sender=t)
    assert r.event("Committed").args == {"task_id": task, "round_id": 0, "node": t.address, "commitment": c}
    assert net.fc.call("commitment", task, 0, t.address) == c


@pytest.mark.parametrize("offset, outcome", [(-1, OK), (0, OK), (1, "rounds: commit phase over")])
def test_commit_boundary_at_commit_end(net, task, offset, outcome):
    net.chain.mine_to(net.schedule(task, 0)[1] + offset)
    expect(outcome, lambda: net.commit(task, 0, net.trainers[0]))


def test_a_trainer_past_the_tasks_privacy_budget_cannot_commit(net):
    # a DP task caps every trainer at 2 rounds (its epsilon cap): the third commit reverts,
    # before anything is recorded, and a trainer under the cap still commits
    task = net.create_task(num_rounds=3, max_rounds_per_trainer=2)
    spender, other = net.trainers[0], net.trainers[3]
    for rnd in range(2):
        net.play_round(task, rnd, revealers=[spender, *net.trainers[1:3]])
    assert net.fc.call("rounds_taken", task, spender.address) == 2
    with reverts("rounds: privacy budget spent"):
        net.commit(task, 2, spender)
    assert net.fc.call("commitment", task, 2, spender.address) == ZERO32
    net.commit(task, 2, other)
    assert net.fc.call("rounds_taken", task, other.address) == 1
    # a task without a cap counts nothing (no storage written per commit)
    free = net.create_task()
    net.commit(free, 0, spender)
    assert net.fc.call("rounds_taken", free, spender.address) == 0


def test_commit_rejects_an_unknown_round(net, task):
    with reverts("rounds: no such round"):
        net.commit(task, 1, net.trainers[0])
    with reverts("rounds: no such round"):
        net.commit(99, 0, net.trainers[0])


def test_commit_rejects_an_empty_commitment(net, task):
    with reverts("rounds: empty commitment"):
        net.fc.tx("commit", task, 0, ZERO32, sender=net.trainers[0])


def test_commit_rejects_a_second_commitment(net, task):
    t = net.trainers[0]
    net.commit(task, 0, t)
    with reverts("rounds: already committed"):
        net.fc.tx("commit", task, 0, h32("other"), sender=t)


def test_commit_rejects_nodes_that_are_not_selected(net, task):
    for node in [net.outsiders[0], net.validators[0]]:  # no stake; the wrong role
        with reverts("rounds: not selected"):
            net.commit(task, 0, node)


# ---------------------------------------------------------------- reveal


def test_reveal_records_index_and_samples(net, task):
    a, b = net.trainers[:2]
    for t in (a, b):
        net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    for i, t in enumerate((a, b)):
        upd = net.update_for(task, 0, t)
        ev = net.reveal(task, 0, t).event("Revealed").args
        # equal stakes, k = 4 of 4: each stake stands for exactly one seat (10,000 basis points)
        assert ev == {
            "task_id": task,
            "round_id": 0,
            "node": t.address,
            "index": i,
            "update_root": upd.root,
            "update_cid": upd.cid,
            "samples": upd.samples,
            "salt": upd.salt,
            "seats_bps": 10_000,
        }
        assert net.fc.call("record", task, 0, t.address) == (i + 1) | (upd.samples << 32) | (10_000 << 160)
    assert net.fc.call("rounds", task, 0)["reveals"] == 2


@pytest.mark.parametrize(
    "block, outcome",
    [
        ("commit_end", "rounds: reveal phase not started"),
        ("commit_end+1", OK),
        ("reveal_end-1", OK),
        ("reveal_end", OK),
        ("reveal_end+1", "rounds: reveal phase over"),
    ],
)
def test_reveal_boundaries(net, task, block, outcome):
    t = net.trainers[0]
    net.commit(task, 0, t)
    _, commit_end, reveal_end, _ = net.schedule(task, 0)
    net.chain.mine_to(eval(block, {"commit_end": commit_end, "reveal_end": reveal_end}))
    expect(outcome, lambda: net.reveal(task, 0, t))


def test_reveal_of_an_unknown_round_is_out_of_phase(net, task):
    net.to_reveal_phase(task, 0)
    with reverts("rounds: reveal phase over"):
        net.reveal(task, 1, net.trainers[0])


def test_reveal_rejects_a_node_without_commitment(net, task):
    net.to_reveal_phase(task, 0)
    with reverts("rounds: no commitment"):
        net.reveal(task, 0, net.trainers[0])


def test_reveal_rejects_a_second_reveal(net, task):
    t = net.trainers[0]
    net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    net.reveal(task, 0, t)
    with reverts("rounds: already revealed"):
        net.reveal(task, 0, t)


@pytest.mark.parametrize("field", ["root", "salt"])
def test_reveal_rejects_a_mismatch(net, task, field):
    t = net.trainers[0]
    upd = net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    wrong = upd.__class__(**{**upd.__dict__, field: h32("wrong")})
    with reverts("rounds: reveal does not match commitment"):
        net.reveal(task, 0, t, wrong)
    assert net.fc.call("record", task, 0, t.address) == 0


@pytest.mark.parametrize(
    "samples, outcome",
    [
        (0, "rounds: bad sample count"),
        (1, OK),
        (2**128 - 1, OK),
        (2**128, "rounds: bad sample count"),
    ],
)
def test_reveal_sample_count_limits(net, task, samples, outcome):
    t = net.trainers[0]
    upd = net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    expect(outcome, lambda: net.reveal(task, 0, t, upd.__class__(upd.root, upd.salt, upd.cid, samples)))
    if outcome is OK:
        assert (net.fc.call("record", task, 0, t.address) >> 32) & (2**128 - 1) == samples


def test_commitments_cap_at_256_so_every_commitment_can_be_revealed(net):
    # SECURITY-REVIEW M-3: the cap was on reveals, so the 257th selected, committed,
    # honest trainer could not reveal and was slashed for it
    crowd = [account_from_seed(f"crowd{i}") for i in range(257)]
    net.fund(crowd, stake_role=1)
    net.chain.mine(1)
    task = net.create_task(trainers_per_round=1_000, commit_blocks=1, reveal_blocks=1)
    for t in crowd[:256]:
        net.commit(task, 0, t)
    with reverts("rounds: too many commitments"):
        net.commit(task, 0, crowd[256])
    assert net.fc.call("rounds", task, 0)["commits"] == 256
    net.to_reveal_phase(task, 0)
    for t in crowd[:256]:
        net.reveal(task, 0, t)
    assert net.fc.call("rounds", task, 0)["reveals"] == 256
    net.chain.mine_to(net.schedule(task, 0)[2] + 1)
    for t in (crowd[0], crowd[256]):  # revealed; refused at commit: nothing to slash
        with pytest.raises(Reverted):
            net.slashing.tx("slash_missing_reveal", task, 0, t.address, sender=net.outsiders[0])


# ---------------------------------------------------------------- join


def test_join_adds_the_validators_seats_to_the_committee(net, task):
    # three validators of equal stake, k = 3: each at the cap, k * w / T = one seat (10,000 bps)
    v = net.validators[0]
    r = net.fc.tx("join", task, 0, sender=v)
    assert r.event("Joined").args == {"task_id": task, "round_id": 0, "validator": v.address, "weight": 10_000}
    assert net.fc.call("committee_weight", task, 0, v.address) == 10_000
    net.fc.tx("join", task, 0, sender=net.validators[1])
    assert net.fc.call("rounds", task, 0)["committee_seats"] == 20_000


@pytest.mark.parametrize("offset, outcome", [(-1, OK), (0, OK), (1, "rounds: joining closed")])
def test_join_boundary_at_reveal_end(net, task, offset, outcome):
    net.chain.mine_to(net.schedule(task, 0)[2] + offset)
    expect(outcome, lambda: net.join(task, 0, [net.validators[0]]))


def test_join_rejects_an_unknown_round(net, task):
    with reverts("rounds: no such round"):
        net.join(task, 1, [net.validators[0]])


def test_join_rejects_a_second_join(net, task):
    net.join(task, 0, [net.validators[0]])
    with reverts("rounds: already joined"):
        net.join(task, 0, [net.validators[0]])


def test_join_rejects_nodes_that_are_not_selected(net, task):
    for node in [net.outsiders[0], net.trainers[0]]:
        with reverts("rounds: not selected"):
            net.join(task, 0, [node])


# ---------------------------------------------------------------- vote


def voting_round(net, task, revealers=2):
    """Commit, join and reveal; return the correct result, in the vote phase's first block."""
    ts = net.trainers[:revealers]
    for t in ts:
        net.commit(task, 0, t)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    for t in ts:
        net.reveal(task, 0, t)
    net.to_vote_phase(task, 0)
    return net.result(task, 0, {t: i + 1 for i, t in enumerate(ts)})


def test_votes_reach_quorum_at_two_thirds(net, task):
    res = voting_round(net, task)
    v0, v1, v2 = net.validators
    r = net.vote(task, 0, v0, res)
    ev = r.event("Voted").args
    assert ev["vote_hash"] == res.hash and ev["validator"] == v0.address
    assert [e.name for e in r.events] == ["Voted"]  # 1/3: no quorum
    assert net.fc.call("tally", task, 0, res.hash) == 10_000
    r = net.vote(task, 0, v1, res)  # 2/3 exactly: quorum
    assert [e.name for e in r.events] == ["Voted", "QuorumReached"]
    assert net.fc.call("rounds", task, 0)["leader"] == res.hash
    assert net.fc.call("vote_of", task, 0, v1.address) == res.hash
    r = net.vote(task, 0, v2, res)
    assert [e.name for e in r.events] == ["Voted"]  # the leader is set once


def test_split_votes_reach_no_quorum(net, task):
    res = voting_round(net, task)
    other = net.result(task, 0, {net.trainers[0]: 5}, tag="other")
    net.vote(task, 0, net.validators[0], res)
    net.vote(task, 0, net.validators[1], other)
    net.vote(task, 0, net.validators[2], net.result(task, 0, {}, tag="third"))
    assert net.fc.call("rounds", task, 0)["leader"] == ZERO32


@pytest.mark.parametrize(
    "block, outcome",
    [
        ("reveal_end", "rounds: vote phase not started"),
        ("reveal_end+1", OK),
        ("validate_end-1", OK),
        ("validate_end", OK),
        ("validate_end+1", "rounds: vote phase over"),
    ],
)
def test_vote_boundaries(net, task, block, outcome):
    net.join(task, 0)
    _, _, reveal_end, validate_end = net.schedule(task, 0)
    net.chain.mine_to(eval(block, {"reveal_end": reveal_end, "validate_end": validate_end}))
    expect(outcome, lambda: net.vote(task, 0, net.validators[0], net.result(task, 0)))


def test_vote_on_an_unknown_round_is_out_of_phase(net, task):
    with reverts("rounds: vote phase over"):
        net.vote(task, 1, net.validators[0], net.result(task, 1))


def test_vote_rejects_a_failed_round(net):
    task = net.create_task(min_reveals=2)
    net.join(task, 0)
    net.to_vote_phase(task, 0)
    net.fc.tx("advance", task, sender=net.outsiders[0])  # no reveals: the round fails
    with reverts("rounds: round closed"):
        net.vote(task, 0, net.validators[0], net.result(task, 0))


def test_vote_rejects_non_members(net, task):
    net.join(task, 0, net.validators[:1])
    net.to_vote_phase(task, 0)
    for node in [net.validators[1], net.outsiders[0], net.trainers[0]]:
        with reverts("rounds: not in committee"):
            net.vote(task, 0, node, net.result(task, 0))


def test_vote_rejects_the_same_vote_twice(net, task):
    res = voting_round(net, task)
    net.vote(task, 0, net.validators[0], res)
    with reverts("rounds: already voted"):
        net.vote(task, 0, net.validators[0], res)
    assert net.fc.call("tally", task, 0, res.hash) == 10_000


# ---------------------------------------------------------------- finalize


def test_finalize_pays_the_round_budget_and_opens_the_next_round(net, task):
    res = net.play_round(task, 0, finalize=False)
    net.to_finalizable(task, 0)
    r = net.finalize(task, res)
    ev = r.event("RoundFinalized").args
    # pool 100, two rounds: budget 50; fee 10% -> 5 to validators, 45 to trainers
    assert ev == {
        "task_id": task,
        "round_id": 0,
        "model_root": res.model_root,
        "model_cid": res.model_cid,
        "scores_root": res.scores.root,
        "total_score": res.scores.total,
        "rejected": 0,
        "trainer_budget": 45 * 10**18,
        "validator_budget": 5 * 10**18,
    }
    assert r.event("RoundOpened").args["round_id"] == 1
    assert net.schedule(task, 1)[0] == r.block
    rnd = net.fc.call("rounds", task, 0)
    assert (rnd["status"], rnd["majority_seats"], rnd["total_score"]) == (1, 30_000, 6)
    t = net.fc.call("tasks", task)
    assert (t["round"], t["pool"], t["model_root"], t["model_cid"]) == (1, 50 * 10**18, res.model_root, res.model_cid)
    assert net.fc.call("total_owed") == 50 * 10**18
    assert net.fc.call("total_pools") == 50 * 10**18


def test_finalize_of_the_last_round_finishes_the_task(net):
    task = net.create_task(num_rounds=1)
    net.play_round(task, 0, finalize=False)
    net.to_finalizable(task, 0)
    r = net.finalize(task, net.result(task, 0, dict(zip(net.trainers[:3], [1, 2, 3]))))
    assert [e.name for e in r.events] == ["RoundFinalized", "TaskFinished"]
    assert net.fc.call("tasks", task)["finished"]
    assert net.fc.call("tasks", task)["pool"] == 0


@pytest.mark.parametrize(
    "offset, outcome",
    [
        (-1, "rounds: challenge window open"),
        (0, "rounds: challenge window open"),
        (1, OK),
    ],
)
def test_finalize_boundary_at_challenge_window_end(net, task, offset, outcome):
    res = net.play_round(task, 0, finalize=False)
    window_end = net.schedule(task, 0)[3] + net.fc.call("tasks", task)["challenge_blocks"]
    net.chain.mine_to(window_end + offset)
    expect(outcome, lambda: net.finalize(task, res))


def test_finalize_rejects_a_round_without_quorum(net, task):
    net.to_finalizable(task, 0)
    with reverts("rounds: no quorum"):
        net.finalize(task, net.result(task, 0))


def test_finalize_rejects_a_result_other_than_the_quorums(net, task):
    res = net.play_round(task, 0, finalize=False)
    net.to_finalizable(task, 0)
    wrong = net.result(task, 0, dict(zip(net.trainers[:3], [1, 2, 4])))
    with reverts("rounds: result does not match quorum"):
        net.finalize(task, wrong)
    for rejected in (1, 0):  # every field is bound, the rejected set too
        tweaked = res.__class__(res.model_root, res.model_cid, res.scores, rejected)
        expect(OK if rejected == 0 else "rounds: result does not match quorum", lambda: net.finalize(task, tweaked))  # noqa: B023 - expect calls it at once


def test_finalize_rejects_a_finished_task(net):
    task = net.create_task(num_rounds=1)
    res = net.play_round(task, 0)
    with reverts("rounds: task finished"):
        net.finalize(task, res)


def test_finalize_with_zero_total_score_keeps_the_trainer_budget(net, task):
    res = net.play_round(task, 0, scores=[0, 0, 0], finalize=False)
    net.to_finalizable(task, 0)
    ev = net.finalize(task, res).event("RoundFinalized").args
    assert (ev["trainer_budget"], ev["validator_budget"]) == (0, 5 * 10**18)
    assert net.fc.call("tasks", task)["pool"] == 95 * 10**18


# ---------------------------------------------------------------- advance


@pytest.mark.parametrize(
    "offset, outcome",
    [
        (-1, "rounds: nothing to advance"),
        (0, "rounds: nothing to advance"),
        (1, OK),
    ],
)
def test_advance_too_few_reveals_boundary_at_reveal_end(net, offset, outcome):
    task = net.create_task(min_reveals=2)
    t = net.trainers[0]
    net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    net.reveal(task, 0, t)
    net.chain.mine_to(net.schedule(task, 0)[2] + offset)
    r = expect(outcome, lambda: net.fc.tx("advance", task, sender=net.outsiders[0]))
    if outcome is OK:
        assert r.event("RoundFailed").args == {"task_id": task, "round_id": 0, "reason": 1}
        assert r.event("RoundOpened").args["round_id"] == 1
        assert net.fc.call("rounds", task, 0)["status"] == 2
        assert net.fc.call("tasks", task)["round"] == 1


@pytest.mark.parametrize(
    "offset, outcome",
    [
        (-1, "rounds: nothing to advance"),
        (0, "rounds: nothing to advance"),
        (1, OK),
    ],
)
def test_advance_no_quorum_boundary_at_validate_end(net, task, offset, outcome):
    t = net.trainers[0]
    net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    net.reveal(task, 0, t)
    net.chain.mine_to(net.schedule(task, 0)[3] + offset)
    r = expect(outcome, lambda: net.fc.tx("advance", task, sender=net.outsiders[0]))
    if outcome is OK:
        assert r.event("RoundFailed").args["reason"] == 2


def test_advance_rejects_a_round_that_reached_quorum(net, task):
    net.play_round(task, 0, finalize=False)
    net.to_finalizable(task, 0)
    with reverts("rounds: nothing to advance"):
        net.fc.tx("advance", task, sender=net.outsiders[0])


def test_advance_keeps_the_last_finalized_model_and_pool(net, task):
    net.to_vote_phase(task, 0)
    net.fc.tx("advance", task, sender=net.outsiders[0])
    t = net.fc.call("tasks", task)
    assert (t["model_root"], t["pool"]) == (h32("model", 0), 100 * 10**18)
    # the failed round spent nothing: the last round gets the whole pool
    res = net.play_round(task, 1)
    rnd = net.fc.call("rounds", task, 1)
    assert rnd["trainer_budget"] + rnd["validator_budget"] == 100 * 10**18
    assert net.fc.call("tasks", task)["model_root"] == res.model_root


def test_advance_of_the_last_round_finishes_the_task(net):
    task = net.create_task(num_rounds=1)
    net.to_vote_phase(task, 0)
    r = net.fc.tx("advance", task, sender=net.outsiders[0])
    assert [e.name for e in r.events] == ["RoundFailed", "TaskFinished"]
    with reverts("rounds: task finished"):
        net.fc.tx("advance", task, sender=net.outsiders[0])


def test_vote_hash_in_events_matches_the_python_twin(net, task):
    res = voting_round(net, task)
    ev = net.vote(task, 0, net.validators[0], res).event("Voted").args
    assert ev["vote_hash"] == cm.vote_hash(*res.args) == res.hash
    assert (ev["model_root"], ev["model_cid"], ev["scores_root"], ev["total_score"], ev["rejected"]) == res.args
