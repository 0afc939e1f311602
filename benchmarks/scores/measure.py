"""Measure the round's scores against the attacks of shared/REFERENCES.md.

20 trainers, Dirichlet(0.5) partition of the train split, the last ``--attackers`` of
them malicious; the parent model is honest FedAvg after each of ``--round`` rounds
(as a simulation's model would be). For each attack and score rule it prints the
honest share of the score mass, honest / attacker score per head, and how many
honest trainers scored zero. Attacks, built from what the round's honest trainers send:

- label flip: trains honestly on y -> C-1-y
- sign flip: -u of its own honest update
- gaussian: N(0, s^2) per coordinate, s the honest updates' mean per-coordinate std
- ALIE (Baruch et al. 2019): mean - z * std of the honest updates, z = z_max and z = 1
- IPM (Xie et al. 2019): -eps * mean of the honest updates, eps 0.1 and 100
- backdoor (Bagdasaryan et al. 2020): trained on own data plus copies with the last two
  pixels set and label 0, boosted by gamma = n // attackers
- free-rider: the parent plus N(0, 1e-3) noise

    .venv/bin/python benchmarks/scores/measure.py --model mlp --round 0 5 20
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.stats import norm

from fedchain.learning import exact
from fedchain.learning import fixedpoint as fp
from fedchain.learning.data import load_dataset, partition
from fedchain.learning.models import build_model
from fedchain.learning.scoring import scores as cosine_scores
from fedchain.learning.train import TrainConfig, flatten, get_params, train_local, unflatten
from fedchain.learning.validation_score import root_indices, validation_scores

N = 20


def fedavg(updates, samples):
    # FedAvg's weighted floor mean (fedchain.learning.aggregate.fedavg)
    w = np.array(samples, dtype=np.int64)
    return (np.stack(updates) * w[:, None]).sum(0) // w.sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--round", type=int, nargs="+", default=[0, 5, 20])
    ap.add_argument("--attackers", type=int, default=5)
    ap.add_argument("--root", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(args.dataset, seed=args.seed)
    parts = partition("dirichlet", data.y_train, N, seed=args.seed, alpha=0.5)
    net = build_model(args.model, data.input_shape, data.num_classes, seed=args.seed)
    template = get_params(net)
    cfg = TrainConfig(epochs=args.epochs, batch_size=32, lr=args.lr)
    ridx, _ = root_indices(data.y_test, args.root, args.seed)
    root = exact.quantize_inputs(data.x_test[ridx]), data.y_test[ridx]

    def local(q, x, y, seed, c=cfg):
        return fp.to_fixed(flatten(train_local(net, unflatten(fp.from_fixed(q), template), x, y, c, seed))) - q

    q, r = fp.to_fixed(flatten(template)), 0
    print(
        f"# {args.dataset} {args.model}, {args.attackers} attackers of {N}, seed {args.seed}; cells: "
        "honest share of the score, honest/attacker per head, honest trainers at zero"
    )
    for target in sorted(args.round):
        while r < target:
            ups = [local(q, data.x_train[p], data.y_train[p], 1000 * r + i) for i, p in enumerate(parts)]
            q = fp.clip_fixed(q + fedavg(ups, [len(p) for p in parts]))
            r += 1
        honest = [local(q, data.x_train[p], data.y_train[p], 7 * r + i) for i, p in enumerate(parts)]
        attacks = make_attacks(args, data, parts, honest, q, local, r)
        acc = (exact.predict(args.model, exact.int_params(q, template), root[0]) == root[1]).mean()
        print(f"\n## round {r}: parent root accuracy {acc:.2f}")
        print(f"{'attack':12s} {'cosine':>17s} {'validation':>17s}")
        f = args.attackers
        for name, bad in attacks.items():
            ups = honest[: N - f] + bad
            g = fedavg(ups, [len(p) for p in parts])
            cells = []
            for rule in ("cosine", "validation"):
                if rule == "cosine":
                    sc = np.array(cosine_scores(ups, g), dtype=float)
                else:
                    sc = np.array(validation_scores(args.model, q, ups, template, *root), dtype=float)
                hs, bs = sc[: N - f], sc[N - f :]
                share = hs.sum() / sc.sum() if sc.sum() else float("nan")
                ratio = min(hs.mean() / bs.mean(), 99.0) if bs.mean() else 99.0
                cells.append(f"{share:6.3f} {ratio:5.1f} {int((hs == 0).sum()):2d}h0")
            print(f"{name:12s} " + " ".join(f"{c:>17s}" for c in cells))


def make_attacks(args, data, parts, honest, q, local, r):
    f, c = args.attackers, data.num_classes
    bad_ids = range(N - f, N)
    rng = np.random.default_rng(r + 17)
    h = np.stack(honest[: N - f]).astype(np.float64)
    mu, sd = h.mean(0), h.std(0)
    s = N // 2 + 1 - f
    zmax = norm.ppf((N - s) / N)
    out = {
        "none": [honest[i] for i in bad_ids],
        "label_flip": [local(q, data.x_train[parts[i]], c - 1 - data.y_train[parts[i]], i) for i in bad_ids],
        "sign_flip": [-honest[i] for i in bad_ids],
        "gaussian": [np.rint(rng.normal(0, sd.mean(), mu.size)).astype(np.int64) for _ in bad_ids],
    }
    for z in (zmax, 1.0):
        out[f"alie_z{z:.2f}"] = [np.rint(mu - z * sd).astype(np.int64)] * f
    for eps in (0.1, 100.0):
        out[f"ipm_{eps:g}"] = [fp.clip_fixed(np.rint(-eps * mu).astype(np.int64))] * f
    backdoor = []
    for i in bad_ids:
        x = data.x_train[parts[i]]
        xt = x.copy()
        xt.reshape(len(xt), -1)[:, -2:] = x.max()
        xs, ys = np.concatenate([x, xt]), np.concatenate([data.y_train[parts[i]], np.zeros(len(xt), np.int64)])
        u = local(q, xs, ys, i, TrainConfig(epochs=3, batch_size=32, lr=args.lr))
        backdoor.append(fp.clip_fixed(u * (N // f)))
    out["backdoor"] = backdoor
    out["free_rider"] = [np.rint(rng.normal(0, 1e-3 * fp.SCALE, mu.size)).astype(np.int64) for _ in bad_ids]
    return out


if __name__ == "__main__":
    main()
