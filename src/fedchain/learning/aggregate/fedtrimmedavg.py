"""FedTrimmedAvg: the coordinate-wise trimmed mean, in exact integers.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML 2018: per coordinate, drop the
k = floor(beta * n) largest and the k smallest values and average the rest;
robust to f Byzantine clients when beta >= f / n.

``beta`` (Flower's name and default, 0.2) is read as the exact decimal it is
written as (see ``common.fraction_param``), so k = floor(beta * n) is exact
rational arithmetic: 0.3 * 10 trims 3, where the double 0.3 times 10 might not.
It must satisfy 0 <= beta < 1/2 (something must remain). The mean of the kept
n - 2k values is floor-divided (sums below 2**23 * 2**8). Sorting makes the
result independent of the order of the updates; sample counts are ignored.

Seats. A trainer whose stake stands for several sortition seats (``seats``,
basis points) counts once per seat, as in ``fedmedian``: the trim is
k = floor(beta * S / SEAT) whole seats at each end of the S seat positions of
each sorted column (an update may be trimmed in part), and the rest is averaged
weighting each value by its untrimmed positions. With equal seats this is the
rule above, bit for bit; with whole seats, the trimmed mean of the copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from math import floor
from typing import Any

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate.common import SEAT, fraction_param, seat_counts
from fedchain.learning.aggregate.fedmedian import sorted_with_seats
from fedchain.learning.aggregate.registry import Rule

DEFAULT_BETA = 0.2


def beta_of(params: Mapping[str, Any]) -> Fraction:
    beta = fraction_param(dict(params), "beta", DEFAULT_BETA)
    if not 0 <= beta < Fraction(1, 2):
        raise LearningError(f"fedtrimmedavg: beta must be in [0, 0.5), got {params.get('beta')!r}")
    return beta


def trim_count(n: int, beta: Fraction) -> int:
    """Values dropped at each end of every coordinate: floor(beta * n)."""
    return floor(beta * n)


def fedtrimmedavg(x: np.ndarray, beta: Fraction = Fraction(1, 5), seats: Sequence[int] | None = None) -> np.ndarray:
    """The aggregate update: per coordinate, the floor mean of the (n, d) updates without the
    k extremes, each update counted once per seat (one seat each if ``seats`` is None)."""
    seats = seat_counts(seats, len(x))
    if set(seats) != {SEAT}:  # the trim counts seats: two seats each trim more than one each
        return weighted_trimmed_mean(x, beta, seats)
    n = len(x)
    k = trim_count(n, beta)
    if n - 2 * k < 1:
        raise LearningError(f"fedtrimmedavg: trimming {k} of {n} values at each end leaves nothing")
    kept = np.sort(x, axis=0)[k : n - k]
    return kept.sum(axis=0) // np.int64(n - 2 * k)


def weighted_trimmed_mean(x: np.ndarray, beta: Fraction, seats: Sequence[int]) -> np.ndarray:
    """``fedtrimmedavg`` counting row i ``seats[i]`` times (basis points; see the module docstring)."""
    total = sum(seats)
    cut = floor(beta * Fraction(total, SEAT)) * SEAT
    if total - 2 * cut < 1:
        raise LearningError(
            f"fedtrimmedavg: trimming {cut // SEAT} of {total / SEAT:g} seats at each end leaves nothing"
        )
    s, w = sorted_with_seats(x, seats)
    ends = np.cumsum(w, axis=0)  # each value covers positions ends - w to ends - 1
    kept = np.clip(np.minimum(ends, total - cut) - np.maximum(ends - w, cut), 0, None)
    # |value| <= 2**23 and at most n + k seats (max(1, k w / T) each): the sums fit int64
    return (s * kept).sum(axis=0) // np.int64(total - 2 * cut)


def chain_params(params: Mapping[str, Any]) -> tuple[int, int]:
    """beta as the contracts read it: param1 / param2."""
    beta = beta_of(params)
    return beta.numerator, beta.denominator


# tolerating a share of Byzantine trainers: beta = the share (beta >= f / n, Yin et al.)
RULE = Rule(
    "fedtrimmedavg",
    lambda x, samples, p, e: fedtrimmedavg(x, beta_of(p), e.seats),
    title="FedTrimmedAvg",
    params={"beta": DEFAULT_BETA},
    check=beta_of,
    chain_code=3,
    chain_params=chain_params,
    tolerating=lambda trainers, share: {"beta": share},
)
