"""Aggregation rules: one registry, one entry point, exact integers throughout.

``aggregate_update(rule, params, updates, samples, root_update=..., prev_update=...)``
returns the round's aggregate UPDATE as int64 fixed point; the new model is
``clip_fixed(model + update)``. ``rule`` and ``params`` come from the task's
recipe (``Recipe.rule``, ``Recipe.rule_params``), so every validator runs the
same rule with the same parameters and gets the same bits.

Rules (Flower's names where Flower has the rule), one module each:

=================  ===========================================  ==========================
name               parameters (default)                         module
=================  ===========================================  ==========================
fedavg             -                                            ``fedavg``
fedmedian          -                                            ``fedmedian``
fedtrimmedavg      beta (0.2)                                   ``fedtrimmedavg``
krum               num_malicious_nodes (0)                      ``krum``
multikrum          num_malicious_nodes (0), num_nodes_to_select ``krum``
                   (n - f)
bulyan             num_malicious_nodes (0)                      ``bulyan``
centeredclipping   tau (10.0, model units), iterations (1)      ``centeredclipping``
fltrust            - (needs ``root_update``)                    ``fltrust``
zeno               num_malicious_nodes (0), clip (false)        ``zeno``
                   (needs ``root_scores``)
=================  ===========================================  ==========================

Every rule also accepts ``nnm: true``: nearest-neighbour mixing (``nnm``) first
replaces each update by the mean of its n - f nearest, with f =
``num_malicious_nodes`` (required then). Unknown rules, unknown or bad
parameters, and a missing root update for FLTrust (root-set scores for Zeno) raise ``LearningError``;
``min_updates(rule, params)`` is the fewest updates a rule accepts (Krum
2f + 3, Bulyan 4f + 3), so a caller can tell a short round from a bad recipe.

Inputs are the accepted updates in reveal-index order; wherever a rule must
break a tie (equal Krum scores, equally distant neighbours, Bulyan's values
equally close to the median) the lower reveal index wins, so results depend
on that documented order and on nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.aggregate import (
    bulyan,
    centeredclipping,
    fedavg,
    fedmedian,
    fedtrimmedavg,
    fltrust,
    krum,
    nnm,
    zeno,
)
from fedchain.learning.aggregate.common import SEAT, int_param, stack, vector
from fedchain.learning.fixedpoint import QMAX


@dataclass(frozen=True)
class Rule:
    """An aggregation rule as the registry knows it.

    ``run(x, samples, params, extra)`` gets the updates as one checked (n, d) int64
    array and returns the aggregate update; ``extra`` holds what some rules need
    beyond the updates.
    """

    name: str
    run: Callable[..., np.ndarray]
    params: frozenset[str] = frozenset()
    needs_root_set: bool = False  # FLTrust: the validators' own update on the root set
    uses_prev_update: bool = False
    needs_root_scores: bool = False  # Zeno: each update's root-set score


@dataclass(frozen=True)
class Extra:
    root_update: np.ndarray | None = None
    prev_update: np.ndarray | None = None
    root_scores: Sequence[int] | None = None
    seats: Sequence[int] | None = None


def bool_param(params: Mapping[str, Any], name: str) -> bool:
    if not isinstance(params.get(name, False), bool):
        raise LearningError(f"parameter {name!r} must be true or false, got {params[name]!r}")
    return params.get(name, False)


def _f(params: Mapping[str, Any]) -> int:
    return int_param(params, "num_malicious_nodes", 0)


RULES: dict[str, Rule] = {r.name: r for r in [
    Rule("fedavg", lambda x, s, p, e: fedavg.aggregate_update(list(x), s)),
    Rule("fedmedian", lambda x, s, p, e: fedmedian.fedmedian(x, e.seats)),
    Rule("fedtrimmedavg", lambda x, s, p, e: fedtrimmedavg.fedtrimmedavg(x, fedtrimmedavg.beta_of(p), e.seats),
         frozenset({"beta"})),
    Rule("krum", lambda x, s, p, e: krum.krum(x, _f(p), e.seats), frozenset({"num_malicious_nodes"})),
    Rule("multikrum", lambda x, s, p, e: krum.multikrum(
        x, s, _f(p), int_param(p, "num_nodes_to_select", None, lo=1) if "num_nodes_to_select" in p else None,
        e.seats),
         frozenset({"num_malicious_nodes", "num_nodes_to_select"})),
    Rule("bulyan", lambda x, s, p, e: bulyan.bulyan(x, _f(p), e.seats), frozenset({"num_malicious_nodes"})),
    Rule("centeredclipping", lambda x, s, p, e: centeredclipping.centered_clipping(
        x, centeredclipping.tau_of(p), int_param(p, "iterations", 1, lo=1), e.prev_update, e.seats),
         frozenset({"tau", "iterations"}), uses_prev_update=True),
    Rule("fltrust", lambda x, s, p, e: fltrust.fltrust(x, e.root_update, e.seats), needs_root_set=True),
    Rule("zeno", lambda x, s, p, e: zeno.zeno(x, s, e.root_scores, _f(p), bool_param(p, "clip"), e.seats),
         frozenset({"num_malicious_nodes", "clip"}), needs_root_scores=True),
]}

COMMON_PARAMS = frozenset({"nnm", "num_malicious_nodes"})


def rule_of(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise LearningError(f"unknown aggregation rule {name!r}; known rules: {', '.join(sorted(RULES))}") from None


def needs_root_set(rule: str) -> bool:
    """Whether validators must supply their own update on a root data set (FLTrust)."""
    return rule_of(rule).needs_root_set


def needs_root_scores(rule: str) -> bool:
    """Whether the rule selects by each update's root-set score (Zeno)."""
    return rule_of(rule).needs_root_scores


