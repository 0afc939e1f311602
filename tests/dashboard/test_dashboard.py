"""``fedchain dashboard``: the JSON API and the page (in a real headless Chromium) show
what the chain's events and the CID-checked blobs say, follow a growing history, and
name a bad blob or an unreachable chain in place while showing everything else."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedchain.cli import app
from fedchain.dashboard.browser import Browser, find_chromium
from fedchain.dashboard.server import Dashboard, LiveHistory, SimHistory, serve
from fedchain.protocol.round import Lineage
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.store import LocalBlobStore

ROUNDS = 3
needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium: `apt-get install chromium` (./scripts/setup.sh installs it)"
)
# every round row, node row and lineage entry is on the page
SHOWN = (
    "document.querySelectorAll('#rounds tbody tr').length && document.querySelectorAll('#node-table tbody tr').length"
    " && document.querySelectorAll('#lineage-list li').length"
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """A finished 3-round simulation with one trainer sending garbage (a rejected update each round)."""
    out = tmp_path_factory.mktemp("dash") / "sim"
    r = CliRunner().invoke(
        app,
        [
            "simulate", "--trainers", "4", "--validators", "2", "--rounds", str(ROUNDS), "--model", "logreg",
            "--epochs", "1", "--no-baselines", "--misbehave", "garbage", "--out", str(out),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return out


def events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "chain" / "events.jsonl").read_text().splitlines()]


def named(evs: list[dict], name: str) -> list[dict]:
    return [e for e in evs if e["name"] == name]


def digest_cid(hex32: str) -> str:
    return cid_from_digest(bytes.fromhex(hex32[2:]))


class Served:
    """A dashboard over ``history``, served on a free port in this process."""

    def __init__(self, history):
        self.board = Dashboard(history).start()
        self.server = serve(self.board, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def api(self, path: str):
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=10) as r:
            return json.load(r)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.board.stop()


def of_sim(folder: Path) -> Served:
    return Served(SimHistory(folder, LocalBlobStore(folder / "blobs")))


def copy_sim(sim: Path, dst: Path, keep: int | None = None) -> Path:
    """A copy of the simulation (blobs copied), its event log cut to the first ``keep`` lines."""
    shutil.copytree(sim, dst, ignore=shutil.ignore_patterns("journals"))
    if keep is not None:
        lines = (dst / "chain" / "events.jsonl").read_text().splitlines(keepends=True)
        (dst / "chain" / "events.jsonl").write_text("".join(lines[:keep]))
        (dst / "report.json").unlink()
    return dst


def test_the_api_says_what_the_events_and_blobs_say(sim):
    evs = events(sim)
    with of_sim(sim) as d:
        status, rounds, lineage, nodes = (
            d.api("api/status"),
            d.api("api/tasks/1/rounds"),
            d.api("api/tasks/1/lineage"),
            d.api("api/nodes"),
        )
        task = d.api("api/tasks/1")
    assert status["errors"] == [] and status["block"] == max(e["block"] for e in evs)
    assert task["status"] == "finished" and task["finalized"] == ROUNDS
    assert [r["round"] for r in rounds] == list(range(ROUNDS))
    for r in rounds:
        mine = [e for e in evs if e["args"].get("round_id") == r["round"]]
        fin = named(mine, "RoundFinalized")[0]
        assert r["status"] == "finalized" and r["decided"] == fin["block"]
        assert r["model_cid"] == digest_cid(fin["args"]["model_cid"])
        assert r["opened"] == named(mine, "RoundOpened")[0]["block"]
        assert sorted(c["node"] for c in r["commits"]) == sorted(e["args"]["node"] for e in named(mine, "Committed"))
        assert sorted(v["validator"] for v in r["votes"]) == sorted(
            e["args"]["validator"] for e in named(mine, "Voted")
        )
        assert (
            r["evaluation"]["accuracy"]
            == json.loads((sim / "report.json").read_text())["rounds"][r["round"]]["accuracy"]
        )
    store = LocalBlobStore(sim / "blobs")
    parent = digest_cid(named(evs, "TaskCreated")[0]["args"]["model_cid"])
    for v, r in zip(lineage["versions"], rounds):
        blob = Lineage.from_blob(store.get(r["model_cid"]))
        assert (v["parent"], v["model"]) == (parent, r["model_cid"]) == (blob.parent, r["model_cid"])
        assert {c["node"]: c["score"] for c in v["contributors"]} == {
            a: s for a, s in blob.scores if a not in blob.rejected
        }
        assert len(v["rejected"]) == 1 and v["rejected"][0]["reason"] == next(iter(blob.rejected.values()))
        parent = r["model_cid"]
    claimed: dict[str, int] = {}
    for e in named(evs, "RewardClaimed"):
        claimed[e["args"]["node"]] = claimed.get(e["args"]["node"], 0) + e["args"]["amount"]
    assert {n["address"]: n["rewards"] for n in nodes if n["rewards"]} == claimed
    assert {n["address"] for n in nodes} == {e["args"]["node"] for e in named(evs, "Staked")}


@needs_chromium
def test_the_page_shows_the_rounds_nodes_and_lineage(sim, tmp_path):
    evs = events(sim)
    with of_sim(sim) as d, Browser(width=1280) as b:
        b.goto(d.url)
        b.wait_for(SHOWN)
        rows = b.eval(
            "[...document.querySelectorAll('#rounds tbody tr')].map(r => [r.dataset.round, r.dataset.status, "
            "r.querySelector('.outcome').textContent])"
        )
        node_rows = b.eval("[...document.querySelectorAll('#node-table tbody tr')].map(r => r.dataset.address)")
        lineage = b.eval(
            "[...document.querySelectorAll('#lineage-list li')].map(l => [l.dataset.round, l.textContent])"
        )
        table = b.eval("document.querySelectorAll('#accuracy-table tbody tr').length")
        b.screenshot(tmp_path / "dashboard.png")
        # a node's own page: its history, from the events
        node = named(evs, "RewardClaimed")[0]["args"]["node"]
        b.goto(d.url + f"#node={node}")
        b.wait_for("!document.getElementById('node').hidden")
        history = b.eval("document.querySelectorAll('#node-history tbody tr').length")
    finalized = {e["args"]["round_id"]: e["block"] for e in named(evs, "RoundFinalized")}
    assert [(int(r), s) for r, s, _ in rows] == [(r, "finalized") for r in range(ROUNDS)]
    for r, _, text in rows:
        assert f"finalized at block {finalized[int(r)]}, 1 rejected" in text
    assert sorted(node_rows) == sorted({e["args"]["node"] for e in named(evs, "Staked")})
    assert sorted(int(r) for r, _ in lineage) == list(range(ROUNDS))
    assert all("Rejected:" in text and "malformed" in text for _, text in lineage)
    assert table == ROUNDS  # the chart's numbers, as a table
    mine = [e for e in evs if node in (e["args"].get("node"), e["args"].get("validator"))]
    assert history == len(mine)
    assert (tmp_path / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_the_page_follows_a_growing_history(sim, tmp_path):
    """A running simulation rewrites its event log each round: the page shows the new
    round without a reload."""
    evs = events(sim)
    first = next(i for i, e in enumerate(evs) if e["name"] == "RoundFinalized")
    cut = copy_sim(sim, tmp_path / "running", keep=first + 1)
    with of_sim(cut) as d, Browser() as b:
        b.goto(d.url)
        b.wait_for(SHOWN)
        assert b.eval("document.querySelectorAll('#rounds tbody tr[data-status=finalized]').length") == 1
        shutil.copy(sim / "chain" / "events.jsonl", cut / "chain" / "events.jsonl")
        b.wait_for(f"document.querySelectorAll('#rounds tbody tr[data-status=finalized]').length == {ROUNDS}", 10)
        assert b.eval("document.querySelectorAll('#lineage-list li').length") == ROUNDS


@needs_chromium
def test_a_corrupt_blob_is_named_in_place(sim, tmp_path):
    bad = copy_sim(sim, tmp_path / "bad")
    model = digest_cid(named(events(sim), "RoundFinalized")[1]["args"]["model_cid"])
    (bad / "blobs" / model).write_bytes(b"not the model")
    with of_sim(bad) as d, Browser() as b:
        lineage = d.api("api/tasks/1/lineage")
        b.goto(d.url)
        b.wait_for(SHOWN)
        errors = b.eval(
            "[...document.querySelectorAll('#lineage-list li .err')].map(p => p.closest('li').dataset.round)"
        )
        text = b.eval("document.getElementById('lineage-list').textContent")
        rows = b.eval("document.querySelectorAll('#rounds tbody tr').length")
    assert [v.get("error") is not None for v in lineage["versions"]] == [False, True, False]
    assert model in lineage["versions"][1]["error"]
    assert errors == ["1"] and model in text  # the full CID, in place
    assert rows == ROUNDS and text.count("Contributors") == ROUNDS - 1  # everything else still shown


@needs_chromium
def test_an_rpc_that_does_not_answer_is_said_on_the_page(sim, tmp_path):
    deployment = tmp_path / "deployment.json"
    info = json.loads((sim / "chain" / "deployment.json").read_text())
    deployment.write_text(json.dumps({**info, "rpc": "http://127.0.0.1:9"}))
    with Served(LiveHistory(None, deployment, LocalBlobStore(sim / "blobs"))) as d, Browser() as b:
        b.goto(d.url)
        text = b.wait_for("document.getElementById('errors').textContent")
    assert "http://127.0.0.1:9" in text


def test_bad_options_get_one_line(tmp_path):
    r = CliRunner().invoke(app, ["dashboard", "--sim", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "--sim" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["dashboard", "--deployment", str(tmp_path / "none.json"), "--blobs", str(tmp_path)])
    assert r.exit_code != 0 and "no deployment file" in r.output and "Traceback" not in r.output


@needs_chromium
@pytest.mark.anvil
def test_the_page_shows_a_round_finalizing_on_a_live_chain(tmp_path):
    """Against anvil over JSON-RPC, blobs from a peer's HTTP server: one more round is played
    while the page is open, and its row turns finalized without a reload."""
    from fedchain.chain.anvil import Anvil
    from fedchain.chain.rpc import RpcChain
    from fedchain.errors import ChainError
    from fedchain.sim.network import SimConfig, build_network, play_round
    from fedchain.storage.http import BlobServer, HttpBlobStore, Peers

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
        assert play_round(net).finalized
        deployment = tmp_path / "deployment.json"
        net.deployment.save(deployment, rpc=anvil.url)
        other = tmp_path / "other-chain.json"
        other.write_text(json.dumps({**json.loads(deployment.read_text()), "chain_id": 5}))
        blobs = BlobServer(net.store, "127.0.0.1", 0).start()
        store = HttpBlobStore(Peers([blobs.url]))
        try:
            with Served(LiveHistory(None, deployment, store)) as d, Browser() as b:
                b.goto(d.url)
                b.wait_for(SHOWN)
                assert b.eval("document.querySelectorAll('#rounds tbody tr[data-status=finalized]').length") == 1
                play_round(net)
                b.wait_for("document.querySelectorAll('#rounds tbody tr[data-status=finalized]').length == 2", 15)
                lineage = b.eval("document.querySelectorAll('#lineage-list li').length")
                b.screenshot(tmp_path / "live.png")
                block = net.chain.block_number()
                shown = b.wait_for(f"document.getElementById('source').textContent.includes('block {block}')", 5)
                caption = b.eval("document.getElementById('accuracy-caption').textContent")
            with Served(LiveHistory(None, other, store)) as d:
                wrong = d.api("api/status")["errors"]
        finally:
            blobs.stop()
    assert lineage == 2 and shown
    assert "No evaluation published" in caption or "the sponsor" in caption  # the sponsor's, where it publishes
    assert wrong and "deployment is for chain 5" in wrong[0] and anvil.url in wrong[0]
