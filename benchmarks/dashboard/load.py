"""Time from navigation to the dashboard showing a whole task: every round of the
timeline, every node and every lineage entry, in a real headless Chromium.

The server runs in this process over a saved simulation (default: the default
`fedchain simulate`, 20 trainers and 20 rounds, generated once into --sim if that
folder has no run yet). Each try is a fresh browser (no cache) against a warm
server (its view built once at start, as `fedchain dashboard` builds it before it
prints its URL); the figure is the page's own clock (``performance.now()`` at the
end of its first complete draw, counted from navigation start). The bar is 2 s.

    .venv/bin/python benchmarks/dashboard/load.py [--sim /tmp/fedchain-dash-20x20] [--tries 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from fedchain.dashboard.browser import Browser
from fedchain.dashboard.server import Dashboard, SimHistory, serve
from fedchain.storage.store import LocalBlobStore

SHOWN = (
    "document.querySelectorAll('#rounds tbody tr').length == {rounds} && "
    "document.querySelectorAll('#lineage-list li').length == {finalized} && "
    "document.querySelectorAll('#node-table tbody tr').length == {nodes} && document.body.dataset.drawnMs"
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", type=Path, default=Path("/tmp/fedchain-dash-20x20"))
    p.add_argument("--tries", type=int, default=5)
    args = p.parse_args()
    if not (args.sim / "chain" / "events.jsonl").exists():
        print(f"generating the default simulation (20 trainers, 20 rounds) in {args.sim} ...", flush=True)
        cmd = [sys.executable, "-m", "fedchain", "simulate", "--no-baselines", "--out", str(args.sim)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    start = time.perf_counter()
    board = Dashboard(SimHistory(args.sim, LocalBlobStore(args.sim / "blobs"))).start()
    built = time.perf_counter() - start
    server = serve(board, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    task = board.view["tasks"][-1]
    shown = SHOWN.format(rounds=len(task["rounds"]), finalized=task["finalized"], nodes=len(board.view["nodes"]))
    page, wall = [], []
    for _ in range(args.tries):
        with Browser() as b:
            t0 = time.perf_counter()
            b.goto(url)
            page.append(float(b.wait_for(shown, 30)) / 1000)
            wall.append(time.perf_counter() - t0)
    server.shutdown()
    board.stop()
    result = {
        "sim": str(args.sim),
        "rounds": len(task["rounds"]),
        "nodes": len(board.view["nodes"]),
        "view_build_s": round(built, 3),
        "page_s": [round(s, 3) for s in page],
        "page_median_s": round(statistics.median(page), 3),
        "wall_median_s": round(statistics.median(wall), 3),
    }
    (Path(__file__).parent / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"navigation to timeline, nodes and lineage shown: {result['page_median_s']} s median of {args.tries} "
        f"(page clock; {result['wall_median_s']} s as seen from here) for {result['rounds']} rounds, "
        f"{result['nodes']} nodes"
    )


if __name__ == "__main__":
    main()
