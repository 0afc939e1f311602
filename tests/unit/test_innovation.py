"""The innovation score (fedchain.learning.innovation): exact projections off the public span,
and a score that pays fresh training and not a rescaled, noised copy of public updates."""

from __future__ import annotations

import functools
from math import isqrt

import numpy as np
import pytest
import torch

from fedchain.errors import LineageError
from fedchain.learning import exact
from fedchain.learning import fixedpoint as fp
from fedchain.learning.data import load_dataset, partition
from fedchain.learning.fixedpoint import chunked_dot
from fedchain.learning.innovation import innovation_scores, orthogonalize, residual
from fedchain.learning.models import build_model
from fedchain.learning.train import TrainConfig, flatten, get_params, train_local, unflatten
from fedchain.learning.validation_score import class_gains, root_indices, validation_scores
from fedchain.protocol.round import Lineage
from fedchain.sim.attacks import ATTACKS, PUBLIC_ATTACKS, Knowledge

torch.set_num_threads(1)
D = 6090  # the digits CNN's parameter count


def _reference_residual(v, public):
    """The same modified Gram-Schmidt with Python integers throughout (no int64 anywhere)."""
    basis = []
    for b in public:
        e = [int(x) for x in b]
        for f, ff in basis:
            a = (sum(x * y for x, y in zip(e, f)) << 32) // ff
            e = [x - (y * a >> 32) for x, y in zip(e, f)]
        ee = sum(x * x for x in e)
        if ee > len(e):
            basis.append((e, ee))
    r = [int(x) for x in v]
    for e, ee in basis:
        a = (sum(x * y for x, y in zip(r, e)) << 32) // ee
        r = [x - (y * a >> 32) for x, y in zip(r, e)]
    return np.array(r, dtype=np.int64)


def test_the_residual_of_public_combinations_is_floor_noise_and_of_a_fresh_vector_most_of_it():
    rng = np.random.default_rng(0)
    public = [rng.integers(-4000, 4001, D) for _ in range(21)]
    basis = orthogonalize(public)
    assert len(basis) == 21
    combo = 3 * public[0] - 2 * public[7] + public[20]
    r = residual(combo, basis)
    assert np.abs(r).max() <= 64 and np.linalg.norm(r) < 1e-3 * np.linalg.norm(combo)
    fresh = rng.integers(-4000, 4001, D)
    rf = residual(fresh, basis)
    assert np.linalg.norm(rf) > 0.99 * np.linalg.norm(fresh)  # 21 directions of 6,090
    for e, ee in basis:  # and what is left is orthogonal to the span
        assert abs(chunked_dot(rf, e)) < 1e-4 * np.sqrt(ee) * np.linalg.norm(rf)  # the floors: cosine ~1e-5


def test_repeats_and_zeros_add_no_direction():
    rng = np.random.default_rng(1)
    a, b = rng.integers(-4000, 4001, 500), rng.integers(-4000, 4001, 500)
    assert len(orthogonalize([a, np.zeros(500, np.int64), a, 2 * a + b, b])) == 2


def test_int64_arithmetic_matches_python_integers_bit_for_bit_at_the_range_limits():
    rng = np.random.default_rng(2)
    d = 300
    public = [rng.choice([-fp.QMAX, fp.QMAX], d), rng.integers(-fp.QMAX, fp.QMAX + 1, d), np.full(d, 3)]
    v = rng.integers(-fp.QMAX, fp.QMAX + 1, d)
    got = residual(v, orthogonalize(public))
    assert np.array_equal(got, _reference_residual(v, public))


def test_lineage_carries_the_accepted_updates_and_rejects_a_malformed_list():
    lin = Lineage(3, "bafyparent", (("0xa", 1),), {}, 1, "fedavg", updates=("bafy1", "bafy2"))
    assert Lineage.from_json(lin.to_json()) == lin
    assert "updates" not in Lineage(3, "bafyparent").to_json()  # other tasks' blobs keep their names
    with pytest.raises(LineageError, match="updates"):
        Lineage.from_json('{"round": 1, "parent": null, "scores": [], "rejected": {}, "updates": [1]}')


# -- the score on real training


@functools.cache
def _world():
    data = load_dataset("digits", seed=0)
    parts = partition("dirichlet", data.y_train, 10, seed=0, alpha=0.5)
    net = build_model("logreg", data.input_shape, data.num_classes, seed=0)
    init = get_params(net)
    cfg = TrainConfig(epochs=2, lr=0.1)

    def update(params, i, seed):
        t = train_local(net, params, data.x_train[parts[i]], data.y_train[parts[i]], cfg, seed=seed)
        return flatten({k: (t[k] - params[k]).astype(np.float32) for k in params})

    # round 0 from the initial model, applied as FedAvg; round 1's honest updates at the new model
    q0 = fp.to_fixed(flatten(init))
    r0 = [update(init, i, i) for i in range(10)]
    g0 = fp.to_fixed(np.mean(r0, axis=0).astype(np.float32))
    q1 = q0 + g0
    p1 = unflatten(fp.from_fixed(q1), init)
    r1 = [fp.to_fixed(update(p1, i, 100 + i)) for i in range(10)]
    idx, _ = root_indices(data.y_test, 100, 0)
    return init, q1, g0, [fp.to_fixed(u) for u in r0], r1, exact.quantize_inputs(data.x_test[idx]), data.y_test[idx]


