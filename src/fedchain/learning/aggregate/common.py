"""Exact integer building blocks shared by the robust rules: stacking and
checking updates, squared norms, dot products and pairwise squared distances.

Bounds. An accepted update is a fixed-point vector with |q| <= QMAX = 2**23
(``fixedpoint.to_fixed`` guarantees it, ``stack`` checks it); centered
clipping's differences from its centre stay below 2**25. Products of two such
entries are below 2**50 and a sum over one chunk of CHUNK_SIZE = 64
coordinates below 2**56, in int64. Sums over many chunks may exceed int64
(30k coordinates * 2**46 ~ 2**61, more for longer vectors), so each chunk sum
s is split as s = hi * 2**32 + lo with 0 <= lo < 2**32 (exact for negative s
too: arithmetic shift and mask); the his and the los are summed separately in
int64 (each total below 2**32 * 2**18 for up to MAX_PARAMS = 2**24
coordinates) and recombined as Python integers, which do not overflow. This is
``fixedpoint.chunked_dot`` vectorised over many rows at once (``np.einsum`` on
int64 runs numpy's own integer loops: no BLAS, no floats). Pairwise squared
distances come from the exact Gram matrix, |x_i|**2 + |x_j|**2 - 2 <x_i, x_j>,
one einsum for all pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.fixedpoint import CHUNK_SIZE, MAX_UPDATES, QMAX

# One seat, in the basis points that fedchain.vy's reveal records (``seats_bps``): a trainer
# whose stake is above the sortition cap stands for several (learning imports no chain code).
SEAT = 10_000

MAX_PARAMS = 1 << 24  # coordinates per vector: keeps the chunked sums (and clipping products) inside int64
_LO = np.int64((1 << 32) - 1)


def stack(updates: Sequence[np.ndarray], bound: int = QMAX) -> np.ndarray:
    """The updates as one (n, d) int64 array, after checking count, shape and range."""
    if len(updates) == 0:
        raise LearningError("no updates to aggregate")
    if len(updates) > MAX_UPDATES:
        raise LearningError(f"{len(updates)} updates exceed the limit of {MAX_UPDATES}")
    shape = np.shape(updates[0])
    if len(shape) != 1 or any(np.shape(u) != shape for u in updates):
        raise LearningError("updates must be 1-d fixed-point vectors of one length")
    if shape[0] > MAX_PARAMS:
        raise LearningError(f"vectors of {shape[0]} values exceed the limit of {MAX_PARAMS}")
    x = np.stack([np.asarray(u) for u in updates])
    if x.dtype.kind not in "iu":
        raise LearningError(f"updates must be integer fixed-point vectors, not {x.dtype}")
    x = x.astype(np.int64)
    if x.size and int(np.abs(x).max()) > bound:
        raise LearningError(f"an update leaves the fixed-point range (|q| <= {bound})")
    return x


def vector(q: np.ndarray | None, d: int, what: str, bound: int) -> np.ndarray | None:
    """An optional side input (root update, previous aggregate) checked like an update."""
    if q is None:
        return None
    q = np.asarray(q)
    if q.shape != (d,) or q.dtype.kind not in "iu":
        raise LearningError(f"{what} must be an integer vector of length {d}")
    q = q.astype(np.int64)
    if q.size and int(np.abs(q).max()) > bound:
        raise LearningError(f"{what} leaves the fixed-point range (|q| <= {bound})")
    return q


def chunk_sums(a: np.ndarray, b: np.ndarray, pattern: str) -> np.ndarray:
    """``np.einsum(pattern)`` over 64-value chunks of the last axis: the int64 chunk sums.

    ``pattern`` names the chunk axis c and the in-chunk axis j (e.g. "icj,icj->ic"). The
    whole chunks are strided views (no copy); a short tail is one more chunk of its own.
    """
    d = a.shape[-1]
    m = d - d % CHUNK_SIZE
    whole = np.einsum(
        pattern, a[..., :m].reshape(*a.shape[:-1], -1, CHUNK_SIZE), b[..., :m].reshape(*b.shape[:-1], -1, CHUNK_SIZE)
    )
    if m == d and m:
        return whole
    tail = np.einsum(pattern, a[..., m:].reshape(*a.shape[:-1], 1, d - m), b[..., m:].reshape(*b.shape[:-1], 1, d - m))
    return np.concatenate([whole, tail], axis=-1)


def exact_sums(s: np.ndarray) -> np.ndarray:
    """Exact sums over the last axis of int64 chunk sums, as an object array of Python ints."""
    hi, lo = (s >> 32).sum(axis=-1), (s & _LO).sum(axis=-1)
    out = np.empty(hi.shape, dtype=object)
    out.flat[:] = [(int(high) << 32) + int(low) for high, low in zip(hi.flat, lo.flat)]
    return out


def sq_norms(x: np.ndarray) -> list[int]:
    """|x_i|**2 of each row, exactly (entries below 2**25 in magnitude)."""
    return list(exact_sums(chunk_sums(x, x, "icj,icj->ic")))


def dots(x: np.ndarray, g: np.ndarray) -> list[int]:
    """<x_i, g> of each row, exactly (entries below 2**25 in magnitude)."""
    return list(exact_sums(chunk_sums(x, g, "icj,cj->ic")))


def pairwise_sq_distances(x: np.ndarray) -> list[list[int]]:
    """The symmetric n x n matrix of exact squared distances |x_i - x_j|**2 (Python ints).

    From the exact Gram matrix: |x_i|**2 + |x_j|**2 - 2 <x_i, x_j>, every term a
    Python integer (entries of x below 2**23 keep each chunk's products below 2**52).
    """
    g = exact_sums(chunk_sums(x, x, "icj,kcj->ikc")).tolist()
    n = len(x)
    return [[g[i][i] + g[j][j] - 2 * g[i][j] for j in range(n)] for i in range(n)]


def nearest(dist_row: Sequence[int], candidates: Sequence[int], k: int) -> list[int]:
    """The k candidates nearest by ``dist_row``, ties broken by index (reveal order)."""
    return sorted(candidates, key=lambda j: (dist_row[j], j))[:k]


# -- parameters (plain JSON values from the recipe)


def seat_counts(seats: Sequence[int] | None, n: int) -> list[int]:
    """``seats`` checked (one positive count per update), or one seat each if None."""
    if seats is None:
        return [SEAT] * n
    seats = [int(s) for s in seats]
    if len(seats) != n or min(seats, default=1) <= 0:
        raise LearningError(f"need one positive seat count per update ({n}), got {seats}")
    return seats


def weighted_upper_median(values: Sequence[int], weights: Sequence[int]) -> int:
    """The smallest value whose weight, with every smaller value's, exceeds half the total:
    ``sorted(values)[n // 2]`` (the upper median) when the weights are equal."""
    total, run = sum(weights), 0
    for v, w in sorted(zip(values, weights)):
        run += w
        if 2 * run > total:
            return v
    raise LearningError("no values to take the median of")


def int_param(params: Mapping[str, Any], name: str, default: int | None, lo: int = 0) -> int:
    value = params.get(name, default)
    if value is None:
        raise LearningError(f"parameter {name!r} is required")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise LearningError(f"parameter {name!r} must be an integer >= {lo}, got {value!r}")
    return value


def malicious(params: Mapping[str, Any]) -> int:
    """f, the Byzantine updates a rule is told to tolerate (``num_malicious_nodes``, default 0)."""
    return int_param(params, "num_malicious_nodes", 0)


def tolerating_f(trainers: int, share: float) -> dict:
    """``num_malicious_nodes`` = round(share * trainers): an f-rule configured for that share."""
    return {"num_malicious_nodes": round(share * trainers)}


def bool_param(params: Mapping[str, Any], name: str) -> bool:
    """A true/false parameter (default false); 1 or "yes" is an error, not a truth value."""
    if not isinstance(params.get(name, False), bool):
        raise LearningError(f"parameter {name!r} must be true or false, got {params[name]!r}")
    return params.get(name, False)


def fraction_param(params: Mapping[str, Any], name: str, default: Any) -> Fraction:
    """A number as the exact decimal it is written as (0.2 is 1/5, not the nearest double).

    ``repr`` of a float is its shortest round-trip decimal, identical on every
    platform, so the parameter becomes the same exact rational everywhere.
    """
    value = params.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value
        or value in (float("inf"), float("-inf"))
    ):
        raise LearningError(f"parameter {name!r} must be a finite number, got {value!r}")
    return Fraction(value) if isinstance(value, int) else Fraction(repr(value))
