"""Unit tests for fedchain.learning.scoring: integer cosine contribution scores."""

from fractions import Fraction
from math import isqrt

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from fedchain.learning.fixedpoint import CHUNK_SIZE, QMAX
from fedchain.learning.scoring import PPM, cosine_score, scores


@st.composite
def vector_pairs(draw, max_len=3 * CHUNK_SIZE + 5):
    n = draw(st.integers(1, max_len), label="length")
    hi = draw(st.sampled_from([1, 5, 2**10, QMAX]), label="magnitude")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    return rng.integers(-hi, hi, n, endpoint=True), rng.integers(-hi, hi, n, endpoint=True)


def exact_floor_cosine_ppm(u, g) -> int:
    """floor(PPM * max(0, cos(u, g))) in exact rational arithmetic (the score's intent)."""
    u, g = [int(x) for x in u], [int(x) for x in g]
    dot = sum(a * b for a, b in zip(u, g))
    uu, gg = sum(a * a for a in u), sum(b * b for b in g)
    if dot <= 0 or not uu or not gg:
        return 0
    # floor(sqrt(y)) == isqrt(floor(y)) for y >= 0
    return isqrt(PPM * PPM * dot * dot // (uu * gg))


@given(vector_pairs())
def test_identical_direction_scores_full(pair):
    g, _ = pair
    if not g.any():
        g = g + 1
    assert cosine_score(g, g) == PPM


@given(vector_pairs(), st.integers(1, 1000))
def test_update_parallel_to_the_aggregate_scores_full_at_any_scale(pair, k):
    g, _ = pair
    assume(k * int(np.abs(g).max()) <= 2 * QMAX)  # updates are differences of in-range models
    if not g.any():
        g = g + 1
    assert cosine_score(k * g, g) == PPM
    assert cosine_score(g, k * g) == PPM


@given(vector_pairs(), st.integers(1, 1000))
def test_opposite_direction_scores_zero(pair, k):
    g, _ = pair
    assert cosine_score(-g, g) == 0
    assert cosine_score(-k * g, g) == 0


@pytest.mark.parametrize(
    "u, g",
    [
        ([1, 0], [0, 1]),
        ([3, -3, 5], [3, 3, 0]),
        ([QMAX, QMAX] * 40, [QMAX, -QMAX] * 40),  # orthogonal across chunk boundaries
    ],
)
def test_orthogonal_scores_zero(u, g):
    assert cosine_score(np.array(u), np.array(g)) == 0


def test_zero_vectors_score_zero():
    z, g = np.zeros(70, dtype=np.int64), np.arange(70, dtype=np.int64)
    assert cosine_score(z, g) == 0
    assert cosine_score(g, z) == 0
    assert cosine_score(z, z) == 0


@given(vector_pairs())
def test_scores_are_bounded_ints_and_deterministic(pair):
    u, g = pair
    s = cosine_score(u, g)
    assert type(s) is int
    assert 0 <= s <= PPM
    assert cosine_score(u.copy(), g.copy()) == s
    assert scores([u, g, -u], g) == [s, cosine_score(g, g), cosine_score(-u, g)]


@given(vector_pairs())
def test_score_never_undershoots_the_exact_cosine(pair):
    # isqrt floors the denominator, so the integer score is >= floor(PPM * cos)
    u, g = pair
    assert cosine_score(u, g) >= exact_floor_cosine_ppm(u, g)


@st.composite
def realistic_pairs(draw):
    """Many coordinates of fixed-point magnitude, small enough that 64 * u stays in range."""
    n = draw(st.integers(CHUNK_SIZE, 3 * CHUNK_SIZE + 5), label="length")
    hi = draw(st.sampled_from([2**10, 2**14, 2**18]), label="magnitude")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    u = rng.integers(-hi, hi, n, endpoint=True)
    u[0] = hi
    return u, rng.integers(-hi, hi, n, endpoint=True)


@given(realistic_pairs(), st.integers(2, 64))
def test_scaled_update_within_one_ppm_for_realistic_magnitudes(pair, k):
    # with fixed-point magnitudes and many coordinates the floored denominator is
    # huge, so its rounding moves the score by at most one ppm (exact equality is
    # the exact test below covers all magnitudes)
    u, g = pair
    exact = exact_floor_cosine_ppm(u, g)
    assert exact <= cosine_score(u, g) <= exact + 1
    assert exact <= cosine_score(k * u, g) <= exact + 1


@given(vector_pairs(max_len=6), st.integers(2, 50))
@example((np.array([3, 1, -5, -3]), np.array([4, -4, -4, -5])), 32)
def test_scaled_update_same_score(pair, k):
    # cosine is scale invariant; today cosine_score([3,1,-5,-3], g) = 767857 while
    # cosine_score(32 * u, g) = 758963 and the exact floor(PPM * cos) is 758755
    u, g = pair
    assert cosine_score(k * u, g) == cosine_score(u, g) == exact_floor_cosine_ppm(u, g)


def test_exact_reference_agrees_with_fractions():
    u, g = [3, 1, -5, -3], [4, -4, -4, -5]
    cos2 = Fraction(43**2, 44 * 73)
    ref = exact_floor_cosine_ppm(u, g)
    assert Fraction(ref) ** 2 <= PPM**2 * cos2 < Fraction(ref + 1) ** 2
