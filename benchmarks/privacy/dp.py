"""Differential privacy in plain FedAvg: accuracy against epsilon, both mechanisms.

Issue 18, deliverable 4 (the ``dp`` half of benchmarks/privacy; ``secagg`` is another
script's). No chain: plain FedAvg as ``fedchain.sim.simulate.PlainFedAvg`` trains it (every
trainer in every round, the example-weighted mean of the updates, ``fedavg_float``, added to
the model; no server learning rate or momentum), with each trainer's release computed as a
fedchain trainer computes it with ``fedchain.learning.privacy``:

- example-level (DP-SGD): ``train_local_dp(model, global, x_i, y_i, cfg, spec, seed)``,
  update = result - global. The recipe fixes the Poisson rate q and the steps per round for
  every trainer, so every trainer spends the same epsilon per round whatever the size of its
  partition; every trainer takes part in every round, so sigma is
  ``calibrate_noise(spec, rounds, epsilon)`` and each trainer's epsilon is
  ``epsilon(spec, rounds)`` (recorded as ``epsilon_spent``, at most the target).
- client-level (DP-FedAvg run by each trainer): ordinary local training (``train_local``),
  update = result - global, then ``clip_and_noise(update, C, sigma, rng)``, sigma from
  ``calibrate_noise``. The noise generator is ``np.random.default_rng`` seeded from the
  benchmark's seed, the trainer and the round: fine for a benchmark, never for a real
  trainer, which must draw a secret seed (``secrets.randbits(128)``).
- epsilon = inf: the same training with no clipping and no noise, the non-private baseline
  of that mechanism's settings. Example-level: the same Poisson-sampled SGD steps through
  ``train_local_dp`` with sigma 0 and a clip of 1e12 that never binds; client-level: plain
  FedAvg (``train_local``, nothing added).

Parts:

- ``grid``: epsilon in {1, 2, 4, 8, inf} at delta 1e-5, on digits and the MNIST sample, 20
  trainers, Dirichlet 0.5 partitions, both mechanisms, seeds 0 1 2 (a seed fixes the
  train/test split, the partitions, the initial model and every trainer's randomness, as
  ``fedchain simulate --seed`` does). Writes results.json key ``"dp"``,
  accuracy_vs_epsilon.png and dp.md.
- ``client-scaling``: client-level DP at epsilon 8 on MNIST-1D with N trainers per round,
  each holding the same number of examples (IID, all in every round), for growing N until
  the accuracy is within 5 points of the non-private run with the same N. fedchain's
  loader makes only the canonical 5,000 examples, so the data are generated here with the
  mnist1d package directly: chunks of 50,000 examples from ``make_dataset`` with
  ``get_dataset_args()``'s arguments but ``num_samples`` = 50,000 and ``seed`` = 42 + chunk
  (the package's default seed is 42), generated as N needs them. Chunk 0's first 4,000
  examples are the test set, its next 4,000 the validation set, the rest (and later chunks)
  are dealt out 50 per trainer. Writes results.json key ``"client_scaling"`` and dp.md.
- ``tune``: the search that chose ``SETTINGS`` and ``SCALING``, on validation data only:
  for digits and MNIST, 20% of the training split (stratified) held out and the rest
  partitioned as in the grid, seed 0; for MNIST-1D the validation set above at N = 1,000.
  Writes tuning.json with every trial. The test splits are used only by ``grid`` and
  ``client-scaling``.
- ``report``: rewrites dp.md and the plot from results.json.

Run from the repository root (one torch thread):

    .venv/bin/python benchmarks/privacy/dp.py --part grid
    .venv/bin/python benchmarks/privacy/dp.py --part client-scaling
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from fedchain.learning.aggregate.fedavg import fedavg_float
from fedchain.learning.data import load_dataset, partition
from fedchain.learning.models import build_model
from fedchain.learning.privacy import DpSpec, calibrate_noise, clip_and_noise, epsilon, train_local_dp
from fedchain.learning.train import TrainConfig, evaluate, flatten, get_params, train_local, unflatten

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
PLOT = HERE / "accuracy_vs_epsilon.png"
SUMMARY = HERE / "dp.md"
TUNING = HERE / "tuning.json"

EPSILONS = (1.0, 2.0, 4.0, 8.0, math.inf)
DELTA = 1e-5
TRAINERS, ALPHA = 20, 0.5
SEEDS = (0, 1, 2)
DATASETS = ("digits", "mnist")
MECHANISMS = {"example": "example-level", "client": "client-level"}
NO_CLIP = 1e12  # epsilon = inf, example-level: a clip that never binds
VALIDATION = 0.2  # share of the training split held out when tuning
BAR_EXAMPLE, BAR_CLIENT = 8.0, 5.0  # points behind non-private FedAvg (issue 18)

# MNIST-1D for client-level scaling
CHUNK = 50_000  # examples per make_dataset call
TEST_SIZE = VAL_SIZE = 4_000
PER_TRAINER = 50
SCALING_NS = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
SCALING_EPSILON = 8.0


@dataclass(frozen=True)
class Setting:
    """One recipe. Example-level: Poisson rate ``sampling_rate``, ``steps`` per round, the
    per-example gradient's ``clip``, SGD ``lr`` and ``momentum``. Client-level: ``epochs`` of
    minibatch SGD (``batch_size``, ``lr``, ``momentum``) and the update's ``clip``."""

    mechanism: str  # "example" or "client"
    model: str
    rounds: int
    lr: float
    clip: float
    momentum: float = 0.0
    sampling_rate: float | None = None
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None

    def train_config(self) -> TrainConfig:
        if self.mechanism == "example":  # epochs and batch_size unused: q and steps replace them
            return TrainConfig(lr=self.lr, momentum=self.momentum)
        assert self.epochs is not None and self.batch_size is not None
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum)

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


