"""What every update attack shares: the attacker's knowledge in a round, the
attack record the registry holds, and the last step that makes a crafted
vector a valid update.

Threat model: omniscient, as in the papers that define these attacks (Baruch et
al. 2019, Xie et al. 2019, Karimireddy et al. 2021). When an attack needs them,
the attackers know every honest update of the round before they send their own,
and they collude: in one round they may all send the same vector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedchain.learning.fixedpoint import CLIP, SCALE


@dataclass(frozen=True)
class Knowledge:
    """What one attacker knows when it crafts its update for a round.

    Parameters
    ----------
    model : np.ndarray
        The current global model, flattened (float); every trainer has it.
    own : np.ndarray or None
        Its own local update (float64), trained on the data ``Attack.local_data``
        gives it; None for attacks that do not train.
    honest : np.ndarray
        The honest updates of the round, shape (h, d), float64 (omniscience);
        empty (0, d) for attacks that are not omniscient.
    n : int
        Updates that reach the aggregation this round (honest plus attackers).
    f : int
        Attackers among them.
    rng : np.random.Generator
        The attacker's own randomness for this round.
    history : tuple of np.ndarray
        Public information: the global updates so far (each model less its parent),
        newest first (float64); empty in round 0.
    revealed : np.ndarray or None
        Public information: the updates the last round accepted, shape (m, d), float64
        (revealed on chain and in blobs before this round's commits); None in round 0.
    """

    model: np.ndarray
    own: np.ndarray | None
    honest: np.ndarray
    n: int
    f: int
    rng: np.random.Generator
    history: tuple[np.ndarray, ...] = ()
    revealed: np.ndarray | None = None

    @property
    def trained(self) -> np.ndarray:
        """``own``, for an attack that crafts from the update it trained (``Attack.trains``)."""
        if self.own is None:
            raise ValueError("this attack does not train: it has no update of its own to craft from")
        return self.own


# (x, y, num_classes, rng) -> the (x, y) an attacker trains on
LocalData = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Attack:
    """One attack as the registry holds it.

    Parameters
    ----------
    name : str
        Its name on the command line (``fedchain simulate --attack NAME``).
    craft : callable or None
        ``Knowledge -> update vector`` (float); None: the attacker sends the
        update it trained (label flip: the poison is in its data).
    local_data : callable or None
        The data the attacker trains on instead of its own (label flip, backdoor).
    trains : bool
        Whether the attacker trains at all (a free-rider, Gaussian, ALIE or IPM
        attacker does not: its update needs no local data).
    omniscient : bool
        Whether ``craft`` reads the honest updates of the round.
    public : bool
        Whether ``craft`` reads earlier rounds (``Knowledge.history`` and ``revealed``);
        only the robustness benchmark gives them so far.
    trainer : type or None
        Protocol attacks (copier, withholder, Sybil) act on commit and reveal,
        not on the update: a ``Trainer`` subclass that only the on-chain
        simulation can run.
    """

    name: str
    craft: Callable[[Knowledge], np.ndarray] | None = None
    local_data: LocalData | None = None
    trains: bool = True
    omniscient: bool = False
    public: bool = False
    trainer: type | None = None

    @property
    def protocol(self) -> bool:
        return self.trainer is not None


# The largest magnitude a crafted coordinate may take: CLIP less one quantum,
# so that float32 rounding can never push it out of the fixed-point range.
LIMIT = CLIP - 1.0 / SCALE


def finish(v: np.ndarray) -> np.ndarray:
    """A crafted vector as an update a validator accepts: float32, finite, inside the
    fixed-point range (an attacker that overshoots is clipped, not rejected)."""
    v = np.nan_to_num(np.asarray(v, dtype=np.float64), nan=0.0, posinf=LIMIT, neginf=-LIMIT)
    return np.clip(v, -LIMIT, LIMIT).astype(np.float32)
