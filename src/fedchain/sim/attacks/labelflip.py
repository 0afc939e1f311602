"""Label flip: train honestly, but on labels y -> C - 1 - y.

A data-poisoning attack (e.g. Fang et al., "Local Model Poisoning Attacks to
Byzantine-Robust Federated Learning", USENIX Security 2020; Karimireddy, He,
Jaggi, ICML 2021, use it as their "LF" attack). The attacker's update is a
genuine training update, so it passes every validity check and looks like
ordinary non-IID data: only its direction gives it away.
"""

from __future__ import annotations

import numpy as np

from fedchain.sim.attacks.base import Attack


def flip_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
    """y -> num_classes - 1 - y (an involution: flipping twice gives y back)."""
    return (num_classes - 1 - np.asarray(y, dtype=np.int64)).astype(np.int64)


def local_data(x, y, num_classes, rng):
    return x, flip_labels(y, num_classes)


ATTACK = Attack("labelflip", local_data=local_data)
