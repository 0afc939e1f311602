"""Per-update contribution scores: deterministic integers validators agree on.

score_i = floor(10**6 * max(0, <u_i, g>) / isqrt(|u_i|**2 * |g|**2))

where u_i is update i and g the round's aggregate update, both fixed point:
the cosine between what a trainer sent and where the network moved, in parts
per million, and zero for an update that pulls against it. Why it rewards
useful updates: an update that helped move the model (aligned with the
aggregate) earns up to 10**6; a free-rider's noise is nearly orthogonal to g
(~0); a sign-flipped or poisoned update points away (0). It ignores the
self-reported sample count, which nobody can verify, and it does not punish
non-IID data with slashing: a low score only means a smaller reward.

All arithmetic is exact: chunked int64 dot products summed as Python ints and
an integer square root, so every validator computes the same bits.
A score measured on held-out data (robust to ALIE) is left to the robustness
work; the scores root commits to whichever rule the task's recipe names.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isqrt

import numpy as np

from fedchain.learning.fixedpoint import chunked_dot

PPM = 10**6


def cosine_score(update: np.ndarray, aggregate: np.ndarray) -> int:
    dot = chunked_dot(update, aggregate)
    if dot <= 0:
        return 0
    norms = chunked_dot(update, update) * chunked_dot(aggregate, aggregate)
    # floor(PPM * dot / sqrt(norms)) exactly: isqrt(floor(y)) == floor(sqrt(y))
    return min(PPM, isqrt(PPM * PPM * dot * dot // norms))


def scores(updates: Sequence[np.ndarray], aggregate: np.ndarray) -> list[int]:
    return [cosine_score(u, aggregate) for u in updates]
