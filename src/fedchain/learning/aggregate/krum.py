"""Krum and MultiKrum, in exact integers.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries:
Byzantine Tolerant Gradient Descent", NeurIPS 2017. With n updates of which at
most f (``num_malicious_nodes``) are Byzantine, each update's score is the sum
of its squared distances to its n - f - 2 nearest other updates; Krum returns
the update with the lowest score, MultiKrum averages the m
(``num_nodes_to_select``, default n - f) lowest. The guarantee needs
n > 2f + 2, which is checked.

Exactness: squared distances are exact Python integers (``common``: chunked
int64 sums, no overflow), so scores are exact and comparisons cannot differ
between machines. Equal scores are broken by the lower reveal index, the one
documented dependence on order. MultiKrum averages the selected updates
weighted by their capped sample counts, as Flower does, with ``fedavg``'s
exact floor-divided mean; Krum returns the selected update itself.

As in Flower, the math is ``select_multikrum``; Krum is MultiKrum with m = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate import fedavg
from fedchain.learning.aggregate.common import nearest, pairwise_sq_distances


def check_krum(n: int, f: int) -> None:
    if n <= 2 * f + 2:
        raise LearningError(f"krum: {n} updates cannot tolerate {f} malicious ones; Krum needs n > 2f + 2 "
                            f"(at least {2 * f + 3} updates for f = {f}, or at most f = {max(0, (n - 3) // 2)} "
                            f"for n = {n})")


def neighbour_order(dist: Sequence[Sequence[int]]) -> list[list[int]]:
    """For each i, the other indices from nearest to farthest (ties: lower index first)."""
    n = len(dist)
    return [nearest(dist[i], [j for j in range(n) if j != i], n - 1) for i in range(n)]


def krum_scores(order: Sequence[Sequence[int]], dist: Sequence[Sequence[int]], f: int,
                candidates: Sequence[int] | None = None) -> dict[int, int]:
    """Each candidate's score: its summed squared distance to its n - f - 2 nearest other candidates.

    ``order`` is ``neighbour_order(dist)``; ``candidates`` (default: all) lets Bulyan rerun
    Krum on what is left, n is their number, and at least one neighbour always counts (as in Flower).
    """
    cand = list(range(len(dist))) if candidates is None else list(candidates)
    k = max(1, len(cand) - f - 2)
    allowed = set(cand)
    scores = {}
    for i in cand:
        near = [j for j in order[i] if j in allowed][:k]
        scores[i] = sum(dist[i][j] for j in near)
    return scores


def select_multikrum(dist: Sequence[Sequence[int]], f: int, m: int) -> list[int]:
    """Indices of the m lowest Krum scores, lowest first (ties: lower index first)."""
    scores = krum_scores(neighbour_order(dist), dist, f)
    return sorted(scores, key=lambda i: (scores[i], i))[:m]


def multikrum(x: np.ndarray, samples: Sequence[int], f: int, m: int) -> np.ndarray:
    """The aggregate update: the sample-weighted mean of the m updates Krum scores best."""
    n = len(x)
    check_krum(n, f)
    if not 1 <= m <= n:
        raise LearningError(f"multikrum: num_nodes_to_select must be between 1 and {n}, got {m}")
    chosen = sorted(select_multikrum(pairwise_sq_distances(x), f, m))
    return fedavg.aggregate_update([x[i] for i in chosen], [samples[i] for i in chosen])


def krum(x: np.ndarray, f: int) -> np.ndarray:
    """The aggregate update: the single update with the lowest Krum score."""
    check_krum(len(x), f)
    return x[select_multikrum(pairwise_sq_distances(x), f, 1)[0]].copy()
