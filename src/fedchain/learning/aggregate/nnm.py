"""Nearest-neighbour mixing (NNM), a pre-aggregation step for any rule.

Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, "Fixing by Mixing: A
Recipe for Optimal Byzantine ML under Heterogeneity", AISTATS 2023: replace
each update x_i by the mean of its n - f nearest updates (itself included, at
distance zero), then apply the aggregation rule to the mixed updates. Mixing
shrinks the spread of the honest updates under heterogeneous (non-IID) data,
which is what lets Krum, median, trimmed mean and the others keep their
guarantees there. ``aggregate_update`` applies it when the recipe's rule
parameters say ``"nnm": true`` (with ``num_malicious_nodes`` = f).

Exactness: squared distances are exact Python integers (``common``), ties in
distance go to the lower reveal index (so x_i itself, at distance 0, is
always among its neighbours unless n - f neighbours tie at 0 with lower
indices, which then are equal vectors and give the same mean), and each
mixed update is the floor of the mean of n - f in-range vectors (sums below
2**23 * 2**8), so it stays in the fixed-point range. Row i of the output
belongs to update i, so sample counts keep their meaning for the rule that
follows. Permuting the inputs permutes the outputs, up to ties in distance.
"""

from __future__ import annotations

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate.common import nearest, pairwise_sq_distances


def neighbourhoods(dist: list[list[int]], k: int) -> list[list[int]]:
    """For each i, the indices of its k nearest updates (itself included), ties by index."""
    n = len(dist)
    return [nearest(dist[i], range(n), k) for i in range(n)]


def nnm(x: np.ndarray, f: int) -> np.ndarray:
    """The mixed (n, d) updates: row i is the floor mean of update i's n - f nearest updates."""
    n = len(x)
    if not 0 <= f < n:
        raise LearningError(f"nnm: num_malicious_nodes must be between 0 and {n - 1} for {n} updates, got {f}")
    # a 0/1 mixing matrix times x: numpy's integer matmul (no BLAS), sums below 2**23 * 2**8
    mix = np.zeros((n, n), dtype=np.int64)
    for i, idx in enumerate(neighbourhoods(pairwise_sq_distances(x), n - f)):
        mix[i, idx] = 1
    return (mix @ x) // np.int64(n - f)
