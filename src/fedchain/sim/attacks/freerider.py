"""Free-rider: send the current global model plus a little noise, train nothing.

Lin, Du, Liu, "Free-riders in Federated Learning: Attacks and Defenses" (2019);
Fraboni, Vidal, Lorenzi, "Free-rider Attacks on Model Aggregation in Federated
Learning", AISTATS 2021 (the "disguised" free-rider adds Gaussian noise so its
update is not exactly zero). Here a trainer sends the parameter change from the
global model, so the free-rider's update is the noise itself. Commit-reveal does
not stop it (it copies nothing secret): only contribution scoring can.
"""

from __future__ import annotations

import numpy as np

from fedchain.sim.attacks.base import Attack

SIGMA = 1e-3


def craft(d: int, rng: np.random.Generator, sigma: float = SIGMA) -> np.ndarray:
    """The update of "global model + N(0, sigma^2)": the noise alone."""
    return rng.normal(0.0, sigma, size=d)


ATTACK = Attack("freerider", craft=lambda k: craft(k.model.size, k.rng), trains=False)
