"""A node restarted mid-round resumes from its journal and the chain: it reveals
the commitment it journalled, votes once, claims once, and sends nothing twice.
(A restart is a fresh role object on the same journal, store and key.)"""

from __future__ import annotations

import pytest

from fedchain.protocol.journal import Journal
from fedchain.protocol.trainer import Trainer
from fedchain.protocol.validator import Validator
from fedchain.sim.network import SimConfig, build_network, play_round, settle


@pytest.fixture
def net(tmp_path):
    return build_network(
        SimConfig(
            trainers=3, validators=3, rounds=1, model="mlp", epochs=1, out=tmp_path, partition="iid", phase_blocks=5
        )
    )


def restart(node, task_id: int):
    common = dict(
        fedchain=node.fc, account=node.account, store=node.store, journal=Journal(node.journal.path), recipe=node.recipe
    )
    if isinstance(node, Trainer):
        fresh = Trainer(node.name, x=node.x, y=node.y, seed=node.seed, **common)
    else:
        fresh = Validator(node.name, **common)
    fresh.resume(task_id)
    return fresh


def count(net, event: str, **match) -> int:
    return sum(
        all(e.args.get(k) == v for k, v in match.items()) for e in net.deployment.fedchain.events() if e.name == event
    )


def test_trainer_restarted_after_commit_reveals_and_claims_once(net):
    t = net.task_id
    for node in net.nodes:
        node.step(t)  # commit phase: trainers commit, validators join
    old = net.trainers[0]
    assert count(net, "Committed", node=old.address) == 1
    fresh = net.trainers[0] = restart(old, t)
    fresh.step(t)
    assert fresh.gas_used == 0  # its commitment is on chain: nothing is sent again
    play_round(net)
    settle(net)
    assert count(net, "Committed", node=old.address) == 1 and count(net, "Revealed", node=old.address) == 1
    assert fresh.rewards > 0 and count(net, "RewardClaimed", node=old.address) == 1
    assert count(net, "Slashed") == 0


def test_trainer_restarted_after_the_task_claims_what_it_earned(net):
    t = net.task_id
    play_round(net)
    fresh = net.trainers[1] = restart(net.trainers[1], t)  # crashed before claiming
    settle(net)
    assert fresh.rewards > 0 and count(net, "RewardClaimed", node=fresh.address) == 1
    again = restart(fresh, t)
    assert again.outstanding_claims(t) == 0  # the chain says it claimed: nothing left to do


def test_validator_restarted_after_joining_still_votes(net):
    t = net.task_id
    for node in net.nodes:
        node.step(t)
    fresh = net.validators[0] = restart(net.validators[0], t)
    play_round(net)
    settle(net)
    assert count(net, "Voted", validator=fresh.address) == 1
    assert fresh.rewards > 0 and count(net, "Equivocated") == 0


def test_validator_restarted_after_voting_never_votes_again(net):
    t = net.task_id
    fc = net.deployment.fedchain
    v = net.validators[0].task(t).current
    for boundary in (v.commit_end + 1, v.reveal_end + 1):
        for node in net.nodes:
            node.step(t)
        net.chain.mine_to(boundary)
    for node in net.nodes:
        node.step(t)  # vote phase: every validator votes
    assert count(net, "Voted") == 3
    fresh = net.validators[0] = restart(net.validators[0], t)
    fresh.step(t)
    assert fresh.gas_used == 0
    play_round(net)
    settle(net)
    assert count(net, "Voted", validator=fresh.address) == 1 and count(net, "Equivocated") == 0
    assert fc.call("validator_claimed", t, 0, fresh.address) and fresh.outstanding_claims(t) == 0


def test_secagg_trainer_restarted_after_advertising_sits_the_round_out(tmp_path):
    # its secrets were in memory only: the fresh process neither advertises again (the board
    # would revert) nor shares; the others' round goes on without it, and nobody is slashed
    net = build_network(
        SimConfig(trainers=4, validators=3, rounds=1, model="mlp", epochs=1, out=tmp_path, partition="iid", secagg=True)
    )
    t = net.task_id
    v = net.validators[0].task(t).current
    net.chain.mine_to(v.opened + 1)
    for node in net.nodes:
        node.step(t)  # advertise window: every selected trainer advertises
    old = net.trainers[0]
    assert net.deployment.secagg.call("step", t, 0, old.address) == 1
    fresh = net.trainers[0] = restart(old, t)
    fresh.board = net.deployment.secagg
    fresh.step(t)
    assert fresh.gas_used == 0
    assert play_round(net).finalized
    assert net.deployment.secagg.call("step", t, 0, old.address) == 1  # never shared
    assert count(net, "Committed", node=old.address) == 0 and count(net, "Slashed") == 0
