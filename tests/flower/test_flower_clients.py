"""Flower clients, unchanged, as fedchain trainers: ``fedchain simulate --flower-client``.

The two clients under tests/flower are written as Flower's documentation writes them (a
NumPyClient behind a client_fn, and a Message-API ClientApp); both train on chain, agree
with each other to the bit, and send blobs of named float32 tensors only. flwr is imported
at the top on purpose: where it is missing these tests fail (CI installs it through
./scripts/setup.sh), they do not skip.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import flwr  # noqa: F401  (a missing flwr fails this file; see the docstring)
import numpy as np
import pytest
from typer.testing import CliRunner

from fedchain.cli import app
from fedchain.protocol.recipe import Recipe
from fedchain.storage.codec import decode_tensors
from fedchain.storage.store import LocalBlobStore

NUMPY = "tests.flower.numpy_client_app:client_fn"
MESSAGE = "tests.flower.message_client_app:app"
INITIAL = "tests.flower.numpy_client_app:new_net"
SMALL = ["--trainers", "4", "--validators", "3", "--rounds", "2", "--epochs", "1"]
SHAPES = [(32, 64), (32,), (10, 32), (10,)]  # tests/flower/numpy_client_app.py's Net


def squeeze(text: str) -> str:  # rich wraps the error panel: compare without its borders and whitespace
    return "".join(text.replace("│", "").split())


def simulate(*args: str):
    return CliRunner().invoke(app, ["simulate", *args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One short run per client API: (report, output folder)."""
    out = {}
    for name, args in {"numpy": [NUMPY], "message": [MESSAGE, "--flower-initial", INITIAL]}.items():
        folder = tmp_path_factory.mktemp(name) / "run"
        r = simulate(*SMALL, "--out", str(folder), "--flower-client", *args)
        assert r.exit_code == 0, r.output
        out[name] = json.loads((folder / "report.json").read_text()), folder
    return out


@pytest.mark.slow
@pytest.mark.parametrize("api", ["numpy", "message"])
def test_a_flower_client_trains_on_chain_and_the_model_learns(runs, api):
    report, _ = runs[api]
    assert report["rounds_finalized"] == 2
    accuracies = [report["initial_accuracy"], *(r["accuracy"] for r in report["rounds"])]
    assert accuracies[0] < 0.2 and accuracies[1] > accuracies[0] + 0.5 and accuracies[2] > accuracies[1]
    assert report["accuracy_source"].startswith("federated")
    assert report["conservation_gap_wei"] == 0


@pytest.mark.slow
def test_the_two_apis_learn_the_same_model(runs):
    """The same training behind a NumPyClient and a ClientApp: the same on-chain model, bit for bit."""
    assert runs["numpy"][0]["aggregate_root"] == runs["message"][0]["aggregate_root"]


@pytest.mark.slow
@pytest.mark.parametrize("api", ["numpy", "message"])
def test_an_update_blob_is_named_float32_tensors_only(runs, api):
    _, folder = runs[api]
    store = LocalBlobStore(folder / "blobs")
    entries = [json.loads(line) for line in (folder / "journals" / "trainer-0.jsonl").read_text().splitlines()]
    cids = [e["cid"] for e in entries if e["kind"] == "commit"]
    assert len(cids) == 2  # one update a round
    for cid in cids:
        blob = store.get(cid)
        (n,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8 : 8 + n])
        assert set(header) == {"p000", "p001", "p002", "p003"}  # no metadata, no pickled objects
        assert {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items()} == {
            f"p{i:03d}": ("F32", s) for i, s in enumerate(SHAPES)
        }
        decode_tensors(blob, {f"p{i:03d}": s for i, s in enumerate(SHAPES)})


@pytest.mark.parametrize(
    "args, flag, message",
    [
        (["--flower-client", "tests.flower.no_such_app:client_fn"], "--flower-client", "cannot import"),
        (["--flower-client", "tests.flower.numpy_client_app:no_such_fn"], "--flower-client", "has no attribute"),
        (["--flower-client", "tests.flower.numpy_client_app"], "--flower-client", "is not MODULE:ATTR"),
        (["--flower-client", "tests.flower.numpy_client_app:Net"], "--flower-client", "neither a client_fn"),
        (["--flower-client", MESSAGE], "--flower-client", "--flower-initial MODULE:ATTR"),
        (["--flower-client", MESSAGE, "--flower-initial", f"{NUMPY}.nope"], "--flower-initial", "has no attribute"),
        (["--flower-client", NUMPY, "--score", "validation"], "--flower-client", "--score cosine"),
        (["--flower-client", NUMPY, "--misbehave", "silent"], "--flower-client", "honest trainers"),
        (["--flower-initial", INITIAL], "--flower-initial", "only with --flower-client"),
    ],
)
def test_simulate_names_the_flag_of_a_bad_flower_client_before_running(args, flag, message, tmp_path):
    r = simulate("--rounds", "1", "--out", str(tmp_path), *args)
    assert r.exit_code == 2, r.output
    assert squeeze(f"Invalid value for {flag}") in squeeze(r.output), r.output
    assert squeeze(message) in squeeze(r.output), r.output
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_a_flower_run_audits(runs):
    """The audit rebuilds every round from the chain and the blobs with the recipe's shapes alone."""
    r = CliRunner().invoke(app, ["audit", "--sim", str(runs["numpy"][1])])
    assert r.exit_code == 0, r.output
    assert squeeze("verified 2 rounds (2 finalized)") in squeeze(r.output), r.output
    # the model's tensors can be taken as they are; evaluating them is the client's own evaluate
    out = runs["numpy"][1].parent / "model.safetensors"
    r = CliRunner().invoke(app, ["model", "get", "--sim", str(runs["numpy"][1]), "--out", str(out)])
    assert r.exit_code == 0 and decode_tensors(out.read_bytes(), {f"p{i:03d}": s for i, s in enumerate(SHAPES)})
    np.savez(out.parent / "data.npz", x=np.zeros((2, 64), np.float32), y=np.zeros(2, np.int64))
    r = CliRunner().invoke(
        app, ["model", "eval", "--sim", str(runs["numpy"][1]), "--data", str(out.parent / "data.npz")]
    )
    assert r.exit_code == 2 and "its own evaluate" in r.output, r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["node", "run", "--role", "trainer", "--flower-client", "tests.flower.no_such_app:client_fn"],
            "cannot import",
        ),
        (["node", "run", "--role", "validator", "--flower-client", NUMPY], "a trainer's, instead of --data"),
        (["node", "run", "--role", "trainer", "--flower-client", NUMPY, "--partition-id", "2"], "not in [0, 1)"),
        (["node", "run", "--role", "trainer", "--flower-client", MESSAGE], "--flower-initial MODULE:ATTR"),
        (["task", "create", "--flower-client", "tests.flower.numpy_client_app:Net"], "neither a client_fn"),
        (["task", "create", "--flower-client", NUMPY, "--test", "test.npz"], "a Flower client's are evaluated"),
    ],
)
def test_node_run_and_task_create_check_the_flower_client_before_connecting(args, message, tmp_path):
    r = CliRunner().invoke(app, [*args, "--deployment", str(tmp_path / "none.json")])
    assert r.exit_code == 2, r.output
    assert squeeze(message) in squeeze(r.output), r.output


