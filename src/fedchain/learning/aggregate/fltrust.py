"""FLTrust, in exact integers.

Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
Bootstrapping", NDSS 2021. The aggregator trains on a small clean root data
set and gets its own update g0. Each client update u_i earns the trust score
TS_i = ReLU(cos(u_i, g0)), is rescaled to g0's norm, and the aggregate is the
trust-weighted mean:

    g = sum_i TS_i * (|g0| / |u_i|) * u_i / sum_i TS_i

What it assumes. g0 is passed in (``root_update``) as a fixed-point vector:
here the validators' own update on a root set, which requires (a) a clean root
data set that every validator holds identically, drawn from roughly the
clients' distribution (the paper uses ~100 examples), and (b) that every
validator computes the same g0 bit for bit, i.e. the root training is
deterministic (same seed, same kernels) or g0 is itself agreed first (e.g.
committed by one party and checked by the rest). The validator computes it
with ``fedchain.protocol.root_set.root_update``: exact integer SGD on the
recipe's root set, the same bits on every validator. A root set that differs from
the clients' data makes honest non-IID clients look untrustworthy. If no
update has positive trust (or g0 is zero) the aggregate is the zero update:
the model stays where it is.

Exactness. TS_i is in parts per million, floor(10**6 * <u_i, g0> / sqrt(|u_i|**2 |g0|**2))
and 0 when the dot product is <= 0 (computed with isqrt on exact Python
integers, as ``scoring``; g0 is a difference of two models, |g0_j| <= 2**24,
so a chunk of products stays below 2**53). The rescaling factor |g0| / |u_i| is taken as
r = floor(2**32 * sqrt(|g0|**2 / |u_i|**2)) (one isqrt), split r = a * 2**32 + b,
and r_ij = u_ij * a + floor(u_ij * b / 2**32) = floor(u_ij * r / 2**32). A
rescaled coordinate is at most |g0| and is saturated at +-2 * QMAX (the new
model is clipped to +-QMAX anyway); a is capped at 2**38 first, which changes
nothing after saturation and keeps u_ij * a below 2**61. The weighted sum
stays below 2**20 * 2**24 * 2**8 = 2**52 and is floor-divided by sum TS_i.
Sample counts are ignored (the paper does); the result does not depend on
the order of the updates.

Seats: each update counts once per seat (``seats``, basis points): its weight
is TS_i * seats_i // SEAT, as k copies of it would weigh with k whole seats,
and TS_i with one seat each (the rule above, bit for bit). With at most 256
seats' worth in a round the weighted sum stays below 2**60.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isqrt

import numpy as np

from fedchain.learning.aggregate.common import SEAT, dots, seat_counts, sq_norms
from fedchain.learning.aggregate.registry import Rule
from fedchain.learning.fixedpoint import QMAX

PPM = 10**6
RESCALE_BITS = 32
SATURATE = 2 * QMAX
_MAX_INT_PART = 1 << 38


def trust_scores(x: np.ndarray, root: np.ndarray) -> list[int]:
    """TS_i in ppm: ReLU(cos(u_i, g0)), floored; 0 for a zero vector."""
    g_sq = sq_norms(root[None, :])[0]
    out = []
    for dot, u_sq in zip(dots(x, root), sq_norms(x)):
        out.append(0 if dot <= 0 else min(PPM, isqrt(PPM * PPM * dot * dot // (u_sq * g_sq))))
    return out


def rescale(u: np.ndarray, u_sq: int, g_sq: int) -> np.ndarray:
    """u scaled to norm |g0|: floor(u * r / 2**32), saturated at +-2 * QMAX."""
    r = isqrt((g_sq << (2 * RESCALE_BITS)) // u_sq)
    a, b = min(r >> RESCALE_BITS, _MAX_INT_PART), r & ((1 << RESCALE_BITS) - 1)
    scaled = u * np.int64(a) + ((u * np.int64(b)) >> RESCALE_BITS)
    return np.clip(scaled, -SATURATE, SATURATE)


def fltrust(x: np.ndarray, root: np.ndarray, seats: Sequence[int] | None = None) -> np.ndarray:
    """The aggregate update: trust-weighted mean of the updates rescaled to the root update's norm,
    each counted once per seat (one each if ``seats`` is None)."""
    trust = [t * s // SEAT for t, s in zip(trust_scores(x, root), seat_counts(seats, len(x)))]
    total = sum(trust)
    if total == 0:
        return np.zeros(x.shape[1], dtype=np.int64)
    g_sq = sq_norms(root[None, :])[0]
    norms = sq_norms(x)
    acc = np.zeros(x.shape[1], dtype=np.int64)
    for u, t, u_sq in zip(x, trust, norms):
        if t:
            acc += np.int64(t) * rescale(u, u_sq, g_sq)
    return acc // np.int64(total)


def _run(x, samples, p, e):
    assert e.root_update is not None  # aggregate_update refuses a root-set rule without it
    return fltrust(x, e.root_update, e.seats)


RULE = Rule("fltrust", _run, title="FLTrust", needs_root_set=True)
