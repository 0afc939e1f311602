"""A rule written in one file outside the package (``tests/rules/seat_mean.py``) and added
through the public registry runs a whole network on the embedded chain: validators
aggregate with it, the sponsor and the recipe read its chain facts, a watcher and the
auditor recompute every round with it, and the model learns. Nothing else names it."""

from __future__ import annotations

import numpy as np
import pytest

from fedchain.learning import aggregate
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate.common import stack
from fedchain.protocol.audit import Auditor, ContractEvents
from fedchain.protocol.round import check_updates, in_reveal_order
from fedchain.sim.network import SimConfig, build_network, play_round
from fedchain.sim.simulate import model_accuracy
from rules import seat_mean


@pytest.fixture
def registered():
    rule = aggregate.register(seat_mean.RULE)
    yield rule
    aggregate.unregister(rule.name)


def test_a_rule_registered_from_outside_runs_a_network_that_learns(tmp_path, registered):
    # one party stakes twice as one identity (sybil, not split): its update counts for two seats
    cfg = SimConfig(
        trainers=8,
        validators=3,
        rounds=3,
        model="mlp",
        epochs=5,
        lr=0.1,
        seed=1,
        watchers=1,
        attack="sybil",
        byzantine=0.25,
        sybil_split=False,
        rule="seat_mean",
        rule_params={"server_lr": 1.5},
        out=tmp_path,
    )
    net = build_network(cfg)
    fc = net.deployment.fedchain
    assert net.recipe.challenge_rule[0] == aggregate.CHALLENGE_NONE  # no contract recomputes it
    assert fc.call("tasks", net.task_id)["max_commits"] == aggregate.MAX_COMMITS
    v = net.validators[0]
    initial = model_accuracy(net)
    models = [v.current_model(net.task_id)]
    for _ in range(cfg.rounds):
        assert play_round(net).finalized
        models.append(v.current_model(net.task_id))
    acc = model_accuracy(net)
    assert acc > initial + 0.2 and acc > 0.5  # 10 classes: chance is 0.1

    # the last round by hand: the model is the parent plus 1.5 times the seat-weighted mean
    events = in_reveal_order(v.task(net.task_id).reveals[cfg.rounds - 1])
    updates, samples, reasons = check_updates(events, net.store, v.shapes, net.recipe.chunk_size)
    assert not reasons
    seats = [e.seats_bps for e in events]
    assert len(set(seats)) > 1  # the whale stands for more seats than the others
    x = stack(list(updates.values()))
    mean = seat_mean.seat_mean(x, seats=seats)
    expected = fp.clip_fixed(models[-2].q + seat_mean.seat_mean(x, seat_mean.server_lr_of({"server_lr": 1.5}), seats))
    assert np.array_equal(models[-1].q, expected)
    assert not np.array_equal(models[-1].q, fp.clip_fixed(models[-2].q + mean))  # server_lr applied
    fedavg = aggregate.aggregate_update("fedavg", {}, list(updates.values()), list(samples.values()))
    assert not np.array_equal(models[-1].q, fp.clip_fixed(models[-2].q + fedavg))

    report = Auditor(ContractEvents(fc, net.deployment.block), net.store, net.task_id).run()
    assert [ver.status for ver in report.versions] == ["finalized"] * cfg.rounds
    assert not any(e.name == "Challenged" for e in net.deployment.challenges.events())
