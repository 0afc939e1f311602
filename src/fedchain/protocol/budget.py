"""Each trainer's privacy budget, from the chain: the epsilon its released updates have spent.

A DP task's recipe fixes the mechanism and its parameters (``Recipe.dp_spec``); the chain
records every round each trainer took part in. A trainer takes part in a round when it
commits: its update blob exists from then on (it serves it to anyone who asks), revealed or
not, so commits are what is counted, the conservative reading. Anyone with the event log and
the recipe gets the same figures (``fedchain privacy``, the simulation's report).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fedchain.chain.abi import Event
from fedchain.learning import privacy
from fedchain.protocol.recipe import Recipe


@dataclass(frozen=True)
class Spent:
    """One trainer's budget in one task."""

    node: str
    rounds: int  # rounds it committed an update in
    epsilon: float  # at the recipe's delta; inf for a task without noise


def participation(events: Iterable[Event], task_id: int) -> dict[str, int]:
    """Rounds each trainer committed in, for ``task_id``, from its ``Committed`` events."""
    rounds: dict[str, set[int]] = {}
    for e in events:
        if e.name == "Committed" and e.args["task_id"] == task_id:
            rounds.setdefault(e.args["node"], set()).add(e.args["round_id"])
    return {node: len(r) for node, r in sorted(rounds.items())}


def spent(recipe: Recipe, events: Iterable[Event], task_id: int) -> list[Spent]:
    """Every trainer's epsilon so far in ``task_id`` (empty for a task without DP)."""
    spec = recipe.dp_spec
    if spec is None:
        return []
    return [Spent(node, k, privacy.epsilon(spec, k)) for node, k in participation(events, task_id).items()]


def next_epsilon(recipe: Recipe, rounds_so_far: int) -> float:
    """The epsilon a trainer would have after one more round (0.0 without DP: no budget)."""
    spec = recipe.dp_spec
    return 0.0 if spec is None else privacy.epsilon(spec, rounds_so_far + 1)


def report(recipe: Recipe, events: Iterable[Event], task_id: int) -> dict:
    """A DP task's privacy as JSON: the mechanism and its parameters, the cap, and every
    trainer's rounds and epsilon (``spent``): what ``fedchain privacy --json`` prints and the
    simulation's report holds."""
    rows = spent(recipe, events, task_id)
    return {
        "mechanism": recipe.dp,
        "delta": recipe.dp_delta,
        "noise_multiplier": recipe.dp_noise,
        "clip": recipe.dp_clip,
        "max_epsilon": recipe.dp_max_epsilon or None,
        "max_rounds_per_trainer": recipe.max_dp_rounds or None,
        "max_epsilon_spent": max((s.epsilon for s in rows), default=0.0),
        "trainers": [{"address": s.node, "rounds": s.rounds, "epsilon": s.epsilon} for s in rows],
    }
