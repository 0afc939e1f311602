"""Models, datasets, partitioners and the reference trainer of fedchain.learning."""

import numpy as np
import pytest
import torch

from fedchain.errors import LearningError
from fedchain.learning.data import (
    _load_raw,
    _make_mnist1d,
    load_dataset,
    partition,
    partition_dirichlet,
    partition_iid,
    partition_pathological,
)
from fedchain.learning.models import MODELS, build_model
from fedchain.learning.train import (
    TrainConfig,
    evaluate,
    flatten,
    get_params,
    param_shapes,
    set_params,
    train_local,
    unflatten,
)

# (train, test) sizes with the default test_fraction of 0.2
SIZES = {"digits": (1437, 360), "mnist": (4000, 1000), "mnist1d": (4000, 1000)}
SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "mnist1d": (40,)}
SUPPORTED = [(m, d) for m in MODELS for d in SHAPES if m != "cnn" or len(SHAPES[d]) == 3]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def same(a: dict, b: dict) -> bool:
    """Bit-identical parameter dicts."""
    return a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


# ---- models ----


@pytest.mark.parametrize("model_name,dataset_name", SUPPORTED)
def test_model_forward_gives_one_logit_per_class(model_name, dataset_name):
    data = load_dataset(dataset_name)
    model = build_model(model_name, data.input_shape, data.num_classes)
    logits = model(torch.from_numpy(data.x_test[:5]))
    assert logits.shape == (5, data.num_classes)


def test_cnn_rejects_flat_input():
    with pytest.raises(ValueError, match="image input"):
        build_model("cnn", (40,), 10)


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", (1, 8, 8), 10)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_build_model_is_seeded_and_leaves_global_rng_alone(model_name):
    rng_before = torch.get_rng_state()
    a = get_params(build_model(model_name, (1, 8, 8), 10, seed=3))
    b = get_params(build_model(model_name, (1, 8, 8), 10, seed=3))
    c = get_params(build_model(model_name, (1, 8, 8), 10, seed=4))
    assert same(a, b)
    assert not same(a, c)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert list(a) == sorted(a) and all(v.dtype == np.float32 for v in a.values())


# ---- datasets ----


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_dataset_shapes_classes_and_split(name):
    data = load_dataset(name)
    n_train, n_test = SIZES[name]
    assert data.input_shape == SHAPES[name] and data.num_classes == 10
    assert data.x_train.shape == (n_train, *SHAPES[name]) and data.x_train.dtype == np.float32
    assert data.x_test.shape == (n_test, *SHAPES[name]) and data.x_test.dtype == np.float32
    assert data.y_train.shape == (n_train,) and data.y_train.dtype == np.int64
    assert data.y_test.shape == (n_test,) and data.y_test.dtype == np.int64
    assert np.isfinite(data.x_train).all()
    if name != "mnist1d":
        assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    # stratified: every class is in both parts, in proportion
    counts_train = np.bincount(data.y_train, minlength=10)
    counts_test = np.bincount(data.y_test, minlength=10)
    assert (counts_test > 0).all()
    assert np.abs(counts_test - 0.2 * (counts_train + counts_test)).max() <= 1
    # train and test partition the whole dataset: each example exactly once
    x, y = _load_raw(name)

    def rows(xs, ys):
        return sorted(xi.tobytes() + yi.tobytes() for xi, yi in zip(xs.reshape(len(xs), -1), ys))

    x_split = np.concatenate([data.x_train, data.x_test])
    y_split = np.concatenate([data.y_train, data.y_test])
    assert rows(x_split, y_split) == rows(x, y)


def test_split_is_seeded(digits):
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    assert np.array_equal(digits.x_test, again.x_test)
    assert np.array_equal(digits.y_test, again.y_test)
    assert not np.array_equal(digits.x_test, other.x_test)


def test_mnist1d_is_generated_without_touching_global_rngs():
    state = np.random.get_state()
    x, y = _make_mnist1d()
    assert x.shape == (5000, 40) and np.bincount(y).tolist() == [500] * 10
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar10")


# ---- partitioners ----

PARTITIONERS = {
    "iid": lambda y, seed: partition_iid(y, 20, seed),
    "dirichlet": lambda y, seed: partition_dirichlet(y, 20, 0.5, seed),
    "pathological": lambda y, seed: partition_pathological(y, 20, 2, seed),
}


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
def test_partitioner_covers_every_index_once_and_is_seeded(digits, name):
    parts = PARTITIONERS[name](digits.y_train, 0)
    assert len(parts) == 20
    assert all(p.dtype == np.int64 for p in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(digits.y_train)))
    again = PARTITIONERS[name](digits.y_train, 0)
    other = PARTITIONERS[name](digits.y_train, 1)
    assert all(np.array_equal(p, q) for p, q in zip(parts, again))
    assert not all(np.array_equal(p, q) for p, q in zip(parts, other))


