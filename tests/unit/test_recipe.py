"""Unit tests for fedchain.protocol.recipe: the canonical, hashed description of a task."""

import dataclasses
import json
from collections.abc import Mapping

import pytest
from eth_utils import keccak

from fedchain.protocol.recipe import DP_FIELDS, Recipe

RECIPES = [
    Recipe(),
    Recipe(model="cnn", dataset="mnist", input_shape=(1, 28, 28), lr=0.01, momentum=0.9, epochs=3),
    Recipe(model="logreg", dataset="mnist1d", input_shape=(40,), proximal_mu=0.1, batch_size=7),
    Recipe(model="mlp", base_model="bafkrei-base", lora_rank=2, lora_targets=("hidden",), lora_full=("out",)),
    Recipe(dp="client", dp_noise=1.5, dp_clip=0.5, dp_delta=1e-5, dp_max_epsilon=8),
    Recipe(secagg=True, dp="client", dp_noise=1.0, dp_clip=1.0, dp_delta=1e-5),
]
EXAMPLE_DP = dict(dp="example", dp_noise=1.0, dp_clip=1.0, dp_delta=1e-5, dp_sampling_rate=0.05, dp_steps=10)
CLIENT_DP = dict(dp="client", dp_sampling_rate=0.0, dp_steps=0)


