"""Ctrl-C keeps what was done: an interrupted `fedchain simulate` stops at a clean point,
says where, exits 130 and leaves the chain history, the blobs and a partial report of the
finished rounds, which `fedchain audit --sim` verifies (and a tampered copy of which it does not)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedchain.cli import app
from fedchain.cli.simulate import interrupted_line
from fedchain.protocol.audit import Auditor, EventFile, save_chain
from fedchain.sim.network import SimConfig, Stopped, build_network, play_round
from fedchain.sim.simulate import run

ROUNDS = 40  # far more than the test waits for
FAST = ["--trainers", "4", "--validators", "2", "--model", "logreg", "--epochs", "1", "--no-baselines"]


def read_until(lines: queue.Queue, needle: str, timeout: float) -> str:
    """The process's output up to and including the first line holding ``needle``."""
    seen = ""
    while needle not in seen:
        line = lines.get(timeout=timeout)
        assert line is not None, f"the process ended before printing {needle!r}:\n{seen}"
        seen += line
    return seen


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """(output folder, exit code, everything it printed) of a simulation sent SIGINT after round 2."""
    out = tmp_path_factory.mktemp("sim") / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedchain", "simulate", *FAST, "--rounds", str(ROUNDS), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"},  # no wrapped lines
    )
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        printed = read_until(lines, "round   2: finalized", timeout=120)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while (line := lines.get(timeout=10)) is not None:
        printed += line
    return out, code, printed


def test_ctrl_c_exits_130_saying_where_it_stopped(interrupted):
    out, code, printed = interrupted
    assert code == 130, printed
    report = json.loads((out / "report.json").read_text())
    k, at = report["rounds_finished"], report["stopped_at"]
    assert (
        f"interrupted in round {k + 1} of {ROUNDS} ({at['phase']} phase, block {at['block']}): {k} rounds finished"
        in printed
    )
    assert f"are in {out}; `fedchain audit --sim {out}` verifies them" in printed
    assert "Traceback" not in printed


def test_the_partial_report_covers_the_finished_rounds(interrupted):
    out, _, printed = interrupted
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True
    assert report["rounds_planned"] == report["config"]["rounds"] == ROUNDS
    k = report["rounds_finished"]
    assert 2 <= k < ROUNDS
    assert [r["round"] for r in report["rounds"]] == list(range(k))
    assert report["rounds_finalized"] == k  # every round it printed had finalized
    assert printed.count(": finalized, accuracy") == k, printed
    assert report["stopped_at"]["round"] == k  # it stopped in the next round, before its outcome
    assert report["stopped_at"]["phase"] in ("commit", "reveal", "vote", "challenge", "finalize")
    assert "plain_fedavg_accuracy" not in report
    assert (out / "accuracy.png").stat().st_size > 0
    assert (out / "chain" / "events.jsonl").stat().st_size > 0


def test_audit_verifies_the_finished_rounds_of_an_interrupted_run(interrupted):
    out, _, _ = interrupted
    k = json.loads((out / "report.json").read_text())["rounds_finished"]
    result = CliRunner().invoke(app, ["audit", "--sim", str(out)])
    assert result.exit_code == 0, result.output
    assert f"the task has not finished: {k} of {ROUNDS} rounds decided, round {k} open" in result.output
    assert f"verified {k} rounds ({k} finalized)" in result.output


def test_audit_fails_a_tampered_interrupted_run(interrupted, tmp_path):
    out, _, _ = interrupted
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    log = copy / "chain" / "events.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    claim = next(e for e in events if e["name"] == "RewardClaimed" and e["args"]["round_id"] == 1)
    claim["args"]["amount"] += 1
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = CliRunner().invoke(app, ["audit", "--sim", str(copy)])
    assert result.exit_code == 40, result.output
    assert f"audit failed: round 1, node {claim['args']['node']}: reward" in result.output


def test_a_stop_during_the_baselines_keeps_every_round(tmp_path):
    """Stopped after its last round: the task finished and was settled, the baselines are left out."""
    rows: list[dict] = []
    cfg = SimConfig(trainers=3, validators=2, rounds=1, model="logreg", epochs=1, out=Path(tmp_path))
    report = run(cfg, on_round=rows.append, stop=lambda: len(rows) == cfg.rounds)
    assert report["interrupted"] is True and report["rounds_finished"] == report["rounds_planned"] == 1
    assert report["stopped_at"]["round"] is None and report["stopped_at"]["phase"] == "baselines"
    assert "centralized_accuracy" not in report and report["conservation_gap_wei"] == 0
    assert "in the baselines, after the last round: 1 rounds finished" in interrupted_line(report)
    result = CliRunner().invoke(app, ["audit", "--sim", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "verified 1 rounds (1 finalized)" in result.output and "has not finished" not in result.output


def test_a_stop_as_a_round_is_decided_plays_that_round_out(tmp_path):
    """Asked to stop while the nodes finalize round 0: round 0 is played out and reported
    (an audit would otherwise verify a round the report lacks); round 1 stops at its first step."""
    net = build_network(SimConfig(trainers=3, validators=2, rounds=2, model="logreg", epochs=1, out=tmp_path))
    fc = net.deployment.fedchain

    def decided() -> bool:
        return fc.call("rounds", net.task_id, 0)["status"] != 0

    assert play_round(net, stop=decided).finalized
    with pytest.raises(Stopped) as e:
        play_round(net, stop=decided)
    assert (e.value.round_id, e.value.phase) == (1, "commit")
    assert not [x for x in fc.events() if x.name == "Committed" and x.args["round_id"] == 1]
    report = Auditor(
        EventFile(save_chain(net.deployment, tmp_path / "chain", net.task_id)), net.store, net.task_id
    ).run()
    assert report.summary().startswith("verified 1 rounds (1 finalized)")
    assert report.notes == ["the task has not finished: 1 of 2 rounds decided, round 1 open"]