# fedchain's simulation defaults for local training (SimConfig): client-level trains with them
LOCAL = dict(epochs=5, batch_size=16, lr=0.05, momentum=0.9)

# Chosen by validation accuracy at epsilon 8 (--part tune, tuning.json). Example-level first
# (model, rounds, q, steps, clip, lr); client-level then trains the same model for the same
# rounds with the simulation's local defaults, only its clip searched. Every epsilon uses the
# same settings: only sigma changes.
SETTINGS: dict[tuple[str, str], Setting] = {
    ("digits", "example"): Setting("example", "logreg", 20, lr=4.0, clip=0.5, sampling_rate=0.5, steps=5),
    ("digits", "client"): Setting("client", "logreg", 20, clip=0.1, **LOCAL),
    ("mnist", "example"): Setting("example", "logreg", 40, lr=4.0, clip=0.5, sampling_rate=0.5, steps=5),
    ("mnist", "client"): Setting("client", "logreg", 40, clip=0.1, **LOCAL),
}

# Client-level on MNIST-1D (--part tune, at N = 1,000 on the validation set): five local SGD
# steps (one epoch of batches of 10) a round, five rounds.
SCALING = Setting("client", "logreg", 5, lr=0.3, clip=0.5, momentum=0.9, epochs=1, batch_size=10)


def check_tuning() -> None:
    """Say so if tuning.json (the last --part tune) chose otherwise than the constants above."""
    if not TUNING.exists():
        return
    t = json.loads(TUNING.read_text())
    for dataset, v in t.get("dp", {}).items():
        ex, cl = SETTINGS.get((dataset, "example")), SETTINGS.get((dataset, "client"))
        if ex is not None and v["example_chosen"] != ex.describe():
            say(f"note: tuning.json chose {v['example_chosen']} for {dataset} example-level, not {ex.describe()}")
        if cl is not None and v["client_chosen_clip"] != cl.clip:
            say(f"note: tuning.json chose clip {v['client_chosen_clip']} for {dataset} client-level, not {cl.clip}")
    chosen = t.get("scaling_chosen")
    if (
        chosen
        and {k: w for k, w in chosen.items() if k not in ("val_accuracy", "seconds", "noise_multiplier")}
        != SCALING.describe()
    ):
        say(f"note: tuning.json chose {chosen} for client-scaling, not {SCALING.describe()}")


def quiet() -> None:
    """One torch thread; no absl warnings from dp-accounting (its series for some fractional
    RDP orders do not converge at small sigma; those orders are dropped, the bound stays valid)."""
    torch.set_num_threads(1)
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging  # type: ignore[import-untyped, unused-ignore]

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def say(*args: object) -> None:
    print(*args, flush=True)


