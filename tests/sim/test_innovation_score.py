"""An innovation-score task on the embedded chain: every validator, the watcher and the auditor
read the public span from the chain and the blob store alone (the lineage names the accepted
updates), and the scores paid are the innovation scores of a span rebuilt independently from
the Revealed events."""

from __future__ import annotations

import pytest

from fedchain.learning.innovation import innovation_scores
from fedchain.protocol.audit import Auditor, ContractEvents
from fedchain.protocol.challenge import Unchallengeable, find_score_fault
from fedchain.protocol.root_set import root_set
from fedchain.protocol.round import Lineage, check_updates, in_reveal_order
from fedchain.sim.network import SimConfig, build_network, leading_evidence, play_round, play_to_vote


def _config(tmp_path, **kw):
    return SimConfig(
        trainers=5, validators=3, rounds=3, model="mlp", epochs=1, batch_size=32, seed=5, score="innovation",
        out=tmp_path, **kw,
    )  # fmt: skip


def test_scores_are_the_innovation_of_each_update_over_the_public_span_and_the_audit_agrees(tmp_path):
    net = build_network(_config(tmp_path))
    v, t = net.validators[0], net.task_id
    models = [v.current_model(t)]
    for _ in range(3):
        assert play_round(net).finalized
        models.append(v.current_model(t))
    log = v.task(t)
    shapes, chunk = v.shapes, net.recipe.chunk_size
    accepted = [check_updates(in_reveal_order(log.reveals[r]), net.store, shapes, chunk)[0] for r in range(3)]
    # the lineage of round r's model names round r's accepted updates, in reveal order
    for r in range(3):
        lineage = Lineage.from_blob(net.store.get(models[r + 1].cid))
        assert lineage.updates == tuple(ev.cid for ev in in_reveal_order(log.reveals[r]) if ev.node in accepted[r])
        assert len(lineage.updates) == 5
    # round 2 by hand: the span is g1 = m2 - m1, g0 = m1 - m0, then round 1's updates
    span = [models[2].q - models[1].q, models[1].q - models[0].q, *accepted[1].values()]
    rs = root_set(net.recipe)
    want = innovation_scores(
        net.recipe.model, models[2].q, list(accepted[2].values()), span, net.initial_params, rs.xq, rs.y
    )
    paid = dict(Lineage.from_blob(net.store.get(models[3].cid)).scores)
    assert [paid[a] for a in accepted[2]] == want
    assert sum(want) > 0
    # round 0 has no public span: nothing was projected, the scores are the root-set scores
    report = Auditor(ContractEvents(net.deployment.fedchain, net.deployment.block), net.store, t).run()
    assert [ver.status for ver in report.versions] == ["finalized"] * 3


def test_innovation_scores_are_not_challengeable_on_chain(tmp_path):
    net = build_network(_config(tmp_path, colluders=3, collusion="score"))
    ev = leading_evidence(net, play_to_vote(net))
    with pytest.raises(Unchallengeable, match="not challengeable on chain"):
        find_score_fault(ev)
