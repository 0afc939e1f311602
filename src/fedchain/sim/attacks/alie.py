"""ALIE, "A Little Is Enough" (Baruch, Baruch, Goldberg, NeurIPS 2019).

Every attacker sends mu - z_max * sigma, with mu and sigma the per-coordinate
mean and standard deviation of the honest updates. z_max is the largest shift
that still leaves the attackers inside the crowd: with s = floor(n/2 + 1) - f
honest workers needed to reach a majority,

    z_max = Phi^-1((n - s) / n)

(about 0.47 for n = 25, f = 5, the paper's running example). The shift is small
in every coordinate, so median, trimmed mean and Krum keep the attackers, but
it is consistent across coordinates and rounds.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from fedchain.sim.attacks.base import Attack


def z_max(n: int, f: int) -> float:
    """Phi^-1((n - s) / n) with s = floor(n / 2 + 1) - f."""
    if not 0 < f < n:
        raise ValueError(f"ALIE needs 0 < f < n, got n={n}, f={f}")
    s = n // 2 + 1 - f
    return NormalDist().inv_cdf((n - s) / n)


def craft(honest: np.ndarray, n: int, f: int, z: float | None = None) -> np.ndarray:
    """mu - z * sigma over the honest updates (rows of ``honest``)."""
    honest = np.asarray(honest, dtype=np.float64)
    mu = honest.mean(axis=0)
    sigma = honest.std(axis=0, ddof=1) if len(honest) > 1 else np.zeros_like(mu)
    return mu - (z_max(n, f) if z is None else z) * sigma


ATTACK = Attack("alie", craft=lambda k: craft(k.honest, k.n, k.f), trains=False, omniscient=True)
