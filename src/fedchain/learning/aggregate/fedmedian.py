"""FedMedian: the coordinate-wise median of the updates, in exact integers.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML 2018: per coordinate, the median of
the n clients' values; robust while fewer than half of them are Byzantine.

The median of an even count is the floor of the mean of the two middle values,
``(a + b) >> 1`` (|a + b| < 2**25, no overflow). Sorting integers is exact and
the median is a symmetric function of its inputs, so the result does not
depend on the order of the updates. Sample counts are ignored (as in Flower's
FedMedian): a claimed count cannot buy a coordinate.
"""

from __future__ import annotations

import numpy as np


def coordinate_median(x: np.ndarray) -> np.ndarray:
    """Per-column median of an (n, d) int64 array; floor of the middle pair's mean for even n."""
    n = len(x)
    s = np.sort(x, axis=0)
    if n % 2:
        return s[n // 2].copy()
    return (s[n // 2 - 1] + s[n // 2]) >> 1


def fedmedian(x: np.ndarray) -> np.ndarray:
    """The aggregate update: the coordinate-wise median of the (n, d) updates."""
    return coordinate_median(x)
