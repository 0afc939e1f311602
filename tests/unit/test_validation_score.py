"""Unit tests for the root-set score: the exact integer forward pass (fedchain.learning.exact),
the validation score and FLTrust's root update (fedchain.learning.validation_score), and
the recipe's root set (fedchain.protocol.root_set)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedchain.errors import LearningError
from fedchain.learning import exact
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate.common import SEAT as BPS
from fedchain.learning.aggregate.common import weighted_upper_median
from fedchain.learning.data import load_dataset, partition
from fedchain.learning.models import build_model
from fedchain.learning.scoring import scores as cosine_scores
from fedchain.learning.train import TrainConfig, flatten, get_params, set_params, train_local, unflatten
from fedchain.learning.validation_score import root_indices, root_update, true_class_mass, validation_scores
from fedchain.protocol import root_set as rs
from fedchain.protocol.recipe import Recipe

torch.set_num_threads(1)


@functools.cache
def digits():
    return load_dataset("digits", seed=0)


@functools.cache
def trained(model: str, epochs: int = 4):
    """(template, fixed-point vector) of a model trained on digits."""
    data = digits()
    net = build_model(model, data.input_shape, data.num_classes, seed=0)
    p = train_local(net, get_params(net), data.x_train, data.y_train, TrainConfig(epochs=epochs, lr=0.2), seed=0)
    return p, fp.to_fixed(flatten(p))


def float_logits(model: str, template, q, x) -> np.ndarray:
    net = build_model(model, x.shape[1:], 10)
    set_params(net, unflatten(fp.from_fixed(q), template))
    with torch.inference_mode():
        return net(torch.from_numpy(np.ascontiguousarray(x))).numpy()


# -- the exact forward pass


@pytest.mark.parametrize("model", ["logreg", "mlp", "cnn"])
def test_exact_predictions_agree_with_the_float_model(model):
    data = digits()
    template, q = trained(model)
    pred = exact.predict(model, exact.int_params(q, template), exact.quantize_inputs(data.x_test))
    ref = float_logits(model, template, q, data.x_test).argmax(1)
    assert (pred == ref).mean() >= 0.99
    assert (pred == data.y_test).mean() > 0.8  # a trained model, not a constant one


@pytest.mark.parametrize("model, dataset", [("mlp", "mnist1d"), ("cnn", "mnist")])
def test_exact_logits_match_float_logits(model, dataset):
    data = load_dataset(dataset, seed=0)
    net = build_model(model, data.input_shape, data.num_classes, seed=3)
    template = get_params(net)
    q = fp.to_fixed(flatten(template))
    x = data.x_test[:40]
    z = exact.logits(model, exact.int_params(q, template), exact.quantize_inputs(x)) / fp.SCALE
    assert np.abs(z - float_logits(model, template, q, x)).max() < 2e-3


def test_argmax_ties_go_to_the_lowest_class():
    template = {"fc.bias": np.zeros(4, np.float32), "fc.weight": np.zeros((4, 3), np.float32)}
    q = np.zeros(16, dtype=np.int64)
    q[:4] = [0, 7, 7, 7]  # bias: classes 1, 2, 3 tie
    assert exact.predict("logreg", exact.int_params(q, template), np.ones((2, 3), np.int64)).tolist() == [1, 1]


def test_activations_saturate_instead_of_overflowing():
    # every weight and input at the fixed-point maximum: int64 sums stay exact and saturate at +-128
    template = {
        "hidden.bias": np.zeros(64, np.float32),
        "hidden.weight": np.zeros((64, 784), np.float32),
        "out.bias": np.zeros(10, np.float32),
        "out.weight": np.zeros((10, 64), np.float32),
    }
    q = np.full(sum(v.size for v in template.values()), fp.QMAX, dtype=np.int64)
    z = exact.logits("mlp", exact.int_params(q, template), np.full((2, 784), fp.QMAX, np.int64))
    assert (z == fp.QMAX).all()


def test_inputs_outside_the_range_are_refused():
    with pytest.raises(LearningError):
        exact.quantize_inputs(np.array([[1.0, np.nan]]))
    with pytest.raises(LearningError):
        exact.quantize_inputs(np.array([[200.0]]))


def test_softmax_is_close_to_the_float_softmax_and_sums_to_one():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, (50, 10))
    p = exact.softmax(np.rint(z * fp.SCALE).astype(np.int64)) / fp.SCALE
    ref = np.exp(z - z.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert np.abs(p - ref).max() < 1e-3
    assert np.abs(p.sum(1) - 1).max() < 1e-3


@pytest.mark.parametrize("model", ["logreg", "mlp", "cnn"])
def test_exact_gradient_points_like_the_float_gradient(model):
    data = digits()
    template, q = trained(model, epochs=1)
    x, y = data.x_test[:64], data.y_test[:64]
    g = exact.flat_params(exact.gradient(model, exact.int_params(q, template), exact.quantize_inputs(x), y))
    net = build_model(model, data.input_shape, 10)
    set_params(net, unflatten(fp.from_fixed(q), template))
    F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    ref = np.concatenate([net.state_dict(keep_vars=True)[n].grad.numpy().ravel() for n in sorted(template)])
    assert g @ ref / np.linalg.norm(g) / np.linalg.norm(ref) > 0.99


# -- the score


@functools.cache
def round_of_updates():
    """(template, parent, honest updates, attacked updates by name) on a digits Dirichlet split."""
    data = digits()
    template, parent = trained("logreg", epochs=1)
    parts = partition("dirichlet", data.y_train, 20, seed=0, alpha=0.5)[:8]
    net = build_model("logreg", data.input_shape, 10)
    honest = [
        fp.to_fixed(
            flatten(
                train_local(
                    net,
                    unflatten(fp.from_fixed(parent), template),
                    data.x_train[p],
                    data.y_train[p],
                    TrainConfig(epochs=2, lr=0.1),
                    seed=i,
                )
            )
        )
        - parent
        for i, p in enumerate(parts)
    ]
    rng = np.random.default_rng(1)
    sd = int(np.std(np.stack(honest)))
    attacked = {
        "sign_flip": -honest[0],
        "noise": rng.integers(-sd, sd, parent.size, endpoint=True),
        "free_rider": rng.integers(-60, 60, parent.size, endpoint=True),
        "boosted": 6 * honest[1],
    }
    return template, parent, honest, attacked


def root():
    data = digits()
    idx, _ = root_indices(data.y_test, 100, 0)
    return exact.quantize_inputs(data.x_test[idx]), data.y_test[idx]


@pytest.mark.parametrize("attack", ["sign_flip", "noise", "free_rider", "boosted"])
def test_attacked_updates_score_far_below_honest_ones(attack):
    template, parent, honest, attacked = round_of_updates()
    ups = [*honest, attacked[attack]]
    s = validation_scores("logreg", parent, ups, template, *root())
    assert min(s[:-1]) > 0  # honest non-IID trainers are not zeroed out here
    assert s[-1] < sorted(s[:-1])[len(honest) // 2]
    assert s[-1] * 5 < sum(s[:-1]) / len(honest)


def test_an_update_that_helps_scores_more_than_one_that_does_nothing():
    template, parent, honest, _ = round_of_updates()
    zero = np.zeros_like(parent)
    ups = [*honest, zero]
    s = validation_scores("logreg", parent, ups, template, *root())
    assert s[-1] == 0 and all(x > 0 for x in s[:-1])


def test_score_is_the_gain_in_true_class_mass_of_a_one_nth_step():
    template, parent, honest, _ = round_of_updates()
    xq, y = root()
    s = validation_scores("logreg", parent, honest, template, xq, y)
    n = len(honest)
    mass = [true_class_mass("logreg", exact.int_params(parent + u // n, template), xq, y) for u in honest]
    base = true_class_mass("logreg", exact.int_params(parent, template), xq, y)
    assert s == [max(0, m - base) for m in mass]  # no update here is beyond 2.5x the median norm


def test_updates_beyond_two_and_a_half_median_norms_are_cut_by_the_eighth_power():
    template, parent, honest, attacked = round_of_updates()
    xq, y = root()
    ups = [*honest, attacked["boosted"]]
    n = len(ups)
    s = validation_scores("logreg", parent, ups, template, xq, y)
    base = true_class_mass("logreg", exact.int_params(parent, template), xq, y)
    gain = true_class_mass("logreg", exact.int_params(parent + ups[-1] // n, template), xq, y) - base
    t2 = sorted(int(u @ u) for u in ups)[n // 2]
    u2 = int(ups[-1] @ ups[-1])
    assert 4 * u2 > 25 * t2 and gain > 0
    assert s[-1] == gain * (25 * t2) ** 4 // (4 * u2) ** 4


def test_scores_are_ints_and_the_same_bits_twice():
    template, parent, honest, attacked = round_of_updates()
    ups = [*honest, *attacked.values()]
    a = validation_scores("logreg", parent, ups, template, *root())
    b = validation_scores("logreg", parent.copy(), [u.copy() for u in ups], template, *root())
    assert a == b and all(type(x) is int for x in a)
    assert validation_scores("logreg", parent, [], template, *root()) == []


def test_one_update_with_k_seats_scores_as_k_copies_of_it_would():
    """Seats make the score Sybil-neutral: an identity holding 3 stakes' seats is scored
    exactly as 3 identities sending its update are, because n and the median norm count
    it three times; with one seat each, seats change nothing."""
    template, parent, honest, attacked = round_of_updates()
    xq, y = root()
    big = attacked["boosted"]  # a large norm, so the median it shifts matters
    copies = validation_scores("logreg", parent, [*honest, big, big, big], template, xq, y)
    whole = validation_scores("logreg", parent, [*honest, big], template, xq, y, seats=[BPS] * len(honest) + [3 * BPS])
    assert whole == copies[:-2]
    plain = validation_scores("logreg", parent, [*honest, big], template, xq, y)
    assert plain != whole  # without its seats the large update is scored against a different n and median
    assert validation_scores("logreg", parent, honest, template, xq, y, seats=[BPS] * len(honest)) == validation_scores(
        "logreg", parent, honest, template, xq, y
    )
    with pytest.raises(LearningError, match="seat"):
        validation_scores("logreg", parent, honest, template, xq, y, seats=[BPS, 0] * (len(honest) // 2))


@pytest.mark.parametrize("values", [[5], [3, 1], [4, 4, 1, 9], [7, 2, 2, 8, 1], list(range(20, 0, -1))])
def test_weighted_median_is_the_upper_median_with_equal_weights(values):
    assert weighted_upper_median(values, [BPS] * len(values)) == sorted(values)[len(values) // 2]
    assert weighted_upper_median(values, [1] * len(values)) == sorted(values)[len(values) // 2]


def test_weighted_median_counts_a_value_once_per_unit_of_weight():
    assert weighted_upper_median([1, 2, 9], [1, 1, 3]) == weighted_upper_median([1, 2, 9, 9, 9], [1] * 5) == 9
    assert weighted_upper_median([1, 9], [16_000, 10_000]) == 1  # 1.6 seats against 1


# -- FLTrust's root update


@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_root_update_moves_like_float_sgd_and_helps_the_root_set(model):
    template, parent = trained(model, epochs=1)
    xq, y = root()
    g0 = root_update(model, parent, template, xq, y, epochs=1, batch_size=len(y), lr=0.1)
    assert g0.dtype == np.int64 and g0.any()
    net = build_model(model, (1, 8, 8), 10)
    x = digits().x_test[root_indices(digits().y_test, 100, 0)[0]]
    ref = (
        fp.to_fixed(
            flatten(
                train_local(
                    net,
                    unflatten(fp.from_fixed(parent), template),
                    x,
                    y,
                    TrainConfig(epochs=1, batch_size=len(y), lr=0.1),
                    seed=0,
                )
            )
        )
        - parent
    )
    assert cosine_scores([g0], ref)[0] > 990_000
    after = true_class_mass(model, exact.int_params(parent + g0, template), xq, y)
    assert after > true_class_mass(model, exact.int_params(parent, template), xq, y)


# -- the recipe's root set


def test_root_set_is_a_stratified_seeded_part_of_the_test_split():
    data = digits()
    root_idx, rest = root_indices(data.y_test, 100, 0)
    assert len(root_idx) == 100 and len(rest) == len(data.y_test) - 100
    assert not set(root_idx) & set(rest)
    assert np.bincount(data.y_test[root_idx], minlength=10).min() >= 9
    assert np.array_equal(root_indices(data.y_test, 100, 0)[0], root_idx)
    assert not np.array_equal(root_indices(data.y_test, 100, 1)[0], root_idx)
    with pytest.raises(LearningError):
        root_indices(data.y_test, 0, 0)


def test_recipe_root_set_is_cached_and_read_only():
    recipe = Recipe(score="validation", root_set_size=50, data_seed=0)
    a = rs.root_set(recipe)
    assert a is rs.root_set(dataclasses.replace(recipe, lr=0.3))  # only the data fields matter
    assert a.xq.shape == (50, 1, 8, 8) and not a.xq.flags.writeable and not a.y.flags.writeable
    assert np.array_equal(rs.report_indices(recipe, digits().y_test), root_indices(digits().y_test, 50, 0)[1])


def test_round_scores_follow_the_recipe():
    template, parent, honest, attacked = round_of_updates()
    ups = [*honest, attacked["sign_flip"]]
    g = np.sum(ups, axis=0) // len(ups)
    assert rs.round_scores(Recipe(model="logreg"), parent, ups, g, template) == cosine_scores(ups, g)
    recipe = Recipe(model="logreg", score="validation", root_set_size=100, data_seed=0)
    assert rs.round_scores(recipe, parent, ups, g, template) == validation_scores(
        "logreg", parent, ups, template, *root()
    )
    with pytest.raises(LearningError, match="unknown score"):
        rs.round_scores(Recipe(score="shapley"), parent, ups, g, template)


def test_recipe_names_the_score_and_root_set_canonically():
    recipe = Recipe(score="validation", root_set_size=120, data_seed=3)
    d = json.loads(recipe.to_bytes())
    assert (d["score"], d["root_set_size"], d["data_seed"]) == ("validation", 120, 3)
    back = Recipe.from_bytes(recipe.to_bytes())
    assert back == recipe and back.hash == recipe.hash
    assert dataclasses.replace(recipe, data_seed=4).hash != recipe.hash
    assert dataclasses.replace(recipe, root_set_size=121).hash != recipe.hash
    assert Recipe().score == "cosine"  # existing tasks keep the cosine score


# -- determinism across numpy's CPU dispatch paths

DIGEST = """
import hashlib, json, numpy as np
from fedchain.learning import exact, fixedpoint as fp
from fedchain.learning.data import load_dataset
from fedchain.learning.models import build_model
from fedchain.learning.train import flatten, get_params
from fedchain.learning.validation_score import root_indices, root_update, validation_scores
data = load_dataset("digits", seed=0)
idx, _ = root_indices(data.y_test, 60, 0)
xq, y = exact.quantize_inputs(data.x_test[idx]), data.y_test[idx]
h = hashlib.sha256()
for model in ("logreg", "mlp", "cnn"):
    t = get_params(build_model(model, (1, 8, 8), 10, seed=5))
    q = fp.to_fixed(flatten(t))
    rng = np.random.default_rng(0)
    ups = [rng.integers(-3000, 3000, q.size) for _ in range(4)]
    h.update(exact.logits(model, exact.int_params(q, t), xq).tobytes())
    h.update(json.dumps(validation_scores(model, q, ups, t, xq, y)).encode())
    h.update(root_update(model, q, t, xq[:40], y[:40], 1, 20, 0.1).tobytes())
digest = h.hexdigest()
"""

SCRIPT = (
    DIGEST
    + """
from numpy.lib.introspect import opt_func_info
kernel = opt_func_info(func_name="add", signature="int64")["add"]["qqq"]["current"]
print(json.dumps({"digest": digest, "kernel": kernel}))
"""
)


def digest_here() -> str:
    scope: dict = {}
    exec(DIGEST, scope)
    return scope["digest"]


def test_same_bits_twice_and_under_restricted_cpu_dispatch():
    here = digest_here()
    assert digest_here() == here
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V4 X86_V3"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    restricted = json.loads(out.stdout.strip().splitlines()[-1])
    assert restricted["kernel"].startswith("baseline"), restricted  # the restriction took effect
    assert restricted["digest"] == here
