"""Time per round of the decentralized simulation divided by plain FedAvg.

Both run in this process on the same partitions, model, local training and
seeds: "plain" is in-memory float FedAvg with no chain, blobs or validators;
"fedchain" is the full protocol on the embedded chain (selection, commit,
reveal, validator checks, fixed-point aggregation and scoring by every
validator, votes, finalize, claims). The two alternate, one round of each at a
time, so that a change in the machine's speed (it is shared, and its clock
rate drifts) hits both sides alike; the ratio is the median over rounds of
(fedchain round / the plain round next to it). The first round of each is a
warm-up and is not counted.

    .venv/bin/python benchmarks/rounds/run.py [--trainers 20 100] [--rounds 6]

Where the difference goes is measured in the same rounds, by timers around the
chain's ``transact`` and ``call`` (the EVM: py-evm executing the contracts, plus
ABI encoding and log decoding), the validators' steps (checking every update,
aggregating, scoring, voting) and the trainers' local training; the rest is the
trainers' protocol work (fixed-point roots, blobs, journal). ``chain floor`` is
(plain + the chain's seconds) / plain: the ratio if nothing but the EVM were added.

Digits has 1,437 training examples: 100 Dirichlet(0.5) partitions of at least
10 examples cannot be drawn, so runs with more than 50 trainers use IID
partitions (about 14 examples each); the table says which. Prints a table and
writes benchmarks/rounds/results.json, with the machine's load average (the
figures are wall-clock times: other work on the machine inflates both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fedchain.sim.network import SimConfig, build_network, play_round
from fedchain.sim.simulate import PlainFedAvg

PARTS = ("chain", "validators", "training")


class Stopwatch:
    """Seconds spent inside the wrapped callables, per part. Chain time is counted
    wherever it happens; a validator's step counts only what it spent off the chain."""

    def __init__(self):
        self.seconds = dict.fromkeys(PARTS, 0.0)

    def wrap(self, part: str, fn):
        def timed(*args, **kwargs):
            start, chain_before = time.perf_counter(), self.seconds["chain"]
            try:
                return fn(*args, **kwargs)
            finally:
                inner = self.seconds["chain"] - chain_before if part != "chain" else 0.0
                self.seconds[part] += time.perf_counter() - start - inner

        return timed

    def take(self) -> dict[str, float]:
        out, self.seconds = self.seconds, dict.fromkeys(PARTS, 0.0)
        return out


def instrument(net) -> Stopwatch:
    watch = Stopwatch()
    net.chain.transact = watch.wrap("chain", net.chain.transact)
    net.chain.call = watch.wrap("chain", net.chain.call)
    for v in net.validators:
        v.step = watch.wrap("validators", v.step)
    for t in net.trainers:
        t.train = watch.wrap("training", t.train)
    return watch


def paired_rounds(net, rounds: int) -> tuple[list[float], list[float], list[dict]]:
    """Seconds of each plain and each fedchain round, alternating, and the fedchain
    round's parts; the warm-up round is dropped."""
    plain, chain, parts, stepper, watch = [], [], [], PlainFedAvg(net), instrument(net)
    for _ in range(rounds):
        plain.append(stepper.round())
        watch.take()
        chain.append(play_round(net).seconds)
        parts.append(watch.take())
    return plain[1:], chain[1:], parts[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainers", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--rounds", type=int, default=11)
    args = ap.parse_args()
    rows = []
    for n in args.trainers:
        with tempfile.TemporaryDirectory() as tmp:
            part = "dirichlet" if n <= 50 else "iid"
            net = build_network(SimConfig(trainers=n, rounds=args.rounds, partition=part, out=Path(tmp)))
            plains, chains, parts = paired_rounds(net, args.rounds)
        plain, chain = float(np.median(plains)), float(np.median(chains))
        ratio = float(np.median(np.array(chains) / np.array(plains)))
        median = {k: float(np.median([p[k] for p in parts])) for k in PARTS}
        median["trainer protocol and the rest"] = float(np.median([c - sum(p.values()) for c, p in zip(chains, parts)]))
        floor = float(np.median([(p + q["chain"]) / p for p, q in zip(plains, parts)]))
        rows.append(
            {
                "trainers": n,
                "partition": part,
                "validators": net.cfg.validators,
                "model": net.cfg.model,
                "local_epochs": net.cfg.epochs,
                "plain_seconds_per_round": plain,
                "fedchain_seconds_per_round": chain,
                "ratio": ratio,
                "ratio_min_max": [
                    float(min(np.array(chains) / np.array(plains))),
                    float(max(np.array(chains) / np.array(plains))),
                ],
                "fedchain_parts_seconds_per_round": median,
                "chain_floor_ratio": floor,
                "plain_seconds": plains,
                "fedchain_seconds": chains,
                "load_average_1min": os.getloadavg()[0],
            }
        )
        print(
            f"{n:>4} trainers ({part}): plain FedAvg {plain:.3f} s/round, fedchain {chain:.3f} s/round "
            f"(medians), ratio {ratio:.3f} (median of {len(plains)} paired rounds; "
            f"{rows[-1]['ratio_min_max'][0]:.2f}-{rows[-1]['ratio_min_max'][1]:.2f})",
            flush=True,
        )
        print(
            "      fedchain round, medians: "
            + ", ".join(f"{k} {v:.3f} s" for k, v in median.items())
            + f"; chain floor {floor:.3f}",
            flush=True,
        )
    out = Path(__file__).with_name("results.json")
    out.write_text(json.dumps({"command": " ".join([".venv/bin/python", *sys.argv]), "rows": rows}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