# -- data


@dataclass(frozen=True)
class Split:
    """Training examples (dealt out to the trainers) and the examples accuracy is measured on."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    x: np.ndarray
    y: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


@cache
def split(dataset: str, seed: int, validation: bool) -> Split:
    """``load_dataset(dataset, seed)``'s train/test split; with ``validation`` the test split
    is left out and 20% of the training split (stratified, seeded) is evaluated instead."""
    d = load_dataset(dataset, seed=seed)
    if not validation:
        return Split(dataset, tuple(d.input_shape), d.num_classes, d.x_train, d.y_train, d.x_test, d.y_test)
    fit, val = train_test_split(np.arange(len(d.y_train)), test_size=VALIDATION, stratify=d.y_train, random_state=seed)
    return Split(
        dataset, tuple(d.input_shape), d.num_classes, d.x_train[fit], d.y_train[fit], d.x_train[val], d.y_train[val]
    )


@cache
def dirichlet_parts(dataset: str, seed: int, validation: bool) -> tuple[np.ndarray, ...]:
    return tuple(partition("dirichlet", split(dataset, seed, validation).y, TRAINERS, seed=seed, alpha=ALPHA))


class Mnist1d:
    """MNIST-1D generated in chunks of ``CHUNK`` examples as trainers need them (see the
    module docstring); numpy's and Python's global RNG states are restored after each."""

    def __init__(self) -> None:
        self.xs: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []
        self.seconds = 0.0

    def _chunk(self) -> None:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed = CHUNK, args.seed + len(self.xs)
        start, np_state, py_state = time.perf_counter(), np.random.get_state(), random.getstate()
        try:
            d = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        self.xs.append(np.concatenate([d["x"], d["x_test"]]).astype(np.float32))
        self.ys.append(np.concatenate([d["y"], d["y_test"]]).astype(np.int64))
        self.seconds += time.perf_counter() - start
        say(f"  mnist1d: generated chunk {len(self.xs) - 1} ({CHUNK} examples, {time.perf_counter() - start:.0f}s)")

    def split(self, trainers: int, validation: bool) -> tuple[Split, list[np.ndarray]]:
        """The first ``trainers`` * 50 training examples, 50 per trainer, and the test (or
        validation) set."""
        need = TEST_SIZE + VAL_SIZE + trainers * PER_TRAINER
        while sum(len(y) for y in self.ys) < need:
            self._chunk()
        x, y = np.concatenate(self.xs), np.concatenate(self.ys)
        held = slice(TEST_SIZE, TEST_SIZE + VAL_SIZE) if validation else slice(0, TEST_SIZE)
        first = TEST_SIZE + VAL_SIZE
        data = Split("mnist1d", (40,), 10, x[first:need], y[first:need], x[held], y[held])
        return data, [np.arange(i * PER_TRAINER, (i + 1) * PER_TRAINER) for i in range(trainers)]


# -- the FedAvg loop


def spec_of(s: Setting, sigma: float) -> DpSpec:
    if s.mechanism == "example":
        return DpSpec("example", sigma, s.clip if sigma > 0 else NO_CLIP, DELTA, s.sampling_rate, s.steps)
    return DpSpec("client", sigma, s.clip, DELTA)


@cache
def sigma_for(s: Setting, target: float) -> float:
    """The noise multiplier giving at most ``target`` epsilon after ``s.rounds`` rounds (0: inf)."""
    if math.isinf(target):
        return 0.0
    return calibrate_noise(spec_of(s, 1.0), s.rounds, target)


def fedavg(data: Split, parts: Iterable[np.ndarray], s: Setting, target: float, seed: int) -> dict:
    """Plain FedAvg, every trainer in every round, each release private at ``target``
    epsilon (inf: no clipping, no noise); the final model's accuracy on ``data``'s eval set."""
    start = time.perf_counter()
    sigma = sigma_for(s, target)
    spec, tc = spec_of(s, sigma), s.train_config()
    model = build_model(s.model, data.input_shape, data.num_classes, seed=seed)
    params = get_params(model)
    local = [(data.x[p], data.y[p]) for p in parts]
    sizes = [len(y) for _, y in local]
    diverged = False
    for rnd in range(s.rounds):
        flat = flatten(params)
        updates = []
        for i, (x, y) in enumerate(local):
            train_seed = (seed * 1000 + i) * 100_003 + rnd  # like Trainer.train_seed: per trainer and round
            if s.mechanism == "example":
                u = flatten(train_local_dp(model, params, x, y, tc, spec, train_seed)) - flat
            else:
                u = flatten(train_local(model, params, x, y, tc, train_seed)) - flat
                if sigma > 0 and np.all(np.isfinite(u)):
                    u = clip_and_noise(u, s.clip, sigma, np.random.default_rng([seed, i, rnd]))  # not secret
            updates.append(u)
        new = fedavg_float(flat, updates, sizes).astype(np.float32)
        if not np.all(np.isfinite(new)):
            diverged = True
            break
        params = unflatten(new, params)
    accuracy = 0.0 if diverged else evaluate(model, params, data.x_eval, data.y_eval)
    return {
        "accuracy": accuracy,
        "diverged": diverged,
        "noise_multiplier": sigma,
        "epsilon_spent": epsilon(spec, s.rounds) if sigma > 0 else math.inf,
        "seconds": time.perf_counter() - start,
    }


# -- part: grid


def eps_label(e: float) -> float | str:
    return "inf" if math.isinf(e) else e


def grid(seeds: tuple[int, ...]) -> list[dict]:
    cells = []
    start = time.perf_counter()
    for dataset in DATASETS:
        for mech in MECHANISMS:
            s = SETTINGS[(dataset, mech)]
            for target in EPSILONS:
                runs = []
                for seed in seeds:
                    r = fedavg(split(dataset, seed, False), dirichlet_parts(dataset, seed, False), s, target, seed)
                    if r["diverged"]:
                        raise SystemExit(f"{dataset} {mech} epsilon {target} seed {seed} diverged")
                    runs.append(r)
                    say(
                        f"{dataset:6} {MECHANISMS[mech]:13} eps={eps_label(target)!s:4} seed={seed} "
                        f"acc={r['accuracy']:.4f} sigma={r['noise_multiplier']:.3f} "
                        f"({r['seconds']:.1f}s, {time.perf_counter() - start:.0f}s so far)"
                    )
                accs = [r["accuracy"] for r in runs]
                cells.append(
                    {
                        "dataset": dataset,
                        "mechanism": MECHANISMS[mech],
                        "epsilon": eps_label(target),
                        "delta": DELTA,
                        "trainers": TRAINERS,
                        "rounds": s.rounds,
                        "accuracy_mean": statistics.fmean(accs),
                        "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                        "accuracies": accs,
                        "seeds": list(seeds),
                        "noise_multiplier": runs[0]["noise_multiplier"],
                        "epsilon_spent": eps_label(runs[0]["epsilon_spent"]),
                        "partition": f"dirichlet alpha={ALPHA}",
                        "settings": s.describe()
                        | ({} if math.isfinite(target) or mech == "client" else {"clip": None, "note": "no clipping"}),
                        "seconds": sum(r["seconds"] for r in runs),
                    }
                )
    for c in cells:  # gaps to the non-private runs with the same trainers, model and rounds
        if c["epsilon"] == "inf":
            continue
        ref = {
            m: next(
                d["accuracy_mean"]
                for d in cells
                if d["dataset"] == c["dataset"] and d["mechanism"] == m and d["epsilon"] == "inf"
            )
            for m in MECHANISMS.values()
        }
        c["nonprivate_accuracy_mean"] = ref[c["mechanism"]]
        c["gap_points"] = 100 * (ref[c["mechanism"]] - c["accuracy_mean"])
        c["plain_fedavg_accuracy_mean"] = ref["client-level"]  # train_local, nothing added: plain FedAvg
        c["gap_points_vs_plain_fedavg"] = 100 * (ref["client-level"] - c["accuracy_mean"])
    return cells


# -- part: client-scaling


def client_scaling(ns: tuple[int, ...]) -> list[dict]:
    """Client-level DP at epsilon 8 for each N in turn, until it is within 5 points of the
    non-private run with the same N (or ``ns`` runs out)."""
    data_gen = Mnist1d()
    cells = []
    start = time.perf_counter()
    for n in ns:
        generated = data_gen.seconds
        data, parts = data_gen.split(n, validation=False)
        private = fedavg(data, parts, SCALING, SCALING_EPSILON, 0)
        plain = fedavg(data, parts, SCALING, math.inf, 0)
        gap = 100 * (plain["accuracy"] - private["accuracy"])
        cells.append(
            {
                "dataset": "mnist1d",
                "trainers": n,
                "epsilon": SCALING_EPSILON,
                "delta": DELTA,
                "accuracy": private["accuracy"],
                "nonprivate_accuracy": plain["accuracy"],
                "gap_points": gap,
                "within_bar": gap <= BAR_CLIENT,
                "bar_points": BAR_CLIENT,
                "rounds": SCALING.rounds,
                "noise_multiplier": private["noise_multiplier"],
                "epsilon_spent": private["epsilon_spent"],
                "examples_per_trainer": PER_TRAINER,
                "partition": "iid, the same number of examples per trainer, every trainer in every round",
                "test_examples": TEST_SIZE,
                "data": f"mnist1d make_dataset in chunks of {CHUNK} (num_samples={CHUNK}, seed 42 + chunk)",
                "settings": SCALING.describe(),
                "seed": 0,
                "seconds": private["seconds"] + plain["seconds"],
                "data_generation_seconds": data_gen.seconds - generated,
            }
        )
        say(
            f"mnist1d N={n:6} eps=8 acc={private['accuracy']:.4f} non-private={plain['accuracy']:.4f} "
            f"gap={gap:.1f} points ({private['seconds'] + plain['seconds']:.0f}s, "
            f"{time.perf_counter() - start:.0f}s so far)"
        )
        if gap <= BAR_CLIENT:
            break
    return cells


# -- part: tune (validation data only)


def tune() -> dict:
    out: dict = {"how": "validation accuracy, seed 0; the test split is never evaluated", "dp": {}, "scaling": []}

    def trial(dataset: str, s: Setting, target: float = 8.0) -> dict:
        r = fedavg(split(dataset, 0, True), dirichlet_parts(dataset, 0, True), s, target, 0)
        row = {"epsilon": eps_label(target), **s.describe(), "val_accuracy": r["accuracy"]}
        row |= {"noise_multiplier": r["noise_multiplier"], "diverged": r["diverged"], "seconds": r["seconds"]}
        say(f"  {dataset} {row}")
        return row

    for dataset in DATASETS:
        say(f"tune {dataset}")
        rows: list[dict] = []
        base = Setting("example", "logreg", 20, lr=1.0, clip=0.5, sampling_rate=0.2, steps=5)
        # stage 1: rounds x q x lr for logreg (steps 5, clip 0.5)
        for rounds in (20, 40):
            for q in (0.1, 0.2, 0.5):
                for lr in (1.0, 2.0, 4.0):
                    rows.append(trial(dataset, replace(base, rounds=rounds, sampling_rate=q, lr=lr)))
        best = max(rows, key=lambda r: r["val_accuracy"])
        chosen = Setting(
            **{k: best[k] for k in ("mechanism", "model", "rounds", "lr", "clip", "sampling_rate", "steps")}
        )
        # stage 2: clip, steps and momentum around it
        stage2 = [replace(chosen, clip=c) for c in (0.2, 1.0)] + [replace(chosen, steps=k) for k in (2, 10)]
        stage2 += [replace(chosen, momentum=0.5)]
        # stage 3: the other models at the chosen q, steps, rounds (three learning rates each)
        stage2 += [replace(chosen, model=m, lr=lr) for m in ("mlp", "cnn") for lr in (0.5, 1.0, 2.0)]
        rows += [trial(dataset, s) for s in stage2]
        best = max(rows, key=lambda r: r["val_accuracy"])
        fields = ("mechanism", "model", "rounds", "lr", "clip", "momentum", "sampling_rate", "steps")
        example = Setting(**{k: best[k] for k in fields if k in best})
        # client-level: same model and rounds, the simulation's local training, clip searched
        client_rows = [
            trial(dataset, Setting("client", example.model, example.rounds, clip=c, **LOCAL))
            for c in (0.1, 0.3, 1.0, 3.0)
        ]
        client = max(client_rows, key=lambda r: r["val_accuracy"])
        refs = [
            trial(dataset, example, math.inf),
            trial(dataset, Setting("client", example.model, example.rounds, clip=1.0, **LOCAL), math.inf),
        ]
        out["dp"][dataset] = {
            "example_trials": rows,
            "example_chosen": example.describe(),
            "client_trials": client_rows,
            "client_chosen_clip": client["clip"],
            "nonprivate_validation": refs,
        }
        save_json(TUNING, out)
    say("tune mnist1d (client-level, N = 1000)")
    gen = Mnist1d()
    data, parts = gen.split(1000, validation=True)
    local_options = [
        dict(epochs=1, batch_size=50, lr=1.0, momentum=0.0),  # one full-batch step
        dict(epochs=1, batch_size=10, lr=0.3, momentum=0.9),  # five steps
        dict(epochs=3, batch_size=10, lr=0.3, momentum=0.9),  # fifteen steps
    ]
    rows = []
    for rounds in (5, 10, 20):
        for loc in local_options:
            s = Setting("client", "logreg", rounds, clip=1.0, **loc)
            r = fedavg(data, parts, s, SCALING_EPSILON, 0)
            rows.append({**s.describe(), "val_accuracy": r["accuracy"], "seconds": r["seconds"]})
            rows[-1]["noise_multiplier"] = r["noise_multiplier"]
            say(f"  mnist1d {rows[-1]}")
    best = max(rows, key=lambda r: r["val_accuracy"])
    chosen = Setting(
        **{k: best[k] for k in ("mechanism", "model", "rounds", "lr", "clip", "momentum", "epochs", "batch_size")}
    )
    for s in [replace(chosen, clip=c) for c in (0.25, 0.5, 2.0)] + [replace(chosen, model="mlp")]:
        r = fedavg(data, parts, s, SCALING_EPSILON, 0)
        rows.append({**s.describe(), "val_accuracy": r["accuracy"], "seconds": r["seconds"]})
        say(f"  mnist1d {rows[-1]}")
    out["scaling"] = rows
    out["scaling_chosen"] = max(rows, key=lambda r: r["val_accuracy"])
    save_json(TUNING, out)
    return out


# -- outputs


def save_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def update_results(key: str, value: object) -> None:
    """Set one key of results.json, keeping the others (``secagg`` is another script's)."""
    results = load_results()
    results[key] = value
    save_json(RESULTS, results)


def plot(cells: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inf_x = 16.0  # where epsilon = inf is drawn
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for dataset in DATASETS:
        for mech, style in zip(MECHANISMS.values(), ("-", "--")):
            rows = [c for c in cells if c["dataset"] == dataset and c["mechanism"] == mech]
            fin = [c for c in rows if c["epsilon"] != "inf"]
            inf = [c for c in rows if c["epsilon"] == "inf"]
            line = ax.errorbar(
                [c["epsilon"] for c in fin],
                [c["accuracy_mean"] for c in fin],
                yerr=[c["accuracy_std"] for c in fin],
                ls=style,
                marker="o",
                capsize=3,
                label=f"{dataset}, {mech}",
            )
            color = line[0].get_color()
            if inf:
                ax.errorbar(
                    [inf_x], [inf[0]["accuracy_mean"]], yerr=[inf[0]["accuracy_std"]], marker="*", ms=11, color=color
                )
                ax.plot(
                    [fin[-1]["epsilon"], inf_x], [fin[-1]["accuracy_mean"], inf[0]["accuracy_mean"]], ":", color=color
                )
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8, inf_x], ["1", "2", "4", "8", "∞\n(non-private)"])
    ax.set(
        xlabel="ε per trainer (δ = 1e-5)",
        ylabel="test accuracy (mean ± std, 3 seeds)",
        ylim=(0, 1),
        title=f"Plain FedAvg with DP, {TRAINERS} trainers, Dirichlet {ALPHA}",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


def summary() -> None:
    """dp.md from results.json (both parts, whichever have run)."""
    results = load_results()
    lines = [
        "# Differential privacy: accuracy against epsilon (plain FedAvg)",
        "",
        "Made by `benchmarks/privacy/dp.py` (its docstring says how each trainer's release is",
        "computed, with `fedchain.learning.privacy`). Commands, from the repository root:",
        "",
        "    .venv/bin/python benchmarks/privacy/dp.py --part grid",
        "    .venv/bin/python benchmarks/privacy/dp.py --part client-scaling",
        "",
        "Hyperparameters were chosen by `--part tune` on validation data only (20% of each",
        "training split held out, seed 0; tuning.json has every trial); the test splits were",
        "evaluated only by the runs below.",
        "",
    ]
    cells = results.get("dp")
    if cells:
        lines += [
            f"## Grid: {TRAINERS} trainers, Dirichlet {ALPHA}, every trainer in every round, δ = {DELTA:g}",
            "",
            "Test accuracy, mean ± std (sample std) over seeds "
            + ", ".join(map(str, cells[0]["seeds"]))
            + "; ε is each trainer's, after all the rounds (σ from `calibrate_noise`).",
            "",
            "| dataset | mechanism | model | rounds | "
            + " | ".join(f"ε = {e}" for e in ("1", "2", "4", "8", "∞"))
            + " |",
            "|---|---|---|---|" + "---|" * len(EPSILONS),
        ]
        for dataset in DATASETS:
            for mech in MECHANISMS.values():
                rows = [c for c in cells if c["dataset"] == dataset and c["mechanism"] == mech]
                if not rows:
                    continue
                accs = " | ".join(f"{c['accuracy_mean']:.3f} ± {c['accuracy_std']:.3f}" for c in rows)
                lines.append(f"| {dataset} | {mech} | {rows[0]['settings']['model']} | {rows[0]['rounds']} | {accs} |")
        lines += ["", "Noise multipliers σ (the same for every seed):", ""]
        for dataset in DATASETS:
            for mech in MECHANISMS.values():
                rows = [
                    c for c in cells if c["dataset"] == dataset and c["mechanism"] == mech and c["epsilon"] != "inf"
                ]
                if rows:
                    sig = ", ".join(f"ε {c['epsilon']:g}: {c['noise_multiplier']:.3f}" for c in rows)
                    lines.append(f"- {dataset}, {mech}: {sig}")
        lines += ["", "Settings:", ""]
        for dataset in DATASETS:
            for mech in MECHANISMS.values():
                rows = [c for c in cells if c["dataset"] == dataset and c["mechanism"] == mech]
                if rows:
                    lines.append(f"- {dataset}, {mech}: `{json.dumps(rows[0]['settings'])}`")
        lines += [
            "",
            "Example-level settings: `sampling_rate` q and `steps` are the recipe's, the same for every",
            "trainer (expected batch q·n_i). Client-level trains with the simulation's local defaults",
            "(5 epochs, batch 16, lr 0.05, momentum 0.9); its ε = ∞ cell is plain FedAvg.",
            "",
            "### Bar 1: example-level DP on the MNIST sample within 8 points of non-private FedAvg at ε ≤ 8",
            "",
        ]
        c8 = next(
            c for c in cells if c["dataset"] == "mnist" and c["mechanism"] == "example-level" and c["epsilon"] == 8.0
        )
        worst = max(c8["gap_points"], c8["gap_points_vs_plain_fedavg"])
        lines += [
            f"At ε = 8: {c8['accuracy_mean']:.3f} ± {c8['accuracy_std']:.3f}, against "
            f"{c8['nonprivate_accuracy_mean']:.3f} for the same DP-SGD steps without clipping or noise "
            f"({c8['gap_points']:.1f} points behind) and {c8['plain_fedavg_accuracy_mean']:.3f} for plain FedAvg "
            f"with the same model, trainers and rounds ({c8['gap_points_vs_plain_fedavg']:.1f} points behind). "
            f"**{'Met' if worst <= BAR_EXAMPLE else 'Not met'}** "
            f"(bar: {BAR_EXAMPLE:g} points, against either reference).",
            "",
            "Gaps at every ε (points behind the same mechanism's ε = ∞ / behind plain FedAvg):",
            "",
        ]
        for dataset in DATASETS:
            for mech in MECHANISMS.values():
                rows = [
                    c for c in cells if c["dataset"] == dataset and c["mechanism"] == mech and c["epsilon"] != "inf"
                ]
                gaps = ", ".join(
                    f"ε {c['epsilon']:g}: {c['gap_points']:.1f} / {c['gap_points_vs_plain_fedavg']:.1f}" for c in rows
                )
                lines.append(f"- {dataset}, {mech}: {gaps}")
        grid_seconds = sum(c["seconds"] for c in cells)
        lines += ["", f"Training time of the grid: {grid_seconds / 60:.1f} minutes on one thread.", ""]
        lines += ["![accuracy against epsilon](accuracy_vs_epsilon.png)", ""]
    sc = results.get("client_scaling")
    if sc:
        first = sc[0]
        lines += [
            "## Client-level DP at ε = 8: how many trainers per round it needs (MNIST-1D)",
            "",
            f"{first['partition']} ({first['examples_per_trainer']} each); settings "
            f"`{json.dumps(first['settings'])}`; data: {first['data']}, test set of {first['test_examples']} "
            "examples; seed 0. The non-private run has the same N, model, rounds and local training, no "
            "clipping and no noise.",
            "",
            "| trainers N | ε = 8 | non-private | gap (points) | σ |",
            "|---|---|---|---|---|",
        ]
        for c in sc:
            lines.append(
                f"| {c['trainers']} | {c['accuracy']:.3f} | {c['nonprivate_accuracy']:.3f} | "
                f"{c['gap_points']:.1f} | {c['noise_multiplier']:.3f} |"
            )
        last = sc[-1]
        if last["within_bar"]:
            verdict = f"Within {last['bar_points']:g} points from N = {last['trainers']} trainers per round."
        else:
            verdict = f"Not within {last['bar_points']:g} points at the largest N measured ({last['trainers']})."
        train = sum(c["seconds"] for c in sc) / 60
        gen = sum(c["data_generation_seconds"] for c in sc) / 60
        lines += ["", f"**{verdict}** Training {train:.1f} minutes, data generation {gen:.1f} minutes.", ""]
    lines += [
        "## Notes",
        "",
        "- Model: the search (tuning.json) tried logreg, mlp and cnn under example-level DP; logreg won on",
        "  validation on both datasets (MNIST at ε = 8: logreg 0.871, mlp 0.840, cnn 0.810), so every cell",
        "  trains logreg and the non-private references are logreg too. The simulation's non-private CNN",
        "  does better (plain FedAvg 0.960 on MNIST, 0.961 on digits, benchmarks/baselines, seed 0, 20",
        "  rounds): against that, example-level DP at ε = 8 is about 11 points behind on MNIST.",
        "- Client-level DP with 20 trainers stays near chance (0.09-0.15) at every ε ≤ 8 (the mean of",
        "  20 updates carries noise of norm about σ·C·sqrt(d/20), far above C): it is measured where it can work, by",
        "  client-scaling. Its clip was searched (0.1, 0.3, 1, 3) on validation; none helped.",
        "- Client-scaling tuned at N = 1,000 (validation set) by private accuracy, which favoured few rounds",
        "  (5, σ = 2.85): the non-private run with the same settings is only about 0.29 (MNIST-1D logreg reaches",
        "  about 0.32 with more training). One seed per N; with 4,000 test examples one accuracy has a",
        "  sampling std of about 0.7 points, so the crossing of the 5-point bar lies between N = 5,000 and",
        "  10,000 rather than exactly at 10,000.",
        "- The digits validation split is 288 examples (about ±2 points): its choices among the top",
        "  settings are within noise.",
        "- `--part tune` took about 35 minutes on a shared machine.",
        "",
    ]
    SUMMARY.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("grid", "client-scaling", "tune", "report"), default="grid")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--trainers", type=int, nargs="+", default=list(SCALING_NS), help="client-scaling: N to try")
    a = p.parse_args(argv)
    quiet()
    start = time.perf_counter()
    if a.part in ("grid", "client-scaling"):
        check_tuning()
    if a.part == "grid":
        cells = grid(tuple(a.seeds))
        update_results("dp", cells)
        plot(cells)
    elif a.part == "client-scaling":
        update_results("client_scaling", client_scaling(tuple(a.trainers)))
    elif a.part == "tune":
        tune()
        return 0
    elif load_results().get("dp"):
        plot(load_results()["dp"])
    summary()
    say(f"done in {(time.perf_counter() - start) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
