"""Bulyan, in exact integers.

El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed
Learning in Byzantium", ICML 2018. With n updates and at most f Byzantine:

1. selection: theta = n - 2f updates are chosen one at a time, each time the
   one with the lowest Krum score (``krum.krum_scores``) among those not yet
   chosen, the scores recomputed on what is left;
2. aggregation: per coordinate, take the median of the theta chosen values and
   average the beta = theta - 2f values closest to it.

The guarantee holds only for n >= 4f + 3, which is checked (then beta >= 3).

Exactness: the pairwise squared distances are computed once, exactly, and
reused by every selection step; ties in Krum scores go to the lower reveal
index. Such ties are structural, not just unlucky: in the last selection
steps only 2f + 1 candidates are left and Krum counts max(1, f - 1)
neighbours, so for f <= 2 two mutually nearest updates have equal scores,
and which of them is chosen (and so the result) follows the reveal order.
The median of an even count is the floor of the middle pair's mean
(``fedmedian``). Values equally close to the median are taken in reveal-index
order (a stable sort), and the beta kept values are floor-averaged (sums below
2**23 * 2**8). Sample counts are ignored.

Seats. A trainer whose stake stands for several sortition seats (``seats``,
basis points) counts once per seat, as k one-seat copies of its update would:
with S seats in all, the selection takes theta = S - 2f seats one at a time
(the best update's next seat, at most one seat, scored by ``krum_scores`` over
the seats left), so an update may be chosen for part of its seats; the
aggregation takes the seat-weighted median of the chosen seats (``fedmedian``)
and averages the beta = theta - 2f seats closest to it, the last value in part.
With one seat each this is the rule above, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate.common import SEAT, malicious, pairwise_sq_distances, seat_counts
from fedchain.learning.aggregate.fedmedian import weighted_coordinate_median
from fedchain.learning.aggregate.krum import krum_scores, neighbour_order
from fedchain.learning.aggregate.registry import Rule

# The most updates a Bulyan round can be challenged at: opening its distance table recomputes the
# selection (Krum's scoring S - 2f times) in one transaction, under 5M gas up to 24 updates
# (docs/decisions.md, "Challenges", Gas; SECURITY-REVIEW I-5).
CHALLENGEABLE_UPDATES = 24


def check_bulyan(n: int, f: int, seats: Sequence[int] | None = None) -> None:
    """n >= 4f + 3, n counted in seats (one each if ``seats`` is None): as many copies would pass."""
    total = sum(seat_counts(seats, n))
    if total < (4 * f + 3) * SEAT:
        n_ = total / SEAT  # the seats' worth of updates
        raise LearningError(
            f"bulyan: valid only for n >= 4f + 3; {n_:g} updates with f = {f} malicious needs "
            f"at least {4 * f + 3} updates (or f <= {max(0, (int(n_) - 3) // 4)} for n = {n_:g})"
        )


def select_bulyan(x: np.ndarray, f: int, seats: Sequence[int] | None = None) -> dict[int, int]:
    """The chosen updates by repeated Krum, in reveal order: index -> the seats chosen of it."""
    return bulyan_selection(pairwise_sq_distances(x), f, seats)


def bulyan_selection(dist: list[list[int]], f: int, seats: Sequence[int] | None = None) -> dict[int, int]:
    """``select_bulyan`` from the squared distances (what krum.vy recomputes on chain)."""
    order = neighbour_order(dist)
    left = seat_counts(seats, len(dist))  # the seats of each update not chosen yet
    room, chosen = sum(left) - 2 * f * SEAT, dict[int, int]()
    while room > 0:
        cand = [i for i, m in enumerate(left) if m > 0]
        scores = krum_scores(order, dist, f, cand, left)
        best = min(cand, key=lambda i: (scores[i], i))
        take = min(SEAT, left[best], room)
        chosen[best] = chosen.get(best, 0) + take
        left[best] -= take
        room -= take
    return dict(sorted(chosen.items()))


def closest_to_median_mean(s: np.ndarray, beta: int, seats: Sequence[int]) -> np.ndarray:
    """Per coordinate, the floor mean of the beta seats of s (theta, d) closest to their
    seat-weighted median (ties: the earlier row), ``seats`` per row, each value weighing the
    seats taken of it (with one seat each and beta whole seats: the mean of beta rows)."""
    w = np.asarray(seats, np.int64)
    order = np.argsort(np.abs(s - weighted_coordinate_median(s, seats)), axis=0, kind="stable")
    v, m = np.take_along_axis(s, order, axis=0), w[order]
    ends = np.cumsum(m, axis=0)
    take = np.clip(np.minimum(ends, beta) - (ends - m), 0, None)
    return (v * take).sum(axis=0) // np.int64(beta)


def bulyan(x: np.ndarray, f: int, seats: Sequence[int] | None = None) -> np.ndarray:
    """The aggregate update under Bulyan with f assumed Byzantine updates, each counted once per seat."""
    check_bulyan(len(x), f, seats)
    chosen = select_bulyan(x, f, seats)
    return closest_to_median_mean(x[list(chosen)], sum(chosen.values()) - 2 * f * SEAT, list(chosen.values()))


# tolerating a share of Byzantine trainers: f = round(share * n), capped at Bulyan's n >= 4f + 3
RULE = Rule(
    "bulyan",
    lambda x, samples, p, e: bulyan(x, malicious(p), e.seats),
    title="Bulyan",
    params={"num_malicious_nodes": 0},
    check=malicious,
    min_updates=lambda p: 4 * malicious(p) + 3,
    chain_code=6,
    chain_params=lambda p: (malicious(p), 1),
    selection=lambda x, p, seats: select_bulyan(x, malicious(p), seats),
    max_commits=CHALLENGEABLE_UPDATES,
    tolerating=lambda trainers, share: {"num_malicious_nodes": min(round(share * trainers), (trainers - 3) // 4)},
)
