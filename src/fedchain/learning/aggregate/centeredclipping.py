"""Centered clipping, in exact integers.

Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust
Optimization", ICML 2021. Starting from a centre v (the previous round's
aggregate update), repeat L times (``iterations``, default 1):

    v <- v + (1/n) * sum_i clip(x_i - v, tau),   clip(z, tau) = z * min(1, tau / |z|)

so one update, however large, moves v by at most tau / n per iteration.

Centre. ``aggregate_update`` passes ``prev_update``, the previous round's
aggregate update (parent model minus grandparent model); when it is None (the
first round, or a caller that cannot reach the grandparent) the centre is the
zero update, as in the authors' code where the centre starts at zero.

Client momentum. The paper's robustness to time-coupled attacks (ALIE, IPM)
relies on worker momentum with beta = 0.9-0.99: each trainer sends
m_t = beta * m_{t-1} + (1 - beta) * u_t instead of its raw update u_t. That is
trainer-side state across rounds, set by the recipe's ``client_momentum`` and
applied in ``fedchain.protocol.trainer.client_momentum``; validators cannot
impose or check it, and this rule works on whatever updates arrive.

Exactness. ``tau`` is given in model units and read as the exact decimal it is
written as; tau_q = floor(tau * 2**16) quanta (> 0). |z|**2 is an exact Python
integer; a z with |z|**2 > tau_q**2 becomes trunc(z_j * tau_q / N) per
coordinate with N = ceil(sqrt(|z|**2)) >= |z| (truncation toward zero), so a
clipped vector's norm never exceeds tau_q. Bounds: v stays in the convex hull
of the centre and the updates (up to one quantum per iteration of flooring),
so |z_j| < 2**25 for a centre within 2 * QMAX; clipping multiplies only when
tau_q < N <= sqrt(2**24) * 2**25 = 2**37, so |z_j| * tau_q < 2**62. The mean
of n <= 256 clipped vectors sums below 2**33 and is floor-divided. Sample
counts are ignored (the paper averages uniformly); the rule is invariant
under permutations of the updates.

Seats: the mean counts each update once per seat (``seats``, basis points,
fedchain.vy's ``reveal``), sum_i seats_i * clip(z_i) // sum_i seats_i, so one
identity with k seats moves the centre as k copies of its update would; with
one seat each, the uniform mean above, bit for bit (seats below 2**22 keep
the sums below 2**55).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import floor, isqrt
from typing import Any

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate.common import fraction_param, int_param, seat_counts, sq_norms
from fedchain.learning.aggregate.registry import Rule
from fedchain.learning.fixedpoint import SCALE

DEFAULT_TAU = 10.0
MAX_ITERATIONS = 100


def tau_of(params: Mapping[str, Any]) -> int:
    """tau in quanta: floor(tau * 2**16), which must be positive."""
    tau = fraction_param(dict(params), "tau", DEFAULT_TAU)
    tau_q = floor(tau * SCALE)
    if tau_q <= 0:
        raise LearningError(f"centeredclipping: tau must be at least 2**-16, got {params.get('tau')!r}")
    return tau_q


def clip_rows(z: np.ndarray, tau_q: int) -> np.ndarray:
    """Each row of z scaled down to norm <= tau_q (rows already within tau_q unchanged), in place."""
    for i, nsq in enumerate(sq_norms(z)):
        if nsq > tau_q * tau_q:
            norm_ceil = np.int64(isqrt(nsq - 1) + 1)
            row = z[i]
            row[:] = np.sign(row) * ((np.abs(row) * np.int64(tau_q)) // norm_ceil)
    return z


def centered_clipping(
    x: np.ndarray, tau_q: int, iterations: int = 1, centre: np.ndarray | None = None, seats: Sequence[int] | None = None
) -> np.ndarray:
    """The aggregate update: ``iterations`` clipping steps from ``centre`` (zero if None), each
    update counted once per seat (one each if ``seats`` is None)."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise LearningError(f"centeredclipping: iterations must be between 1 and {MAX_ITERATIONS}, got {iterations}")
    v = np.zeros(x.shape[1], dtype=np.int64) if centre is None else np.asarray(centre, dtype=np.int64).copy()
    w = np.asarray(seat_counts(seats, len(x)), dtype=np.int64)
    for _ in range(iterations):
        v = v + (w @ clip_rows(x - v, tau_q)) // w.sum()
    return v


def iterations_of(params: Mapping[str, Any]) -> int:
    return int_param(params, "iterations", 1, lo=1)


# What the robustness benchmark tolerates attackers with: tau 2.5, about the median norm of an
# honest round-0 update on digits (the default, 10, clips no honest update and lets each
# attacker move the aggregate by 10 / n), and 3 iterations (one is not enough from a zero centre).
RULE = Rule(
    "centeredclipping",
    lambda x, samples, p, e: centered_clipping(x, tau_of(p), iterations_of(p), e.prev_update, e.seats),
    title="centered clipping",
    params={"tau": DEFAULT_TAU, "iterations": 1},
    check=lambda p: (tau_of(p), iterations_of(p)),
    uses_prev_update=True,
    tolerating=lambda trainers, share: {"tau": 2.5, "iterations": 3},
)
