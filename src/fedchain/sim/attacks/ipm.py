"""IPM, inner-product manipulation (Xie, Koyejo, Gupta, "Fall of Empires", UAI 2019).

Every attacker sends -eps * mean(honest updates). With eps small (0.1) the
attackers sit close to the honest mean and to each other, so Krum picks one of
them and the model stalls; with eps large (100) they outweigh the honest
updates under FedAvg and push coordinate-wise rules (median, trimmed mean) the
wrong way once they are a large share. Either way the aggregate's inner product
with the true gradient turns negative.
"""

from __future__ import annotations

import numpy as np

from fedchain.sim.attacks.base import Attack


def craft(honest: np.ndarray, eps: float) -> np.ndarray:
    """-eps times the mean of the honest updates (rows of ``honest``)."""
    return -float(eps) * np.asarray(honest, dtype=np.float64).mean(axis=0)


def attack(eps: float) -> Attack:
    return Attack(f"ipm_{eps:g}", craft=lambda k: craft(k.honest, eps), trains=False, omniscient=True)
