"""Aggregation rules: one registry, one entry point, exact integers throughout.

Each rule is a module that declares ``RULE = Rule(...)`` (``registry``: its
parameters, the fewest updates it accepts, whether and how the contracts can
challenge it); this package registers its own below, and a rule written
elsewhere is added with ``register``. The contracts can challenge FedAvg,
FedMedian and FedTrimmedAvg value by value, and Krum, MultiKrum and Bulyan
through the distance table their votes commit to; the others only the quorum
and ``fedchain audit`` check.

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

from fedchain.learning.aggregate import bulyan, centeredclipping, fedavg, fedmedian, fedtrimmedavg, fltrust, krum, zeno
from fedchain.learning.aggregate.registry import (
    CHALLENGE_NONE,
    COMMON_PARAMS,
    MAX_COMMITS,
    RULES,
    Extra,
    Rule,
    aggregate_update,
    check_params,
    enough_updates,
    get,
    min_updates,
    needs_root_scores,
    needs_root_set,
    register,
    unregister,
    uses_prev_update,
)

# The built-in rules, in the order the CLI and the benchmarks list them.
for _rule in (
    fedavg.RULE,
    fedmedian.RULE,
    fedtrimmedavg.RULE,
    krum.RULE,
    krum.MULTIKRUM,
    bulyan.RULE,
    centeredclipping.RULE,
    fltrust.RULE,
    zeno.RULE,
):
    register(_rule)
del _rule

__all__ = [
    "CHALLENGE_NONE",
    "COMMON_PARAMS",
    "MAX_COMMITS",
    "RULES",
    "Extra",
    "Rule",
    "aggregate_update",
    "check_params",
    "enough_updates",
    "get",
    "min_updates",
    "needs_root_scores",
    "needs_root_set",
    "register",
    "unregister",
    "uses_prev_update",
]
