"""The availability game's off-chain half (contracts/availability.vy).

A fraud proof needs data: the voted model, the updates the vote accepted, a Krum-rule
vote's distance table. A watcher that cannot fetch one of them asks the availability
contract for a node of its tree (``request_args``); until it is answered the round cannot
finalize, and if nobody answers by the deadline the round is reverted and its voters are
slashable. Anyone holding the data answers (``model_answer``, ``update_answer``,
``table_answer``): validators hold everything they voted for, trainers their updates.

Nodes are named by level (0: the root) and position. A tree shallower than the level is
answered with the leaf above the position, as the contract accepts.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from eth_utils import keccak

from fedchain.learning import fixedpoint as fp
from fedchain.protocol.challenge import KIND_MODEL, KIND_TABLE, KIND_UPDATE, Withheld  # noqa: F401 (re-exported)
from fedchain.protocol.distances import DistanceTable
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import Lineage, Reveal, Vote
from fedchain.storage.merkle import ZERO, merkle_layers, merkle_root, score_leaf
from fedchain.storage.store import BlobStore

KIND_NAMES = {KIND_MODEL: "the voted model", KIND_UPDATE: "an accepted update", KIND_TABLE: "the distance table"}


def rule_tuple(recipe: Recipe) -> tuple:
    """The RecipeRule the contract checks against the task's recipe hash."""
    return (*recipe.challenge_rule, keccak(recipe.to_bytes()))


def request_args(
    task_id: int,
    round_id: int,
    vote: Vote,
    recipe: Recipe,
    kind: int,
    index: int = 0,
    level: int = 0,
    position: int = 0,
) -> tuple:
    """The arguments of ``availability.request`` (the default asks for the tree's root)."""
    return (task_id, round_id, vote.args(), rule_tuple(recipe), kind, index, level, position)


def request_id(task_id: int, round_id: int, kind: int, index: int, level: int, position: int) -> bytes:
    """keccak256(abi_encode(task, round, kind, index, level, position)), as the contract names it."""
    import eth_abi

    return keccak(
        eth_abi.encode(
            ["uint256", "uint256", "uint8", "uint256", "uint256", "uint256"],
            [task_id, round_id, kind, index, level, position],
        )
    )


def _clamp(depth: int, level: int, position: int) -> tuple[int, int]:
    """A level past the tree's leaves asks for the leaf above the position."""
    if level > depth:
        return depth, position >> (level - depth)
    return level, position


def vector_node(q: np.ndarray, chunk_size: int, level: int, position: int) -> tuple:
    """The ``NodeAnswer`` for a node of a fixed-point vector's chunk tree:
    (inner, left, right, data, siblings)."""
    rows = fp.chunks(q, chunk_size)
    layers = merkle_layers(fp.chunk_leaves(q, chunk_size))
    depth = len(layers) - 1
    level, position = _clamp(depth, level, position)
    height = depth - level
    siblings = [layers[k][(position >> (k - height)) ^ 1] for k in range(height, depth)]
    if height > 0:
        return (True, layers[height - 1][2 * position], layers[height - 1][2 * position + 1], b"", siblings)
    data = fp.chunk_bytes(rows[position]) if position < len(rows) else b""  # past the end: the zero leaf
    return (False, ZERO, ZERO, data, siblings)


def table_node(table: DistanceTable, scores_tree_root: bytes, level: int, position: int) -> tuple:
    """The ``TableAnswer`` for a node of a distance table:
    (scores_tree_root, inner, left, right, sums, siblings, digests)."""
    level, position = _clamp(table.depth, level, position)
    height = table.depth - level
    siblings, digests = table.path(height, position)
    left, right = table.children(height, position)
    return (scores_tree_root, height > 0, left, right, list(table.sums[height][position]), siblings, digests)


NO_OPENING = ("0x" + "00" * 20, ZERO, ZERO)


def answer_call(
    request: Mapping,
    vote: Vote,
    *,
    model: np.ndarray | None = None,
    update: tuple | None = None,
    table: tuple[DistanceTable, bytes] | None = None,
    chunk_size: int = fp.CHUNK_SIZE,
) -> tuple[str, tuple]:
    """The (function, arguments after the request id) that answer ``request`` (the
    contract's ``requests`` record). ``model``: the voted model's vector; ``update``:
    (vector, trainer, update root, salt) of the requested reveal; ``table``:
    (DistanceTable, scores tree root). ``LookupError`` if the needed data is not given."""
    kind, level, position = request["kind"], request["level"], request["position"]
    if kind == KIND_TABLE:
        if table is None:
            raise LookupError("no distance table to answer with")
        return "answer_table", (vote.args(), table_node(*table, level, position))
    if kind == KIND_MODEL:
        if model is None:
            raise LookupError("no model to answer with")
        return "answer", (vote.args(), vector_node(model, chunk_size, level, position), NO_OPENING)
    if update is None:
        raise LookupError("no update to answer with")
    q, node, root, salt = update
    return "answer", (vote.args(), vector_node(q, chunk_size, level, position), (node, root, salt))


def answer_from_store(
    request: Mapping,
    vote: Vote,
    revealed: list[Reveal],
    store: BlobStore,
    recipe: Recipe,
    shapes: Mapping[str, tuple[int, ...]],
) -> tuple[str, tuple]:
    """``answer_call`` for ``request`` with the data in ``store``: the voted model's blob,
    the requested update's blob (``revealed``: the round's reveals), or the
    distance table its lineage names. ``FedchainError`` if the data is not there."""
    from fedchain.protocol.challenge import _decode_vector, _lineage_scores

    blob = store.get(vote.cid)
    if request["kind"] == KIND_MODEL:
        return answer_call(request, vote, model=_decode_vector(blob, shapes), chunk_size=recipe.chunk_size)
    if request["kind"] == KIND_TABLE:
        distances = Lineage.from_blob(blob).distances
        if distances is None:
            raise LookupError("the voted model's lineage names no distance table")
        table = DistanceTable.from_bytes(store.get(distances["cid"]))
        scores = _lineage_scores(blob) or []
        tree = merkle_root([score_leaf(a, s) for a, s in scores]) if scores else ZERO
        return answer_call(request, vote, table=(table, tree), chunk_size=recipe.chunk_size)
    e = next(e for e in revealed if e.index == request["index"])
    q = _decode_vector(store.get(e.cid), shapes)
    return answer_call(request, vote, update=(q, e.node, e.update_root, e.salt), chunk_size=recipe.chunk_size)
