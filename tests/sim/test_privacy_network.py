"""Differential privacy on the embedded chain: trainers clip and noise (client-level) or run
DP-SGD (example-level); validators hold updates to the noise's norm bound; each trainer's
epsilon is recomputed from the chain alone; a trainer stops at its own --max-epsilon."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fedchain.cli import app
from fedchain.learning import fixedpoint as fp
from fedchain.learning import privacy
from fedchain.learning.train import flatten, param_shapes
from fedchain.protocol import budget
from fedchain.protocol.audit import EventFile
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import Lineage, Reveal, check_updates
from fedchain.sim.network import SimConfig, build_network, play_round
from fedchain.sim.simulate import run
from fedchain.storage.cid import cid_from_digest, digest_of
from fedchain.storage.codec import encode_tensors
from fedchain.storage.store import LocalBlobStore

CLIENT = {"dp": "client", "dp_noise": 1.0, "dp_clip": 0.5, "dp_delta": 1e-5}


def test_validators_reject_an_update_past_the_client_level_bound(tmp_path):
    r = Recipe(model="mlp", **CLIENT)
    shapes = param_shapes(r.template())
    bound = r.norm_bound_sq(shapes)
    assert bound > 0 and Recipe(model="mlp").norm_bound_sq(shapes) == 0
    rng = np.random.default_rng(0)
    store = LocalBlobStore(tmp_path)
    dim = sum(int(np.prod(s)) for s in shapes.values())
    honest = privacy.clip_and_noise(rng.normal(size=dim).astype(np.float32), 0.5, 1.0, rng)
    releases = {"0xhonest": honest, "0xloud": 10 * honest}  # the second skipped clip and noise
    revealed = []
    for i, (node, vec) in enumerate(releases.items()):
        tensors, offset = {}, 0
        for k, s in shapes.items():
            n = int(np.prod(s))
            tensors[k] = vec[offset : offset + n].reshape(s)
            offset += n
        q = fp.to_fixed(flatten(tensors))
        cid = store.put(encode_tensors(tensors))
        revealed.append(Reveal(0, 0, node, i, fp.vector_root(q, r.chunk_size), digest_of(cid), 10, b"\0" * 32, 10_000))
    updates, _, reasons = check_updates(revealed, store, shapes, r.chunk_size, bound)
    assert list(updates) == ["0xhonest"]
    assert "client-level DP bound" in reasons["0xloud"]


@pytest.mark.slow
def test_a_client_level_dp_task_reports_every_trainers_epsilon(tmp_path):
    cfg = SimConfig(trainers=4, validators=2, rounds=3, model="mlp", epochs=1, out=tmp_path, dp=CLIENT)
    report = run(cfg, baselines=False)
    assert report["rounds_finalized"] == 3
    spec = Recipe(**CLIENT).dp_spec
    assert spec is not None
    rows = report["privacy"]["trainers"]
    assert len(rows) == 4
    for row in rows:  # the recipe's mechanism composed over the rounds each one took part in
        assert row["epsilon"] == pytest.approx(privacy.epsilon(spec, row["rounds"]), rel=1e-12)
        assert 1 <= row["rounds"] <= 3
    # nothing an honest trainer sent was held past the bound: every finalized model rejected none
    store = LocalBlobStore(tmp_path / "blobs")
    finalized = [e for e in EventFile(tmp_path / "chain" / "events.jsonl").events() if e.name == "RoundFinalized"]
    assert len(finalized) == 3
    for e in finalized:
        assert Lineage.from_blob(store.get(cid_from_digest(e.args["model_cid"]))).rejected == {}
    # `fedchain privacy` gets the same figures from the saved chain and blobs alone
    out = CliRunner().invoke(app, ["privacy", "--sim", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    cli = json.loads(out.output[out.output.index("{") :])
    assert sorted(t["epsilon"] for t in cli["trainers"]) == sorted(t["epsilon"] for t in rows)
    assert cli["mechanism"] == "client" and cli["delta"] == 1e-5


@pytest.mark.slow
def test_example_level_dp_trains_and_a_trainer_stops_at_its_own_max_epsilon(tmp_path):
    dp = {"dp": "example", "dp_noise": 1.0, "dp_clip": 1.0, "dp_delta": 1e-5, "dp_sampling_rate": 0.1, "dp_steps": 5}
    spec = Recipe(**dp).dp_spec
    assert spec is not None
    cap = privacy.epsilon(spec, 2) * 1.0001  # room for two rounds, not three
    cfg = SimConfig(
        trainers=3,
        validators=2,
        rounds=4,
        model="logreg",
        lr=0.5,
        out=tmp_path,
        dp=dp,
        max_epsilon=cap,
        partition="iid",
    )
    net = build_network(cfg)
    finalized = [play_round(net).finalized for _ in range(cfg.rounds)]
    assert finalized[:2] == [True, True]
    taken = budget.participation(net.deployment.fedchain.events(), net.task_id)
    assert taken and max(taken.values()) == 2  # each sat out once its next round would pass the cap
    assert all(e <= cap for e in (privacy.epsilon(spec, k) for k in taken.values()))


def test_simulate_refuses_privacy_options_that_make_no_task(tmp_path):
    cases = [
        (["--dp-epsilon", "8"], "--dp-epsilon", "needs --dp client or --dp example"),
        (["--dp", "server", "--dp-epsilon", "8"], "--dp", "choose client or example"),
        (["--dp", "client"], "--dp-epsilon", "give one of --dp-epsilon"),
        (["--dp", "client", "--dp-epsilon", "8", "--dp-noise", "1"], "--dp-epsilon", "give one of"),
        (["--dp", "client", "--dp-epsilon", "8", "--dp-delta", "2"], "--dp", "delta must be in (0, 1)"),
        (["--dp", "example", "--dp-noise", "1", "--dp-sampling-rate", "0"], "--dp", "sampling_rate in (0, 1]"),
        (["--dp", "client", "--dp-epsilon", "-1"], "--dp", "epsilon must be > 0"),
    ]
    for args, flag, message in cases:
        r = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "out"), *args])
        text = " ".join(r.output.split())
        assert r.exit_code == 2 and flag in text and message in text and "Traceback" not in text, (args, text)
