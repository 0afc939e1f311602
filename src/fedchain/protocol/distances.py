"""The distance table a Krum-rule vote commits to, and the bisection that disputes it.

The Krum rules: Krum, MultiKrum and Bulyan, the rules that select by squared distances.

Krum's choice (and Bulyan's, which is repeated Krum) depends on squared distances between
whole updates: sums over every chunk, which no single on-chain step can recompute. So a
Krum, MultiKrum or Bulyan vote
commits to them: the vote's ``scores_root`` is ``keccak(scores tree root ++ table
root)``, where the table is a Merkle *sum* tree with one leaf per chunk of the model
(the model's own tree shape, padded to a power of two). Every node carries a vector of
sums, one entry per pair of reveal indices i < j at ``j * (j - 1) // 2 + i``:

- leaf c holds ``|u_i[c] - u_j[c]|**2`` over chunk c (0 past the model's last chunk, and 0
  for a pair with a rejected update); its hash is ``keccak(abi(c, digest))``;
- an inner node holds its children's sums added entry by entry; its hash is
  ``keccak(abi(left, right, digest))``;

with ``digest = keccak(abi(uint256[] sums))``. The root's sums are the squared
distances, from which ``challenges.challenge`` recomputes Krum's selection. A wrong sum
at the root means, walking down along a child that differs from the honest tree, either
a node that is not the sum of its children (``challenge_distance_sum``) or a wrong leaf
(``challenge_distance_leaf``, checked against the two updates' chunks): the bisection is
done off chain, because every intermediate sum is committed, and each possible fault
costs one transaction.

The committee's whole tree travels in a blob (``to_bytes``) named in the voted model's
lineage (``"distances": {"cid", "root"}``), so a watcher can find the faulty node. A
committee that withholds that blob, or publishes one that does not hash to its vote,
cannot be proven wrong on chain: that is the scheme's data-availability assumption
(docs/decisions.md, "Challenges").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedchain.errors import FedchainError
from fedchain.learning.aggregate import registry
from fedchain.learning.aggregate.common import chunk_sums
from fedchain.protocol.recipe import CHALLENGE_NONE, Recipe
from fedchain.storage.merkle import keccak

MAX_TABLE = 64  # challenges.vy: a table covers at most 64 reveals (2,016 pairs)
_WORD = 32


class TableError(FedchainError):
    """A distance table blob that is malformed."""


def has_table(recipe: Recipe) -> bool:
    """Whether the task's votes commit to a distance table: its rule is challengeable (and
    without NNM) and judged from one (a ``selection``: Krum, MultiKrum and Bulyan)."""
    return recipe.challenge_rule[0] != CHALLENGE_NONE and registry.get(recipe.rule).distance_table


def pair_index(i: int, j: int) -> int:
    """The entry of reveal indices i < j in a table's sums."""
    if not 0 <= i < j:
        raise ValueError(f"a pair needs 0 <= i < j, got ({i}, {j})")
    return j * (j - 1) // 2 + i


def pair_of(e: int) -> tuple[int, int]:
    """The reveal indices (i, j) of entry ``e``."""
    j = 1
    while (j + 1) * j // 2 <= e:
        j += 1
    return e - j * (j - 1) // 2, j


def digest(sums: Sequence[int]) -> bytes:
    """keccak256(abi_encode(uint256[] sums)), as the contract hashes a DynArray."""
    head = (32).to_bytes(_WORD, "big") + len(sums).to_bytes(_WORD, "big")
    return keccak(head + b"".join(int(s).to_bytes(_WORD, "big") for s in sums))


def leaf_hash(chunk: int, sums: Sequence[int]) -> bytes:
    return keccak(chunk.to_bytes(_WORD, "big") + digest(sums))


def node_hash(left: bytes, right: bytes, sums: Sequence[int]) -> bytes:
    return keccak(left + right + digest(sums))


def combined_scores_root(scores_tree_root: bytes, table_root: bytes) -> bytes:
    """A Krum vote's scores_root: the scores tree and the distance table side by side."""
    return keccak(scores_tree_root + table_root)


