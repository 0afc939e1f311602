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

Seats. A trainer whose stake stands for several sortition seats (``seats``,
basis points, fedchain.vy's ``reveal``) counts once per seat, as k one-seat
copies of its update would (docs/robustness.md, "Sybil"): with S seats in all,
a score sums the distances to the nearest max(1, S - f - 2) seats, the update's
own other seats first (at distance 0), a neighbour's seats weighing the
distance each (the last neighbour possibly in part); MultiKrum keeps the best
updates until m seats are kept (default S - f, at least 1), the last one
possibly in part, which then weighs that part of its capped sample count (at
least 1). With one seat each, every score is SEAT times the plain score and the
selection and the result are the plain rule's, bit for bit. The validity checks
(n > 2f + 2, m <= n) count seats too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate import fedavg
from fedchain.learning.aggregate.common import (
    SEAT,
    int_param,
    malicious,
    nearest,
    pairwise_sq_distances,
    seat_counts,
    tolerating_f,
)
from fedchain.learning.aggregate.registry import Rule
from fedchain.learning.fixedpoint import MAX_WEIGHT

TABLE_REVEALS = 64  # challenges.vy's MAX_TABLE: a distance table covers at most 64 reveals


def check_krum(n: int, f: int, seats: Sequence[int] | None = None) -> None:
    """n > 2f + 2, n counted in seats (one each if ``seats`` is None): as many copies would pass."""
    total = sum(seat_counts(seats, n))
    if total <= (2 * f + 2) * SEAT:
        n_ = total / SEAT  # the seats' worth of updates
        raise LearningError(
            f"krum: {n_:g} updates cannot tolerate {f} malicious ones; Krum needs n > 2f + 2 "
            f"(at least {2 * f + 3} updates for f = {f}, or at most f = {max(0, (int(n_) - 3) // 2)} "
            f"for n = {n_:g})"
        )


def neighbour_order(dist: Sequence[Sequence[int]]) -> list[list[int]]:
    """For each i, the other indices from nearest to farthest (ties: lower index first)."""
    n = len(dist)
    return [nearest(dist[i], [j for j in range(n) if j != i], n - 1) for i in range(n)]


def krum_scores(
    order: Sequence[Sequence[int]],
    dist: Sequence[Sequence[int]],
    f: int,
    candidates: Sequence[int] | None = None,
    seats: Sequence[int] | None = None,
) -> dict[int, int]:
    """Each candidate's score: its summed squared distance to its nearest max(1, n - f - 2)
    other candidates, counted in seats (basis points; one each if ``seats`` is None, then
    every score is SEAT times the plain sum: see the module docstring).

    ``order`` is ``neighbour_order(dist)``; ``candidates`` (default: all) lets Bulyan rerun
    Krum on what is left, n is their number, and at least one neighbour always counts (as in Flower).
    """
    cand = list(range(len(dist))) if candidates is None else list(candidates)
    seats = [SEAT] * len(dist) if seats is None else seats  # Bulyan passes what is left of each: may be < SEAT
    need = max(SEAT, sum(seats[i] for i in cand) - (f + 2) * SEAT)  # the nearest seats counted
    allowed = set(cand)
    scores = {}
    for i in cand:
        left, score = need - min(need, max(0, seats[i] - SEAT)), 0  # its own other seats, at distance 0
        for j in order[i]:
            if left == 0:
                break
            if j in allowed:
                take = min(seats[j], left)
                score, left = score + dist[i][j] * take, left - take
        scores[i] = score
    return scores


def select_multikrum(
    dist: Sequence[Sequence[int]], f: int, m: int | None, seats: Sequence[int] | None = None
) -> dict[int, int]:
    """The updates kept, best Krum score first (ties: lower index first), each with the seats
    kept of it: until m seats are kept (None: S - f, at least one), the last possibly in part."""
    seats = seat_counts(seats, len(dist))
    scores = krum_scores(neighbour_order(dist), dist, f, seats=seats)
    room = m * SEAT if m is not None else max(SEAT, sum(seats) - f * SEAT)
    kept = {}
    for i in sorted(scores, key=lambda i: (scores[i], i)):
        if room == 0:
            break
        kept[i] = min(seats[i], room)
        room -= kept[i]
    return kept


def kept_weights(kept: dict[int, int], samples: Sequence[int], seats: Sequence[int]) -> list[int]:
    """FedAvg's weights of the kept updates, in index order: the capped sample count, or
    for an update kept in part that part of it (at least 1), as challenges.vy weighs it."""
    return [
        min(samples[i], MAX_WEIGHT) if take == seats[i] else max(1, min(samples[i], MAX_WEIGHT) * take // seats[i])
        for i, take in sorted(kept.items())
    ]


def multikrum(
    x: np.ndarray, samples: Sequence[int], f: int, m: int | None, seats: Sequence[int] | None = None
) -> np.ndarray:
    """The aggregate update: the sample-weighted mean of the m seats Krum scores best (None: n - f)."""
    n = len(x)
    check_krum(n, f, seats)
    seats = seat_counts(seats, n)
    if m is not None and not (1 <= m and m * SEAT <= sum(seats)):  # n counted in seats
        raise LearningError(f"multikrum: num_nodes_to_select must be between 1 and {sum(seats) / SEAT:g}, got {m}")
    kept = select_multikrum(pairwise_sq_distances(x), f, m, seats)
    return fedavg.aggregate_update([x[i] for i in sorted(kept)], kept_weights(kept, samples, seats))


def krum(x: np.ndarray, f: int, seats: Sequence[int] | None = None) -> np.ndarray:
    """The aggregate update: the single update with the lowest Krum score."""
    check_krum(len(x), f, seats)
    return x[next(iter(select_multikrum(pairwise_sq_distances(x), f, 1, seats)))].copy()


def selected(params: Mapping[str, Any]) -> int | None:
    """MultiKrum's m (``num_nodes_to_select``); None: the default, n - f seats."""
    return int_param(params, "num_nodes_to_select", None, lo=1) if "num_nodes_to_select" in params else None


def multikrum_selection(
    x: np.ndarray, params: Mapping[str, Any], seats: Sequence[int] | None, m: int | None
) -> dict[int, int]:
    """The kept updates (index -> seats kept) as the contracts recompute them from the distance table."""
    return select_multikrum(pairwise_sq_distances(x), malicious(params), m, seats)


RULE = Rule(
    "krum",
    lambda x, samples, p, e: krum(x, malicious(p), e.seats),
    title="Krum",
    params={"num_malicious_nodes": 0},
    check=malicious,
    min_updates=lambda p: 2 * malicious(p) + 3,
    chain_code=4,
    chain_params=lambda p: (malicious(p), 1),
    selection=lambda x, p, seats: multikrum_selection(x, p, seats, 1),
    max_commits=TABLE_REVEALS,
    tolerating=tolerating_f,
)

MULTIKRUM = Rule(
    "multikrum",
    lambda x, samples, p, e: multikrum(x, samples, malicious(p), selected(p), e.seats),
    title="MultiKrum",
    params={"num_malicious_nodes": 0, "num_nodes_to_select": None},
    check=lambda p: (malicious(p), selected(p)),
    min_updates=lambda p: max(2 * malicious(p) + 3, selected(p) or 1),
    chain_code=5,
    chain_params=lambda p: (malicious(p), selected(p) or 0),  # 0: n - f
    selection=lambda x, p, seats: multikrum_selection(x, p, seats, selected(p)),
    max_commits=TABLE_REVEALS,
    tolerating=tolerating_f,
)
