"""LoRA fine-tuning against fine-tuning every weight, both on chain, from the same base.

The base comes from fedchain itself (nothing can be downloaded here): task A trains a wide
MLP (``mlp256``, 203,530 weights) on the MNIST sample's training examples of a label-shifted
half (90% of each class 0-4 and 10% of each class 5-9). Its final model is the base of two
fine-tuning tasks on the other half (the rest: mostly classes 5-9), the same trainers,
partitions (Dirichlet 0.5) and seeds:

- full: ``base_model`` set, every weight trained and sent;
- LoRA: ``base_model`` and ``lora_rank`` set: rank-4 adapters on the hidden layer and the
  output layer (the classifier head) trained in full (``lora_full``), the rest of the base
  frozen (fedchain.learning.models.lora); only those tensors are sent.

Local training is the simulation's default (5 epochs, momentum 0.9, batch 16). Each side's
learning rate is chosen from a small grid by validation accuracy on 15% of the fine-tuning
data held out from training (plain FedAvg without the chain, same rounds), then each runs on
chain on all of it. Accuracy is on the shifted distribution: the test split's examples drawn
as the fine-tuning data is (mostly classes 5-9). Update blob sizes are the revealed update
blobs' bytes in the blob store.

The bars (issue 17): LoRA update blobs at most 5% of the full model's, final accuracy within
1 point of full fine-tuning (the mean over seeds). Run from the repository root:

    .venv/bin/python benchmarks/lora/run.py [--seeds 0 1 2] [--rounds 20]

Writes benchmarks/lora/results.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fedchain.learning.data import Dataset, load_dataset, partition
from fedchain.learning.models import build_model
from fedchain.learning.train import TrainConfig, evaluate, get_params, train_local
from fedchain.protocol.recipe import Recipe
from fedchain.sim.network import Network, SimConfig, build_network, play_round
from fedchain.sim.simulate import model_accuracy
from fedchain.storage.codec import encode_tensors

ROOT = Path(__file__).resolve().parents[2]
MODEL, TRAINERS, RANK, TARGETS, HEAD = "mlp256", 10, 4, ("hidden",), ("out",)
GRID = {"full": (0.01, 0.03, 0.05), "lora": (0.03, 0.05, 0.1)}  # SGD learning rates tried on each side
LOCAL = dict(epochs=5, momentum=0.9, batch_size=16)  # the simulation's defaults


def shifted(y: np.ndarray, seed: int) -> np.ndarray:
    """Which examples are task A's (90% of classes 0-4, 10% of 5-9): the others are the shift."""
    return np.random.default_rng(seed).random(len(y)) < np.where(y < 5, 0.9, 0.1)


def subset(data: Dataset, a: np.ndarray, a_test: np.ndarray) -> Dataset:
    """The examples ``a`` selects of the training split, tested on the ``a_test`` of the test split."""
    return Dataset(
        data.name,
        data.num_classes,
        data.input_shape,
        data.x_train[a],
        data.y_train[a],
        data.x_test[a_test],
        data.y_test[a_test],
    )


def run_chain(cfg: SimConfig, data: Dataset) -> tuple[Network, float, list[int]]:
    """Every round on chain; (network, final accuracy, sizes of the revealed update blobs)."""
    parts = partition("dirichlet", data.y_train, cfg.trainers, seed=cfg.seed, alpha=0.5)
    net = build_network(cfg, data=data, parts=parts)
    for _ in range(cfg.rounds):
        if not play_round(net).finalized:
            raise SystemExit(f"a round of {cfg.out} did not finalize")
    sizes = [len(net.store.get(r.cid)) for r in net.validators[0].task(net.task_id).reveals.get(0, [])]
    return net, model_accuracy(net), sizes


def plain_lr(recipe: Recipe, initial: dict, data: Dataset, seed: int, rounds: int, grid: tuple[float, ...]) -> dict:
    """The learning rate of ``grid`` with the best validation accuracy (plain FedAvg, no chain)."""
    idx = np.random.default_rng(seed).permutation(len(data.y_train))
    cut = int(0.15 * len(idx))
    val, train = idx[:cut], idx[cut:]
    x, y = data.x_train[train], data.y_train[train]
    parts = partition("dirichlet", y, TRAINERS, seed=seed, alpha=0.5)
    net = recipe.build()
    found = {}
    for lr in grid:
        cfg = TrainConfig(lr=lr, epochs=LOCAL["epochs"], batch_size=LOCAL["batch_size"])
        params = initial
        for r in range(rounds):
            ups = [
                train_local(net, params, x[p], y[p], cfg, seed=seed * 1000 + r * 100 + i) for i, p in enumerate(parts)
            ]
            w = np.array([len(p) for p in parts], float) / sum(len(p) for p in parts)
            params = {k: sum(wi * u[k] for wi, u in zip(w, ups)).astype(np.float32) for k in params}
        found[lr] = evaluate(net, params, data.x_train[val], data.y_train[val])
    return {"lr": max(grid, key=lambda lr: (found[lr], -lr)), "validation_accuracy": found}


