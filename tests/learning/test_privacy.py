"""Differential privacy building blocks: accounting against dp-accounting (and Opacus's own
RDP analysis), max_rounds and calibrate_noise, client-level clip-and-noise and its exact
norm bound, example-level DP-SGD with Opacus. Real libraries, no mocks; fixed seeds."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dp_accounting import dp_event
from dp_accounting.privacy_accountant import NeighboringRelation
from dp_accounting.rdp import RdpAccountant
from dp_accounting.rdp.rdp_privacy_accountant import DEFAULT_RDP_ORDERS
from opacus.accountants.analysis import rdp as opacus_rdp

from fedchain.learning import privacy
from fedchain.learning.data import load_dataset
from fedchain.learning.fixedpoint import QMAX, to_fixed
from fedchain.learning.models import build_model
from fedchain.learning.privacy import (
    MAX_ROUNDS,
    DpSpec,
    calibrate_noise,
    clip_and_noise,
    epsilon,
    max_rounds,
    norm_bound,
    norm_bound_fixed,
    train_local_dp,
    within_norm_bound,
)
from fedchain.learning.train import TrainConfig, evaluate, flatten, get_params, train_local

SIGMAS = [0.5, 1.0, 2.0, 4.0]
READ_AT = (1, 5, 20)
DELTAS = (1e-5, 1e-6)


def client(sigma: float, clip: float = 1.0, delta: float = 1e-5) -> DpSpec:
    return DpSpec("client", sigma, clip, delta)


def example(sigma: float, q: float = 0.05, steps: int = 10, clip: float = 1.0, delta: float = 1e-5) -> DpSpec:
    return DpSpec("example", sigma, clip, delta, q, steps)


# -- DpSpec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mechanism": "server"}, "mechanism must be"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"noise_multiplier": math.inf}, "noise_multiplier"),
        ({"clip": 0.0}, "clip must be"),
        ({"clip": math.nan}, "clip must be"),
        ({"delta": 0.0}, "delta must be"),
        ({"delta": 1.0}, "delta must be"),
        ({"sampling_rate": 0.0}, "sampling_rate"),
        ({"sampling_rate": 1.5}, "sampling_rate"),
        ({"sampling_rate": None}, "sampling_rate"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.0}, "steps"),
        ({"steps": None}, "steps"),
    ],
)
def test_spec_rejects_bad_values(kwargs, message):
    base = {"mechanism": "example", "noise_multiplier": 1.0, "clip": 1.0, "delta": 1e-5, "sampling_rate": 0.1}
    base["steps"] = 5
    with pytest.raises(ValueError, match=message):
        DpSpec(**{**base, **kwargs})


def test_client_spec_takes_no_sampling_parameters():
    with pytest.raises(ValueError, match="client-level DP takes no sampling_rate or steps"):
        DpSpec("client", 1.0, 1.0, 1e-5, sampling_rate=0.1)
    assert client(1.0).steps is None


# -- epsilon: the Done-when, against dp-accounting composed one round at a time


def reference(mechanism: str, sigma: float, q: float, steps: int) -> dict[tuple[int, float], float]:
    """epsilon at READ_AT x DELTAS, each round composed on its own from first principles."""
    if mechanism == "client":  # whole dataset replaced: clipped updates differ by 2C
        accountant = RdpAccountant(neighboring_relation=NeighboringRelation.REPLACE_ONE)
        event, count = dp_event.GaussianDpEvent(sigma / 2), 1
    else:
        accountant = RdpAccountant(neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE)
        event, count = dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps
    out = {}
    for rnd in range(1, max(READ_AT) + 1):
        accountant.compose(event, count)
        if rnd in READ_AT:
            out.update({(rnd, delta): accountant.get_epsilon(delta) for delta in DELTAS})
    return out


GRID = [("client", s, 1.0, 1) for s in SIGMAS] + [
    ("example", s, q, steps) for s in SIGMAS for q in (0.01, 0.1) for steps in (1, 10)
]


@pytest.mark.parametrize(("mechanism", "sigma", "q", "steps"), GRID)
def test_epsilon_equals_dp_accounting(mechanism, sigma, q, steps):
    expected = reference(mechanism, sigma, q, steps)
    for (rounds, delta), want in expected.items():
        if mechanism == "client":
            spec = client(sigma, delta=delta)
        else:
            spec = example(sigma, q, steps, delta=delta)
        assert epsilon(spec, rounds) == pytest.approx(want, rel=1e-6), (rounds, delta)


def test_orders_are_dp_accountings_default():
    assert list(privacy.RDP_ORDERS) == list(DEFAULT_RDP_ORDERS)


@pytest.mark.parametrize(("sigma", "q", "steps", "rounds"), [(2.0, 0.01, 10, 20), (4.0, 0.1, 1, 5), (1.0, 0.01, 1, 1)])
def test_epsilon_matches_opacus_own_analysis(sigma, q, steps, rounds):
    """Opacus's RDP code is a separate implementation; where dp-accounting's series converge
    (sigma >= 1 here) the two agree. For smaller sigma dp-accounting drops the orders whose
    series fail to converge, which can only make its epsilon larger (conservative)."""
    orders = list(privacy.RDP_ORDERS)
    rdp = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps * rounds, orders=orders)
    theirs, _ = opacus_rdp.get_privacy_spent(orders=orders, rdp=rdp, delta=1e-5)
    assert epsilon(example(sigma, q, steps), rounds) == pytest.approx(theirs, rel=1e-6)
    low = example(0.5, 0.1, 10)
    rdp = opacus_rdp.compute_rdp(q=0.1, noise_multiplier=0.5, steps=10 * rounds, orders=orders)
    assert epsilon(low, rounds) >= opacus_rdp.get_privacy_spent(orders=orders, rdp=rdp, delta=1e-5)[0]


def test_epsilon_edges():
    assert epsilon(client(1.0), 0) == 0.0
    assert epsilon(example(1.0), 0) == 0.0
    assert epsilon(client(0.0), 1) == math.inf
    assert epsilon(example(0.0), 3) == math.inf
    with pytest.raises(ValueError, match="rounds must be an integer >= 0"):
        epsilon(client(1.0), -1)


def test_epsilon_grows_with_rounds_and_shrinks_with_noise():
    spec = client(2.0)
    eps = [epsilon(spec, k) for k in range(0, 40)]
    assert all(a < b for a, b in zip(eps, eps[1:]))
    assert epsilon(client(1.0), 10) > epsilon(client(2.0), 10) > epsilon(client(4.0), 10)


# -- max_rounds


@pytest.mark.parametrize(
    ("spec", "budget"),
    [(client(4.0), 8.0), (client(1.0), 20.0), (client(16.0), 1.0), (example(1.0), 8.0), (example(2.0, 0.1, 1), 2.0)],
)
def test_max_rounds_is_the_boundary(spec, budget):
    k = max_rounds(spec, budget)
    assert k >= 1
    assert epsilon(spec, k) <= budget < epsilon(spec, k + 1)


def test_max_rounds_monotone_and_edges():
    spec = client(4.0)
    ks = [max_rounds(spec, b) for b in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)]
    assert ks == sorted(ks) and ks[-1] > ks[0]
    assert [max_rounds(client(s), 4.0) for s in SIGMAS] == sorted(max_rounds(client(s), 4.0) for s in SIGMAS)
    assert max_rounds(client(1.0), 0.0) == 0  # one round already spends more
    assert max_rounds(client(0.0), 1e9) == 0  # no noise: not a single round
    assert max_rounds(client(1.0), math.inf) == MAX_ROUNDS
    assert max_rounds(client(1e6), 1.0) == MAX_ROUNDS  # capped
    with pytest.raises(ValueError, match="max_epsilon"):
        max_rounds(client(1.0), -1.0)


# -- calibrate_noise


@pytest.mark.parametrize("target", [1.0, 2.0, 4.0, 8.0])
def test_calibrate_noise_client(target):
    spec = client(0.0)
    sigma = calibrate_noise(spec, 20, target)
    assert epsilon(replace(spec, noise_multiplier=sigma), 20) <= target
    assert epsilon(replace(spec, noise_multiplier=sigma * (1 - privacy.CALIBRATION_RTOL)), 20) > target


def test_calibrate_noise_example_and_monotone():
    spec = example(0.0, q=0.1, steps=1)
    sigma = calibrate_noise(spec, 5, 4.0)
    assert epsilon(replace(spec, noise_multiplier=sigma), 5) <= 4.0
    assert epsilon(replace(spec, noise_multiplier=sigma * (1 - privacy.CALIBRATION_RTOL)), 5) > 4.0
    sigmas = [calibrate_noise(client(0.0), 20, t) for t in (1.0, 2.0, 4.0, 8.0)]
    assert sigmas == sorted(sigmas, reverse=True)
    assert calibrate_noise(client(0.0), 40, 4.0) > calibrate_noise(client(0.0), 20, 4.0)
    assert calibrate_noise(client(0.0), 0, 4.0) == 0.0
    with pytest.raises(ValueError, match="target_epsilon"):
        calibrate_noise(client(0.0), 20, 0.0)


# -- clip_and_noise


def test_clip_without_noise():
    rng = np.random.default_rng(0)
    big = rng.normal(size=1000) * 10
    out = clip_and_noise(big, 2.0, 0.0, rng)
    assert out.dtype == np.float32 and out.shape == big.shape
    assert np.linalg.norm(out.astype(np.float64)) <= 2.0 * (1 + 1e-6)
    assert np.allclose(out / np.linalg.norm(out), big / np.linalg.norm(big), atol=1e-6)  # direction kept
    small = (rng.normal(size=100) * 1e-3).astype(np.float32)
    assert np.array_equal(clip_and_noise(small, 2.0, 0.0, rng), small)  # inside the ball: unchanged


def test_noise_has_std_sigma_clip():
    out = clip_and_noise(np.zeros(200_000), 2.0, 0.5, np.random.default_rng(7))
    assert abs(out.mean()) < 0.02  # standard error 1/sqrt(2e5) = 0.0022
    assert out.std() == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_clip_and_noise_rejects_non_finite(bad):
    update = np.ones(10)
    update[3] = bad
    with pytest.raises(ValueError, match="NaN/Inf"):
        clip_and_noise(update, 1.0, 1.0, np.random.default_rng(0))


def test_clip_and_noise_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="flat vector"):
        clip_and_noise(np.ones((2, 2)), 1.0, 1.0, rng)
    with pytest.raises(ValueError, match="clip"):
        clip_and_noise(np.ones(4), 0.0, 1.0, rng)
    with pytest.raises(ValueError, match="noise_multiplier"):
        clip_and_noise(np.ones(4), 1.0, -0.1, rng)


# -- the validator's norm bound


def test_norm_bound_formula():
    assert norm_bound(100, 2.0, 0.0) == 2.0
    assert norm_bound(100, 1.0, 1.0, failure=math.exp(-8)) == pytest.approx(1 + 10 + 4)
    with pytest.raises(ValueError, match="failure"):
        norm_bound(100, 1.0, 1.0, failure=0.0)


@pytest.mark.parametrize(("dim", "clip", "sigma"), [(5000, 1.0, 1.0), (650, 0.5, 4.0), (20_000, 3.0, 0.1)])
def test_honest_updates_pass_and_scaled_ones_fail(dim, clip, sigma):
    bound, bound_sq = norm_bound(dim, clip, sigma), norm_bound_fixed(dim, clip, sigma)
    for seed in range(100):
        rng = np.random.default_rng(seed)
        release = clip_and_noise(rng.normal(size=dim) * rng.uniform(0.01, 10), clip, sigma, rng)
        assert np.linalg.norm(release.astype(np.float64)) <= bound
        assert within_norm_bound(to_fixed(release), bound_sq)
        if seed < 10:
            assert not within_norm_bound(to_fixed(release * 10), bound_sq)


def test_fixed_bound_agrees_with_float_bound():
    for dim, clip, sigma in [(6000, 1.0, 1.0), (64, 0.1, 0.5), (100_000, 2.0, 0.05), (10, 1.0, 0.0)]:
        bound = norm_bound(dim, clip, sigma)
        bound_sq = norm_bound_fixed(dim, clip, sigma)
        assert (bound * 2**16) ** 2 <= bound_sq <= (bound * 2**16 * (1 + 2**-19) + math.sqrt(dim)) ** 2 + 2
        rng = np.random.default_rng(dim)
        v = rng.normal(size=dim)
        # the margin for rounding (1 per coordinate, sqrt(dim) in all) is below 1e-3 of the bound here
        for factor, inside in [(1 - 1e-3, True), (1 + 1e-3, False)]:
            w = v * (bound * factor / np.linalg.norm(v))
            assert within_norm_bound(to_fixed(w), bound_sq) is inside, (dim, factor)


def test_fixed_bound_is_a_pinned_integer():
    # A consensus value: the same integer on every machine and every run.
    assert norm_bound_fixed(6000, 1.0, 1.0) == norm_bound_fixed(6000, 1.0, 1.0)
    assert norm_bound_fixed(6000, 1.0, 1.0) == 31_697_300_841_635
    assert norm_bound_fixed(6000, 1.0, 1.0, frac_bits=8) < norm_bound_fixed(6000, 1.0, 1.0)


def test_within_norm_bound_is_exact_past_int64():
    q = np.full(1 << 18, QMAX, dtype=np.int64)  # sum of squares 2**64: overflows int64
    assert within_norm_bound(q, 2**64)
    assert not within_norm_bound(q, 2**64 - 1)
    big = np.array([2**40, -(2**40)], dtype=np.int64)  # outside fixed point: Python ints
    assert within_norm_bound(big, 2**81) and not within_norm_bound(big, 2**81 - 1)
    assert within_norm_bound(np.zeros(0, dtype=np.int64), 0)
    with pytest.raises(ValueError, match="integer vector"):
        within_norm_bound(np.ones(3), 10)


# -- example level: DP-SGD with Opacus


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_dp_sgd_step_is_per_example_clipping(digits, name):
    """q = 1, one step, no noise: Opacus's per-example gradients (torch 2.13) clipped and
    averaged give the same step as autograd one example at a time."""
    x, y = digits.x_train[:16], digits.y_train[:16]
    model = build_model(name, digits.input_shape, 10)
    params = get_params(model)
    spec = DpSpec("example", 0.0, 0.05, 1e-5, sampling_rate=1.0, steps=1)
    got = train_local_dp(model, params, x, y, TrainConfig(lr=0.5), spec, seed=0)

    ref = build_model(name, digits.input_shape, 10)
    weights = dict(ref.named_parameters())
    total = {n: torch.zeros_like(w) for n, w in weights.items()}
    for i in range(len(x)):
        ref.zero_grad()
        F.cross_entropy(ref(torch.from_numpy(x[i : i + 1])), torch.from_numpy(y[i : i + 1]).long()).backward()
        norm = torch.sqrt(sum((w.grad**2).sum() for w in weights.values()))
        factor = (spec.clip / (norm + 1e-6)).clamp(max=1.0)  # Opacus's clip factor
        for n, w in weights.items():
            total[n] += factor * w.grad
    for n, w in weights.items():
        expected = w.detach().numpy() - 0.5 * (total[n] / len(x)).numpy()
        np.testing.assert_allclose(got[n], expected, atol=1e-6, rtol=1e-5)


def test_dp_sgd_keeps_names_shapes_and_the_model(digits):
    model = build_model("mlp", digits.input_shape, 10)
    params = get_params(model)
    spec = example(1.0, q=0.05, steps=5)
    out = train_local_dp(model, params, digits.x_train, digits.y_train, TrainConfig(lr=0.1), spec, seed=3)
    assert {n: v.shape for n, v in out.items()} == {n: v.shape for n, v in params.items()}
    assert list(out) == list(params) and all(v.dtype == np.float32 for v in out.values())
    assert type(model).__name__ == "MLP" and list(get_params(model)) == list(params)  # not left wrapped
    assert all(np.array_equal(get_params(model)[n], out[n]) for n in out)  # holds the result
    again = train_local_dp(model, params, digits.x_train, digits.y_train, TrainConfig(lr=0.1), spec, seed=3)
    assert all(np.array_equal(again[n], out[n]) for n in out)
    other = train_local_dp(model, params, digits.x_train, digits.y_train, TrainConfig(lr=0.1), spec, seed=4)
    assert not all(np.array_equal(other[n], out[n]) for n in out)


def test_dp_sgd_empty_samples_still_add_noise(digits):
    model = build_model("logreg", digits.input_shape, 10)
    params = get_params(model)
    spec = example(1.0, q=1e-9, steps=3)  # almost surely no example is ever sampled
    out = train_local_dp(model, params, digits.x_train[:20], digits.y_train[:20], TrainConfig(lr=0.1), spec, seed=0)
    moved = flatten(out) - flatten(params)
    assert np.all(np.isfinite(moved)) and np.linalg.norm(moved) > 0


def test_huge_noise_moves_far_from_the_non_private_update(digits):
    model = build_model("mlp", digits.input_shape, 10)
    params = get_params(model)
    cfg = TrainConfig(lr=0.1)
    base = flatten(params)

    def update(sigma):
        out = train_local_dp(model, params, digits.x_train, digits.y_train, cfg, example(sigma, 0.05, 10), seed=1)
        return flatten(out) - base

    quiet, loud = update(0.0), update(1000.0)
    assert np.linalg.norm(loud - quiet) > 100 * np.linalg.norm(quiet)
    plain = flatten(train_local(model, params, digits.x_train, digits.y_train, cfg, seed=1)) - base
    assert np.linalg.norm(loud - plain) > 100 * np.linalg.norm(plain)


def test_dp_sgd_learns_with_small_noise(digits):
    model = build_model("mlp", digits.input_shape, 10)
    params = get_params(model)
    before = evaluate(model, params, digits.x_test, digits.y_test)
    spec = example(0.5, q=0.05, steps=30)
    for rnd in range(3):
        params = train_local_dp(model, params, digits.x_train, digits.y_train, TrainConfig(lr=0.5), spec, seed=rnd)
    after = evaluate(model, params, digits.x_test, digits.y_test)
    assert before < 0.2 and after > 0.7


def test_dp_sgd_rejects_what_it_cannot_do(digits):
    model = build_model("logreg", digits.input_shape, 10)
    params = get_params(model)
    x, y = digits.x_train[:10], digits.y_train[:10]
    with pytest.raises(ValueError, match="example-level DP-SGD"):
        train_local_dp(model, params, x, y, TrainConfig(), client(1.0), seed=0)
    with pytest.raises(ValueError, match="FedProx"):
        train_local_dp(model, params, x, y, TrainConfig(proximal_mu=0.1), example(1.0), seed=0)
