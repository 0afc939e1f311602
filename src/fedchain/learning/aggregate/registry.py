"""The registry of aggregation rules: everything the rest of fedchain knows about a rule.

A rule is one module that declares ``RULE = Rule(...)`` (this package's modules,
or any module outside it) and one ``register(RULE)``. Nothing else names rules:
validators and the auditor run ``rule.run`` through ``aggregate_update``, the
recipe encodes ``chain_code`` and ``chain_params`` in its challenge rule, the
sponsor caps a round's commitments at ``max_commits``, the watcher's fraud
proofs recompute ``selection``, and the robustness benchmark configures
``tolerating`` (``tests/unit/test_rule_names.py`` fails if code outside this
package compares a rule's name).

On chain. A rule whose result the challenge contracts can recompute has a
``chain_code``: its ``RULE_*`` constant in ``model_judge.vy`` / ``judging.vy``
(``tests/unit/test_rule_registry.py`` checks every code against them), so a new
challengeable rule needs a judge path in the contracts too. A rule with a
``selection`` (the Krum rules) is judged from the distance table its votes
commit to (``protocol.distances``; ``table_judge.vy`` and ``krum.vy``). Every
other rule has code ``CHALLENGE_NONE``: the committee's quorum decides, and a
watcher or ``fedchain audit`` can only report a wrong result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate import nnm
from fedchain.learning.aggregate.common import SEAT, bool_param, malicious, stack, vector
from fedchain.learning.fixedpoint import QMAX

CHALLENGE_NONE = 0  # the contracts' rule code for a rule they cannot recompute
CHALLENGE_SECAGG = 7  # FedAvg under secure aggregation, judged by secagg_judge.vy (param1: the model's length)
MAX_COMMITS = 256  # tasks.vy: the most commitments a round may accept (MAX_REVEALS)
COMMON_PARAMS = frozenset({"nnm", "num_malicious_nodes"})  # NNM pre-aggregation, with its f, for every rule


def _no_check(params: Mapping[str, Any]) -> None:
    return None


def _one(params: Mapping[str, Any]) -> int:
    return 1


def _no_chain_params(params: Mapping[str, Any]) -> tuple[int, int]:
    return 0, 1


def _no_params(trainers: int, share: float) -> dict:
    return {}


@dataclass(frozen=True)
class Extra:
    """What some rules need beyond the updates and their sample counts."""

    root_update: np.ndarray | None = None
    prev_update: np.ndarray | None = None
    root_scores: Sequence[int] | None = None
    seats: Sequence[int] | None = None


@dataclass(frozen=True, eq=False)
class Rule:
    """An aggregation rule and everything the protocol needs to know about it.

    Parameters
    ----------
    name : str
        The recipe's ``rule`` (Flower's name where Flower has the rule).
    run : callable
        ``run(x, samples, params, extra)``: the aggregate update (int64) of the checked
        (n, d) int64 updates ``x`` in reveal order; ``extra`` is an ``Extra``.
    title : str
        How prose writes it (default: ``name``).
    params : mapping
        The parameter names it accepts, each with its default (None: derived from the
        round, as the module says); ``nnm`` and ``num_malicious_nodes`` always are.
    check : callable
        ``check(params)`` raises ``LearningError`` for a bad value (names are checked
        against ``params`` first).
    min_updates : callable
        ``min_updates(params)``: the fewest updates, counted in seats, it accepts (default 1).
    needs_root_set, needs_root_scores, uses_prev_update : bool
        Whether it needs the validators' own update on the root set (FLTrust), each
        update's root-set score (Zeno) or the previous round's aggregate update
        (centered clipping).
    chain_code : int
        The challenge contracts' code for it (``CHALLENGE_NONE``: not challengeable).
    chain_params : callable
        ``chain_params(params)``: the (param1, param2) the contracts read with the code.
    selection : callable, optional
        For a rule judged from a distance table: ``selection(x, params, seats)``, the
        updates it averages (index -> seats kept), as the contracts recompute them.
    max_commits : int
        The most commitments at which a round can still be challenged on chain (a
        distance table covers 64 reveals, a Bulyan value check fits a block up to ~24).
    tolerating : callable
        ``tolerating(trainers, share)``: parameters for tolerating that share of
        Byzantine trainers, what the robustness benchmark configures (default: none).
    masked_sum : bool
        Whether it is the samples-weighted mean of the updates, which secure aggregation
        computes from their masked sum without seeing any update (``Recipe.secagg``).
    """

    name: str
    run: Callable[[np.ndarray, list[int], Mapping[str, Any], Extra], np.ndarray]
    title: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[Mapping[str, Any]], object] = _no_check
    min_updates: Callable[[Mapping[str, Any]], int] = _one
    needs_root_set: bool = False
    needs_root_scores: bool = False
    uses_prev_update: bool = False
    chain_code: int = CHALLENGE_NONE
    chain_params: Callable[[Mapping[str, Any]], tuple[int, int]] = _no_chain_params
    selection: Callable[[np.ndarray, Mapping[str, Any], Sequence[int] | None], dict[int, int]] | None = None
    max_commits: int = MAX_COMMITS
    tolerating: Callable[[int, float], dict] = _no_params
    masked_sum: bool = False

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.name)

    @property
    def challengeable(self) -> bool:
        """Whether the challenge contracts can recompute its result (without NNM)."""
        return self.chain_code != CHALLENGE_NONE

    @property
    def distance_table(self) -> bool:
        """Whether its challengeable votes commit to a table of pairwise distances."""
        return self.selection is not None


# name -> rule, in registration order (the package registers its own first)
RULES: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Add ``rule`` to the registry; a name or a chain code already taken is refused."""
    if not isinstance(rule, Rule) or not rule.name or not isinstance(rule.name, str):
        raise LearningError(f"register needs a Rule with a name, got {rule!r}")
    if rule.name in RULES:
        raise LearningError(f"aggregation rule {rule.name!r} is already registered")
    if rule.challengeable:
        taken = [r.name for r in RULES.values() if r.chain_code == rule.chain_code]
        if taken:
            raise LearningError(f"rule {rule.name!r}: chain code {rule.chain_code} is taken by {taken[0]!r}")
    elif rule.selection is not None:
        raise LearningError(f"rule {rule.name!r}: a distance-table selection only matters to a challengeable rule")
    if not 1 <= rule.max_commits <= MAX_COMMITS:
        raise LearningError(f"rule {rule.name!r}: max_commits must be between 1 and {MAX_COMMITS}")
    RULES[rule.name] = rule
    return rule


