"""Backdoor by model replacement (Bagdasaryan et al., "How To Backdoor Federated
Learning", AISTATS 2020).

The attacker trains on its own data with part of it stamped with a pixel-pattern
trigger and relabelled to a target class, so the model X it trains keeps the
main task and learns the backdoor. It then sends gamma * (X - G) instead of
X - G, with gamma = n / f (the paper's n / eta with global learning rate eta = 1,
shared among f colluding attackers), so that the aggregate lands near X: the
attackers replace the global model. Reported: the attack success rate, the share
of triggered test inputs (not of the target class) that the model puts in the
target class.

Trigger: a 3x3 checkerboard in the bottom-right corner of an image (values 1
and 0: image data here lies in [0, 1]), or the last four features of a vector
set to +3, -3, +3, -3 (MNIST-1D is standardised: about three standard deviations).
"""

from __future__ import annotations

import numpy as np

from fedchain.sim.attacks.base import Attack

TARGET = 0
POISON_FRACTION = 0.5


def add_trigger(x: np.ndarray) -> np.ndarray:
    """A copy of the inputs ``x`` (a batch) with the trigger stamped on."""
    x = np.array(x, dtype=np.float32, copy=True)
    if x.ndim == 4 and min(x.shape[-2:]) >= 3:  # (batch, channels, height, width)
        pattern = (np.indices((3, 3)).sum(axis=0) % 2 == 0).astype(np.float32)
        x[..., -3:, -3:] = pattern
    else:
        flat = x.reshape(len(x), -1)
        flat[:, -4:] = np.array([3.0, -3.0, 3.0, -3.0], dtype=np.float32)
        x = flat.reshape(x.shape)
    return x


def poison(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, fraction: float = POISON_FRACTION, target: int = TARGET
) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's training data: a random ``fraction`` of its examples stamped
    with the trigger and labelled ``target``, the rest left clean (same count)."""
    x, y = np.array(x, dtype=np.float32, copy=True), np.array(y, dtype=np.int64, copy=True)
    chosen = rng.permutation(len(y))[: int(round(fraction * len(y)))]
    x[chosen] = add_trigger(x[chosen])
    y[chosen] = target
    return x, y


def craft(own: np.ndarray, n: int, f: int) -> np.ndarray:
    """Model replacement: the trained update scaled by gamma = n / f."""
    return (n / f) * np.asarray(own, dtype=np.float64)


def triggered_test_set(x: np.ndarray, y: np.ndarray, target: int = TARGET) -> tuple[np.ndarray, np.ndarray]:
    """Test inputs not of the target class, triggered, all labelled ``target``:
    the accuracy on this set is the attack success rate."""
    keep = np.asarray(y) != target
    return add_trigger(x[keep]), np.full(int(keep.sum()), target, dtype=np.int64)


ATTACK = Attack(
    "backdoor", craft=lambda k: craft(k.trained, k.n, k.f), local_data=lambda x, y, num_classes, rng: poison(x, y, rng)
)
