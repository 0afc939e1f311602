"""Secure aggregation in rounds on the embedded chain, against the same rounds in the clear.

Issue 18, deliverable 4 (the ``secagg`` half of benchmarks/privacy; ``dp.py`` writes the
other). For each cell, two networks with the same trainers, data, model and seed run the
same rounds in this process: one with ``Recipe.secagg`` (the board, masked updates, the
validators' unmasking), one without (plain public updates, FedAvg). Dropouts are the last
``round(dropout * trainers)`` trainers, which vanish in every round once their masked update
is revealed: they never answer the unmasking request, so their self-mask seeds are rebuilt
from the other trainers' shares (``SimConfig.secagg_dropouts``); the ``after_share`` cells
instead lose them after they post their share bundle, before they mask (their pairwise masks
are rebuilt from their s-key shares: ``secagg_quitters``).

Per cell:

- ``seconds_per_round`` / ``plain_seconds_per_round``: mean wall time of ``play_round`` over
  the rounds but the first (every node stepped in one process on 2 cores: training, the board's steps,
  every validator's unmasking), secagg and plain;
- ``bytes_per_trainer`` / ``plain_bytes_per_trainer``: what one trainer publishes in a round,
  mean over the trainers that took part: key advert (64 bytes of calldata), share bundle,
  masked update and unmasking answer blobs; plain: its update blob;
- ``gas_per_round``: the chain's gas per round (every transaction of the round), secagg;
  ``plain_gas_per_round`` beside it;
- ``aggregate_equals_plain``: every round's new model equals, bit for bit, the previous model
  plus ``fedavg.aggregate_update`` of the fixed-point updates the trainers masked (recorded in
  the trainers' own process as they masked them), and every round finalized.

Run from the repository root (one torch thread); writes results.json key ``"secagg"`` and
secagg.md:

    .venv/bin/python benchmarks/privacy/secagg.py
    .venv/bin/python benchmarks/privacy/secagg.py --trainers 20 --dropouts 0.3  # one cell
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from fedchain.learning import fixedpoint as fp
from fedchain.learning import secagg
from fedchain.learning.aggregate.fedavg import aggregate_update
from fedchain.protocol.secagg_round import trainer_id
from fedchain.sim.network import SimConfig, build_network, play_round
from fedchain.storage.cid import cid_from_digest

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"
COMMAND = "benchmarks/privacy/secagg.py"
# MNIST sample (5,000 training examples: 50 a trainer at 100), IID so every partition has data,
# the main job's CNN for one local epoch, 3 validators, 3 rounds (the first, which warms up
# torch and the caches, is left out of the times)
BASE = dict(dataset="mnist", partition="iid", model="cnn", epochs=1, validators=3, rounds=3, seed=0)
CELLS = [(n, d, "after_mask") for n in (20, 100) for d in (0.0, 0.1, 0.3)] + [
    (n, 0.3, "after_share") for n in (20, 100)
]


class Recorder:
    """The fixed-point update each trainer masked, by (round, trainer): seen only where the
    trainer runs (here, the same process), never published."""

    def __init__(self):
        self.seen: dict[tuple[int, str], tuple[np.ndarray, int]] = {}
        self.real = secagg.SecAggTrainer.mask

    def __enter__(self):
        rec, real = self, self.real

        def mask(trainer, update, samples):
            rec.seen[(trainer.params.round_id, trainer.trainer)] = (np.asarray(update).copy(), samples)
            return real(trainer, update, samples)

        secagg.SecAggTrainer.mask = mask  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc):
        secagg.SecAggTrainer.mask = self.real  # type: ignore[method-assign]


def published_bytes(net, round_id: int, board_events: bool) -> float:
    """Mean bytes a trainer published in ``round_id`` (see the module docstring)."""
    per: dict[str, int] = {}
    for e in net.deployment.fedchain.events(0):
        if e.name == "Revealed" and e.args["round_id"] == round_id:
            who = trainer_id(e.args["node"])
            per[who] = per.get(who, 0) + len(net.store.get(cid_from_digest(e.args["update_cid"])))
    if board_events:
        for e in net.deployment.secagg.events(0):
            if e.args["round_id"] != round_id:
                continue
            who = trainer_id(e.args["trainer"])
            if e.name == "KeysAdvertised":
                size = 64
            else:
                size = len(net.store.get(cid_from_digest(e.args.get("bundle_cid") or e.args["answer_cid"])))
            per[who] = per.get(who, 0) + size
    return sum(per.values()) / len(per)


def play(cfg: SimConfig) -> dict:
    net = build_network(cfg)
    seconds, gas, sizes, exact = [], [], [], True
    with Recorder() as rec:
        for _ in range(cfg.rounds):
            before = net.validators[0].current_model(net.task_id).q
            out = play_round(net)
            seconds.append(out.seconds)
            gas.append(out.gas_used)
            sizes.append(published_bytes(net, out.round_id, cfg.secagg))
            if cfg.secagg:
                sent = [v for (r, _), v in rec.seen.items() if r == out.round_id]
                after = net.validators[0].current_model(net.task_id).q
                plain = fp.clip_fixed(before + aggregate_update([q for q, _ in sent], [n for _, n in sent]))
                exact = exact and out.finalized and bool(np.array_equal(after, plain))
            else:
                exact = exact and out.finalized
    assert net.conservation_gap() == 0
    return {
        "seconds": float(np.mean(seconds[1:])),
        "gas": int(np.mean(gas)),
        "bytes": float(np.mean(sizes)),
        "exact": exact,
    }


def cell(trainers: int, dropout: float, phase: str) -> dict:
    faults = round(dropout * trainers)
    with TemporaryDirectory() as tmp:
        plain = play(SimConfig(trainers=trainers, out=Path(tmp) / "plain", **BASE))
        masked = play(
            SimConfig(
                trainers=trainers,
                out=Path(tmp) / "secagg",
                secagg=True,
                secagg_dropouts=faults if phase == "after_mask" else 0,
                secagg_quitters=faults if phase == "after_share" else 0,
                **BASE,
            )
        )
    return {
        "trainers": trainers,
        "dropout": dropout,
        "dropped": phase,
        "seconds_per_round": round(masked["seconds"], 2),
        "plain_seconds_per_round": round(plain["seconds"], 2),
        "bytes_per_trainer": round(masked["bytes"]),
        "plain_bytes_per_trainer": round(plain["bytes"]),
        "gas_per_round": masked["gas"],
        "plain_gas_per_round": plain["gas"],
        "aggregate_equals_plain": masked["exact"],
    }


def report(cells: list[dict]) -> str:
    lines = [
        "# Secure aggregation: cost against the same rounds in the clear",
        "",
        f"`{COMMAND}`: {BASE['dataset']} ({BASE['partition']}), model {BASE['model']}, "
        f"{BASE['epochs']} local epoch, {BASE['validators']} validators, {BASE['rounds']} rounds a cell "
        "(times: all but the first), "
        "embedded chain, one process on 2 cores. Dropouts vanish after masking (`after_mask`) or after "
        "sharing their keys (`after_share`).",
        "",
        "| trainers | dropout | dropped | s/round | plain s/round | bytes/trainer | plain bytes/trainer "
        "| gas/round | plain gas/round | aggregate = plain FedAvg |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        lines.append(
            f"| {c['trainers']} | {c['dropout']:.0%} | {c['dropped']} | {c['seconds_per_round']:.2f} "
            f"| {c['plain_seconds_per_round']:.2f} | {c['bytes_per_trainer']:,} | {c['plain_bytes_per_trainer']:,} "
            f"| {c['gas_per_round']:,} | {c['plain_gas_per_round']:,} | {c['aggregate_equals_plain']} |"
        )
    lines += [
        "",
        "Every cell's new models equal plain FedAvg of the updates the trainers masked, bit for bit, "
        "every round (`aggregate = plain FedAvg`). Bytes: a masked update is 8 bytes a parameter "
        "against 4 for a float32 update, plus the share bundle (a few hundred bytes per neighbour) and the "
        "unmasking answer. Gas: the board's three transactions a trainer (advertise, share, answer) on "
        "top of commit and reveal.",
        "",
        "Time: one process runs every node, so a round's time is the sum of all nodes' work. With 100 "
        "trainers most of it is each trainer checking every masked update (parse and Merkle root) and "
        "every share bundle of the round, which every answerer must do to find the same survivors as "
        "the validators (profiled: about 9 s and 7 s of a 30 s profiled round); on a network each "
        "trainer does its own part, about a hundredth of that, in parallel with the others.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trainers", type=int, help="one cell: this many trainers (else every cell)")
    ap.add_argument("--dropouts", type=float, default=0.0)
    ap.add_argument("--dropped", default="after_mask", choices=("after_mask", "after_share"))
    ap.add_argument("--report", action="store_true", help="only rewrite secagg.md from results.json")
    args = ap.parse_args()
    if args.report:
        (HERE / "secagg.md").write_text(report(json.loads(RESULTS.read_text())["secagg"]))
        return
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.trainers:
        print(json.dumps(cell(args.trainers, args.dropouts, args.dropped), indent=1))
        return
    cells = []
    for n, d, phase in CELLS:
        start = time.perf_counter()
        cells.append(cell(n, d, phase))
        print(json.dumps(cells[-1]), f"({time.perf_counter() - start:.0f} s)", flush=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["secagg"] = cells
    results["secagg_command"] = f".venv/bin/python {COMMAND}"
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "secagg.md").write_text(report(cells))
    print(report(cells))


if __name__ == "__main__":
    main()