def unregister(name: str) -> Rule:
    """Remove the rule ``name`` (a test or a plugin that registered it undoes it)."""
    rule = get(name)
    del RULES[name]
    return rule


def get(name: str) -> Rule:
    """The registered rule ``name``; a clear error naming the known ones otherwise."""
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise LearningError(f"unknown aggregation rule {name!r}; known rules: {', '.join(RULES)}") from None


def needs_root_set(rule: str) -> bool:
    """Whether validators must supply their own update on a root data set (FLTrust)."""
    return get(rule).needs_root_set


def needs_root_scores(rule: str) -> bool:
    """Whether the rule selects by each update's root-set score (Zeno)."""
    return get(rule).needs_root_scores


def uses_prev_update(rule: str) -> bool:
    """Whether the rule uses the previous round's aggregate update (centered clipping)."""
    return get(rule).uses_prev_update


def check_params(rule: str, params: Mapping[str, Any]) -> None:
    """Reject parameter names the rule does not know (a typo would otherwise fall back to a
    default) and values it cannot use."""
    r = get(rule)
    unknown = set(params) - set(r.params) - COMMON_PARAMS
    if unknown:
        allowed = ", ".join(sorted(set(r.params) | COMMON_PARAMS))
        raise LearningError(f"rule {rule!r} has no parameter {', '.join(sorted(unknown))}; it accepts: {allowed}")
    if bool_param(params, "nnm") and "num_malicious_nodes" not in params:
        raise LearningError("nnm needs 'num_malicious_nodes' (f): each update is mixed with its n - f nearest")
    if "num_malicious_nodes" in params:
        malicious(params)
    r.check(params)


def min_updates(rule: str, params: Mapping[str, Any]) -> int:
    """The fewest updates the rule accepts with these parameters (Krum: 2f + 3, Bulyan: 4f + 3,
    MultiKrum: also m, NNM and Zeno: f + 1), counted in seats (``enough_updates``): one update
    with k seats counts as its k copies would; ``aggregate_update`` raises below it. Rejected
    updates shrink a round, so a caller decides what a round with too few valid updates does."""
    check_params(rule, params)
    need = get(rule).min_updates(params)
    return max(need, malicious(params) + 1) if params.get("nnm", False) else need


def enough_updates(rule: str, params: Mapping[str, Any], seats: Sequence[int]) -> bool:
    """Whether updates with these seats (basis points, one per update) are enough for the rule:
    at least ``min_updates`` seats' worth (one update and one seat each: at least that many)."""
    return len(seats) > 0 and sum(seats) >= min_updates(rule, params) * SEAT


def aggregate_update(
    rule: str,
    params: Mapping[str, Any],
    updates: Sequence[np.ndarray],
    samples: Sequence[int],
    *,
    root_update: np.ndarray | None = None,
    prev_update: np.ndarray | None = None,
    root_scores: Sequence[int] | None = None,
    seats: Sequence[int] | None = None,
) -> np.ndarray:
    """The aggregate update (int64) of ``updates`` under ``rule`` with ``params``.

    Parameters
    ----------
    rule : str
        A registered rule's name.
    params : Mapping[str, Any]
        The rule's parameters (plain JSON values), plus optional ``nnm``.
    updates : Sequence[np.ndarray]
        The accepted updates in reveal-index order, int64 fixed point, |q| <= QMAX.
    samples : Sequence[int]
        Their revealed sample counts (only FedAvg and MultiKrum's average weigh by them).
    root_update : np.ndarray, optional
        FLTrust's reference: the validators' own update on the root set (|q| <= 2 * QMAX).
    prev_update : np.ndarray, optional
        The previous round's aggregate update, centered clipping's starting centre
        (None: start from zero).
    root_scores : sequence of int, optional
        Zeno's: each update's root-set score (``validation_score.validation_scores``
        of the raw updates, before any NNM mixing), in the order of ``updates``.
    seats : sequence of int, optional
        The seats each update's trainer stands for, in basis points (one each if
        omitted). Every rule counts each update once per seat, as copies of it
        from one-seat identities would count (docs/robustness.md, "Sybil"); FedAvg
        weighs by sample counts.
    """
    r = get(rule)
    params = dict(params)
    check_params(rule, params)
    x = stack(updates)
    if len(samples) != len(x):
        raise LearningError(f"{len(x)} updates but {len(samples)} sample counts")
    d = x.shape[1]
    root_update = vector(root_update, d, "root_update", 2 * QMAX)
    prev_update = vector(prev_update, d, "prev_update", 2 * QMAX)
    if r.needs_root_set and root_update is None:
        raise LearningError(f"rule {rule!r} needs root_update: the validators' own update on the root data set")
    if r.needs_root_scores and root_scores is None:
        raise LearningError(f"rule {rule!r} needs root_scores: each update's score on the validators' root set")
    if params.get("nnm", False):
        x = nnm.nnm(x, malicious(params), seats)
    return r.run(x, list(samples), params, Extra(root_update, prev_update, root_scores, seats))
