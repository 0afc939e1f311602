"""Zeno: keep the updates that the root set says help, average them.

Xie, Koyejo, Gupta, "Zeno: Distributed Stochastic Gradient Descent with
Suspicion-based Fault-tolerance", ICML 2019. The server holds a little clean
data, scores every candidate by how much one step along it lowers the loss
there (the "stochastic descendant score", minus a norm penalty), and averages
the n - b best, b >= the number of Byzantine workers.

fedchain's descendant score is the root-set score validators already compute
for rewards (``fedchain.learning.validation_score``, passed in as
``root_scores``): the gain in expected correct answers on the root set from
stepping 1/n along the update, floored at 0, and cut by the 8th power of the
excess when the update is longer than 2.5 times the round's median norm (the
norm penalty: it shrinks a boosted backdoor's score, not always below the honest
ones', see ``clip``). This rule then

    keeps the updates with a positive score, at most m = n - b of them, the
    highest scores first (equal scores: the lower reveal index first), and
    returns their FedAvg mean (sample counts capped as in ``fedavg``).

No update with a positive score: the zero update (the model stays). Without a
positive score an update has not shown the root set any benefit, so unlike the
paper (which always keeps n - b) it is left out even when fewer than m are left.

Seats: a trainer whose stake is above the sortition cap stands for several seats
(``seats``, basis points; fedchain.vy's ``reveal``). Zeno counts them: it keeps
the best updates until n - b seats are kept, the last one possibly in part (its
FedAvg weight is then that part of its sample count), and the median norm counts
each update once per seat, so one identity holding k stakes is treated as k
identities sending its update would be (up to their sample counts). With one
seat each this is the rule above, bit for bit.

``clip = true`` (not in the paper) first scales every kept update longer than the
round's median update norm down to that norm (the median over all accepted
updates, the upper one for even n, so a minority cannot move it far): norm
bounding (Sun et al. 2019, "Can you really backdoor federated learning?").
Why: a model-replacement backdoor boosts a model that is good on clean data by
gamma = n / attackers, so stepping along it helps the root set and it can rank
among the best; the score's norm penalty shrinks its score but not its weight in
the mean. Clipped, a kept boosted update moves the model no further than a
typical honest one. Exact: ``centeredclipping.clip_rows`` (floor, one isqrt);
a row is clipped only when its norm exceeds the bound, so the bound is below
sqrt(d) * QMAX <= 2**35 and |u_j| * bound stays below 2**58.

What it assumes: what FLTrust and the root-set score assume (see
``fedchain.protocol.root_set``): validators hold a clean root set drawn from
the task's distribution, identical on every validator, and the scores are
exact integers, so every validator selects the same set. An honest non-IID
trainer whose update hurts the balanced root set is left out of that round
(it scores 0 and earns nothing for it under the root-set score, too).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isqrt

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate import fedavg
from fedchain.learning.aggregate.centeredclipping import clip_rows
from fedchain.learning.aggregate.common import (
    SEAT,
    bool_param,
    malicious,
    seat_counts,
    sq_norms,
    tolerating_f,
    weighted_upper_median,
)
from fedchain.learning.aggregate.registry import Rule


def select(root_scores: Sequence[int], b: int, seats: Sequence[int] | None = None) -> dict[int, int]:
    """The kept updates: index -> the seats kept of it (basis points), ascending by index.
    The highest positive scores first, until n - b seats are kept; the last one kept may
    keep only the seats that were left (one seat each: exactly the n - b best)."""
    n = len(root_scores)
    seats = seat_counts(seats, n)
    if not 0 <= b * SEAT < sum(seats):  # n counted in seats
        raise LearningError(f"zeno needs 0 <= num_malicious_nodes < n, got {b} with n = {sum(seats) / SEAT:g}")
    room = sum(seats) - b * SEAT
    ranked = sorted((i for i in range(n) if root_scores[i] > 0), key=lambda i: (-root_scores[i], i))
    kept = {}
    for i in ranked:
        take = min(seats[i], room)
        if take <= 0:
            break
        kept[i] = take
        room -= take
    return dict(sorted(kept.items()))


def zeno(
    x: np.ndarray,
    samples: Sequence[int],
    root_scores: Sequence[int],
    b: int,
    clip: bool = False,
    seats: Sequence[int] | None = None,
) -> np.ndarray:
    """The aggregate update: the FedAvg mean of ``select(root_scores, b, seats)``'s rows of
    ``x``, each first clipped to the (seat-weighted) median norm of ``x``'s rows if ``clip``."""
    if len(root_scores) != len(x):
        raise LearningError(f"{len(x)} updates but {len(root_scores)} root-set scores")
    seats = seat_counts(seats, len(x))
    kept = select(root_scores, b, seats)
    if not kept:
        return np.zeros(x.shape[1], dtype=np.int64)
    rows = x[list(kept)]  # fancy indexing copies: clipping below leaves x alone
    if clip:
        rows = clip_rows(rows, isqrt(weighted_upper_median(sq_norms(x), seats)))
    # an update kept in part weighs that part of its samples (at least one: FedAvg needs positive weights)
    return fedavg.aggregate_update(list(rows), [max(1, samples[i] * take // seats[i]) for i, take in kept.items()])


def _run(x, samples, p, e):
    assert e.root_scores is not None  # aggregate_update refuses a root-score rule without them
    return zeno(x, samples, e.root_scores, malicious(p), bool_param(p, "clip"), e.seats)


RULE = Rule(
    "zeno",
    _run,
    title="Zeno",
    params={"num_malicious_nodes": 0, "clip": False},
    check=lambda p: (malicious(p), bool_param(p, "clip")),
    min_updates=lambda p: malicious(p) + 1,
    needs_root_scores=True,
    tolerating=tolerating_f,
)
