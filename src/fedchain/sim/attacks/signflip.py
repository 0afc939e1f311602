"""Sign flip: send -u instead of the honest update u.

The classic "reversed gradient" attack (Damaskinos et al. 2018; Karimireddy,
He, Jaggi, ICML 2021, "BF"). It has the norm of an honest update, so norm
filters miss it; with enough attackers it cancels FedAvg's progress and then
reverses it.
"""

from __future__ import annotations

import numpy as np

from fedchain.sim.attacks.base import Attack


def craft(own: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """-scale * own."""
    return -float(scale) * np.asarray(own, dtype=np.float64)


ATTACK = Attack("signflip", craft=lambda k: craft(k.trained))
