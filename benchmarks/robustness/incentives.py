"""Who is paid: free-riders and ALIE against honest trainers, per head, under three scores.

Run from the repository root (defaults: the issue's setup, digits, 20 trainers, Dirichlet
0.5, the simulation's local training, 20 rounds, seeds 0-2, every rule)::

    PYTHONPATH=src .venv/bin/python benchmarks/robustness/incentives.py --workers 2

Every cell is ``fedchain.bench.robustness.run_cell``: the validators' own
``aggregate_round`` for the model, and the contract's payout formula applied to three
scores of the same updates: cosine (today's default recipe), the root-set score
(``score = "validation"``) and the innovation score (``score = "innovation"``). It prints
and writes, per rule, attack and share, the attackers' reward per head over the honest
trainers' (mean over seeds, and the largest seed), and without attack the lowest-paid
honest trainer over the median one. Rows are written as they finish
(``incentives/rows.jsonl``), so an interrupted run keeps them and ``--resume`` skips them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from fedchain.bench.robustness import Setup, cpu_count, grid, run_cells
from fedchain.learning.aggregate import RULES
from fedchain.sim.attacks import PUBLIC_ATTACKS

OUT = Path(__file__).parent / "incentives"
SCORES = {"cosine": "", "root_set": "_root_set", "innovation": "_innovation"}
ATTACKS = ["freerider", *PUBLIC_ATTACKS, "alie"]
BAR = 0.5  # an attacker earns at most half of an honest trainer's reward per head
FAIRNESS = 0.25  # without attack, the lowest-paid honest trainer earns a quarter of the median


def ratio(row: dict, suffix: str) -> float | None:
    h, a = row.get("honest_reward_per_head" + suffix), row.get("attacker_reward_per_head" + suffix)
    return None if a is None or not h else a / h


def tables(rows: list[dict]) -> tuple[str, dict]:
    """The Markdown tables and the verdicts, from the raw rows."""
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault((r["rule"], r["attack"], r["byzantine_fraction"]), []).append(r)
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    cols = [(a, fr) for a, fr in dict.fromkeys((r["attack"], r["byzantine_fraction"]) for r in rows) if a != "none"]
    lines, verdicts = [], {}
    for score, suffix in SCORES.items():
        worst = 0.0
        lines += [
            f"### {score}: attacker reward per head / honest reward per head (mean over seeds, max)",
            "",
            "| rule | " + " | ".join(f"{a} {round(100 * fr)}%" for a, fr in cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]
        for rule in rules:
            cells = []
            for a, fr in cols:
                rs = [x for x in (ratio(r, suffix) for r in by.get((rule, a, fr), [])) if x is not None]
                if rs:
                    worst = max(worst, max(rs))
                    cells.append(f"{np.mean(rs):.2f} ({max(rs):.2f})")
                else:
                    cells.append("–")
            lines.append(f"| {rule} | " + " | ".join(cells) + " |")
        fair = [
            r["honest_min_over_median"][score]
            for r in rows
            if r["attack"] == "none" and r["honest_min_over_median"].get(score) is not None
        ]
        lines += [
            "",
            f"Without attack, lowest-paid honest trainer / median: min {min(fair):.2f} over "
            f"{len(fair)} runs (bar {FAIRNESS})."
            if fair
            else "",
            "",
        ]
        verdicts[score] = {
            "worst_attacker_over_honest": worst,
            "attack_bar_met": worst <= BAR,
            "min_honest_over_median": min(fair) if fair else None,
            "fairness_bar_met": bool(fair) and min(fair) >= FAIRNESS,
        }
    acc = [
        "### Final accuracy (%, mean over seeds)",
        "",
        "| rule | no attack | " + " | ".join(f"{a} {round(100 * fr)}%" for a, fr in cols) + " |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for rule in rules:
        vals = [by.get((rule, "none", 0.0), [])] + [by.get((rule, a, fr), []) for a, fr in cols]
        acc.append(
            f"| {rule} | "
            + " | ".join(f"{100 * np.mean([r['accuracy'] for r in v]):.1f}" if v else "–" for v in vals)
            + " |"
        )
    return "\n".join(lines + acc) + "\n", verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--fractions", default="0.2,0.3")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--resume", action="store_true", help="keep the rows already in OUT/rows.jsonl")
    args = ap.parse_args()
    setup = Setup(rounds=args.rounds)
    cells = grid(
        ["digits"],
        args.rules.split(","),
        args.attacks.split(","),
        [float(x) for x in args.fractions.split(",")],
        [int(x) for x in args.seeds.split(",")],
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.jsonl"
    key = ("dataset", "rule", "attack", "byzantine_fraction", "seed")
    done = []
    if args.resume and rows_path.exists():
        done = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    have = {tuple(r[k] for k in key) for r in done}
    todo = [c for c in cells if tuple({**asdict(c), "attack": c.attack or "none"}[k] for k in key) not in have]
    print(f"{len(todo)} cells to run ({len(cells) - len(todo)} done), {args.workers} workers", file=sys.stderr)
    start = time.perf_counter()
    with rows_path.open("a") as f:

        def keep(row: dict) -> None:
            row = {k: v for k, v in row.items() if k != "rewards_wei"}
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(
                f"{row['rule']} {row['attack']} {row['byzantine_fraction']} seed {row['seed']}: {row['seconds']:.0f} s",
                file=sys.stderr,
            )

        run_cells(todo, setup, workers=args.workers, on_cell=keep)
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    text, verdicts = tables(rows)
    command = "PYTHONPATH=src .venv/bin/python benchmarks/robustness/incentives.py " + " ".join(sys.argv[1:])
    # every run whose rows are in rows.jsonl, in order (a --resume adds its own)
    old = args.out / "results.json"
    commands = json.loads(old.read_text()).get("commands", []) if args.resume and old.exists() else []
    commands = list(dict.fromkeys([*commands, command]))
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "commands": commands,
                "setup": asdict(setup),
                "seconds_this_run": time.perf_counter() - start,
                "cpu_count": cpu_count(),
                "verdicts": verdicts,
                "rows": rows,
            },
            indent=1,
        )
    )
    produced = ", then ".join(f"`{c}`" for c in commands)
    (args.out / "tables.md").write_text(f"Produced by {produced}.\n\n{text}")
    print(text)
    print(json.dumps(verdicts, indent=1))


if __name__ == "__main__":
    main()