def test_partition_dispatches_by_name(digits):
    for name, direct in PARTITIONERS.items():
        by_name = partition(name, digits.y_train, 20, seed=5)
        assert all(np.array_equal(p, q) for p, q in zip(by_name, direct(digits.y_train, 5)))
    with pytest.raises(ValueError, match="unknown partitioner"):
        partition("shard", digits.y_train, 20, seed=0)


def test_iid_partitions_are_balanced(digits):
    sizes = [len(p) for p in partition_iid(digits.y_train, 20, seed=0)]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("seed", range(5))
def test_dirichlet_respects_min_partition_size(digits, seed):
    parts = partition_dirichlet(digits.y_train, 20, alpha=0.3, seed=seed, min_partition_size=25)
    assert min(len(p) for p in parts) >= 25


def test_dirichlet_gives_up_with_a_clear_error(digits):
    with pytest.raises(ValueError, match="raise alpha"):
        partition_dirichlet(digits.y_train, 50, alpha=0.1, seed=0, max_tries=5)


def test_dirichlet_small_alpha_skews_labels(digits):
    def mean_classes(alpha):
        parts = partition_dirichlet(digits.y_train, 10, alpha, seed=0)
        return np.mean([len(np.unique(digits.y_train[p])) for p in parts])

    assert mean_classes(0.1) < mean_classes(100.0) == 10


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pathological_gives_k_classes_per_partition(digits, k):
    parts = partition_pathological(digits.y_train, 20, k, seed=0)
    assert all(len(np.unique(digits.y_train[p])) == k for p in parts)


def test_pathological_random_mode_warns_about_dropped_classes(digits):
    with pytest.warns(UserWarning, match="dropped"):
        parts = partition_pathological(digits.y_train, 3, 2, seed=0, class_assignment_mode="random")
    assert len(np.unique(digits.y_train[np.concatenate(parts)])) <= 6


# ---- training ----


def test_params_round_trip_exactly(digits):
    model = build_model("mlp", digits.input_shape, 10, seed=0)
    params = get_params(build_model("mlp", digits.input_shape, 10, seed=1))
    set_params(model, params)
    assert same(get_params(model), params)
    with pytest.raises(LearningError, match="do not fit"):
        set_params(model, {k: v for k, v in params.items() if k != "out.bias"})


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_train_local_is_deterministic_and_learns(digits, model_name):
    model = build_model(model_name, digits.input_shape, 10, seed=0)
    start = get_params(model)
    cfg = TrainConfig(epochs=5, momentum=0.9)
    x, y = digits.x_train[:600], digits.y_train[:600]
    rng_before = torch.get_rng_state()
    a = train_local(model, start, x, y, cfg, seed=7)
    b = train_local(model, start, x, y, cfg, seed=7)
    c = train_local(model, start, x, y, cfg, seed=8)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert same(a, b)
    assert not same(a, c)
    assert param_shapes(a) == param_shapes(start)
    before = evaluate(model, start, digits.x_test, digits.y_test)
    after = evaluate(model, a, digits.x_test, digits.y_test)
    assert before < 0.3 and after > 0.8


def test_train_local_lowers_the_loss(digits):
    model = build_model("logreg", digits.input_shape, 10, seed=0)
    start = get_params(model)
    cfg = TrainConfig(epochs=3)
    trained = train_local(model, start, digits.x_train, digits.y_train, cfg, seed=0)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)

    def loss(params):
        set_params(model, params)
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(x), y).item()

    assert loss(trained) < 0.7 * loss(start)


def test_proximal_term_keeps_the_update_near_the_global_model(digits):
    model = build_model("mlp", digits.input_shape, 10, seed=0)
    start = get_params(model)
    x, y = digits.x_train[:200], digits.y_train[:200]

    def drift(mu):
        trained = train_local(model, start, x, y, TrainConfig(epochs=3, proximal_mu=mu), seed=0)
        return np.linalg.norm(flatten(trained) - flatten(start))

    assert drift(1.0) < 0.8 * drift(0.0)


def test_flatten_unflatten_round_trip(digits):
    params = get_params(build_model("cnn", digits.input_shape, 10, seed=0))
    vec = flatten(params)
    assert vec.dtype == np.float32 and vec.shape == (sum(v.size for v in params.values()),)
    assert same(unflatten(vec, params), params)
    # sorted order: "conv1.bias" comes first
    assert vec[: params["conv1.bias"].size].tobytes() == params["conv1.bias"].tobytes()
    with pytest.raises(LearningError, match="does not fit"):
        unflatten(vec[:-1], params)
