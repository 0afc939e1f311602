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

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from eth_utils import keccak

from fedchain.errors import FedchainError
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate import aggregate_update
from fedchain.learning.scoring import cosine_score
from fedchain.protocol.recipe import CHALLENGE_NONE, SCORE_COSINE, Recipe
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_metadata, decode_tensors
from fedchain.storage.merkle import merkle_layers, proof_from_layers, score_leaf
from fedchain.storage.store import BlobStore


class Unchallengeable(FedchainError):
    """The result looks wrong but no on-chain proof of it can be built (the reason says why)."""


@dataclass(frozen=True)
class Challenge:
    """The arguments of ``challenges.challenge`` for one round."""

    task_id: int
    round_id: int
    vote: tuple  # (model_root, model_cid, scores_root, total_score, rejected)
    rule: tuple[int, int, int, int]  # the recipe's challenge rule (rule, beta num, beta den, score)
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

    fn = "challenge"

    def args(self) -> tuple:
        return (self.task_id, self.round_id, self.vote, (*self.rule, self.recipe_json_hash), self.chunk,
                self.coordinate, self.depth, self.nodes,
                self.update_roots, self.salts, self.update_chunks, self.update_proofs, self.parent_chunk,
                self.parent_proof, self.claimed_chunk, self.claimed_proof)


@dataclass(frozen=True)
class ScoreChallenge:
    """The arguments of ``challenges.challenge_score``: one trainer's score, recomputed
    from its whole update and the two whole models (empty for a rejected update)."""

    task_id: int
    round_id: int
    vote: tuple
    rule: tuple[int, int, int, int]
    recipe_json_hash: bytes
    index: int  # a reveal index; node and score: the voted scores tree's leaf there
    node: str
    score: int
    score_proof: list[bytes]
    update_root: bytes
    salt: bytes
    update: bytes
    parent: bytes
    claimed: bytes

    fn = "challenge_score"

    def args(self) -> tuple:
        return (self.task_id, self.round_id, self.vote, (*self.rule, self.recipe_json_hash), self.index, self.node,
                self.score, self.score_proof, self.update_root, self.salt, self.update, self.parent, self.claimed)


@dataclass(frozen=True)
class TotalChallenge:
    """The arguments of ``challenges.challenge_total``: every leaf of the scores tree."""

    task_id: int
    round_id: int
    vote: tuple
    rule: tuple[int, int, int, int]
    recipe_json_hash: bytes
    nodes: list[str]
    scores: list[int]

    fn = "challenge_total"

    def args(self) -> tuple:
        return (self.task_id, self.round_id, self.vote, (*self.rule, self.recipe_json_hash), self.nodes, self.scores)


MAX_SCORE_CHUNKS = 256  # challenges.vy reads whole vectors for a score: up to 256 chunks of 64 values


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
    revealed: list = ()  # every Revealed event of the round, in reveal order
    claimed_scores: list | None = None  # the voted model's lineage: [(node, score)] in reveal order

    @property
    def vote_tuple(self) -> tuple:
        v = self.vote
        return (v["model_root"], v["model_cid"], v["scores_root"], v["total_score"], v["rejected"])

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
            self.task_id, self.round_id, self.vote_tuple, self.recipe.challenge_rule, keccak(self.recipe.to_bytes()), c, j, len(parent_proof),
            [e.args["node"] for e in self.accepted],
            [e.args["update_root"] for e in self.accepted], [e.args["salt"] for e in self.accepted],
            update_chunks, update_proofs, parent_chunk, parent_proof, claimed_chunk, claimed_proof)

    # -- scores

    def expected_scores(self) -> list[int]:
        """Each reveal's cosine score as the contract recomputes it: against the voted
        model's update (voted model - parent), 0 for a rejected update."""
        g = self.claimed - self.parent
        by_node = {e.args["node"]: cosine_score(q, g) for e, q in zip(self.accepted, self.updates)}
        return [by_node.get(e.args["node"], 0) for e in self.revealed]

    def _score_tree(self) -> list[list[bytes]]:
        if self.claimed_scores is None:
            raise Unchallengeable("the voted model blob carries no scores list: no score proof can be built")
        layers = merkle_layers([score_leaf(a, s) for a, s in self.claimed_scores])
        if layers[-1][0] != self.vote["scores_root"]:
            raise Unchallengeable("the scores in the voted model blob do not match the voted scores root")
        return layers

    def score_challenge(self, i: int) -> ScoreChallenge:
        """The challenge of reveal ``i``'s score (of a right score, it fails and costs the bond)."""
        layers = self._score_tree()
        node, score = self.claimed_scores[i]
        e = self.revealed[i]
        rule, json_hash = self.recipe.challenge_rule, keccak(self.recipe.to_bytes())
        if e.args["node"] != node or (self.vote["rejected"] >> i) & 1:  # misnamed leaf, or rejected
            vectors, root, salt = (b"", b"", b""), bytes(32), bytes(32)
        else:
            q = self.updates[[a.args["node"] for a in self.accepted].index(node)]
            vectors = tuple(fp.chunk_bytes(fp.chunks(v, self.recipe.chunk_size).ravel())
                            for v in (q, self.parent, self.claimed))
            root, salt = e.args["update_root"], e.args["salt"]
        return ScoreChallenge(self.task_id, self.round_id, self.vote_tuple, rule, json_hash, i, node, score,
                              proof_from_layers(layers, i), root, salt, *vectors)

    def total_challenge(self) -> TotalChallenge:
        self._score_tree()
        return TotalChallenge(self.task_id, self.round_id, self.vote_tuple, self.recipe.challenge_rule,
                              keccak(self.recipe.to_bytes()), [a for a, _ in self.claimed_scores],
                              [s for _, s in self.claimed_scores])


