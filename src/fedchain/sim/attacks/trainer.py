"""Update attacks inside the on-chain simulation: a ``Trainer`` that crafts its
update with an ``Attack``, and the coordinator that tells it what it knows.

The omniscient threat model, as run here: the attackers of a simulation share
one ``Coordinator``, which reads every honest trainer's update of the round
from that trainer's journal and the blob store as soon as it is committed (the
simulation steps honest trainers first), or trains it with the trainer's own
data and seed if it is not there yet. A real attacker would need the honest
trainers' cooperation or a side channel to see this much; the papers grant it,
and so does the simulation, so that the defences face their worst case.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedchain.learning import fixedpoint as fp
from fedchain.learning.train import flatten, param_shapes, unflatten
from fedchain.protocol.trainer import Trainer
from fedchain.sim.attacks.base import Attack, Knowledge, finish
from fedchain.storage.codec import decode_tensors, encode_tensors


class AttackTrainer(Trainer):
    """A trainer that runs ``attack``: trains (on poisoned data, if the attack says
    so), asks the coordinator what it knows, and commits to the crafted update."""

    def __init__(self, *args, attack: Attack, num_classes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.attack = attack
        self.coordinator: Coordinator | None = None
        if attack.local_data is not None:
            self.x, self.y = attack.local_data(self.x, self.y, num_classes, np.random.default_rng(self.seed))
        self._task_id: int | None = None

    def commit(self, task_id, v):
        self._task_id = task_id
        super().commit(task_id, v)

    def make_update(self, model, round_id):
        own = flatten(self.train(model, round_id)).astype(np.float64) if self.attack.trains else None
        if self.attack.craft is None:
            assert own is not None, "an attack that crafts nothing sends the update it trained"
            vec = finish(own)
        else:
            assert self.coordinator is not None, "arm() connects every attacker before its first round"
            vec = finish(self.attack.craft(self.coordinator.knowledge(self, model, round_id, own)))
        delta = unflatten(vec, model.params)
        return encode_tensors(delta), fp.vector_root(fp.to_fixed(flatten(delta)), self.recipe.chunk_size)


class Coordinator:
    """What the colluding attackers of one simulation know, round by round."""

    def __init__(self, attack: Attack, honest: Sequence[Trainer], attackers: Sequence[AttackTrainer]):
        self.attack = attack
        self.honest, self.attackers = list(honest), list(attackers)
        self._round: tuple[int | None, int] | None = None
        self._updates: np.ndarray | None = None

    def knowledge(self, attacker: AttackTrainer, model, round_id: int, own: np.ndarray | None) -> Knowledge:
        flat = flatten(model.params).astype(np.float64)
        honest = (
            self.honest_updates(attacker._task_id, model, round_id)
            if self.attack.omniscient
            else np.zeros((0, flat.size))
        )
        return Knowledge(
            model=flat,
            own=own,
            honest=honest,
            n=len(self.honest) + len(self.attackers),
            f=len(self.attackers),
            rng=np.random.default_rng([attacker.seed, round_id]),
        )

    def honest_updates(self, task_id: int | None, model, round_id: int) -> np.ndarray:
        """(h, d) float64: every honest trainer's update of the round."""
        if self._round != (task_id, round_id) or self._updates is None:  # (both are set together)
            shapes = param_shapes(model.params)
            rows = []
            for t in self.honest:
                entry = t.journal.get("commit", task_id, round_id) if task_id is not None else None
                if entry is not None:
                    rows.append(flatten(decode_tensors(t.store.get(entry["cid"]), shapes)))
                else:
                    rows.append(flatten(t.train(model, round_id)))
            # a diverged honest update could not be committed: it is nobody's knowledge
            rows = [u for u in rows if np.all(np.isfinite(u)) and np.max(np.abs(u), initial=0.0) <= fp.CLIP]
            self._round = (task_id, round_id)
            self._updates = np.stack(rows).astype(np.float64) if rows else np.zeros((0, flatten(model.params).size))
        return self._updates


def arm(trainers: Sequence[Trainer]) -> None:
    """Connect the attackers among ``trainers``: one coordinator for the update
    attackers, one party for the Sybil identities."""
    from fedchain.sim.attacks.sybil import Sybil, SybilParty

    attackers = [t for t in trainers if isinstance(t, AttackTrainer)]
    if attackers:
        honest = [t for t in trainers if type(t) is Trainer]
        coordinator = Coordinator(attackers[0].attack, honest, attackers)
        for t in attackers:
            t.coordinator = coordinator
    sybils = [t for t in trainers if isinstance(t, Sybil)]
    if sybils:
        party = SybilParty(sybils)
        for s in sybils:
            s.party = party


def byzantine_count(cfg) -> int:
    """How many of a simulation's trainers run ``cfg.attack``: round(byzantine * trainers)."""
    if cfg.attack is None:
        if cfg.byzantine:
            raise ValueError("a Byzantine share needs an attack (--attack NAME)")
        return 0
    if not 0.0 <= cfg.byzantine <= 1.0:
        raise ValueError(f"the Byzantine share must lie in [0, 1], got {cfg.byzantine}")
    return int(round(cfg.byzantine * cfg.trainers))


def attack_trainer(name: str, num_classes: int):
    """The trainer class (or constructor) that runs attack ``name``."""
    from functools import partial

    from fedchain.sim.attacks import ATTACKS

    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    a = ATTACKS[name]
    if a.public:
        raise ValueError(f"{name} reads earlier rounds, which only the robustness benchmark gives an attacker so far")
    return a.trainer if a.protocol else partial(AttackTrainer, attack=a, num_classes=num_classes)
