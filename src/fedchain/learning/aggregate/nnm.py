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

Seats: a trainer whose stake stands for several sortition seats (``seats``,
basis points) counts once per seat, as k one-seat copies of its update would:
with S seats in all, row i is the mean of its nearest S - f seats, its own
first (a copy's nearest are its copies, at distance 0), then its neighbours'
by distance, the last one possibly in part, each weighing the seats taken.
With one seat each this is the mean above, bit for bit (equal vectors tied at
distance 0 give the same sum). The rule that follows gets the same seats.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate.common import SEAT, nearest, pairwise_sq_distances, seat_counts


def nnm(x: np.ndarray, f: int, seats: Sequence[int] | None = None) -> np.ndarray:
    """The mixed (n, d) updates: row i is the floor mean of update i's nearest n - f updates,
    counted in seats (one each if ``seats`` is None; see the module docstring)."""
    n = len(x)
    seats = seat_counts(seats, n)
    if not 0 <= f * SEAT < sum(seats):  # n counted in seats
        raise LearningError(f"nnm: num_malicious_nodes must be below n = {sum(seats) / SEAT:g} updates, got {f}")
    need = sum(seats) - f * SEAT  # the seats each row mixes: positive, as checked
    dist = pairwise_sq_distances(x)
    # a mixing matrix of seats taken times x: numpy's integer matmul (no BLAS); seats below
    # 2**22 each keep the sums below 2**23 * 2**22 * 2**8
    mix = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        left = need
        for j in [i, *nearest(dist[i], [j for j in range(n) if j != i], n - 1)]:
            mix[i, j] = min(seats[j], left)
            left -= mix[i, j]
            if left == 0:
                break
    return (mix @ x) // np.int64(need)
