"""FedMedian: the coordinate-wise median of the updates, in exact integers.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML 2018: per coordinate, the median of
the n clients' values; robust while fewer than half of them are Byzantine.

The median of an even count is the floor of the mean of the two middle values,
``(a + b) >> 1`` (|a + b| < 2**25, no overflow). Sorting integers is exact and
the median is a symmetric function of its inputs, so the result does not
depend on the order of the updates. Sample counts are ignored (as in Flower's
FedMedian): a claimed count cannot buy a coordinate.

Seats. A trainer whose stake stands for several sortition seats (``seats``,
basis points, fedchain.vy's ``reveal``) counts once per seat, so splitting a
stake over identities that send the same update moves no coordinate
(docs/robustness.md, "Sybil"). Each update covers ``seats[i]`` consecutive
positions of the sorted column, S positions in all; the median is the floor
mean of the values at positions (S - 1) // 2 and S // 2: with equal seats,
exactly the median above, and with whole seats, the median of the copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedchain.learning.aggregate.common import seat_counts
from fedchain.learning.aggregate.registry import Rule


def coordinate_median(x: np.ndarray) -> np.ndarray:
    """Per-column median of an (n, d) int64 array; floor of the middle pair's mean for even n."""
    n = len(x)
    s = np.sort(x, axis=0)
    if n % 2:
        return s[n // 2].copy()
    return (s[n // 2 - 1] + s[n // 2]) >> 1


def sorted_with_seats(x: np.ndarray, seats: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each column of x sorted, and each sorted value's seats (int64, same shape). Equal
    values are interchangeable, so their order does not matter."""
    order = np.argsort(x, axis=0, kind="stable")
    return np.take_along_axis(x, order, axis=0), np.asarray(seats, np.int64)[order]


def weighted_coordinate_median(x: np.ndarray, seats: Sequence[int]) -> np.ndarray:
    """Per-column median of x counting row i ``seats[i]`` times (see the module docstring)."""
    s, w = sorted_with_seats(x, seats)
    ends = np.cumsum(w, axis=0)  # one past each value's last position
    total = sum(seats)
    cols = np.arange(x.shape[1])
    lo = s[np.argmax(ends > (total - 1) // 2, axis=0), cols]
    hi = s[np.argmax(ends > total // 2, axis=0), cols]
    return (lo + hi) >> 1


def fedmedian(x: np.ndarray, seats: Sequence[int] | None = None) -> np.ndarray:
    """The aggregate update: the coordinate-wise median of the (n, d) updates, each counted
    once per seat (one seat each if ``seats`` is None)."""
    seats = seat_counts(seats, len(x))
    if len(set(seats)) == 1:  # equal seats: the plain median, and no cumulative sums
        return coordinate_median(x)
    return weighted_coordinate_median(x, seats)


RULE = Rule("fedmedian", lambda x, samples, p, e: fedmedian(x, e.seats), title="FedMedian", chain_code=2)
