"""Slashing: missing reveals (liveness), rejected updates (liveness),
equivocation (safety), reporter payouts, and where a penalty is taken from."""

import pytest

from conftest import BALANCE, ROLE_TRAINER, ROLE_VALIDATOR, STAKE, TOKEN, ZERO32, make_net, reverts
from fedchain.chain.deploy import ProtocolParams
from fedchain.chain.embedded import EmbeddedChain
from fedchain.errors import Reverted

BPS = 10_000
PENALTY = ProtocolParams().liveness_penalty
SHARE = PENALTY * ProtocolParams().reporter_bps // BPS
OK = None


@pytest.fixture
def task(net):
    return net.create_task()


def committed_silently(net, task, node=None):
    """``node`` (default: trainer 3) commits in round 0 and never reveals."""
    node = node or net.trainers[3]
    net.commit(task, 0, node)
    return node


# ---------------------------------------------------------------- missing reveal


def test_slash_missing_reveal_takes_the_liveness_penalty(net, task):
    node = committed_silently(net, task)
    reporter = net.outsiders[0]
    net.to_vote_phase(task, 0)
    pool = net.fc.call("tasks", task)["pool"]
    r = net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=reporter)
    assert r.event("Slashed").args == {
        "node": node.address,
        "amount": PENALTY,
        "reason": 1,
        "reporter": reporter.address,
    }
    assert net.stake_of(node)["active"] == STAKE - PENALTY
    assert net.fc.call("total_active", ROLE_TRAINER) == 4 * STAKE - PENALTY
    assert net.fc.call("payouts", reporter.address) == SHARE
    assert net.fc.call("tasks", task)["pool"] == pool  # the rest is burned, never the sponsor's (M-5)
    assert net.fc.call("burned") == PENALTY - SHARE
    assert net.fc.call("record", task, 0, node.address) & 2**253  # the SLASHED flag


@pytest.mark.parametrize(
    "offset, outcome",
    [
        (-1, "slashing: reveal phase not over"),
        (0, "slashing: reveal phase not over"),
        (1, OK),
    ],
)
def test_slash_missing_reveal_boundary_at_reveal_end(net, task, offset, outcome):
    node = committed_silently(net, task)
    net.chain.mine_to(net.schedule(task, 0)[2] + offset)
    call = lambda: net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=net.outsiders[0])  # noqa: E731
    if outcome is OK:
        call()
    else:
        with reverts(outcome):
            call()


def test_slash_missing_reveal_rejects_an_unknown_round(net, task):
    for t, rnd in [(task, 1), (99, 0)]:
        with reverts("slashing: no such round"):
            net.slashing.tx("slash_missing_reveal", t, rnd, net.trainers[0].address, sender=net.outsiders[0])


def test_slash_missing_reveal_rejects_a_node_without_commitment(net, task):
    net.to_vote_phase(task, 0)
    with reverts("slashing: no commitment"):
        net.slashing.tx("slash_missing_reveal", task, 0, net.trainers[0].address, sender=net.outsiders[0])


def test_slash_missing_reveal_rejects_a_second_slash(net, task):
    node = committed_silently(net, task)
    net.to_vote_phase(task, 0)
    net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=net.outsiders[0])
    with reverts("slashing: already slashed"):
        net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=net.outsiders[1])


def test_slash_missing_reveal_rejects_a_revealed_node(net, task):
    t = net.trainers[0]
    net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    net.reveal(task, 0, t)
    net.to_vote_phase(task, 0)
    with reverts("slashing: revealed"):
        net.slashing.tx("slash_missing_reveal", task, 0, t.address, sender=net.outsiders[0])


def test_mismatched_reveal_reverts_and_leaves_the_commitment_slashable(net, task):
    t = net.trainers[0]
    upd = net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    with reverts("rounds: reveal does not match commitment"):
        net.reveal(task, 0, t, upd.__class__(upd.root, net.update_for(task, 0, net.trainers[1]).salt, upd.cid))
    net.to_vote_phase(task, 0)
    r = net.slashing.tx("slash_missing_reveal", task, 0, t.address, sender=net.outsiders[0])
    assert r.event("Slashed").args["amount"] == PENALTY


def test_slash_missing_reveal_in_a_failed_round(net):
    task = net.create_task(min_reveals=2)
    node = committed_silently(net, task)
    net.to_vote_phase(task, 0)
    net.fc.tx("advance", task, sender=net.owner)
    net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=net.outsiders[0])
    assert net.fc.call("tasks", task)["pool"] == 100 * TOKEN  # the slash is burned (M-5)
    assert net.fc.call("burned") == PENALTY - SHARE


def test_penalty_falls_on_unbonding_stake_when_nothing_is_active(net, task):
    node = committed_silently(net, task)
    net.fc.tx("unbond", STAKE, sender=node)
    net.to_vote_phase(task, 0)
    net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=net.outsiders[0])
    s = net.stake_of(node)
    assert (s["active"], s["unbonding"]) == (0, STAKE - PENALTY)
    assert net.fc.call("total_unbonding") == STAKE - PENALTY