def test_a_rescaled_noised_public_update_earns_nothing_and_fresh_training_earns():
    template, q1, g0, last, honest, xq, y = _world()
    public = [g0] + last
    rng = np.random.default_rng(0)
    target = np.median([np.linalg.norm(u) for u in last])
    delta = (g0 * (target / np.linalg.norm(g0))).astype(np.int64) + rng.normal(0, 0.1 * target / 70, g0.size).astype(
        np.int64
    )
    copy = last[3] + rng.normal(0, 0.5 * np.linalg.norm(last[3]) / 70, g0.size).astype(np.int64)
    updates = honest[:8] + [delta, copy]
    basis = orthogonalize(public)
    new = validation_scores("logreg", q1, [residual(u, basis) for u in updates], template, xq, y)
    plain = validation_scores("logreg", q1, updates, template, xq, y)
    innov = innovation_scores("logreg", q1, updates, public, template, xq, y)
    by_class = class_gains("logreg", q1, updates, template, xq, y)
    new_by_class = class_gains("logreg", q1, [residual(u, basis) for u in updates], template, xq, y)
    assert innov == [sum(isqrt(a * b) for a, b in zip(cu, cr)) for cu, cr in zip(by_class, new_by_class)]
    assert sum(s > 0 for s in new[:8]) >= 6
    assert max(new[8:]) <= 0.05 * np.mean(new[:8])  # the free-riders' residual is noise: nothing new
    assert min(plain[8:]) > 0.5 * np.mean(plain[:8])  # the root-set score alone pays them well
    assert max(innov[8:]) <= 0.5 * np.mean(innov[:8])  # the innovation score does not
    # round 0 (nothing public yet): the sum of the per-class gains, at least the root-set score
    round0 = innovation_scores("logreg", q1, updates, [], template, xq, y)
    assert round0 == [sum(c) for c in by_class]
    assert all(a >= b for a, b in zip(round0, plain))


# -- the public-information free-riders


def _knowledge(history, revealed, seed=0):
    return Knowledge(np.zeros(D), None, np.zeros((0, D)), 20, 4, np.random.default_rng(seed), history, revealed)


def test_public_free_riders_read_only_earlier_rounds_and_look_like_an_update():
    rng = np.random.default_rng(3)
    history = tuple(rng.normal(0, 0.01, D) for _ in range(6))
    revealed = rng.normal(0, 0.02, (5, D))
    median = np.median(np.linalg.norm(revealed, axis=1))
    for name in PUBLIC_ATTACKS:
        a = ATTACKS[name]
        assert a.public and not a.trains and not a.omniscient
        v = a.craft(_knowledge(history, revealed))
        low, high = (2.0, 2.5) if name == "freerider_lucky" else (0.5, 1.5)  # lucky: as noisy as is unpenalised
        assert v.shape == (D,) and low * median < np.linalg.norm(v) < high * median, name
        # round 0: nothing is public, so it is the plain free-rider (tiny noise)
        assert np.linalg.norm(a.craft(_knowledge((), None))) < 0.1, name
    delta = ATTACKS["freerider_delta"].craft(_knowledge(history, revealed))
    assert np.dot(delta, history[0]) / np.linalg.norm(delta) / np.linalg.norm(history[0]) > 0.99
    copy = ATTACKS["freerider_copy"].craft(_knowledge(history, revealed))
    best = max(np.dot(copy, u) / np.linalg.norm(copy) / np.linalg.norm(u) for u in revealed)
    assert 0.85 < best < 0.95  # a copy, disguised


def test_a_trainer_that_holds_two_classes_is_paid_for_the_classes_it_helps():
    # The non-IID case the whole-root-set gain starves: a trainer with only classes 3 and 8
    # pushes the model towards them, which hurts the other eight about as much as it helps.
    template, q1, g0, last, honest, xq, y = _world()
    data = load_dataset("digits", seed=0)
    mine = np.isin(data.y_train, [3, 8])
    net = build_model("logreg", data.input_shape, data.num_classes, seed=0)
    params = unflatten(fp.from_fixed(q1), template)
    t = train_local(net, params, data.x_train[mine][:60], data.y_train[mine][:60], TrainConfig(epochs=2, lr=0.1), 7)
    narrow = fp.to_fixed(flatten({k: (t[k] - params[k]).astype(np.float32) for k in params}))
    updates = [*honest[:8], narrow]
    public = [g0, *last]
    per_class = class_gains("logreg", q1, updates, template, xq, y)[-1]
    whole = validation_scores("logreg", q1, updates, template, xq, y)[-1]
    score = innovation_scores("logreg", q1, updates, public, template, xq, y)
    assert sum(per_class) > 2 * whole  # the whole-set gain nets its help against its harm
    assert per_class[3] + per_class[8] > 0.5 * sum(per_class)  # the credit is for its own classes
    # the whole-set product isqrt(V(u) * V(r)) paid it 0 here; class by class it earns at least
    # what the lowest-paid of the eight other honest trainers earns
    assert score[-1] >= min(score[:8]) > 0