def one_seed(seed: int, rounds: int, work: Path) -> dict:
    data = load_dataset("mnist", seed=0)
    a, a_test = shifted(data.y_train, seed), shifted(data.y_test, seed + 1)
    common = dict(trainers=TRAINERS, validators=2, dataset="mnist", model=MODEL, seed=seed, **LOCAL)
    t = time.perf_counter()
    cfg_a = SimConfig(rounds=rounds, out=work / f"a{seed}", lr=0.05, **common)
    net_a, acc_a, _ = run_chain(cfg_a, subset(data, a, a_test))
    base = work / f"base{seed}.safetensors"
    base.write_bytes(encode_tensors(net_a.validators[0].current_model(net_a.task_id).params))
    row: dict = {"seed": seed, "base_accuracy": acc_a, "base_seconds": time.perf_counter() - t}
    b = subset(data, ~a, ~a_test)
    row["fine_tune_examples"] = int(len(b.y_train))
    row["fine_tune_test_examples"] = int(len(b.y_test))
    row["fine_tune_class_counts"] = np.bincount(b.y_train, minlength=10).tolist()
    for side, lora in (("full", {}), ("lora", {"lora_rank": RANK, "lora_targets": TARGETS, "lora_full": HEAD})):
        probe = build_network(
            SimConfig(rounds=1, out=work / f"probe-{side}{seed}", base_model=base, **lora, **common), data=b
        )
        choice = plain_lr(probe.recipe, probe.initial_params, b, seed, rounds, GRID[side])
        t = time.perf_counter()
        cfg = SimConfig(rounds=rounds, out=work / f"{side}{seed}", lr=choice["lr"], base_model=base, **lora, **common)
        net, acc, sizes = run_chain(cfg, b)
        row[side] = {
            "accuracy": acc,
            "lr": choice["lr"],
            "lr_validation_accuracy": {str(k): v for k, v in choice["validation_accuracy"].items()},
            "trained_values": int(sum(v.size for v in net.initial_params.values())),
            "update_blob_bytes": int(statistics.median(sizes)),
            "seconds": time.perf_counter() - t,
        }
        print(
            f"seed {seed} {side}: accuracy {acc:.4f} (lr {choice['lr']}), "
            f"update blob {row[side]['update_blob_bytes']} B"
        )
    row["blob_ratio"] = row["lora"]["update_blob_bytes"] / row["full"]["update_blob_bytes"]
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args(argv)
    full_weights = sum(v.size for v in get_params(build_model(MODEL, (1, 28, 28), 10)).values())
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_seed(s, args.rounds, Path(tmp)) for s in args.seeds]
    full = [r["full"]["accuracy"] for r in rows]
    lora = [r["lora"]["accuracy"] for r in rows]
    result = {
        "command": "python benchmarks/lora/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": MODEL,
        "model_weights": int(full_weights),
        "lora": {"rank": RANK, "targets": list(TARGETS), "alpha": RANK, "trained_in_full": list(HEAD)},
        "trainers": TRAINERS,
        "rounds": args.rounds,
        "local": LOCAL,
        "lr_grid": GRID,
        "full_accuracy_mean": statistics.mean(full),
        "lora_accuracy_mean": statistics.mean(lora),
        "gap_points": 100 * (statistics.mean(full) - statistics.mean(lora)),
        "blob_ratio": max(r["blob_ratio"] for r in rows),
        "bars": {"blob_ratio_at_most": 0.05, "gap_points_at_most": 1.0},
        "seeds": rows,
    }
    result["pass"] = result["blob_ratio"] <= 0.05 and result["gap_points"] <= 1.0
    (ROOT / "benchmarks/lora/results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"full fine-tune {result['full_accuracy_mean']:.4f}, LoRA {result['lora_accuracy_mean']:.4f} "
        f"(gap {result['gap_points']:.2f} points), LoRA update blobs {result['blob_ratio']:.2%} of the full model's"
    )


if __name__ == "__main__":
    main()