def test_penalty_is_capped_by_the_stake_left():
    net = make_net(EmbeddedChain(), ProtocolParams(liveness_penalty=150 * TOKEN))
    task = net.create_task()
    node = committed_silently(net, task)
    net.to_vote_phase(task, 0)
    r = net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=net.outsiders[0])
    assert r.event("Slashed").args["amount"] == STAKE
    assert net.stake_of(node)["active"] == 0
    assert net.fc.call("payouts", net.outsiders[0].address) == STAKE // 10
    net.assert_conserved()


def test_a_withdrawn_node_has_nothing_left_to_slash(net, task):
    """Stake is slashable until it is withdrawn: a report after that takes nothing."""
    node = committed_silently(net, task)
    net.fc.tx("unbond", STAKE, sender=node)
    net.chain.mine(100)
    net.fc.tx("withdraw", sender=node)
    r = net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=net.outsiders[0])
    assert r.event("Slashed").args["amount"] == 0
    assert net.fc.call("payouts", net.outsiders[0].address) == 0


# ---------------------------------------------------------------- payouts


def test_withdraw_payout_pays_the_reporter_share(net, task):
    node = committed_silently(net, task)
    reporter = net.outsiders[0]
    net.to_vote_phase(task, 0)
    net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=reporter)
    r = net.fc.tx("withdraw_payout", sender=reporter)
    assert r.event("PayoutWithdrawn").args == {"node": reporter.address, "amount": SHARE}
    assert net.balance(reporter) == BALANCE + SHARE
    assert net.fc.call("payouts", reporter.address) == 0
    assert net.fc.call("total_owed") == 0
    with reverts("rewards: no payout"):
        net.fc.tx("withdraw_payout", sender=reporter)


def test_withdraw_payout_rejects_an_empty_balance(net):
    with reverts("rewards: no payout"):
        net.fc.tx("withdraw_payout", sender=net.outsiders[0])


def test_a_node_cannot_report_itself_to_recover_the_reporter_share(net, task):
    node = committed_silently(net, task)
    net.to_vote_phase(task, 0)
    with reverts("slashing: cannot report yourself"):
        net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=node)
    net.slashing.tx("slash_missing_reveal", task, 0, node.address, sender=net.outsiders[0])
    assert net.fc.call("payouts", node.address) == 0


# ---------------------------------------------------------------- rejected updates


def rejected_round(net, task, rejected=0b010):
    """Three reveals; the quorum rejects the ones in ``rejected`` (bit i = i-th reveal)."""
    ts = net.trainers[:3]
    for t in ts:
        net.commit(task, 0, t)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    for t in ts:
        net.reveal(task, 0, t)
    res = net.result(task, 0, {t: 0 if rejected >> i & 1 else 1 for i, t in enumerate(ts)}, rejected)
    net.to_vote_phase(task, 0)
    for v in net.validators:
        net.vote(task, 0, v, res)
    return res


def test_slash_rejected_takes_the_liveness_penalty(net, task):
    res = rejected_round(net, task)
    net.to_finalizable(task, 0)
    net.finalize(task, res)
    bad = net.trainers[1]
    r = net.slashing.tx("slash_rejected", task, 0, bad.address, sender=net.validators[0])
    assert r.event("Slashed").args == {
        "node": bad.address,
        "amount": PENALTY,
        "reason": 3,
        "reporter": net.validators[0].address,
    }
    assert net.fc.call("payouts", net.validators[0].address) == SHARE
    with reverts("slashing: already slashed"):
        net.slashing.tx("slash_rejected", task, 0, bad.address, sender=net.validators[0])


def test_slash_rejected_rejects_an_unfinalized_round(net, task):
    rejected_round(net, task)
    with reverts("slashing: round not finalized"):
        net.slashing.tx("slash_rejected", task, 0, net.trainers[1].address, sender=net.outsiders[0])


def test_slash_rejected_rejects_nodes_without_reveal(net, task):
    res = rejected_round(net, task)
    net.to_finalizable(task, 0)
    net.finalize(task, res)
    for node in (net.trainers[3], net.outsiders[0]):
        with reverts("slashing: no reveal"):
            net.slashing.tx("slash_rejected", task, 0, node.address, sender=net.outsiders[1])


def test_slash_rejected_rejects_accepted_updates(net, task):
    res = rejected_round(net, task)
    net.to_finalizable(task, 0)
    net.finalize(task, res)
    for node in (net.trainers[0], net.trainers[2]):
        with reverts("slashing: not rejected"):
            net.slashing.tx("slash_rejected", task, 0, node.address, sender=net.outsiders[0])


# ---------------------------------------------------------------- equivocation


def equivocation_round(net, task):
    for t in net.trainers[:2]:
        net.commit(task, 0, t)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    for t in net.trainers[:2]:
        net.reveal(task, 0, t)
    net.to_vote_phase(task, 0)
    good = net.result(task, 0, {net.trainers[0]: 1, net.trainers[1]: 2})
    bad = net.result(task, 0, {net.trainers[0]: 3, net.trainers[1]: 0}, tag="bad")
    return good, bad


