"""Bulyan, in exact integers.

El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed
Learning in Byzantium", ICML 2018. With n updates and at most f Byzantine:

1. selection: theta = n - 2f updates are chosen one at a time, each time the
   one with the lowest Krum score (``krum.krum_scores``) among those not yet
   chosen, the scores recomputed on what is left;
2. aggregation: per coordinate, take the median of the theta chosen values and
   average the beta = theta - 2f values closest to it.

The guarantee holds only for n >= 4f + 3, which is checked (then beta >= 3).

Exactness: the pairwise squared distances are computed once, exactly, and
reused by every selection step; ties in Krum scores go to the lower reveal
index. Such ties are structural, not just unlucky: in the last selection
steps only 2f + 1 candidates are left and Krum counts max(1, f - 1)
neighbours, so for f <= 2 two mutually nearest updates have equal scores,
and which of them is chosen (and so the result) follows the reveal order.
The median of an even count is the floor of the middle pair's mean
(``fedmedian``). Values equally close to the median are taken in reveal-index
order (a stable sort), and the beta kept values are floor-averaged (sums below
2**23 * 2**8). Sample counts are ignored.
"""

from __future__ import annotations

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate.common import pairwise_sq_distances
from fedchain.learning.aggregate.fedmedian import coordinate_median
from fedchain.learning.aggregate.krum import krum_scores, neighbour_order


def check_bulyan(n: int, f: int) -> None:
    if n < 4 * f + 3:
        raise LearningError(f"bulyan: valid only for n >= 4f + 3; {n} updates with f = {f} malicious needs "
                            f"at least {4 * f + 3} updates (or f <= {max(0, (n - 3) // 4)} for n = {n})")


def select_bulyan(x: np.ndarray, f: int) -> list[int]:
    """Indices of the theta = n - 2f updates chosen by repeated Krum, in reveal order."""
    return bulyan_selection(pairwise_sq_distances(x), f)


def bulyan_selection(dist: list[list[int]], f: int) -> list[int]:
    """``select_bulyan`` from the squared distances (what challenges.vy recomputes on chain)."""
    order = neighbour_order(dist)
    left, chosen = list(range(len(dist))), []
    for _ in range(len(dist) - 2 * f):
        scores = krum_scores(order, dist, f, left)
        best = min(left, key=lambda i: (scores[i], i))
        chosen.append(best)
        left.remove(best)
    return sorted(chosen)


def closest_to_median_mean(s: np.ndarray, beta: int) -> np.ndarray:
    """Per coordinate, the floor mean of the beta values of s (theta, d) closest to their median."""
    dev = np.abs(s - coordinate_median(s))
    idx = np.argsort(dev, axis=0, kind="stable")[:beta]
    return np.take_along_axis(s, idx, axis=0).sum(axis=0) // np.int64(beta)


def bulyan(x: np.ndarray, f: int) -> np.ndarray:
    """The aggregate update under Bulyan with f assumed Byzantine updates."""
    check_bulyan(len(x), f)
    chosen = select_bulyan(x, f)
    return closest_to_median_mean(x[chosen], len(chosen) - 2 * f)
