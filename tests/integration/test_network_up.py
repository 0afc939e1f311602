"""``fedchain network up`` as a user runs it: one command starts the chain, the contracts,
the data, every node and the sponsor as separate processes; each round's accuracy is
printed and is in ``fedchain status --json``; Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from fedchain.dashboard.browser import Browser, find_chromium

pytestmark = [pytest.mark.anvil, pytest.mark.slow]
ROUNDS = 3


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited; only its parent's wait is missing
        return f.read().split(")")[-1].split()[0] == "Z"


def test_network_up_prints_accuracy_each_round_and_ctrl_c_stops_every_process(tmp_path):
    folder = tmp_path / "net"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fedchain", "network", "up", "--trainers", "3", "--validators", "2", "--watcher"]
    cmd += ["--rounds", str(ROUNDS), "--dir", str(folder)]
    up = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    caption = None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if line.startswith("task 1 finished"):
                break
        out = "\n".join(lines)
        printed = re.findall(r"round (\d) of 3: finalized, accuracy (0\.\d{3}), loss", out)
        assert [int(r) for r, _ in printed] == [1, 2, 3], out + "\n" + logs(folder)

        status = subprocess.run(
            [sys.executable, "-m", "fedchain", "status", "--json", "--deployment", str(folder / "deployment.json")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        rounds = json.loads(status.stdout)["rounds"]
        assert [f"{r['accuracy']:.3f}" for r in rounds] == [a for _, a in printed]
        accuracy = [r["accuracy"] for r in rounds]
        assert min(accuracy) > 0.2 and accuracy[-1] > 0.6, accuracy  # ten classes: chance is 0.1

        # `status --watch` draws the status again as blocks arrive, until Ctrl-C
        watch = subprocess.Popen(
            [sys.executable, "-m", "fedchain", "status", "--watch", "--deployment", str(folder / "deployment.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Ctrl-C once it has drawn twice (its start takes ~3 s, much more on a loaded machine)
        seen, draws, until = [], 0, time.monotonic() + 120
        while draws < 2 and time.monotonic() < until:
            line = watch.stdout.readline()
            if not line:
                break
            seen.append(line)
            draws += "Rounds" in line
        watch.send_signal(signal.SIGINT)
        rest, _ = watch.communicate(timeout=30)
        drawn = "".join(seen) + rest
        assert watch.returncode == 0 and "Traceback" not in drawn, drawn[-3000:]
        assert draws >= 2, drawn[-3000:]

        # the dashboard, a process of its own, against the live process network, in Chromium
        caption = dashboard_caption(folder, env, f"{accuracy[-1]:.4f}") if find_chromium() else None

        pids = {n: int(p) for n, p in (line.split() for line in (folder / "pids.txt").read_text().splitlines())}
        assert {"chain", "sponsor", "watcher", "trainer-2", "validator-1"} <= set(pids)
        # setup steps exit, and so does the sponsor once its task is done; the chain and nodes stay up
        early = [n for n, p in pids.items() if n not in ("deploy", "data", "sponsor") and gone(p)]
        assert not early, f"{early} exited early:\n{logs(folder)}"
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=60)
        assert up.returncode == 0, rest
        assert "stopped." in rest and "Traceback" not in out + rest, rest
        assert all(gone(p) for p in pids.values()), {n: p for n, p in pids.items() if not gone(p)}
    finally:
        if up.poll() is None:
            up.kill()
        for line in (folder / "pids.txt").read_text().splitlines() if (folder / "pids.txt").exists() else []:
            pid = int(line.split()[1])
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    if caption is None:
        pytest.skip("the network passed; no chromium for its dashboard (./scripts/setup.sh installs it)")


def dashboard_caption(folder, env, accuracy: str) -> str:
    """Serve `fedchain dashboard --deployment` over the running network, open it in headless
    Chromium, wait for every round finalized with its nodes and lineage; the accuracy caption."""
    board = subprocess.Popen(
        [sys.executable, "-m", "fedchain", "dashboard", "--deployment", str(folder / "deployment.json"), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = board.stdout.readline()
        url = re.search(r"open (http://\S+/)", first)
        assert url, first
        with Browser() as b:
            b.goto(url.group(1))
            b.wait_for(f"document.querySelectorAll('#rounds tbody tr[data-status=finalized]').length == {ROUNDS}", 30)
            assert b.eval("document.querySelectorAll('#node-table tbody tr').length") >= 5  # 3 trainers, 2 validators
            assert b.eval("document.querySelectorAll('#lineage-list li').length") >= ROUNDS
            caption = b.eval("document.getElementById('accuracy-caption').textContent")
        assert f"Accuracy after round {ROUNDS - 1}: {accuracy}" in caption, caption
        return caption
    finally:
        board.send_signal(signal.SIGINT)
        try:
            board.wait(timeout=15)
        except subprocess.TimeoutExpired:
            board.kill()


def logs(folder) -> str:
    return "\n".join(
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-12:])
        for p in sorted((folder / "logs").glob("*.log"))
    )
