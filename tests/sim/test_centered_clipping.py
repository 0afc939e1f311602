"""Centered clipping starts from the previous round's aggregate update, which every
validator (and the auditor) reads from the model lineage: parent minus grandparent."""

from __future__ import annotations

import numpy as np

from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate import aggregate_update
from fedchain.protocol.audit import Auditor, ContractEvents
from fedchain.protocol.round import check_updates, in_reveal_order, previous_update
from fedchain.sim.network import SimConfig, build_network, play_round


def test_the_centre_is_the_last_aggregate_update_and_the_audit_agrees(tmp_path):
    # a small tau so that clipping bites and the centre matters
    cfg = SimConfig(
        trainers=4,
        validators=3,
        rounds=3,
        model="logreg",
        epochs=1,
        batch_size=32,
        seed=4,
        rule="centeredclipping",
        rule_params={"tau": 0.05, "iterations": 2},
        out=tmp_path,
    )
    net = build_network(cfg)
    v = net.validators[0]
    t = net.task_id
    models = [v.current_model(t)]
    assert previous_update(models[0], net.store, v.shapes) is None  # the initial model has no parent
    for _ in range(3):
        assert play_round(net).finalized
        models.append(v.current_model(t))
    # round 2 by hand: its centre is model 1 minus model 0
    centre = previous_update(models[2], net.store, v.shapes)
    assert np.array_equal(centre, models[2].q - models[1].q)
    log = v.task(t)
    updates, samples, _ = check_updates(in_reveal_order(log.reveals[2]), net.store, v.shapes, net.recipe.chunk_size)
    args = (net.recipe.rule, net.recipe.rule_params, list(updates.values()), list(samples.values()))
    with_centre = fp.clip_fixed(models[2].q + aggregate_update(*args, prev_update=centre))
    from_zero = fp.clip_fixed(models[2].q + aggregate_update(*args))
    assert np.array_equal(with_centre, models[3].q)
    assert not np.array_equal(from_zero, models[3].q)
    report = Auditor(ContractEvents(net.deployment.fedchain, net.deployment.block), net.store, t).run()
    assert [ver.status for ver in report.versions] == ["finalized"] * 3