def different(value):
    """A value of the same type that differs from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.125
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return value + (1,)
    if isinstance(value, Mapping):
        return dict(value) | {"x": 1}
    raise TypeError(f"no rule for {type(value).__name__}")


FINE_TUNING = ("base_model", "lora_rank", "lora_alpha", "lora_targets", "lora_full")


@pytest.mark.parametrize("recipe", RECIPES)
def test_bytes_round_trip(recipe):
    data = recipe.to_bytes()
    back = Recipe.from_bytes(data)
    assert back == recipe
    assert isinstance(back.input_shape, tuple)
    assert back.to_bytes() == data
    assert back.hash == recipe.hash


@pytest.mark.parametrize("recipe", RECIPES)
def test_bytes_are_canonical_json(recipe):
    data = recipe.to_bytes()
    d = json.loads(data)
    assert list(d) == sorted(d)
    assert b" " not in data and b"\n" not in data
    # every field, except a Flower client's param_shapes and source hash where there are none
    # (older recipes keep their bytes)
    fields = {f.name for f in dataclasses.fields(Recipe)}
    absent = ({"param_shapes"} if not recipe.param_shapes else set()) | (
        {"model_source"} if not recipe.model_source else set()
    )
    absent |= {k for k in (*FINE_TUNING, *DP_FIELDS, "secagg") if not getattr(recipe, k)}  # none where unset
    assert set(d) == fields - absent


@pytest.mark.parametrize("recipe", RECIPES)
def test_hash_binds_the_bytes_and_the_challenge_rule(recipe):
    # keccak(abi_encode(rule, keccak(json))): what challenges.vy recomputes
    words = b"".join(v.to_bytes(32, "big") for v in recipe.challenge_rule)
    assert recipe.hash == keccak(words + keccak(recipe.to_bytes()))
    assert len(recipe.hash) == 32
    assert Recipe(**dataclasses.asdict(recipe) | {"input_shape": recipe.input_shape}).hash == recipe.hash


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Recipe)])
def test_changing_any_field_changes_the_hash(field):
    base = Recipe()
    change = {field: different(getattr(base, field))}
    if field == "param_shapes":  # only a Flower client's model lists its shapes
        change = {"model": "flower:module:client_fn", "param_shapes": ((2, 3), (3,))}
    if field in ("lora_rank", "lora_targets", "lora_full", "lora_alpha"):  # a LoRA task sets them together
        change = {"base_model": "bafkrei-base", "lora_rank": 2, "lora_targets": ("hidden",)} | change
    if field in DP_FIELDS:  # a DP task sets its mechanism and parameters together
        base = Recipe(**EXAMPLE_DP)
        change = {field: different(getattr(base, field))} if field != "dp" else CLIENT_DP
    changed = dataclasses.replace(base, **change)
    assert changed != base
    assert changed.hash != base.hash
    assert Recipe.from_bytes(changed.to_bytes()) == changed


def test_from_bytes_rejects_unknown_fields():
    d = json.loads(Recipe().to_bytes()) | {"surprise": 1}
    with pytest.raises(TypeError):
        Recipe.from_bytes(json.dumps(d).encode())


def test_train_config_follows_the_recipe():
    r = Recipe(epochs=4, batch_size=16, lr=0.2, momentum=0.5, proximal_mu=0.01)
    cfg = r.train_config()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum, cfg.proximal_mu) == (4, 16, 0.2, 0.5, 0.01)
    assert r.train_config(epochs=9).epochs == 9


def test_equal_recipes_have_equal_hashes():
    assert Recipe(lr=1) == Recipe(lr=1.0)
    assert Recipe(lr=1).hash == Recipe(lr=1.0).hash


def test_rule_params_are_canonical_and_round_trip():
    r = Recipe(rule="krum", rule_params={"num_malicious_nodes": 2.0, "nnm": True})
    assert r == Recipe(rule="krum", rule_params={"nnm": True, "num_malicious_nodes": 2})
    assert r.hash == Recipe(rule="krum", rule_params={"nnm": True, "num_malicious_nodes": 2}).hash
    assert json.loads(r.to_bytes())["rule_params"] == {"nnm": True, "num_malicious_nodes": 2}
    assert Recipe.from_bytes(r.to_bytes()) == r
    assert r != Recipe(rule="krum", rule_params={"nnm": True, "num_malicious_nodes": 3})
    assert hash(r) == hash(Recipe.from_bytes(r.to_bytes()))
    with pytest.raises(TypeError):
        r.rule_params["nnm"] = False  # read-only
    with pytest.raises(ValueError, match="JSON scalar"):
        Recipe(rule_params={"beta": [0.1]})


def test_the_challenge_rule_names_what_the_contract_can_recompute():
    assert Recipe(rule="fedavg").challenge_rule == (1, 0, 1, 1)
    assert Recipe(rule="fedmedian").challenge_rule == (2, 0, 1, 1)
    assert Recipe(rule="fedtrimmedavg").challenge_rule == (3, 1, 5, 1)  # Flower's default beta 0.2
    assert Recipe(rule="fedtrimmedavg", rule_params={"beta": 0.3}).challenge_rule == (3, 3, 10, 1)
    assert Recipe(rule="fedavg", rule_params={"nnm": True, "num_malicious_nodes": 2}).challenge_rule == (0, 0, 1, 1)
    assert Recipe(rule="krum").challenge_rule == (4, 0, 1, 1)
    assert Recipe(rule="krum", rule_params={"num_malicious_nodes": 2}).challenge_rule == (4, 2, 1, 1)
    assert Recipe(rule="multikrum", rule_params={"num_malicious_nodes": 1}).challenge_rule == (5, 1, 0, 1)
    assert Recipe(
        rule="multikrum", rule_params={"num_malicious_nodes": 1, "num_nodes_to_select": 3}
    ).challenge_rule == (5, 1, 3, 1)
    assert Recipe(rule="multikrum", rule_params={"nnm": True, "num_malicious_nodes": 1}).challenge_rule == (0, 0, 1, 1)
    assert Recipe(rule="bulyan", rule_params={"num_malicious_nodes": 1}).challenge_rule == (6, 1, 1, 1)
    assert Recipe(rule="fedavg", score="validation").challenge_rule == (1, 0, 1, 0)
    assert Recipe(rule="fedavg", chunk_size=128).challenge_rule == (0, 0, 1, 0)
    assert Recipe(rule="fedavg").hash != Recipe(rule="fedmedian").hash


def test_the_command_line_pays_by_the_innovation_score_where_a_task_can_run_it():
    import typer

    from fedchain.cli.checks import score

    assert score(None, "cnn") == "innovation"  # the default: public-information free-riders earn next to nothing
    assert score("cosine", "cnn") == "cosine"  # asked for
    # a task the root-set scores cannot run keeps the cosine score, unasked
    assert score(None, "cnn", flower=True) == "cosine"
    assert score(None, "cnn", lora=True) == "cosine"
    assert score(None, "cnn", secagg=True) == "cosine"
    assert score(None, "tests.byo.tiny_net:make") == "cosine"
    with pytest.raises(typer.BadParameter, match="not one of"):
        score("median", "cnn")