def test_without_flwr_the_flag_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "flwr", None)  # `import flwr` raises ImportError
    r = simulate("--rounds", "1", "--out", str(tmp_path), "--flower-client", NUMPY)
    assert r.exit_code == 2, r.output
    assert squeeze("Invalid value for --flower-client: flwr is not installed") in squeeze(r.output), r.output
    assert squeeze("requirements-flower.txt") in squeeze(r.output), r.output


def test_a_flower_recipe_lists_its_shapes_and_older_recipes_keep_their_bytes():
    r = Recipe(model="flower:" + NUMPY, dataset="flower", input_shape=(), num_classes=0, param_shapes=SHAPES)
    assert Recipe.from_bytes(r.to_bytes()) == r and r.flower == NUMPY
    assert {k: v.shape for k, v in r.template().items()} == {f"p{i:03d}": s for i, s in enumerate(SHAPES)}
    assert b"param_shapes" not in Recipe().to_bytes() and Recipe().flower is None
    with pytest.raises(ValueError, match="param_shapes"):
        Recipe(model="flower:" + NUMPY)


def test_the_source_hash_pins_the_client_code_and_a_changed_copy_is_refused(tmp_path, monkeypatch):
    from fedchain import flower

    spec = "numpy_client_app:client_fn"
    here = Path(__file__).parent
    monkeypatch.syspath_prepend(str(here))
    entry = flower.load(spec)
    pinned = entry.source_hash
    assert pinned == flower.source_hash([spec]) and len(pinned) == 64
    flower.check_source(pinned, entry)  # the same code: accepted
    # another machine's copy, one comment different
    (tmp_path / "numpy_client_app.py").write_text((here / "numpy_client_app.py").read_text() + "# edited\n")
    monkeypatch.delitem(sys.modules, "numpy_client_app", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    theirs = flower.load(spec)
    assert theirs.source_hash != pinned
    with pytest.raises(flower.FlowerError) as e:
        flower.check_source(pinned, theirs)
    assert pinned in str(e.value) and theirs.source_hash in str(e.value)


@pytest.mark.slow
def test_a_client_that_fails_sends_nothing_and_loses_nothing(tmp_path, caplog):
    from fedchain.protocol.trainer import ROLE_TRAINER
    from fedchain.sim.network import SimConfig, build_network, play_round

    cfg = SimConfig(
        trainers=5,
        validators=2,
        rounds=2,
        epochs=1,
        out=tmp_path,
        flower_client="tests.flower.faulty_client_app:client_fn",
    )
    net = build_network(cfg)
    with caplog.at_level("WARNING"):
        assert all(play_round(net).finalized for _ in range(cfg.rounds))  # the honest partition 4 carries them
    fc = net.deployment.fedchain
    committed = {e.args["node"] for e in fc.events() if e.name == "Committed"}
    faulty, honest = net.trainers[:4], net.trainers[4]
    assert committed == {honest.address}
    assert not [e for e in fc.events() if e.name == "Slashed"]
    for t in faulty:  # every stake intact
        assert (
            fc.call("stakes", t.address)["active"] == cfg.stake and fc.call("stakes", t.address)["role"] == ROLE_TRAINER
        )
    said = caplog.text
    assert "the GPU caught fire" in said and "NaN" in said and "returned 3 arrays" in said and "shaped" in said


@pytest.mark.slow
def test_the_quickstart_example_trains_on_chain(tmp_path):
    """examples/quickstart_pytorch, as its README runs it."""
    client = "examples.quickstart_pytorch.client_app:app"
    r = simulate("--flower-client", client, *SMALL, "--lr", "0.01", "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["rounds_finalized"] == 2
    assert report["final_accuracy"] > report["initial_accuracy"] + 0.3
