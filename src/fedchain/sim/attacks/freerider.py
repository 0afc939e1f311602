"""Free-riders: train nothing, send something that looks like an update.

Lin, Du, Liu, "Free-riders in Federated Learning: Attacks and Defenses" (2019);
Fraboni, Vidal, Lorenzi, "Free-rider Attacks on Model Aggregation in Federated
Learning", AISTATS 2021. Commit-reveal does not stop them (they copy nothing
secret): only the contribution score can.

``freerider`` is the weakest: the "disguised" free-rider that sends the global
model plus a little Gaussian noise, i.e. an update that is the noise alone. The
others use only public information, the earlier global updates and the updates
revealed last round, rescaled to the last round's median norm (what an honest
update's size looks like) and disguised with noise:

- ``freerider_delta``: the last global update (Fraboni et al.'s "delta weights"
  free-rider; consecutive rounds move the model the same way);
- ``freerider_momentum``: a momentum of all global updates, sum of 0.9**k g_(t-k);
- ``freerider_extrap``: the linear extrapolation 2 g_(t-1) - g_(t-2), the update it
  expects the round to make, and what earns most under a score that removes only
  the last global update;
- ``freerider_old``: the global updates older than the innovation score's public
  span (``round.PUBLIC_ROUNDS``), an attacker who knows that score and sends what it
  does not project away;
- ``freerider_copy``: another trainer's update of the last round, with noise of half
  its norm (cosine 0.9 to the original);
- ``freerider_lucky``: an attacker who knows the innovation score is paid class by class
  and bets on luck: the last global update plus noise twice its norm, as large as the norm
  penalty allows (the whole stays under 2.5x the median norm), so that its residual, the
  noise, is as large as it can be and helps some classes of the root set by chance.
"""

from __future__ import annotations

import numpy as np

from fedchain.sim.attacks.base import Attack, Knowledge

SIGMA = 1e-3
DISGUISE = 0.1  # noise norm of a rescaled public vector, as a fraction of its norm
MOMENTUM = 0.9
OLD_AFTER = 4  # fedchain.protocol.round.PUBLIC_ROUNDS (the attacker knows the score)


def craft(d: int, rng: np.random.Generator, sigma: float = SIGMA) -> np.ndarray:
    """The update of "global model + N(0, sigma^2)": the noise alone."""
    return rng.normal(0.0, sigma, size=d)


def _disguised(v: np.ndarray, k: Knowledge, noise: float = DISGUISE) -> np.ndarray:
    """``v`` rescaled to the last round's median update norm, plus noise of ``noise`` times that."""
    assert k.revealed is not None
    target = float(np.median(np.linalg.norm(k.revealed, axis=1)))
    norm = float(np.linalg.norm(v))
    v = v * (target / norm) if norm > 0 else v
    return v + k.rng.normal(0.0, noise * target / np.sqrt(v.size), size=v.size)


def _public(build):
    """A public-information craft: in round 0 (nothing published yet) the plain free-rider."""

    def run(k: Knowledge) -> np.ndarray:
        if not k.history or k.revealed is None or len(k.revealed) == 0:
            return craft(k.model.size, k.rng)
        return build(k)

    return run


def _momentum(history: tuple[np.ndarray, ...]) -> np.ndarray:
    """sum of MOMENTUM**k * g_k over the global updates, newest first."""
    out = np.zeros_like(history[0])
    for i, g in enumerate(history):
        out += MOMENTUM**i * g
    return out


def _extrap(k: Knowledge) -> np.ndarray:
    g = k.history
    return 2 * g[0] - g[1] if len(g) > 1 else g[0]


def _old(k: Knowledge) -> np.ndarray:
    older = k.history[OLD_AFTER:]
    return _momentum(older) if older else k.history[-1]


def _copy(k: Knowledge) -> np.ndarray:
    assert k.revealed is not None
    src = k.revealed[int(k.rng.integers(len(k.revealed)))]
    return src + k.rng.normal(0.0, 0.5 * float(np.linalg.norm(src)) / np.sqrt(src.size), size=src.size)


LUCKY = 2.0  # noise norm of freerider_lucky over the median norm: sqrt(1 + 2**2) = 2.24 < 2.5, unpenalised


def _lucky(k: Knowledge) -> np.ndarray:
    return _disguised(k.history[0], k, noise=LUCKY)


ATTACK = Attack("freerider", craft=lambda k: craft(k.model.size, k.rng), trains=False)
PUBLIC = (
    Attack("freerider_delta", craft=_public(lambda k: _disguised(k.history[0], k)), trains=False, public=True),
    Attack(
        "freerider_momentum", craft=_public(lambda k: _disguised(_momentum(k.history), k)), trains=False, public=True
    ),
    Attack("freerider_extrap", craft=_public(lambda k: _disguised(_extrap(k), k)), trains=False, public=True),
    Attack("freerider_old", craft=_public(lambda k: _disguised(_old(k), k)), trains=False, public=True),
    Attack("freerider_copy", craft=_public(_copy), trains=False, public=True),
    Attack("freerider_lucky", craft=_public(_lucky), trains=False, public=True),
)
