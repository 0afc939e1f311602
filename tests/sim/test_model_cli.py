"""Taking the model: ``fedchain model get`` writes exactly the tensors of the model blob
the chain names, ``fedchain model eval`` scores it exactly as the simulation did, and
bad input gets one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from typer.testing import CliRunner

from fedchain.cli import app
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_metadata, decode_tensors
from fedchain.storage.store import LocalBlobStore

ROUNDS = 2


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """A finished 2-round simulation (3 trainers, logistic regression) and, beside it,
    `fedchain data split`'s files for the same seed (its test.npz is the simulation's test set)."""
    root = tmp_path_factory.mktemp("model")
    r = cli(
        "simulate", "--trainers", "3", "--validators", "2", "--rounds", str(ROUNDS), "--model", "logreg",
        "--epochs", "1", "--no-baselines", "--out", str(root / "sim"),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = cli("data", "split", "--trainers", "2", "--out", str(root / "data"))
    assert r.exit_code == 0, r.output
    return root


def events(sim: Path, name: str) -> list[dict]:
    lines = (sim / "sim" / "chain" / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["name"] == name]


def task_record(sim: Path) -> dict:
    info = json.loads((sim / "sim" / "chain" / "deployment.json").read_text())
    return info["tasks"][str(info["task_id"])]


@pytest.mark.parametrize("round_id", [None, 0])
def test_get_writes_exactly_the_model_blob_the_chain_names(sim, tmp_path, round_id):
    if round_id is None:  # the final model: the task record's CID
        digest = task_record(sim)["model_cid"]
    else:
        digest = next(e["args"]["model_cid"] for e in events(sim, "RoundFinalized") if e["args"]["round_id"] == 0)
    cid = cid_from_digest(bytes.fromhex(digest[2:]))
    out = tmp_path / "model.safetensors"
    r = cli("model", "get", "--sim", str(sim / "sim"), "--out", str(out), *(["--round", "0"] if round_id == 0 else []))
    assert r.exit_code == 0, r.output
    assert cid in r.output and str(out) in r.output

    blob = decode_tensors(LocalBlobStore(sim / "sim" / "blobs").get(cid))
    written = safetensors.numpy.load_file(out)  # a plain safetensors file
    assert sorted(written) == sorted(blob)
    for name in blob:
        assert written[name].dtype == np.float32 and np.array_equal(written[name], blob[name]), name
    meta = decode_metadata(out.read_bytes())
    assert meta["fedchain.model_cid"] == cid
    assert meta["fedchain.round"] == str(ROUNDS - 1 if round_id is None else round_id)
    assert (meta["fedchain.task_id"], meta["fedchain.model"], meta["fedchain.dataset"]) == ("1", "logreg", "digits")


@pytest.mark.parametrize("round_id", [None, 0])
def test_eval_scores_the_model_as_the_simulation_reported(sim, round_id):
    report = json.loads((sim / "sim" / "report.json").read_text())
    expected = report["final_accuracy"] if round_id is None else report["rounds"][round_id]["accuracy"]
    test = sim / "data" / "test.npz"
    r = cli(
        "model", "eval", "--sim", str(sim / "sim"), "--data", str(test), *(["--round", "0"] if round_id == 0 else [])
    )
    assert r.exit_code == 0, r.output
    m = re.search(r"accuracy (\S+) \((\d+) of (\d+) examples\), loss (\S+)", r.output)
    assert m, r.output
    assert int(m[2]) / int(m[3]) == expected  # the same computation on the same data: equal floats
    assert int(m[3]) == len(np.load(test)["y"]) and 0 < float(m[4]) < 10


def cut_history(sim: Path, name: str, last: str, failed: bool = False) -> Path:
    """A copy of the simulation whose history ends at round 1's ``last`` event (RoundOpened:
    a task still running; RoundFinalized, with ``failed``: turned into a RoundFailed)."""
    src, dst = sim / "sim", sim / name
    (dst / "chain").mkdir(parents=True)
    shutil.copy(src / "chain" / "deployment.json", dst / "chain")
    (dst / "blobs").symlink_to(src / "blobs")
    kept = []
    for e in map(json.loads, (src / "chain" / "events.jsonl").read_text().splitlines()):
        if e["name"] == last and e["args"].get("round_id") == 1:
            if failed:
                e = {**e, "name": "RoundFailed", "args": {"task_id": 1, "round_id": 1, "reason": 2}}
            kept.append(e)
            break
        kept.append(e)
    (dst / "chain" / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept))
    return dst


@pytest.fixture(scope="module")
def running(sim) -> Path:
    return cut_history(sim, "running", "RoundOpened")


def test_a_running_task_gives_its_newest_model_and_says_so(running, tmp_path):
    r = cli("model", "get", "--sim", str(running), "--out", str(tmp_path / "m.safetensors"))
    assert r.exit_code == 0, r.output
    assert "task 1, round 0" in r.output and "still running" in r.output


def test_a_failed_round_has_no_model_of_its_own(sim, tmp_path):
    failed = cut_history(sim, "failed", "RoundFinalized", failed=True)
    r = cli("model", "get", "--sim", str(failed), "--out", str(tmp_path / "m"), "--round", "1")
    one_line_error(r, 1, "round 1 of task 1 failed (no quorum): it finalized no model")
    r = cli("model", "get", "--sim", str(failed), "--out", str(tmp_path / "m"))
    assert r.exit_code == 0 and "task 1, round 0" in r.output, r.output


def one_line_error(r, code: int, words: str) -> None:
    assert r.exit_code == code, r.output
    assert isinstance(r.exception, SystemExit), r.exception  # no traceback
    assert r.output.strip().count("\n") == 0 and r.output.startswith("error: "), r.output
    assert words in r.output, r.output


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--task", "7"], 1, "no task 7 on this contract"),
        (["--round", "2"], 1, "task 1 has 2 rounds (0 to 1): there is no round 2"),
        (["--round", "-1"], 1, "there is no round -1"),
    ],
)
def test_get_refuses_what_the_chain_does_not_hold(sim, tmp_path, args, code, words):
    out = tmp_path / "m.safetensors"
    one_line_error(cli("model", "get", "--sim", str(sim / "sim"), "--out", str(out), *args), code, words)
    assert not out.exists()


def test_get_refuses_a_round_not_finalized_yet(running, tmp_path):
    r = cli("model", "get", "--sim", str(running), "--out", str(tmp_path / "m"), "--round", "1")
    one_line_error(r, 1, "round 1 of task 1 is not finalized yet (finalized so far: 0)")


def test_get_refuses_a_tampered_blob(sim, tmp_path):
    """The store checks the bytes against the CID before the codec parses them."""
    blobs = tmp_path / "blobs"
    shutil.copytree(sim / "sim" / "blobs", blobs)
    cid = cid_from_digest(bytes.fromhex(task_record(sim)["model_cid"][2:]))
    (path,) = [p for p in blobs.rglob("*") if p.is_file() and p.name.startswith(cid)]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    r = cli("model", "get", "--sim", str(sim / "sim"), "--blobs", str(blobs), "--out", str(tmp_path / "m"))
    one_line_error(r, 20, cid)


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def bad_data(tmp: Path) -> list[tuple[Path, str]]:
    x = np.zeros((4, 1, 8, 8), np.float32)
    (tmp / "notes.npz").write_text("not numpy")
    np.save(tmp / "one.npy", x)
    return [
        (tmp / "missing.npz", "no such file"),
        (tmp / "notes.npz", "is not an .npz of numeric arrays x and y"),
        (tmp / "one.npy", "holds a single array"),
        (npz(tmp / "nox.npz", y=np.zeros(4, np.int64)), "not x and y"),
        (npz(tmp / "shape.npz", x=np.zeros((4, 64), np.float32), y=np.zeros(4)), "examples of shape (64,)"),
        (npz(tmp / "classes.npz", x=x, y=np.array([0, 1, 2, 12])), "the task has classes 0..9"),
        (npz(tmp / "uneven.npz", x=x, y=np.zeros(3)), "one label per example"),
    ]


def test_eval_refuses_data_that_does_not_fit(sim, tmp_path):
    for path, words in bad_data(tmp_path):
        r = cli("model", "eval", "--sim", str(sim / "sim"), "--data", str(path))
        # an option's value: click's usage error, whose last line names the flag and the file
        assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
        assert f"Invalid value for --data: {path}" in r.output.splitlines()[-1] and words in r.output, r.output


@pytest.mark.anvil
def test_get_and_eval_read_a_live_chain_over_rpc(tmp_path):
    """The same commands against a live network: anvil's events over JSON-RPC, a deployment
    file, the blobs from a peer's HTTP server or a folder; the final model is the one in
    the task record."""
    from fedchain.chain.anvil import Anvil
    from fedchain.chain.rpc import RpcChain
    from fedchain.errors import ChainError
    from fedchain.sim.network import SimConfig, build_network, play_round, settle
    from fedchain.sim.simulate import model_accuracy
    from fedchain.storage.http import BlobServer

    try:
        anvil = Anvil()
    except ChainError as e:
        pytest.skip(str(e))
    with anvil:
        # on anvil every transaction mines a block: phases must outlast a round's transactions
        cfg = SimConfig(
            trainers=3, validators=2, rounds=2, model="logreg", epochs=1, seed=6, out=tmp_path, phase_blocks=19
        )
        net = build_network(cfg, chain=RpcChain(anvil.url))
        assert all(play_round(net).finalized for _ in range(cfg.rounds))
        settle(net)
        deployment = tmp_path / "deployment.json"
        net.deployment.save(deployment, rpc=anvil.url)
        out = tmp_path / "final.safetensors"
        server = BlobServer(net.store, "127.0.0.1", 0).start()
        try:
            got = cli("model", "get", "--out", str(out), "--deployment", str(deployment), "--peer", server.url)
        finally:
            server.stop()
        np.savez(tmp_path / "test.npz", x=net.data.x_test, y=net.data.y_test)
        scored = cli(
            "model", "eval", "--data", str(tmp_path / "test.npz"), "--deployment", str(deployment),
            "--blobs", str(tmp_path / "blobs"),
        )  # fmt: skip
        cid = cid_from_digest(net.deployment.fedchain.call("tasks", net.task_id)["model_cid"])
        accuracy = model_accuracy(net)
    assert got.exit_code == 0 and cid in got.output, got.output
    blob = decode_tensors(net.store.get(cid))
    written = safetensors.numpy.load_file(out)
    assert sorted(written) == sorted(blob) and all(np.array_equal(written[k], blob[k]) for k in blob)
    assert scored.exit_code == 0, scored.output
    m = re.search(r"\((\d+) of (\d+) examples\)", scored.output)
    assert m and int(m[1]) / int(m[2]) == accuracy, scored.output


def test_the_simulation_pays_by_the_innovation_score_unless_told(sim):
    # the default score: the lineage names the accepted updates (the next round's public span),
    # which only an innovation-score task's model blobs carry, and the scores paid are positive
    from fedchain.protocol.round import Lineage

    digest = task_record(sim)["model_cid"]
    lineage = Lineage.from_blob(LocalBlobStore(sim / "sim" / "blobs").get(cid_from_digest(bytes.fromhex(digest[2:]))))
    assert len(lineage.updates) == 3
    assert sum(s for _, s in lineage.scores) > 0
