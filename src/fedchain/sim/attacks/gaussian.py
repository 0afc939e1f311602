"""Gaussian noise: send N(mean, sigma^2) per coordinate instead of an update.

The baseline Byzantine attack of Blanchard et al. (NeurIPS 2017) and of most
benchmarks since. Here sigma = 1.0 by default: an honest update's coordinates
are of order 1e-2, so the noise is about a hundred times larger and one attacker
alone wrecks plain FedAvg, while distance- and median-based rules see it at once.
"""

from __future__ import annotations

import numpy as np

from fedchain.sim.attacks.base import Attack

SIGMA = 1.0


def craft(d: int, rng: np.random.Generator, mean: float = 0.0, sigma: float = SIGMA) -> np.ndarray:
    """A length-``d`` vector of independent N(mean, sigma^2) draws."""
    return rng.normal(mean, sigma, size=d)


ATTACK = Attack("gaussian", craft=lambda k: craft(k.model.size, k.rng), trains=False)
