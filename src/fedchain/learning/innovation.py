"""The innovation score: pay for what an update adds to what everybody already knew.

A free-rider that trains nothing can still send an update that helps: the last global
update (consecutive rounds move the model the same way), a momentum of earlier ones, or a
copy of an update another trainer revealed last round, rescaled and disguised with noise.
The cosine score pays such a free-rider 3.6 times an honest trainer per head (digits, 20
trainers, 4 free-riders sending the last global update), and the root-set score 1.1 times:
a stale update is nearly as useful as a fresh one, because each round applies every update
with weight 1/n only. What a free-rider cannot send is information nobody has published.

So the score first removes from each update its projection on the public span

    B = the last PUBLIC_ROUNDS global updates (w_t - w_(t-1), ...)
        + every update accepted in round t - 1

(all on chain or in blobs named on chain before round t's commits), which leaves the
update's innovation, and pays an update for being both useful and new, class by class of the
root set:

    r_i     = u_i - proj_B(u_i)
    score_i = sum over classes c of isqrt(V_c(u_i) * V_c(r_i))

V_c is the root-set gain on the root examples of class c (``validation_score.class_gains``:
the 1/n step's gain in their true-class probability mass, floored at 0, with the norm
penalty; n, the median norm and the seats counted as there, over the round's updates and over
their residuals). A combination of public vectors, scaled or noised, leaves a residual of
noise, which to first order neither helps nor hurts the root set: V_c(r_i) ~ 0. An honest
update's residual is what it learned at the current model from data nobody else holds.

Why the product: an omniscient ALIE attacker (the mean of the round's honest updates,
shifted) has the residual of the honest mean, which helps the root set, while its whole
update, shifted, hurts it; V(r_i) alone paid it 0.55 of an honest reward per head (30%,
FedAvg, digits, seed 0), the product 0.13. Why class by class: a non-IID trainer whose data
is mostly two classes helps those two and hurts the others, so its gain on the whole root set
is about 0 and it was starved (0.09 of the median honest reward, seed 2); class by class it is
paid for the classes it helps (0.57), while a free-rider's residual noise helps no class
much (docs/incentives.md has the measurements). Round 0 has no public span: r_i = u_i and the
score is the sum of u_i's per-class gains.

Exact: ``orthogonalize`` is modified Gram-Schmidt in integers. Each projection subtracts
``floor(e * a / 2**32)`` with ``a = floor(<v, e> * 2**32 / <e, e>)`` (``_minus_projection``),
in the basis order given, so every validator gets the same bits. The floors leave about
one unit per coordinate per step, against updates of thousands of units.

What it assumes and what it does not stop: see docs/incentives.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import isqrt

import numpy as np

from fedchain.learning.fixedpoint import chunked_dot
from fedchain.learning.validation_score import class_gains

FRAC = 32  # fractional bits of a projection coefficient


def _minus_projection(v: np.ndarray, e: np.ndarray, ee: int) -> np.ndarray:
    """v - floor(e * a / 2**32) with a = floor(<v, e> * 2**32 / <e, e>): v less its projection
    on e, in int64 (a is split into a whole part and 32 fractional bits, so that no product
    overflows: |e_i| < 2**31 and |a| < 2**31 for vectors of fixed-point updates)."""
    c = chunked_dot(v, e)
    if c == 0:
        return v
    a = (c << FRAC) // ee
    whole, frac = a >> FRAC, a & ((1 << FRAC) - 1)
    return v - (e * whole + ((e * frac) >> FRAC))


def orthogonalize(public: Sequence[np.ndarray]) -> list[tuple[np.ndarray, int]]:
    """An orthogonal basis of span(public) as (e_k, <e_k, e_k>) pairs, in the order given;
    a vector that adds no direction (less than one unit per coordinate left: a zero, a
    repeat, a combination of earlier ones up to the floors) is dropped."""
    basis: list[tuple[np.ndarray, int]] = []
    for b in public:
        e = np.asarray(b, dtype=np.int64)
        for f, ff in basis:
            e = _minus_projection(e, f, ff)
        ee = chunked_dot(e, e)
        if ee > e.size:
            basis.append((e, ee))
    return basis


def residual(update: np.ndarray, basis: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
    """``update`` less its projection on the basis (``orthogonalize``): its innovation."""
    r = np.asarray(update, dtype=np.int64)
    for e, ee in basis:
        r = _minus_projection(r, e, ee)
    return r


def innovation_scores(
    model: str,
    parent_q: np.ndarray,
    updates: Sequence[np.ndarray],
    public: Sequence[np.ndarray],
    template: Mapping[str, np.ndarray],
    xq: np.ndarray,
    y: np.ndarray,
    seats: Sequence[int] | None = None,
) -> list[int]:
    """Each update's innovation score, ``sum over classes c of isqrt(V_c(u_i) * V_c(r_i))``
    (module docstring), in order.

    ``public`` is the round's public span in its canonical order (the last global updates,
    newest first, then the last round's accepted updates in reveal order; empty in round 0,
    when r_i = u_i and the score is the sum of u_i's per-class gains); the other arguments are
    ``validation_scores``'.
    """
    useful = class_gains(model, parent_q, updates, template, xq, y, seats)
    if public:
        basis = orthogonalize(public)
        new = class_gains(model, parent_q, [residual(u, basis) for u in updates], template, xq, y, seats)
    else:
        new = useful
    return [sum(isqrt(a * b) for a, b in zip(cu, cr)) for cu, cr in zip(useful, new)]