def uses_prev_update(rule: str) -> bool:
    """Whether the rule uses the previous round's aggregate update (centered clipping)."""
    return rule_of(rule).uses_prev_update


def check_params(rule: str, params: Mapping[str, Any]) -> None:
    """Reject parameter names the rule does not know (a typo would otherwise fall back to a default)."""
    r = rule_of(rule)
    unknown = set(params) - r.params - COMMON_PARAMS
    if unknown:
        allowed = ", ".join(sorted(r.params | COMMON_PARAMS))
        raise LearningError(f"rule {rule!r} has no parameter {', '.join(sorted(unknown))}; it accepts: {allowed}")
    for flag in ("nnm", "clip"):
        bool_param(params, flag)
    if params.get("nnm", False) and "num_malicious_nodes" not in params:
        raise LearningError("nnm needs 'num_malicious_nodes' (f): each update is mixed with its n - f nearest")


def min_updates(rule: str, params: Mapping[str, Any]) -> int:
    """The fewest updates the rule accepts with these parameters (Krum: 2f + 3, Bulyan: 4f + 3,
    MultiKrum: also m, NNM and Zeno: f + 1), counted in seats (``enough_updates``): one update
    with k seats counts as its k copies would; ``aggregate_update`` raises below it. Rejected
    updates shrink a round, so a caller decides what a round with too few valid updates does."""
    check_params(rule, params)
    f = _f(params) if rule in ("krum", "multikrum", "bulyan", "zeno") or params.get("nnm", False) else 0
    need = {"krum": 2 * f + 3, "multikrum": max(2 * f + 3, int_param(params, "num_nodes_to_select", 1, lo=1)),
            "bulyan": 4 * f + 3, "zeno": f + 1}.get(rule, 1)
    return max(need, f + 1) if params.get("nnm", False) else need


def enough_updates(rule: str, params: Mapping[str, Any], seats: Sequence[int]) -> bool:
    """Whether updates with these seats (basis points, one per update) are enough for the rule:
    at least ``min_updates`` seats' worth (one update and one seat each: at least that many)."""
    return len(seats) > 0 and sum(seats) >= min_updates(rule, params) * SEAT


def aggregate_update(rule: str, params: Mapping[str, Any], updates: Sequence[np.ndarray], samples: Sequence[int], *,
                     root_update: np.ndarray | None = None, prev_update: np.ndarray | None = None,
                     root_scores: Sequence[int] | None = None, seats: Sequence[int] | None = None) -> np.ndarray:
    """The aggregate update (int64) of ``updates`` under ``rule`` with ``params``.

    Parameters
    ----------
    rule : str
        A name in ``RULES``.
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
    r = rule_of(rule)
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
        x = nnm.nnm(x, _f(params), seats)
    return r.run(x, list(samples), params, Extra(root_update, prev_update, root_scores, seats))


__all__ = ["RULES", "Rule", "aggregate_update", "check_params", "enough_updates", "min_updates", "needs_root_scores",
           "needs_root_set", "rule_of", "uses_prev_update"]
