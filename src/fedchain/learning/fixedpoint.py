"""Fixed-point parameter vectors: the exact integers that reach consensus.

A float32 parameter x becomes q = round(x * 2**16) as int64 (round half to
even). Valid values satisfy |x| <= CLIP = 128, so |q| <= 2**23 and q / 2**16 is
exactly representable in float32: a model blob decodes back to the same q on
every machine. Float32 -> float64 -> multiply by a power of two -> rint is
exact IEEE arithmetic, identical under every CPU dispatch path.

Overflow bounds (int64, 2**63): a weighted sum of up to MAX_UPDATES = 256
updates with weights <= MAX_WEIGHT = 2**20 stays below 2**23 * 2**20 * 2**8 =
2**51; a dot product over one chunk of CHUNK_SIZE = 64 coordinates stays below
64 * 2**46 = 2**52. Sums over chunks are taken with Python integers, which do
not overflow.

Commitments: the vector is cut into chunks of CHUNK_SIZE values, the last one
zero-padded; a chunk's leaf is keccak256 of its values packed as 4-byte
big-endian two's-complement integers (|q| <= 2**23 fits int32; a contract
recomputes it with keccak256 over the same 256 calldata bytes), and the
vector's root is the Merkle root of its chunk leaves.
"""

from __future__ import annotations

import numpy as np

from fedchain.errors import LearningError
from fedchain.storage.merkle import keccak, merkle_root

FRAC_BITS = 16
SCALE = 1 << FRAC_BITS
CLIP = 128.0
QMAX = int(CLIP * SCALE)
CHUNK_SIZE = 64
MAX_UPDATES = 256
MAX_WEIGHT = 1 << 20


def to_fixed(x: np.ndarray) -> np.ndarray:
    """Quantise a float vector; values outside [-CLIP, CLIP] or non-finite are errors."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise LearningError("vector has NaN/Inf")
    if x.size and np.max(np.abs(x)) > CLIP:
        raise LearningError(f"value {np.max(np.abs(x)):.4g} outside the fixed-point range [-{CLIP}, {CLIP}]")
    return np.rint(x * SCALE).astype(np.int64)


def from_fixed(q: np.ndarray) -> np.ndarray:
    """Exact float32 values of a fixed-point vector (|q| <= 2**23)."""
    return (np.asarray(q, dtype=np.int64).astype(np.float64) / SCALE).astype(np.float32)


def clip_fixed(q: np.ndarray) -> np.ndarray:
    return np.clip(q, -QMAX, QMAX)


def chunks(q: np.ndarray, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
    """The vector as a (n_chunks, chunk_size) int64 array, zero-padded."""
    n = -(-q.size // chunk_size) if q.size else 1
    padded = np.zeros(n * chunk_size, dtype=np.int64)
    padded[: q.size] = q
    return padded.reshape(n, chunk_size)


def chunk_bytes(values: np.ndarray) -> bytes:
    """Values as packed 4-byte big-endian two's complement (the leaf preimage)."""
    v = np.asarray(values, dtype=np.int64)
    if v.size and np.max(np.abs(v)) > QMAX:
        raise LearningError("fixed-point value outside the committed range")
    return v.astype(">i4").tobytes()


def chunk_leaves(q: np.ndarray, chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    packed = chunk_bytes(chunks(q, chunk_size).ravel())
    step = 4 * chunk_size
    return [keccak(packed[i : i + step]) for i in range(0, len(packed), step)]


def vector_root(q: np.ndarray, chunk_size: int = CHUNK_SIZE) -> bytes:
    """The commitment to a fixed-point vector: Merkle root over its chunk leaves."""
    return merkle_root(chunk_leaves(q, chunk_size))


def chunked_dot(a: np.ndarray, b: np.ndarray, chunk_size: int = CHUNK_SIZE) -> int:
    """Exact integer dot product: int64 within a chunk, Python int across chunks."""
    partial = (chunks(a, chunk_size) * chunks(b, chunk_size)).sum(axis=1)
    return sum(int(p) for p in partial)
