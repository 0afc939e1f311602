"""Unit tests for fedchain.learning.fixedpoint: quantisation, chunk packing, roots, dots."""

import struct

import numpy as np
import pytest
from eth_utils import keccak
from hypothesis import example, given
from hypothesis import strategies as st

from fedchain.errors import LearningError
from fedchain.learning.fixedpoint import (
    CHUNK_SIZE,
    CLIP,
    QMAX,
    SCALE,
    chunk_bytes,
    chunk_leaves,
    chunked_dot,
    chunks,
    from_fixed,
    to_fixed,
    vector_root,
)
from fedchain.storage.merkle import merkle_root

fixed = st.integers(-QMAX, QMAX)
# values that bunch up at the edges of the range, where int32 packing and int64 products are tight
edgy = st.one_of(fixed, st.integers(QMAX - 3, QMAX), st.integers(-QMAX, -QMAX + 3), st.sampled_from([0, 1, -1]))
# lengths around chunk boundaries: 1, 63, 64, 65, 130 ... not multiples of CHUNK_SIZE on purpose
vectors = st.lists(edgy, min_size=1, max_size=3 * CHUNK_SIZE + 5).map(lambda v: np.array(v, dtype=np.int64))


# ---------------------------------------------------------------- quantisation


@given(st.lists(fixed, min_size=1, max_size=50))
def test_values_on_the_grid_round_trip_exactly(qs):
    x = np.array(qs, dtype=np.float64) / SCALE  # exact: a power-of-two divisor
    assert np.array_equal(to_fixed(x), np.array(qs, dtype=np.int64))


@given(fixed)
@example(QMAX)
@example(-QMAX)
@example(QMAX - 1)
@example(1)
def test_from_fixed_is_exact_float32_and_inverts(q):
    f = from_fixed(np.array([q]))
    assert f.dtype == np.float32
    # the float32 holds q / SCALE exactly: scaling back in exact rational arithmetic gives q
    assert float(f[0]).as_integer_ratio() == (q / SCALE).as_integer_ratio()
    assert int(float(f[0]) * SCALE) == q
    assert to_fixed(f)[0] == q


def test_to_fixed_rounds_half_to_even():
    half = 0.5 / SCALE
    x = np.array([half, 3 * half, -half, -3 * half, 5 * half])
    assert to_fixed(x).tolist() == [0, 2, 0, -2, 2]


def test_to_fixed_accepts_the_clip_bounds():
    assert to_fixed(np.array([CLIP, -CLIP])).tolist() == [QMAX, -QMAX]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_to_fixed_rejects_non_finite(bad):
    with pytest.raises(LearningError, match="NaN/Inf"):
        to_fixed(np.array([0.0, bad, 1.0]))


@pytest.mark.parametrize("bad", [CLIP + 1 / SCALE, -CLIP - 1 / SCALE, 1e9, np.nextafter(CLIP, np.inf)])
def test_to_fixed_rejects_out_of_range(bad):
    with pytest.raises(LearningError, match="outside the fixed-point range"):
        to_fixed(np.array([0.0, bad], dtype=np.float64))


def test_to_fixed_of_float32_input_is_exact():
    x = np.array([0.1, -3.3, 127.99], dtype=np.float32)
    expected = [round(float(v) * SCALE) for v in x]  # float32 -> Python float is exact
    assert to_fixed(x).tolist() == expected


# ---------------------------------------------------------------- packing


@pytest.mark.parametrize("values", [[0], [1, -1], [QMAX, -QMAX], [123456, -7654321, 2, -(2**20)], list(range(-5, 6))])
def test_chunk_bytes_is_big_endian_int32_twos_complement(values):
    assert chunk_bytes(np.array(values)) == b"".join(struct.pack(">i", v) for v in values)


def test_chunk_bytes_of_minus_one_is_all_ones():
    assert chunk_bytes(np.array([-1])) == b"\xff\xff\xff\xff"


@pytest.mark.parametrize("bad", [QMAX + 1, -QMAX - 1, 2**31, -(2**31)])
def test_chunk_bytes_refuses_values_beyond_qmax(bad):
    with pytest.raises(LearningError, match="outside the committed range"):
        chunk_bytes(np.array([0, bad]))


# ---------------------------------------------------------------- chunks and roots


def reference_root(values: list[int]) -> bytes:
    """The root computed by hand: pad to whole chunks, pack with struct, keccak, Merkle."""
    n = max(1, -(-len(values) // CHUNK_SIZE))
    padded = values + [0] * (n * CHUNK_SIZE - len(values))
    leaves = [keccak(struct.pack(f">{CHUNK_SIZE}i", *padded[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE])) for i in range(n)]
    return merkle_root(leaves)


@pytest.mark.parametrize("n", [1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7])
def test_last_chunk_is_zero_padded(n):
    q = np.arange(1, n + 1, dtype=np.int64)
    c = chunks(q)
    assert c.shape == (-(-n // CHUNK_SIZE), CHUNK_SIZE)
    assert c.ravel()[:n].tolist() == q.tolist()
    assert not c.ravel()[n:].any()
    # padding is part of the commitment: the explicit zeros give the same leaves and root
    padded = np.concatenate([q, np.zeros(c.size - n, dtype=np.int64)])
    assert chunk_leaves(q) == chunk_leaves(padded)
    assert vector_root(q) == vector_root(padded)


@given(vectors)
def test_vector_root_matches_a_hand_computation(q):
    leaves = chunk_leaves(q)
    assert len(leaves) == -(-q.size // CHUNK_SIZE)
    assert vector_root(q) == reference_root(q.tolist())


@given(vectors, st.data())
def test_root_changes_when_any_single_coordinate_changes(q, data):
    i = data.draw(st.integers(0, q.size - 1), label="index")
    new = data.draw(fixed.filter(lambda v: v != q[i]), label="new value")
    changed = q.copy()
    changed[i] = new
    assert vector_root(changed) != vector_root(q)
    leaves, changed_leaves = chunk_leaves(q), chunk_leaves(changed)
    # exactly the leaf of the chunk that holds coordinate i changes
    assert [a != b for a, b in zip(leaves, changed_leaves)] == [k == i // CHUNK_SIZE for k in range(len(leaves))]


def test_vector_root_refuses_out_of_range_values():
    with pytest.raises(LearningError):
        vector_root(np.array([0, QMAX + 1]))


# ---------------------------------------------------------------- dot products


@given(st.data())
def test_chunked_dot_equals_exact_integer_dot(data):
    a = data.draw(vectors, label="a")
    b = np.array(data.draw(st.lists(edgy, min_size=a.size, max_size=a.size)), dtype=np.int64)
    assert chunked_dot(a, b) == sum(int(x) * int(y) for x, y in zip(a.tolist(), b.tolist()))


@pytest.mark.parametrize("n", [1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE - 3])
@pytest.mark.parametrize("sign", [1, -1])
def test_chunked_dot_at_the_extremes_does_not_overflow(n, sign):
    # every product is 2**46 and a full chunk sums to 2**52: inside int64, but a
    # float64 accumulation would already be at the edge of exactness
    a = np.full(n, QMAX, dtype=np.int64)
    b = np.full(n, sign * QMAX, dtype=np.int64)
    assert chunked_dot(a, b) == sign * n * QMAX * QMAX
    assert isinstance(chunked_dot(a, b), int)
