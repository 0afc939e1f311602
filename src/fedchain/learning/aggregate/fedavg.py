"""FedAvg in exact fixed-point arithmetic.

McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017: the new model is the sample-weighted mean of
the clients' models. Here every client sends its update u_i = w_i - w (fixed
point, see ``fedchain.learning.fixedpoint``) and the revealed sample count n_i,
capped at ``MAX_WEIGHT`` so a trainer cannot buy influence by claiming a huge
count. The aggregate is

    w' = w + floor( sum_i min(n_i, cap) * u_i / sum_i min(n_i, cap) )

with int64 sums and floor division: the same bits on every machine.
``fedavg_float`` is the float64 reference it matches to within one quantum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate.registry import Rule
from fedchain.learning.fixedpoint import MAX_UPDATES, MAX_WEIGHT, clip_fixed


def weights_of(samples: Sequence[int]) -> list[int]:
    return [min(int(n), MAX_WEIGHT) for n in samples]


def aggregate_update(updates: Sequence[np.ndarray], samples: Sequence[int]) -> np.ndarray:
    """The weighted mean update, floor-divided; int64 in, int64 out."""
    if not updates:
        raise LearningError("no updates to aggregate")
    if len(updates) > MAX_UPDATES:
        raise LearningError(f"{len(updates)} updates exceed the limit of {MAX_UPDATES}")
    if len(samples) != len(updates):
        raise LearningError(f"{len(updates)} updates but {len(samples)} sample counts")
    if any(np.shape(u) != np.shape(updates[0]) for u in updates):
        raise LearningError("updates differ in shape")
    w = weights_of(samples)
    if min(w) <= 0:
        raise LearningError("sample counts must be positive")
    total = np.zeros_like(updates[0], dtype=np.int64)
    for u, wi in zip(updates, w):
        total += np.int64(wi) * u
    return total // np.int64(sum(w))


def fedavg(model: np.ndarray, updates: Sequence[np.ndarray], samples: Sequence[int]) -> np.ndarray:
    """New fixed-point model: old model plus the weighted mean update, clipped to range."""
    return clip_fixed(model + aggregate_update(updates, samples))


def fedavg_float(model: np.ndarray, updates: Sequence[np.ndarray], samples: Sequence[int]) -> np.ndarray:
    """Float64 reference of ``fedavg`` on float vectors (for tests and baselines)."""
    w = np.asarray(weights_of(samples), dtype=np.float64)
    stacked = np.stack([np.asarray(u, dtype=np.float64) for u in updates])
    return np.asarray(model, dtype=np.float64) + (w[:, None] * stacked).sum(axis=0) / w.sum()


RULE = Rule(
    "fedavg", lambda x, samples, p, e: aggregate_update(list(x), samples), title="FedAvg", chain_code=1, masked_sum=True
)
