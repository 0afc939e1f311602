"""Rewards: claim (trainers, by score with a Merkle proof), claim_validator (by
committee weight in the majority), round budgets, and every revert reason."""

import pytest

from conftest import BALANCE, STAKE, TOKEN, reverts
from fedchain.chain.interface import account_from_seed
from fedchain.errors import Reverted
from fedchain.storage.merkle import merkle_proof, merkle_root, score_leaf


@pytest.fixture
def task(net):
    return net.create_task()  # pool 100, two rounds, fee 10%: round 0 pays 45 + 5


def test_claim_pays_budget_times_score_over_total(net, task):
    res = net.play_round(task, 0, scores=[1, 2, 3])
    paid = 0
    for t, score in zip(net.trainers[:3], [1, 2, 3]):
        r = net.claim(task, 0, t, res)
        amount = 45 * TOKEN * score // 6
        assert r.event("RewardClaimed").args == {"task_id": task, "round_id": 0, "node": t.address, "amount": amount}
        assert net.fc.call("payouts", t.address) == amount  # credited, not transferred
        assert net.balance(t) == BALANCE - STAKE
        assert net.fc.call("claimed", task, 0, t.address)
        paid += amount
    assert paid == 45 * TOKEN
    assert net.fc.call("total_owed") == 50 * TOKEN  # 45 credited to trainers, the validators' fee unclaimed
    t = net.trainers[2]
    r = net.fc.tx("withdraw_payout", sender=t)
    assert r.event("PayoutWithdrawn").args == {"node": t.address, "amount": 45 * TOKEN * 3 // 6}
    assert net.balance(t) == BALANCE - STAKE + 45 * TOKEN * 3 // 6
    assert net.fc.call("payouts", t.address) == 0


def test_claim_rounding_never_pays_more_than_the_budget(net):
    task = net.create_task(num_rounds=1, pool=10**18 + 7, validator_fee_bps=3_333)
    scores = [7, 11, 13]
    res = net.play_round(task, 0, scores=scores)
    budget = net.fc.call("rounds", task, 0)["trainer_budget"]
    paid = sum(net.claim(task, 0, t, res).event("RewardClaimed").args["amount"] for t in net.trainers[:3])
    assert budget - len(scores) < paid <= budget


def test_claims_in_any_order_and_across_rounds(net, task):
    r0 = net.play_round(task, 0, revealers=net.trainers[:2], scores=[1, 1])
    r1 = net.play_round(task, 1, revealers=net.trainers[1:3], scores=[3, 1])
    a, b, c = net.trainers[:3]
    net.claim(task, 1, c, r1)
    net.claim(task, 0, b, r0)
    net.claim(task, 1, b, r1)
    net.claim(task, 0, a, r0)
    payout = lambda node: net.fc.call("payouts", node.address)  # noqa: E731
    assert payout(a) == 45 * TOKEN // 2
    assert payout(b) == 45 * TOKEN // 2 + 45 * TOKEN * 3 // 4
    assert payout(c) == 45 * TOKEN // 4


def test_claim_rejects_an_unfinalized_round(net, task):
    res = net.play_round(task, 0, finalize=False)
    with reverts("rewards: round not finalized"):
        net.claim(task, 0, net.trainers[0], res)
    with reverts("rewards: round not finalized"):
        net.fc.tx("claim", task, 5, 1, [], sender=net.trainers[0])


def test_claim_rejects_a_failed_round(net):
    task = net.create_task(min_reveals=4)
    res = net.play_round(task, 0, finalize=False)  # three reveals of four needed
    net.fc.tx("advance", task, sender=net.owner)
    with reverts("rewards: round not finalized"):
        net.claim(task, 0, net.trainers[0], res)


def test_claim_rejects_nodes_without_reveal(net, task):
    silent = net.trainers[3]
    res = net.play_round(task, 0, silent=[silent])
    for node in (silent, net.outsiders[0]):
        with reverts("rewards: no reveal"):
            net.fc.tx("claim", task, 0, 1, res.scores.proof(net.trainers[0].address), sender=node)


def test_claim_rejects_a_second_claim(net, task):
    res = net.play_round(task, 0)
    t = net.trainers[0]
    net.claim(task, 0, t, res)
    with reverts("rewards: already claimed"):
        net.claim(task, 0, t, res)


def test_claim_rejects_a_wrong_score_or_proof(net, task):
    res = net.play_round(task, 0, scores=[1, 2, 3])
    a, b = net.trainers[:2]
    with reverts("rewards: invalid proof"):
        net.fc.tx("claim", task, 0, 3, res.scores.proof(a.address), sender=a)  # inflated score
    with reverts("rewards: invalid proof"):
        net.fc.tx("claim", task, 0, 2, res.scores.proof(b.address), sender=a)  # someone else's leaf
    with reverts("rewards: invalid proof"):
        net.fc.tx("claim", task, 0, 1, res.scores.proof(a.address)[:-1], sender=a)  # short proof
    with reverts("rewards: invalid proof"):
        net.fc.tx("claim", task, 0, 1, [], sender=a)
    net.claim(task, 0, a, res)


def test_claim_rejects_a_zero_score(net, task):
    res = net.play_round(task, 0, scores=[0, 2, 3])
    with reverts("rewards: nothing to claim"):
        net.claim(task, 0, net.trainers[0], res)
    net.claim(task, 0, net.trainers[1], res)


def test_claim_of_a_zero_total_round_says_nothing_to_claim(net, task):
    res = net.play_round(task, 0, scores=[0, 0, 0])
    with reverts("rewards: nothing to claim"):
        net.claim(task, 0, net.trainers[0], res)


def test_claim_with_a_padded_tree_uses_the_reveal_index(net, task):
    """Leaf i belongs to the i-th revealer; extra leaves beyond the reveals are inert."""
    res = net.play_round(task, 0, revealers=net.trainers[:2], scores=[5, 5], finalize=False)
    ghost = account_from_seed("ghost")
    leaves = [score_leaf(t.address, 5) for t in net.trainers[:2]] + [score_leaf(ghost.address, 90)] * 6
    padded = res.__class__(
        res.model_root,
        res.model_cid,
        res.scores.__class__(tuple(t.address for t in net.trainers[:2]) + (ghost.address,) * 6, (5, 5) + (90,) * 6),
    )
    assert merkle_root(leaves) == padded.scores.root
    # the quorum voted `res`; a padded tree would be another vote. Check the proof path only:
    net.to_finalizable(task, 0)
    net.finalize(task, res)
    a = net.trainers[0]
    with reverts("rewards: invalid proof"):  # a proof from a different tree
        net.fc.tx("claim", task, 0, 5, merkle_proof(leaves, 0), sender=a)
    net.claim(task, 0, a, res)


# ---------------------------------------------------------------- validators


def test_claim_validator_splits_the_fee_by_weight(net, task):
    net.fc.tx("stake", 2, STAKE, sender=net.validators[0])  # 200 of 400 stake, eligible next task
    net.chain.mine(1)
    task = net.create_task(
        num_rounds=1,
        pool=90 * TOKEN,
        validator_fee_bps=1_000,  # fee 9
        validators_per_round=4,
    )  # 100 * 4 >= 400: everyone is selected
    net.play_round(task, 0)
    amounts = [
        net.fc.tx("claim_validator", task, 0, sender=v).event("RewardClaimed").args["amount"] for v in net.validators
    ]
    assert amounts == [9 * TOKEN * 200 // 400, 9 * TOKEN * 100 // 400, 9 * TOKEN * 100 // 400]
    assert net.fc.call("validator_claimed", task, 0, net.validators[0].address)
    assert [net.fc.call("payouts", v.address) for v in net.validators] == amounts


def test_claim_validator_pays_only_the_majority(net, task):
    res = net.play_round(task, 0, finalize=False, voters=[], joiners=net.validators)
    v0, v1, v2 = net.validators
    net.vote(task, 0, v0, res)
    net.vote(task, 0, v1, res)
    net.vote(task, 0, v2, net.result(task, 0, tag="minority"))
    net.to_finalizable(task, 0)
    net.finalize(task, res)
    assert net.fc.call("rounds", task, 0)["majority_seats"] == 2 * 10_000  # one seat each (basis points)
    for v in (v0, v1):
        assert net.fc.tx("claim_validator", task, 0, sender=v).event("RewardClaimed").args["amount"] == 5 * TOKEN // 2
    with reverts("rewards: not in majority"):
        net.fc.tx("claim_validator", task, 0, sender=v2)


def test_claim_validator_rejects_non_voters(net, task):
    net.play_round(task, 0, voters=net.validators[:2])  # 200 of 200 joined stake voted
    for node in (net.validators[2], net.outsiders[0], net.trainers[0]):
        with reverts("rewards: not in majority"):
            net.fc.tx("claim_validator", task, 0, sender=node)


def test_claim_validator_rejects_an_unfinalized_round(net, task):
    net.play_round(task, 0, finalize=False)
    with reverts("rewards: round not finalized"):
        net.fc.tx("claim_validator", task, 0, sender=net.validators[0])


def test_claim_validator_rejects_a_second_claim(net, task):
    net.play_round(task, 0)
    net.fc.tx("claim_validator", task, 0, sender=net.validators[0])
    with reverts("rewards: already claimed"):
        net.fc.tx("claim_validator", task, 0, sender=net.validators[0])


def test_claim_validator_rejects_a_zero_fee(net):
    task = net.create_task(validator_fee_bps=0)
    net.play_round(task, 0)
    with reverts("rewards: nothing to claim"):
        net.fc.tx("claim_validator", task, 0, sender=net.validators[0])


# ---------------------------------------------------------------- budgets


def test_round_budgets_share_the_pool_over_the_rounds_left(net):
    task = net.create_task(num_rounds=3, pool=90 * TOKEN, validator_fee_bps=0)
    net.play_round(task, 0)  # 90 / 3 = 30
    net.to_vote_phase(task, 1)
    net.fc.tx("advance", task, sender=net.owner)  # round 1 fails and spends nothing
    net.play_round(task, 2)  # the last round takes the rest: 60
    budgets = [net.fc.call("rounds", task, r)["trainer_budget"] for r in range(3)]
    assert budgets == [30 * TOKEN, 0, 60 * TOKEN]
    assert net.fc.call("tasks", task)["pool"] == 0


def test_full_fee_goes_to_validators(net):
    task = net.create_task(num_rounds=1, validator_fee_bps=10_000)
    res = net.play_round(task, 0)
    rnd = net.fc.call("rounds", task, 0)
    assert (rnd["trainer_budget"], rnd["validator_budget"]) == (0, 100 * TOKEN)
    with reverts("rewards: nothing to claim"):
        net.claim(task, 0, net.trainers[0], res)


def test_a_round_never_pays_more_than_its_budget(net):
    honest = net.create_task(num_rounds=1, pool=100 * TOKEN)
    net.play_round(honest, 0)  # 90 unclaimed trainer rewards wait in task 1
    evil = net.create_task(num_rounds=1, pool=TOKEN, validator_fee_bps=0)
    t = net.trainers[0]
    net.commit(evil, 0, t)
    net.join(evil, 0)
    net.to_reveal_phase(evil, 0)
    net.reveal(evil, 0, t)
    net.to_vote_phase(evil, 0)
    leaves = [score_leaf(t.address, 50)]
    lie = (b"\x01" * 32, b"\x02" * 32, merkle_root(leaves), 1, 0)  # one leaf of 50, total "1"
    for v in net.validators:
        net.fc.tx("vote", evil, 0, *lie, sender=v)
    net.to_finalizable(evil, 0)
    net.fc.tx("finalize", evil, *lie, sender=net.owner)
    budget = net.fc.call("rounds", evil, 0)["trainer_budget"]
    try:
        paid = net.fc.tx("claim", evil, 0, 50, [], sender=t).event("RewardClaimed").args["amount"]
    except Reverted:
        paid = 0
    assert paid <= budget