def gather(task_id: int, round_id: int, parent_q: np.ndarray, revealed: Iterable, vote: Mapping,
           store: BlobStore, recipe: Recipe, shapes: Mapping[str, tuple[int, ...]]) -> Evidence:
    """Fetch and check everything a challenge of ``vote`` (a Voted event's args) needs.

    Raises ``Unchallengeable`` when no proof can be built: the voted model's blob is
    unavailable or does not match its root, or an update the vote accepted is unusable.
    """
    size = recipe.chunk_size
    try:
        blob = store.get(cid_from_digest(vote["model_cid"]))
        claimed = _decode_vector(blob, shapes)
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
    revealed = sorted(revealed, key=lambda e: e.args["index"])
    return Evidence(task_id, round_id, vote, parent_q, claimed, accepted, updates, samples, recipe, revealed,
                    _lineage_scores(blob))


def _lineage_scores(blob: bytes) -> list[tuple[str, int]] | None:
    """The scores list in a model blob's lineage (``fedchain`` metadata), if well formed."""
    try:
        scores = json.loads(decode_metadata(blob)["fedchain"])["scores"]
        return [(str(a), int(s)) for a, s in scores]
    except (FedchainError, KeyError, ValueError, TypeError):
        return None


def find_fault(task_id: int, round_id: int, parent_q: np.ndarray, revealed: Iterable, vote: Mapping,
               store: BlobStore, recipe: Recipe, shapes: Mapping[str, tuple[int, ...]]) -> Challenge | None:
    """The challenge of the first wrong value of ``vote``'s model, or None if the model
    is the rule's aggregate of the updates it accepted (``Unchallengeable``: see ``gather``)."""
    if recipe.challenge_rule[0] == CHALLENGE_NONE:
        raise Unchallengeable(f"rule {recipe.rule!r} {dict(recipe.rule_params)} is not challengeable on chain")
    evidence = gather(task_id, round_id, parent_q, revealed, vote, store, recipe, shapes)
    wrong = evidence.first_wrong()
    return None if wrong is None else evidence.challenge(*wrong)


def find_score_fault(evidence: Evidence) -> ScoreChallenge | TotalChallenge | None:
    """The challenge of the first wrong score of the vote, else of a wrong total score,
    else None. ``Unchallengeable``: scores the contract cannot recompute, a model too
    large for one step, or a scores list that does not match the voted root."""
    r = evidence.recipe
    if r.challenge_rule[3] != SCORE_COSINE:
        raise Unchallengeable(f"the {r.score!r} score is not challengeable on chain")
    if fp.chunks(evidence.parent, r.chunk_size).shape[0] > MAX_SCORE_CHUNKS:
        raise Unchallengeable(f"a score check reads whole vectors: at most {MAX_SCORE_CHUNKS * r.chunk_size} "
                              "parameters in one step")
    evidence._score_tree()
    expected = evidence.expected_scores()
    for i, ((node, got), want) in enumerate(zip(evidence.claimed_scores, expected)):
        if node != evidence.revealed[i].args["node"] or got != want:
            return evidence.score_challenge(i)
    claimed = [s for _, s in evidence.claimed_scores]
    return evidence.total_challenge() if sum(claimed) != evidence.vote["total_score"] else None
