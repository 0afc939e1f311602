"""Unit tests for fedchain.learning.aggregate.fedavg: exact fixed-point FedAvg."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedchain.errors import LearningError
from fedchain.learning.aggregate.fedavg import aggregate_update, fedavg, fedavg_float, weights_of
from fedchain.learning.fixedpoint import MAX_UPDATES, MAX_WEIGHT, QMAX, SCALE

HALF = QMAX // 2  # model and updates within +-HALF keep model + mean update inside the clip range


@st.composite
def rounds(draw, max_updates=8, max_len=70, bound=HALF):
    """(model, updates, samples): vectors of one length, counts incl. some above the cap.

    Hypothesis picks the shape, the magnitude and a seed; numpy fills the vectors
    (drawing thousands of integers one by one would be slow for no extra insight).
    """
    n = draw(st.integers(1, max_len), label="length")
    k = draw(st.integers(1, max_updates), label="updates")
    hi = draw(st.sampled_from([1, 3, 1000, bound]), label="magnitude")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    model = rng.integers(-hi, hi, n, endpoint=True)
    updates = [rng.integers(-hi, hi, n, endpoint=True) for _ in range(k)]
    samples = draw(
        st.lists(st.one_of(st.integers(1, 5000), st.integers(1, 4 * MAX_WEIGHT)), min_size=k, max_size=k),
        label="samples",
    )
    return model, updates, samples


@given(rounds(), st.integers(1, 12))
def test_identical_updates_give_model_plus_update_exactly(r, copies):
    model, updates, samples = r
    u = updates[0]
    out = fedavg(model, [u] * copies, (samples * copies)[:copies])
    assert out.dtype == np.int64
    assert np.array_equal(out, model + u)


def test_weights_are_capped_at_max_weight():
    assert weights_of([1, MAX_WEIGHT - 1, MAX_WEIGHT, MAX_WEIGHT + 1, 10**18]) == [
        1,
        MAX_WEIGHT - 1,
        MAX_WEIGHT,
        MAX_WEIGHT,
        MAX_WEIGHT,
    ]
    model = np.zeros(3, dtype=np.int64)
    big, small = np.array([1000, -1000, 7]), np.array([0, 0, 0])
    # a trainer claiming 10**12 samples weighs exactly as much as one claiming MAX_WEIGHT
    assert np.array_equal(
        fedavg(model, [big, small], [10**12, MAX_WEIGHT]), fedavg(model, [big, small], [MAX_WEIGHT, MAX_WEIGHT])
    )
    assert np.array_equal(fedavg(model, [big, small], [10**12, MAX_WEIGHT]), np.array([500, -500, 3]))


@given(rounds())
def test_fedavg_matches_the_float_reference_within_one_quantum(r):
    model, updates, samples = r
    exact = fedavg(model, updates, samples).astype(np.float64) / SCALE
    ref = fedavg_float(model / SCALE, [u / SCALE for u in updates], samples)
    diff = (ref - exact) * SCALE  # in quanta
    assert np.max(np.abs(diff)) <= 2
    # sharper: floor division rounds the exact mean down, so the reference is at most
    # one quantum above and never below (up to float64 rounding of the reference)
    assert np.all(diff > -1e-6)
    assert np.all(diff < 1 + 1e-6)


def test_floor_division_rounds_negative_means_down():
    # The aggregate is floor(sum w_i u_i / sum w_i): rounding is towards minus infinity,
    # not towards zero. A mean of -0.5 quanta becomes -1, a mean of +0.5 becomes 0, so
    # the rounding is biased by at most one quantum downwards, identically on every machine.
    # NB: EVM/Vyper signed division truncates towards zero, so an on-chain recomputation
    # of a chunk must implement floor explicitly to agree with this.
    a, b = np.array([-1, 1, -3, 3, -4]), np.array([0, 0, 0, 0, 0])
    assert aggregate_update([a, b], [1, 1]).tolist() == [-1, 0, -2, 1, -2]
    # -7 / 3 = -2.33 -> -3 (trunc would give -2); 7 / 3 -> 2
    assert aggregate_update([np.array([-7, 7])], [3]).tolist() == [-7, 7]
    assert aggregate_update([np.array([-7, 7]), np.array([0, 0]), np.array([0, 0])], [1, 1, 1]).tolist() == [-3, 2]


def test_fedavg_clips_the_new_model_to_range():
    model = np.array([QMAX, -QMAX, 0])
    u = np.array([QMAX, -QMAX, 5])
    assert fedavg(model, [u], [1]).tolist() == [QMAX, -QMAX, 5]


def test_max_updates_at_max_weight_and_extreme_values_do_not_overflow():
    # a model-to-model difference can reach 2 * QMAX = 2**24; 256 of them at weight 2**20
    # sum to about 2**52, which int64 holds exactly (a float64 sum would not be exact)
    n = 2 * 64 + 3
    ups = [np.full(n, 2 * QMAX, dtype=np.int64)] * (MAX_UPDATES - 1) + [np.full(n, QMAX - 1, dtype=np.int64)]
    out = aggregate_update(ups, [MAX_WEIGHT] * MAX_UPDATES)
    exact_sum = ((MAX_UPDATES - 1) * 2 * QMAX + QMAX - 1) * MAX_WEIGHT
    assert out.tolist() == [exact_sum // (MAX_UPDATES * MAX_WEIGHT)] * n
    assert np.array_equal(
        aggregate_update([-u for u in ups], [MAX_WEIGHT] * MAX_UPDATES),
        np.full(n, -exact_sum // (MAX_UPDATES * MAX_WEIGHT)),
    )


def test_more_than_max_updates_is_refused():
    ups = [np.zeros(4, dtype=np.int64)] * (MAX_UPDATES + 1)
    with pytest.raises(LearningError, match="exceed the limit"):
        aggregate_update(ups, [1] * len(ups))
    with pytest.raises(LearningError):
        fedavg(np.zeros(4, dtype=np.int64), ups, [1] * len(ups))
    assert aggregate_update(ups[:MAX_UPDATES], [1] * MAX_UPDATES).tolist() == [0] * 4


@pytest.mark.parametrize("samples", [[0], [5, 0], [-1, 3], [3, -(10**9)]])
def test_non_positive_sample_counts_are_refused(samples):
    ups = [np.ones(4, dtype=np.int64)] * len(samples)
    with pytest.raises(LearningError, match="must be positive"):
        aggregate_update(ups, samples)


def test_no_updates_is_refused():
    with pytest.raises(LearningError, match="no updates"):
        fedavg(np.zeros(3, dtype=np.int64), [], [])


@given(rounds(max_updates=10), st.randoms(use_true_random=False))
def test_update_order_does_not_change_the_result(r, rnd):
    model, updates, samples = r
    order = list(range(len(updates)))
    rnd.shuffle(order)
    shuffled = fedavg(model, [updates[i] for i in order], [samples[i] for i in order])
    assert np.array_equal(shuffled, fedavg(model, updates, samples))


def test_mismatched_updates_and_sample_counts_are_refused():
    ups = [np.array([4, 4]), np.array([8, 8])]
    with pytest.raises(LearningError):
        aggregate_update(ups, [1])  # today: silently returns [4, 4], ignoring the second update


def test_updates_of_different_shapes_are_refused():
    with pytest.raises(LearningError):
        aggregate_update([np.array([4, 4, 4]), np.array([8])], [1, 1])  # today: [6, 6, 6]