def leaf_sums(vectors: Sequence[np.ndarray | None], size: int, chunk_size: int) -> list[list[int]]:
    """Every leaf's sums: ``vectors`` are the round's updates in reveal order (None for a
    rejected one), ``size`` the model's length. Exact: a chunk's sum of squared
    differences of values below 2**24 stays below 2**54, inside int64."""
    n = len(vectors)
    chunks = -(-size // chunk_size) if size else 1
    width = 1 << (chunks - 1).bit_length()
    pairs = n * (n - 1) // 2
    out = np.zeros((width, pairs), dtype=np.int64)
    accepted = [i for i, v in enumerate(vectors) if v is not None]
    if len(accepted) >= 2 and size:
        x = np.stack([np.asarray(vectors[i], dtype=np.int64) for i in accepted])
        g = chunk_sums(x, x, "icj,kcj->ikc")  # (a, b, chunk) Gram entries, each below 2**52
        sq = np.einsum("aac->ac", g)
        for b, j in enumerate(accepted):
            for a, i in enumerate(accepted[:b]):
                out[:chunks, pair_index(i, j)] = sq[a] + sq[b] - 2 * g[a, b]
    return [[int(v) for v in row] for row in out]


@dataclass(frozen=True)
class DistanceTable:
    """A whole sum tree: ``sums[h][p]`` and ``hashes[h][p]`` for the node at height h
    (leaves: 0) and position p; ``sums[-1][0]`` are the squared distances."""

    sums: list[list[list[int]]]
    hashes: list[list[bytes]]

    @classmethod
    def build(cls, leaves: list[list[int]]) -> DistanceTable:
        if not leaves or len(leaves) & (len(leaves) - 1):
            raise TableError(f"a distance table needs a power-of-two number of leaves, got {len(leaves)}")
        sums, hashes = [leaves], [[leaf_hash(c, s) for c, s in enumerate(leaves)]]
        while len(sums[-1]) > 1:
            below, below_h = sums[-1], hashes[-1]
            level = [[a + b for a, b in zip(below[2 * p], below[2 * p + 1])] for p in range(len(below) // 2)]
            sums.append(level)
            hashes.append([node_hash(below_h[2 * p], below_h[2 * p + 1], s) for p, s in enumerate(level)])
        return cls(sums, hashes)

    @classmethod
    def of_round(cls, vectors: Sequence[np.ndarray | None], size: int, chunk_size: int) -> DistanceTable:
        return cls.build(leaf_sums(vectors, size, chunk_size))

    @property
    def depth(self) -> int:
        return len(self.sums) - 1

    @property
    def root(self) -> bytes:
        return self.hashes[-1][0]

    @property
    def totals(self) -> list[int]:
        return self.sums[-1][0]

    def root_children(self) -> tuple[bytes, bytes]:
        """The root's children hashes (both empty when the root is a leaf)."""
        return (bytes(32), bytes(32)) if self.depth == 0 else (self.hashes[-2][0], self.hashes[-2][1])

    def children(self, height: int, position: int) -> tuple[bytes, bytes]:
        """A node's children hashes, as ``challenges.SumNode`` wants them (empty for a leaf)."""
        if height == 0:
            return bytes(32), bytes(32)
        return self.hashes[height - 1][2 * position], self.hashes[height - 1][2 * position + 1]

    def path(self, height: int, position: int) -> tuple[list[bytes], list[bytes]]:
        """From the node up to the root: each ancestor's other child, and each ancestor's digest."""
        siblings, digests = [], []
        p = position
        for h in range(height, self.depth):
            siblings.append(self.hashes[h][p ^ 1])
            digests.append(digest(self.sums[h + 1][p // 2]))
            p //= 2
        return siblings, digests

    # -- the blob

    def to_bytes(self) -> bytes:
        """depth and the number of pairs (two 32-byte words), then every node's sums as
        32-byte big-endian words, level by level from the leaves, left to right."""
        pairs = len(self.totals)
        body = b"".join(int(v).to_bytes(_WORD, "big") for level in self.sums for node in level for v in node)
        return self.depth.to_bytes(_WORD, "big") + pairs.to_bytes(_WORD, "big") + body

    @classmethod
    def from_bytes(cls, data: bytes) -> DistanceTable:
        """Parse a published table, recomputing every hash from its sums (never trusting any)."""
        if len(data) < 2 * _WORD:
            raise TableError("a distance table blob is shorter than its header")
        depth, pairs = int.from_bytes(data[:_WORD], "big"), int.from_bytes(data[_WORD : 2 * _WORD], "big")
        if depth > 20 or pairs > MAX_TABLE * (MAX_TABLE - 1) // 2:
            raise TableError(f"a distance table of depth {depth} with {pairs} pairs is out of range")
        nodes = (1 << (depth + 1)) - 1
        if len(data) != 2 * _WORD + nodes * pairs * _WORD:
            raise TableError(
                f"a distance table of depth {depth} with {pairs} pairs needs "
                f"{2 * _WORD + nodes * pairs * _WORD} bytes, got {len(data)}"
            )
        words = [int.from_bytes(data[k : k + _WORD], "big") for k in range(2 * _WORD, len(data), _WORD)]
        sums, at = [], 0
        for h in range(depth + 1):
            level = []
            for _ in range(1 << (depth - h)):
                level.append(words[at : at + pairs])
                at += pairs
            sums.append(level)
        hashes = [[leaf_hash(c, s) for c, s in enumerate(sums[0])]]
        for h in range(1, depth + 1):
            below = hashes[-1]
            hashes.append([node_hash(below[2 * p], below[2 * p + 1], s) for p, s in enumerate(sums[h])])
        return cls(sums, hashes)


def first_fault(claimed: DistanceTable, honest: DistanceTable) -> tuple | None:
    """Bisect ``claimed`` against ``honest`` (both over the same reveals and rejected set).

    Returns None if the two trees are the same, ``("size",)`` for sums of the wrong
    length (the aggregate challenge proves that), ``("depth",)`` for a tree not shaped
    like the model (a leaf challenge proves that), ``("sum", height, position)`` for a
    node that is not the sum of its children, or ``("leaf", chunk, i, j)`` for a leaf
    whose entry (i, j) is wrong. The walk goes down from the root along a child whose
    hash differs from the honest one: a node whose children add up but differ must have
    a differing child, and a differing leaf has a differing entry.
    """
    if claimed.root == honest.root:
        return None
    if len(claimed.totals) != len(honest.totals):
        return ("size",)
    if claimed.depth != honest.depth:
        return ("depth",)
    h, p = claimed.depth, 0
    while h > 0:
        node, left, right = claimed.sums[h][p], claimed.sums[h - 1][2 * p], claimed.sums[h - 1][2 * p + 1]
        if any(s != a + b for s, a, b in zip(node, left, right)):
            return ("sum", h, p)
        p = 2 * p if claimed.hashes[h - 1][2 * p] != honest.hashes[h - 1][2 * p] else 2 * p + 1
        h -= 1
    e = next(e for e, (a, b) in enumerate(zip(claimed.sums[0][p], honest.sums[0][p])) if a != b)
    return ("leaf", p, *pair_of(e))