def test_equivocation_slashes_and_withdraws_the_first_vote(net, task):
    good, bad = equivocation_round(net, task)
    v0, v1, v2 = net.validators
    net.vote(task, 0, v0, good)
    net.vote(task, 0, v1, good)  # 200 of 300: quorum
    assert net.fc.call("rounds", task, 0)["leader"] == good.hash
    pool = net.fc.call("tasks", task)["pool"]
    r = net.vote(task, 0, v0, bad)
    assert [e.name for e in r.events] == ["Equivocated", "Slashed"]
    assert r.event("Equivocated").args == {
        "task_id": task,
        "round_id": 0,
        "validator": v0.address,
        "first_vote": good.hash,
        "second_vote": bad.hash,
    }
    safety = STAKE * ProtocolParams().safety_penalty_bps // BPS
    assert r.event("Slashed").args == {"node": v0.address, "amount": safety, "reason": 2, "reporter": "0x" + "0" * 40}
    assert net.stake_of(v0)["active"] == STAKE - safety
    assert net.fc.call("tasks", task)["pool"] == pool  # burned, and no reporter share
    assert net.fc.call("burned") == safety
    assert net.fc.call("tally", task, 0, good.hash) == 10_000
    assert net.fc.call("tally", task, 0, bad.hash) == 0  # the second vote is not counted
    assert net.fc.call("rounds", task, 0)["leader"] == ZERO32  # 100 of 300: quorum lost
    assert net.fc.call("vote_of", task, 0, v0.address) == ZERO32
    assert net.fc.call("equivocated", task, 0, v0.address)
    with reverts("rounds: equivocated"):
        net.vote(task, 0, v0, good)
    with reverts("rounds: equivocated"):
        net.vote(task, 0, v0, net.result(task, 0, tag="third"))
    # the honest third vote restores the quorum; the equivocator earns nothing
    r = net.vote(task, 0, v2, good)
    assert [e.name for e in r.events] == ["Voted", "QuorumReached"]
    net.to_finalizable(task, 0)
    net.finalize(task, good)
    with reverts("rewards: not in majority"):
        net.fc.tx("claim_validator", task, 0, sender=v0)
    fee = 100 * TOKEN // 2 // 10  # the penalty was burned: the pool is as it was
    assert net.fc.call("rounds", task, 0)["validator_budget"] == fee
    for v in (v1, v2):
        assert net.fc.tx("claim_validator", task, 0, sender=v).event("RewardClaimed").args["amount"] == fee // 2


def test_equivocation_keeps_a_lead_that_still_has_quorum(net):
    net4 = make_net(EmbeddedChain(), validators=4)
    task = net4.create_task()
    good, bad = equivocation_round(net4, task)
    for v in net4.validators:
        net4.vote(task, 0, v, good)
    net4.vote(task, 0, net4.validators[0], bad)  # 300 of 400 left: still 2/3
    assert net4.fc.call("rounds", task, 0)["leader"] == good.hash
    net4.assert_conserved()


def test_same_vote_twice_is_not_equivocation(net, task):
    good, _ = equivocation_round(net, task)
    v0 = net.validators[0]
    net.vote(task, 0, v0, good)
    with reverts("rounds: already voted"):
        net.vote(task, 0, v0, good)
    assert not net.fc.call("equivocated", task, 0, v0.address)
    assert net.stake_of(v0)["active"] == STAKE


def test_equivocation_penalty_covers_unbonding_stake(net, task):
    good, bad = equivocation_round(net, task)
    v0 = net.validators[0]
    net.fc.tx("stake", ROLE_VALIDATOR, STAKE, sender=v0)  # 200 active
    net.fc.tx("unbond", STAKE, sender=v0)  # 100 active, 100 unbonding
    net.vote(task, 0, v0, good)
    r = net.vote(task, 0, v0, bad)
    assert r.event("Slashed").args["amount"] == 100 * TOKEN  # half of 200
    s = net.stake_of(v0)
    assert (s["active"], s["unbonding"]) == (0, STAKE)


def test_committee_weight_stays_slashable_until_the_round_is_over(net):
    try:
        task = net.create_task(validate_blocks=150)  # challenge window 5 < unbonding delay 100
    except Reverted:
        return  # refusing such a task is the fix
    v0 = net.validators[0]
    net.join(task, 0)
    net.fc.tx("unbond", STAKE, sender=v0)
    net.chain.mine(100)
    net.fc.tx("withdraw", sender=v0)
    assert net.balance(v0) == BALANCE
    net.to_vote_phase(task, 0)
    good = net.result(task, 0, tag="a")
    bad = net.result(task, 0, tag="b")
    net.vote(task, 0, v0, good)
    r = net.vote(task, 0, v0, bad)
    assert r.event("Slashed").args["amount"] > 0, "equivocation cost nothing"


def test_slash_rejected_refuses_a_self_report(net, task):
    res = rejected_round(net, task)
    net.to_finalizable(task, 0)
    net.finalize(task, res)
    bad = net.trainers[1]
    with reverts("slashing: cannot report yourself"):
        net.slashing.tx("slash_rejected", task, 0, bad.address, sender=bad)
