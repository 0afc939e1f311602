"""Build an on-chain fraud proof against a round's leading result.

A watcher that recomputed a round and found the committee's model wrong needs
one value the contract can recompute (see ``challenges.vy``): the first
coordinate where the task's rule (FedAvg, FedMedian or FedTrimmedAvg) over the
updates the committee accepted differs from the model it voted for.
``find_fault`` finds it and gathers everything the contract checks: that
coordinate's chunk of the parent model, of every accepted update and of the
claimed model, each with its Merkle proof, and each update's revealed root and
salt (the contract proves the root through the trainer's commitment).

The contract uses the committee's own rejected set: a fault in *which* updates
were rejected (availability, validity of a whole blob) cannot be proven one
chunk at a time and is left to the auditor, as are the scores (see
docs/decisions.md, "Challenges").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from eth_utils import keccak

from fedchain.errors import FedchainError
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate import aggregate_update
from fedchain.protocol.recipe import CHALLENGE_NONE, Recipe
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_tensors
from fedchain.storage.merkle import merkle_layers, proof_from_layers
from fedchain.storage.store import BlobStore


class Unchallengeable(FedchainError):
    """The result looks wrong but no on-chain proof of it can be built (the reason says why)."""


@dataclass(frozen=True)
class Challenge:
    """The arguments of ``challenges.challenge`` for one round."""

    task_id: int
    round_id: int
    vote: tuple  # (model_root, model_cid, scores_root, total_score, rejected)
    rule: tuple[int, int, int]  # the recipe's challenge rule (code, beta numerator, denominator)
    recipe_json_hash: bytes
    chunk: int
    coordinate: int
    depth: int
    nodes: list[str]
    update_roots: list[bytes]
    salts: list[bytes]
    update_chunks: bytes
    update_proofs: list[bytes]
    parent_chunk: bytes
    parent_proof: list[bytes]
    claimed_chunk: bytes
    claimed_proof: list[bytes]

    def args(self) -> tuple:
        return (self.task_id, self.round_id, self.vote, *self.rule, self.recipe_json_hash, self.chunk,
                self.coordinate, self.depth, self.nodes,
                self.update_roots, self.salts, self.update_chunks, self.update_proofs, self.parent_chunk,
                self.parent_proof, self.claimed_chunk, self.claimed_proof)


def _decode_vector(data: bytes, shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray:
    from fedchain.learning.train import flatten

    return fp.to_fixed(flatten(decode_tensors(data, shapes)))


def _chunk_and_proof(q: np.ndarray, c: int, chunk_size: int) -> tuple[bytes, list[bytes]]:
    rows = fp.chunks(q, chunk_size)
    layers = merkle_layers(fp.chunk_leaves(q, chunk_size))
    return fp.chunk_bytes(rows[c]), proof_from_layers(layers, c)


def accepted_reveals(revealed: Iterable, rejected: int) -> list:
    """The Revealed events the vote accepted, in reveal order."""
    return [e for e in sorted(revealed, key=lambda e: e.args["index"]) if not (rejected >> e.args["index"]) & 1]


@dataclass(frozen=True)
class Evidence:
    """What a challenge of one vote is built from: the parent model, the voted model
    and the updates the vote accepted, all fetched and checked against their roots."""

    task_id: int
    round_id: int
    vote: Mapping
    parent: np.ndarray
    claimed: np.ndarray
    accepted: list       # Revealed events, in reveal order
    updates: list[np.ndarray]
    samples: list[int]
    recipe: Recipe

    def expected(self) -> np.ndarray:
        """The model the contract will recompute: the rule over the accepted updates."""
        if not self.updates:
            return self.parent
        r = self.recipe
        return fp.clip_fixed(self.parent + aggregate_update(r.rule, r.rule_params, self.updates, self.samples))

    def first_wrong(self) -> tuple[int, int] | None:
        """(chunk, coordinate in it) of the first value of the voted model that is wrong."""
        diff = np.flatnonzero(self.expected() != self.claimed)
        return None if diff.size == 0 else divmod(int(diff[0]), self.recipe.chunk_size)

    def challenge(self, c: int, j: int = 0) -> Challenge:
        """The challenge of value ``j`` of chunk ``c`` (sent for a right value, it fails
        and costs the bond)."""
        size, v = self.recipe.chunk_size, self.vote
        parent_chunk, parent_proof = _chunk_and_proof(self.parent, c, size)
        claimed_chunk, claimed_proof = _chunk_and_proof(self.claimed, c, size)
        update_chunks, update_proofs = b"", []
        for q in self.updates:
            data, proof = _chunk_and_proof(q, c, size)
            update_chunks += data
            update_proofs += proof
        return Challenge(
            self.task_id, self.round_id,
            (v["model_root"], v["model_cid"], v["scores_root"], v["total_score"], v["rejected"]),
            self.recipe.challenge_rule, keccak(self.recipe.to_bytes()), c, j, len(parent_proof),
            [e.args["node"] for e in self.accepted],
            [e.args["update_root"] for e in self.accepted], [e.args["salt"] for e in self.accepted],
            update_chunks, update_proofs, parent_chunk, parent_proof, claimed_chunk, claimed_proof)


def gather(task_id: int, round_id: int, parent_q: np.ndarray, revealed: Iterable, vote: Mapping,
           store: BlobStore, recipe: Recipe, shapes: Mapping[str, tuple[int, ...]]) -> Evidence:
    """Fetch and check everything a challenge of ``vote`` (a Voted event's args) needs.

    Raises ``Unchallengeable`` when no proof can be built: the task's rule is not
    challengeable on chain, the voted model's blob is unavailable or does not match
    its root, or an update the vote accepted is unusable.
    """
    if recipe.challenge_rule[0] == CHALLENGE_NONE:
        raise Unchallengeable(f"rule {recipe.rule!r} {dict(recipe.rule_params)} is not challengeable on chain")
    size = recipe.chunk_size
    try:
        claimed = _decode_vector(store.get(cid_from_digest(vote["model_cid"])), shapes)
    except FedchainError as e:
        raise Unchallengeable(f"the voted model blob cannot be used: {e}") from None
    if claimed.size != parent_q.size or fp.vector_root(claimed, size) != vote["model_root"]:
        raise Unchallengeable("the voted model blob does not match the voted model root")
    accepted = accepted_reveals(revealed, vote["rejected"])
    updates, samples = [], []
    for e in accepted:
        try:
            q = _decode_vector(store.get(cid_from_digest(e.args["update_cid"])), shapes)
        except FedchainError as err:
            raise Unchallengeable(f"accepted update of {e.args['node']} is unusable: {err}") from None
        if q.size != parent_q.size or fp.vector_root(q, size) != e.args["update_root"]:
            raise Unchallengeable(f"accepted update of {e.args['node']} does not match its revealed root")
        updates.append(q)
        samples.append(e.args["samples"])
    return Evidence(task_id, round_id, vote, parent_q, claimed, accepted, updates, samples, recipe)


def find_fault(task_id: int, round_id: int, parent_q: np.ndarray, revealed: Iterable, vote: Mapping,
               store: BlobStore, recipe: Recipe, shapes: Mapping[str, tuple[int, ...]]) -> Challenge | None:
    """The challenge of the first wrong value of ``vote``'s model, or None if the model
    is the rule's aggregate of the updates it accepted (``Unchallengeable``: see ``gather``)."""
    evidence = gather(task_id, round_id, parent_q, revealed, vote, store, recipe, shapes)
    wrong = evidence.first_wrong()
    return None if wrong is None else evidence.challenge(*wrong)
