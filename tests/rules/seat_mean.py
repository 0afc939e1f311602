"""Seat mean: the seat-weighted mean of the updates, times a server learning rate.

A rule written outside ``fedchain.learning.aggregate``, in one file, as a plugin
would be: this module declares ``RULE`` and its user calls ``register(RULE)``;
no other code names it. Each update weighs the seats its trainer's stake stands
for (``seats``, basis points, as fedchain.vy records them at reveal), not the
sample count it claims, which nobody can check:

    u = floor(eta * sum_i s_i u_i / sum_i s_i)

with eta = ``server_lr`` (default 1, in (0, 2]) read as the exact decimal it is
written as (``common.fraction_param``). Exact: the weighted sum is numpy's int64
matmul (no BLAS; |u_i| <= 2**23 and seats below 2**22 each, so 256 updates stay
below 2**53), and eta's numerator and the floor division are Python integers.
Permuting the updates (with their seats) changes nothing; sample counts are
ignored. No contract recomputes it, so it is not challengeable on chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate import Rule
from fedchain.learning.aggregate.common import fraction_param, seat_counts


def server_lr_of(params: Mapping[str, Any]) -> Fraction:
    eta = fraction_param(dict(params), "server_lr", 1)
    if not 0 < eta <= 2:
        raise LearningError(f"seat_mean: server_lr must be in (0, 2], got {params.get('server_lr')!r}")
    return eta


def seat_mean(x: np.ndarray, eta: Fraction = Fraction(1), seats: Sequence[int] | None = None) -> np.ndarray:
    """The aggregate update of the (n, d) int64 updates: eta times their seat-weighted mean, floored."""
    w = np.asarray(seat_counts(seats, len(x)), dtype=np.int64)
    total = (w @ x).astype(object) * eta.numerator  # Python integers: exact whatever eta's numerator
    return (total // (eta.denominator * int(w.sum()))).astype(np.int64)


RULE = Rule(
    "seat_mean",
    lambda x, samples, p, e: seat_mean(x, server_lr_of(p), e.seats),
    title="seat-weighted mean",
    params={"server_lr": 1},
    check=server_lr_of,
)
