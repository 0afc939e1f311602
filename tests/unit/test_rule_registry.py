"""The aggregation-rule registry: what it refuses, what it tells, and that its chain facts
are the contracts' (codes, the distance-table range, the commitment cap)."""

from __future__ import annotations

import dataclasses
import pkgutil
import re
from importlib import import_module

import numpy as np
import pytest

from fedchain.chain.interface import CONTRACTS_DIR
from fedchain.errors import LearningError
from fedchain.learning import aggregate
from fedchain.learning.aggregate import Rule, registry
from fedchain.protocol.distances import MAX_TABLE
from fedchain.protocol.recipe import Recipe
from rules import seat_mean

# the contracts' constant for each rule the challenge contracts can recompute
CONTRACT_NAMES = {
    "fedavg": "RULE_FEDAVG",
    "fedmedian": "RULE_MEDIAN",
    "fedtrimmedavg": "RULE_TRIMMED",
    "krum": "RULE_KRUM",
    "multikrum": "RULE_MULTIKRUM",
    "bulyan": "RULE_BULYAN",
}


def constants(name: str) -> dict[str, str]:
    """``NAME: constant(uint256) = VALUE`` of one contract, VALUE as written."""
    text = (CONTRACTS_DIR / f"{name}.vy").read_text()
    return dict(re.findall(r"^(\w+): constant\(uint256\) = ([\w.]+)", text, re.MULTILINE))


def contract_codes() -> dict[str, int]:
    judging = {k: int(v) for k, v in constants("judging").items() if k.startswith("RULE_")}
    model_judge = {
        k: judging[v.split(".")[1]] if v.startswith("judging.") else int(v)
        for k, v in constants("model_judge").items()
        if k.startswith("RULE_")
    }
    assert judging.items() <= model_judge.items()
    return model_judge


@pytest.fixture
def registered():
    rule = aggregate.register(seat_mean.RULE)
    yield rule
    aggregate.unregister(rule.name)


def test_every_module_of_the_package_registers_the_rules_it_declares():
    declared = []
    for info in pkgutil.iter_modules(aggregate.__path__):
        module = import_module(f"{aggregate.__name__}.{info.name}")
        declared += [v for v in vars(module).values() if isinstance(v, Rule)]
    assert {id(r) for r in declared} == {id(r) for r in aggregate.RULES.values()}
    assert len(declared) == len(aggregate.RULES) == 9


def test_chain_codes_are_the_contracts():
    codes = contract_codes()
    on_chain = {r.name: r.chain_code for r in aggregate.RULES.values() if r.challengeable}
    assert on_chain == {name: codes[const] for name, const in CONTRACT_NAMES.items()}
    # model_judge.vy judges the codes RULE_FEDAVG..RULE_BULYAN: each is one registered rule
    assert sorted(on_chain.values()) == list(range(codes["RULE_FEDAVG"], codes["RULE_BULYAN"] + 1))
    # the contracts take codes RULE_KRUM..RULE_BULYAN as the rules judged from a distance table
    tables = {r.chain_code for r in aggregate.RULES.values() if r.distance_table}
    assert tables == set(range(codes["RULE_KRUM"], codes["RULE_BULYAN"] + 1))
    availability = {k: int(v) for k, v in constants("availability").items() if k.startswith("RULE_")}
    assert availability == {"RULE_KRUM": codes["RULE_KRUM"], "RULE_BULYAN": codes["RULE_BULYAN"]}


def test_commitment_caps_are_what_a_challenge_can_judge():
    assert registry.MAX_COMMITS == int(constants("tasks")["MAX_REVEALS"])
    caps = {r.name: r.max_commits for r in aggregate.RULES.values()}
    assert caps == dict.fromkeys(caps, registry.MAX_COMMITS) | {"krum": MAX_TABLE, "multikrum": MAX_TABLE, "bulyan": 24}


def test_a_name_or_a_chain_code_is_registered_once():
    with pytest.raises(LearningError, match="'krum' is already registered"):
        aggregate.register(dataclasses.replace(seat_mean.RULE, name="krum"))
    with pytest.raises(LearningError, match="chain code 2 is taken by 'fedmedian'"):
        aggregate.register(dataclasses.replace(seat_mean.RULE, chain_code=2))
    with pytest.raises(LearningError, match="only matters to a challengeable rule"):
        aggregate.register(dataclasses.replace(seat_mean.RULE, selection=lambda x, p, s: {}))
    with pytest.raises(LearningError, match="max_commits must be between 1 and 256"):
        aggregate.register(dataclasses.replace(seat_mean.RULE, max_commits=257))
    with pytest.raises(LearningError, match="needs a Rule"):
        aggregate.register("seat_mean")
    assert "seat_mean" not in aggregate.RULES  # nothing refused was added


def test_an_unknown_rule_is_a_clear_error_naming_the_known_ones():
    with pytest.raises(
        LearningError,
        match="unknown aggregation rule 'seat_mean'; known rules: fedavg, fedmedian, "
        "fedtrimmedavg, krum, multikrum, bulyan, centeredclipping, fltrust, zeno",
    ):
        aggregate.get("seat_mean")
    with pytest.raises(LearningError, match="unknown aggregation rule"):
        aggregate.unregister("seat_mean")


def test_a_registered_rule_is_known_everywhere_until_unregistered(registered):
    x = np.array([[10, -7, 3], [0, 5, -1], [4, 4, 5]], dtype=np.int64)
    seats = [10_000, 20_000, 10_000]
    # (10 + 0 + 4, -7 + 10 + 4, 3 - 2 + 5) over 4 seats, times 3/2, floored
    want = np.array([(3 * 14) // 8, (3 * 7) // 8, (3 * 6) // 8])
    got = aggregate.aggregate_update("seat_mean", {"server_lr": 1.5}, list(x), [1, 1, 1], seats=seats)
    assert np.array_equal(got, want) and got.dtype == np.int64
    assert aggregate.min_updates("seat_mean", {}) == 1
    assert aggregate.min_updates("seat_mean", {"nnm": True, "num_malicious_nodes": 2}) == 3
    with pytest.raises(
        LearningError, match="has no parameter server_rate; it accepts: nnm, num_malicious_nodes, server_lr"
    ):
        aggregate.check_params("seat_mean", {"server_rate": 1})
    with pytest.raises(LearningError, match=r"server_lr must be in \(0, 2\]"):
        aggregate.check_params("seat_mean", {"server_lr": 0})
    recipe = Recipe(rule="seat_mean", rule_params={"server_lr": 1.5})
    assert recipe.challenge_rule == (registry.CHALLENGE_NONE, 0, 1, 1)
    assert aggregate.get("seat_mean").title == "seat-weighted mean"
    aggregate.unregister("seat_mean")
    with pytest.raises(LearningError, match="unknown aggregation rule 'seat_mean'"):
        aggregate.aggregate_update("seat_mean", {}, list(x), [1, 1, 1])
    aggregate.register(registered)  # for the fixture to remove


def test_seat_mean_counts_a_trainer_once_per_seat():
    # one update with two seats is two one-seat copies of it
    x = np.array([[7, -3], [-2, 9]], dtype=np.int64)
    assert np.array_equal(
        seat_mean.seat_mean(x, seats=[20_000, 10_000]), seat_mean.seat_mean(np.array([x[0], x[0], x[1]]))
    )
    assert np.array_equal(seat_mean.seat_mean(x), np.array([5 // 2, 6 // 2]))
    assert np.array_equal(seat_mean.seat_mean(np.array([[-3], [0]])), np.array([-2]))  # floor, not truncation
