"""Build an on-chain fraud proof against a round's leading result.

A watcher that recomputed a round and found the committee's model wrong needs
one value the contract can recompute (see ``challenges.vy``): the first
coordinate where the task's rule (FedAvg, FedMedian or FedTrimmedAvg) over the
updates the committee accepted differs from the model it voted for.
``find_fault`` finds it and gathers everything the contract checks: that
coordinate's chunk of the parent model, of every accepted update and of the
claimed model, each with its Merkle proof, and each update's revealed root and
salt (the contract proves the root through the trainer's commitment).

For Krum, MultiKrum and Bulyan the averaged updates are the rule's selection, which the
contract recomputes from the distance table the vote commits to
(``protocol.distances``); a table whose sums are wrong is disputed first, by
``DistanceSumChallenge`` or ``DistanceLeafChallenge``, one step of the bisection
each.

Every step but ``OpenTable`` is sent in two transactions (SECURITY-REVIEW M-1):
first ``commit`` (``challenges.commit_challenge`` of a hash of the sender and the
step's exact calldata), then, in a later block, the step itself. A bot that copies
the pending step has no commitment of its own and is refused.

The contract uses the committee's own rejected set: a fault in *which* updates
were rejected (availability, validity of a whole blob) cannot be proven one
chunk at a time and is left to the auditor (see docs/decisions.md, "Challenges").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
from eth_utils import keccak

from fedchain.chain import commitments
from fedchain.chain.interface import Contract, Receipt
from fedchain.errors import FedchainError
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate import aggregate_update, enough_updates, registry
from fedchain.learning.aggregate.common import stack
from fedchain.learning.scoring import cosine_score
from fedchain.protocol.distances import (
    MAX_TABLE,
    DistanceTable,
    TableError,
    combined_scores_root,
    first_fault,
    has_table,
)
from fedchain.protocol.recipe import CHALLENGE_NONE, SCORE_COSINE, Recipe
from fedchain.protocol.round import Reveal, Vote, in_reveal_order
from fedchain.storage.codec import decode_metadata, decode_tensors
from fedchain.storage.merkle import ZERO, merkle_layers, proof_from_layers, score_leaf
from fedchain.storage.store import BlobStore


class Unchallengeable(FedchainError):
    """The result looks wrong but no on-chain proof of it can be built (the reason says why)."""


class Withheld(Unchallengeable):
    """A proof needs data that cannot be fetched (or does not match what the vote commits
    to): ``kind`` (``protocol.availability.KIND_*``) and, for an update, the reveal
    ``index`` say what to ask the availability game for."""

    def __init__(self, message: str, kind: int, index: int = 0):
        super().__init__(message)
        self.kind = kind
        self.index = index


KIND_MODEL, KIND_UPDATE, KIND_TABLE = 1, 2, 3  # availability.vy's request kinds


@dataclass(frozen=True)
class Step:
    """What every call to the challenge contract starts with: the round, its leading vote
    (model_root, model_cid, scores_root, total_score, rejected) and the recipe's challenge
    rule (rule, param1, param2, score) with the recipe JSON's hash."""

    task_id: int
    round_id: int
    vote: tuple
    rule: tuple[int, int, int, int]
    recipe_json_hash: bytes

    fn: ClassVar[str]  # the challenges contract's function this step calls

    def args(self) -> tuple:
        raise NotImplementedError

    def head(self) -> tuple:
        return (self.task_id, self.round_id, self.vote, (*self.rule, self.recipe_json_hash))

    def commit(self, challenges: Contract, account) -> Receipt:
        """Commit ``account`` to this step (send the step itself in a later block)."""
        return commit(challenges, account, self.fn, self.args())


def commit(challenges: Contract, account, fn: str, args: tuple) -> Receipt:
    """``challenges.commit_challenge`` by ``account`` for the call ``fn(*args)``: the
    contract's ``commitment`` of the sender and the call's exact calldata. The call
    counts only if sent by ``account`` in a later block, in the round's window."""
    calldata = challenges.artifact.codec.encode_call(fn, args)
    h = challenges.call("commitment", account.address, calldata)
    return challenges.tx("commit_challenge", h, sender=account)


@dataclass(frozen=True)
class ChunkStep(Step):
    """A call that recomputes one value of the round's new model: where (the chunk, the
    coordinate in it, the model tree's depth) and from whose updates (the revealers in reveal
    order, with the update roots and salts that open their commitments)."""

    chunk: int
    coordinate: int
    depth: int
    nodes: list[str]
    update_roots: list[bytes]
    salts: list[bytes]


@dataclass(frozen=True)
class Challenge(ChunkStep):
    """The arguments of ``challenges.challenge`` for one round."""

    update_chunks: bytes
    update_proofs: list[bytes]
    parent_chunk: bytes
    parent_proof: list[bytes]
    claimed_chunk: bytes
    claimed_proof: list[bytes]
    opening: OpenTable | None = None  # Krum rules: the table must be opened first (not an argument)

    fn = "challenge"

    def args(self) -> tuple:
        return (
            *self.head(),
            self.chunk,
            self.coordinate,
            self.depth,
            self.nodes,
            self.update_roots,
            self.salts,
            self.update_chunks,
            self.update_proofs,
            self.parent_chunk,
            self.parent_proof,
            self.claimed_chunk,
            self.claimed_proof,
        )


@dataclass(frozen=True)
class UnmaskingChallenge(ChunkStep):
    """The arguments of ``challenges.challenge_unmasking``: one value of a secure-aggregation
    round's new model, recomputed from the masked chunks and the self-mask seeds."""

    seeds: list[bytes]
    masked_chunks: bytes
    masked_proofs: list[bytes]
    parent_chunk: bytes
    parent_proof: list[bytes]
    claimed_chunk: bytes
    claimed_proof: list[bytes]

    fn = "challenge_unmasking"

    def args(self) -> tuple:
        return (*self.head(), *(getattr(self, f.name) for f in fields(self)[len(fields(Step)) :]))


@dataclass(frozen=True)
class OpenTable(Step):
    """The arguments of ``challenges.open_table``: a Krum-rule vote's table root, opened, so that
    the contract records the selection its sums imply (sent before the ``Challenge``; no bond,
    and no commitment: it pays and records no one)."""

    nodes: list[str]  # every revealer, in reveal order (Krum counts their seats)
    distances: tuple  # (scores tree root, the table root's two children, its sums)

    fn = "open_table"

    def args(self) -> tuple:
        return (*self.head(), self.nodes, self.distances)


@dataclass(frozen=True)
class ScoreChallenge(Step):
    """The arguments of ``challenges.challenge_score``: one trainer's score, recomputed
    from its whole update and the two whole models (empty for a rejected update)."""

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
        return (
            *self.head(),
            self.index,
            self.node,
            self.score,
            self.score_proof,
            self.update_root,
            self.salt,
            self.update,
            self.parent,
            self.claimed,
        )


@dataclass(frozen=True)
class TotalChallenge(Step):
    """The arguments of ``challenges.challenge_total``: every leaf of the scores tree."""

    nodes: list[str]
    scores: list[int]
    table_root: bytes = ZERO  # Krum rules: the distance table beside the scores tree

    fn = "challenge_total"

    def args(self) -> tuple:
        return (*self.head(), self.nodes, self.scores, self.table_root)


@dataclass(frozen=True)
class DistanceSumChallenge(Step):
    """The arguments of ``challenges.challenge_distance_sum``: a table node and its children."""

    scores_tree_root: bytes
    height: int
    position: int
    sums: list[int]
    left: tuple  # (left child's hash, right child's hash, sums) of each child
    right: tuple
    siblings: list[bytes]
    digests: list[bytes]

    fn = "challenge_distance_sum"

    def args(self) -> tuple:
        return (
            *self.head(),
            self.scores_tree_root,
            self.height,
            self.position,
            self.sums,
            self.left,
            self.right,
            self.siblings,
            self.digests,
        )


@dataclass(frozen=True)
class DistanceLeafChallenge(Step):
    """The arguments of ``challenges.challenge_distance_leaf``: a table leaf and entry (i, j)."""

    scores_tree_root: bytes
    chunk: int
    sums: list[int]
    siblings: list[bytes]
    digests: list[bytes]
    i: int
    j: int
    a: tuple  # (node, update root, salt, chunk bytes, proof) of reveal i, and of reveal j
    b: tuple

    fn = "challenge_distance_leaf"

    def args(self) -> tuple:
        return (
            *self.head(),
            self.scores_tree_root,
            self.chunk,
            self.sums,
            self.siblings,
            self.digests,
            self.i,
            self.j,
            self.a,
            self.b,
        )


MAX_SCORE_CHUNKS = 256  # challenges.vy reads whole vectors for a score: up to 256 chunks of 64 values


def _decode_vector(data: bytes, shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray:
    from fedchain.learning.train import flatten

    return fp.to_fixed(flatten(decode_tensors(data, shapes)))


def _chunk_and_proof(q: np.ndarray, c: int, chunk_size: int) -> tuple[bytes, list[bytes]]:
    rows = fp.chunks(q, chunk_size)
    layers = merkle_layers(fp.chunk_leaves(q, chunk_size))
    return fp.chunk_bytes(rows[c]), proof_from_layers(layers, c)


def accepted_reveals(revealed: Iterable, rejected: int) -> list:
    """The reveals the vote accepted, in reveal order."""
    return [e for e in in_reveal_order(revealed) if not (rejected >> e.index) & 1]


@dataclass(frozen=True)
class Evidence:
    """What a challenge of one vote is built from: the parent model, the voted model
    and the updates the vote accepted, all fetched and checked against their roots."""

    task_id: int
    round_id: int
    vote: Vote
    parent: np.ndarray
    claimed: np.ndarray
    accepted: list[Reveal]  # in reveal order
    updates: list[np.ndarray]
    samples: list[int]
    recipe: Recipe
    revealed: Sequence[Reveal] = ()  # every reveal of the round, in reveal order
    claimed_scores: list | None = None  # the voted model's lineage: [(node, score)] in reveal order
    table: DistanceTable | None = None  # Krum rules: the distance table the vote commits to
    # chunks of the voted model known only with their proof (the blob withheld, the chunk
    # answered in the availability game): chunk -> proof; ``claimed`` holds their values
    claimed_proofs: Mapping[int, list] | None = None

    @property
    def vote_tuple(self) -> tuple:
        return self.vote.args()

    @property
    def _rule_args(self) -> tuple[tuple[int, int, int, int], bytes]:
        return self.recipe.challenge_rule, keccak(self.recipe.to_bytes())

    def expected(self) -> np.ndarray:
        """The model the contract will recompute: the rule over the accepted updates
        (the parent if there are fewer than the rule accepts)."""
        r, seats = self.recipe, self.seats
        if not enough_updates(r.rule, r.rule_params, seats):
            return self.parent
        return fp.clip_fixed(
            self.parent + aggregate_update(r.rule, r.rule_params, self.updates, self.samples, seats=seats)
        )

    @property
    def seats(self) -> list[int]:
        """The accepted updates' seats (basis points), in reveal order."""
        return [e.seats_bps for e in self.accepted]

    def averaged(self) -> list[int]:
        """Positions (in ``accepted``) of the updates the rule averages: all of them, or
        for a rule judged from a distance table its selection, as the contract recomputes
        it from true distances."""
        r = self.recipe
        if not has_table(r):
            return list(range(len(self.updates)))
        if not enough_updates(r.rule, r.rule_params, self.seats):
            return []
        selection = registry.get(r.rule).selection
        assert selection is not None  # has_table: a rule judged from a distance table has a selection
        return sorted(selection(stack(self.updates), r.rule_params, self.seats))

    def first_wrong(self) -> tuple[int, int] | None:
        """(chunk, coordinate in it) of the first value of the voted model that is wrong."""
        diff = np.flatnonzero(self.expected() != self.claimed)
        return None if diff.size == 0 else divmod(int(diff[0]), self.recipe.chunk_size)

    def challenge(self, c: int, j: int = 0) -> Challenge:
        """The challenge of value ``j`` of chunk ``c`` (sent for a right value, it fails
        and costs the bond)."""
        size = self.recipe.chunk_size
        parent_chunk, parent_proof = _chunk_and_proof(self.parent, c, size)
        claimed_chunk, claimed_proof = _chunk_and_proof(self.claimed, c, size)
        if self.claimed_proofs is not None:
            claimed_proof = list(self.claimed_proofs[c])
        chosen, opening = self.averaged(), None
        if self.table is not None:
            if len(self.table.totals) != len(self.revealed) * (len(self.revealed) - 1) // 2:
                chosen = []  # a table of the wrong size: the contract averages nothing and rules the vote wrong
            opening = self.open_table()
        update_chunks, update_proofs = b"", []
        for k in chosen:
            data, proof = _chunk_and_proof(self.updates[k], c, size)
            update_chunks += data
            update_proofs += proof
        events = [self.accepted[k] for k in chosen]
        return Challenge(
            self.task_id,
            self.round_id,
            self.vote_tuple,
            *self._rule_args,
            c,
            j,
            len(parent_proof),
            [e.node for e in events],
            [e.update_root for e in events],
            [e.salt for e in events],
            update_chunks,
            update_proofs,
            parent_chunk,
            parent_proof,
            claimed_chunk,
            claimed_proof,
            opening,
        )

    def open_table(self) -> OpenTable:
        """The step that opens the vote's table root (Krum rules)."""
        assert self.table is not None, "only a Krum rule's vote has a table to open"
        return OpenTable(
            self.task_id,
            self.round_id,
            self.vote_tuple,
            *self._rule_args,
            [e.node for e in self.revealed],
            (self._scores_tree_root(), *self.table.root_children(), self.table.totals),
        )

    def model_fault(self) -> Challenge | DistanceSumChallenge | DistanceLeafChallenge | None:
        """The first provable fault of the vote's model: a wrong distance table (Krum
        rules), else a wrong value; None if the model is right."""
        if self.table is not None and (t := self.table_challenge()) is not None:
            return t
        wrong = self.first_wrong()
        return None if wrong is None else self.challenge(*wrong)

    # -- the distance table (Krum rules)

    def honest_table(self) -> DistanceTable:
        """The table over the vote's own accepted set, as it should be."""
        by_node = {e.node: q for e, q in zip(self.accepted, self.updates)}
        return DistanceTable.of_round(
            [by_node.get(e.node) for e in self.revealed], self.parent.size, self.recipe.chunk_size
        )

    def table_challenge(self) -> Challenge | DistanceSumChallenge | DistanceLeafChallenge | None:
        """One step of the bisection of the vote's table against the honest one, or None
        if its distances are right."""
        claimed = self.table
        assert claimed is not None, "only a Krum rule's vote has a table to challenge"
        fault = first_fault(claimed, self.honest_table())
        if fault is None:
            return None
        if fault[0] == "size":
            return self.challenge(0, 0)
        if fault[0] == "depth":  # any accepted pair shows the table has the wrong shape
            ok = [e.index for e in self.accepted]
            if len(ok) < 2:
                raise Unchallengeable("the distance table has the wrong shape but no two updates show it")
            return self._leaf_challenge(0, ok[0], ok[1])
        if fault[0] == "sum":
            _, h, p = fault
            child = lambda q: (*claimed.children(h - 1, q), claimed.sums[h - 1][q])  # noqa: E731
            return DistanceSumChallenge(
                self.task_id,
                self.round_id,
                self.vote_tuple,
                *self._rule_args,
                self._scores_tree_root(),
                h,
                p,
                claimed.sums[h][p],
                child(2 * p),
                child(2 * p + 1),
                *claimed.path(h, p),
            )
        return self._leaf_challenge(*fault[1:])

    def _leaf_challenge(self, c: int, i: int, j: int) -> DistanceLeafChallenge:
        assert self.table is not None, "only a Krum rule's vote has a table to challenge"
        return DistanceLeafChallenge(
            self.task_id,
            self.round_id,
            self.vote_tuple,
            *self._rule_args,
            self._scores_tree_root(),
            c,
            self.table.sums[0][c],
            *self.table.path(0, c),
            i,
            j,
            self._opening(i, c),
            self._opening(j, c),
        )

    def _opening(self, index: int, c: int) -> tuple:
        """Chunk ``c`` of reveal ``index``'s update, with its proof (unused if rejected)."""
        e = self.revealed[index]
        if (self.vote.rejected >> index) & 1:
            return ("0x" + "00" * 20, ZERO, ZERO, b"", [])
        q = self.updates[[a.index for a in self.accepted].index(index)]
        rows = fp.chunks(q, self.recipe.chunk_size)
        proof = proof_from_layers(merkle_layers(fp.chunk_leaves(q, self.recipe.chunk_size)), c)
        data = fp.chunk_bytes(rows[c]) if c < rows.shape[0] else b""
        return (e.node, e.update_root, e.salt, data, proof)

    # -- scores

    def expected_scores(self) -> list[int]:
        """Each reveal's cosine score as the contract recomputes it: against the voted
        model's update (voted model - parent), 0 for a rejected update, times the
        trainer's seats."""
        g = self.claimed - self.parent
        by_node = {e.node: cosine_score(q, g) for e, q in zip(self.accepted, self.updates)}
        return [commitments.paid_score(by_node.get(e.node, 0), e.seats_bps) for e in self.revealed]

    def _scores(self) -> list:
        """The voted model's scores list; ``Unchallengeable`` if its blob carries none."""
        if self.claimed_scores is None:
            raise Unchallengeable("the voted model blob carries no scores list: no score proof can be built")
        return self.claimed_scores

    def _score_tree(self) -> list[list[bytes]]:
        layers = merkle_layers([score_leaf(a, s) for a, s in self._scores()])
        root = layers[-1][0] if self.table is None else combined_scores_root(layers[-1][0], self.table.root)
        if root != self.vote.scores_root:
            raise Unchallengeable("the scores in the voted model blob do not match the voted scores root")
        return layers

    def _scores_tree_root(self) -> bytes:
        return self._score_tree()[-1][0]

    def score_challenge(self, i: int) -> ScoreChallenge:
        """The challenge of reveal ``i``'s score (of a right score, it fails and costs the bond)."""
        layers = self._score_tree()
        node, score = self._scores()[i]
        e = self.revealed[i]
        rule, json_hash = self.recipe.challenge_rule, keccak(self.recipe.to_bytes())
        vectors: tuple[bytes, ...]
        if e.node != node or (self.vote.rejected >> i) & 1:  # misnamed leaf, or rejected
            vectors, root, salt = (b"", b"", b""), bytes(32), bytes(32)
        else:
            q = self.updates[[a.node for a in self.accepted].index(node)]
            vectors = tuple(
                fp.chunk_bytes(fp.chunks(v, self.recipe.chunk_size).ravel()) for v in (q, self.parent, self.claimed)
            )
            root, salt = e.update_root, e.salt
        proof = proof_from_layers(layers, i) + ([] if self.table is None else [self.table.root])
        return ScoreChallenge(
            self.task_id, self.round_id, self.vote_tuple, rule, json_hash, i, node, score, proof, root, salt, *vectors
        )

    def total_challenge(self) -> TotalChallenge:
        self._score_tree()
        scores = self._scores()
        return TotalChallenge(
            self.task_id,
            self.round_id,
            self.vote_tuple,
            self.recipe.challenge_rule,
            keccak(self.recipe.to_bytes()),
            [a for a, _ in scores],
            [s for _, s in scores],
            ZERO if self.table is None else self.table.root,
        )


def gather(
    task_id: int,
    round_id: int,
    parent_q: np.ndarray,
    revealed: Iterable[Reveal],
    vote: Vote,
    store: BlobStore,
    recipe: Recipe,
    shapes: Mapping[str, tuple[int, ...]],
) -> Evidence:
    """Fetch and check everything a challenge of ``vote`` needs.

    Raises ``Withheld`` (an ``Unchallengeable``) when no proof can be built for want of
    data: the voted model's blob is unavailable or does not match its root, an update
    the vote accepted is unusable, or a Krum vote's distance table is; the availability
    game can then force it on chain (``protocol.availability``).
    """
    size = recipe.chunk_size
    try:
        blob = store.get(vote.cid)
        claimed = _decode_vector(blob, shapes)
    except FedchainError as e:
        raise Withheld(f"the voted model blob cannot be used: {e}", KIND_MODEL) from None
    if claimed.size != parent_q.size or fp.vector_root(claimed, size) != vote.model_root:
        raise Withheld("the voted model blob does not match the voted model root", KIND_MODEL)
    accepted, updates, samples = accepted_updates(revealed, vote, store, recipe, shapes, parent_q.size)
    revealed = in_reveal_order(revealed)
    scores = _lineage_scores(blob)
    table = _published_table(blob, store, vote, scores, len(revealed)) if has_table(recipe) else None
    return Evidence(
        task_id, round_id, vote, parent_q, claimed, accepted, updates, samples, recipe, revealed, scores, table
    )


def gather_one_chunk(
    task_id: int,
    round_id: int,
    parent_q: np.ndarray,
    revealed: Iterable[Reveal],
    vote: Vote,
    store: BlobStore,
    recipe: Recipe,
    shapes: Mapping[str, tuple[int, ...]],
    honest: np.ndarray,
    chunk: int,
    data: bytes,
    proof: list,
) -> Evidence:
    """Evidence for a vote whose model blob is withheld but whose chunk ``chunk`` is known
    with its proof (answered in the availability game): the voted model is taken to be the
    honest one (``honest``) but for that chunk, so ``first_wrong`` finds the wrong value in
    it. Coordinate-wise rules only (a Krum rule needs the vote's table)."""
    if has_table(recipe):
        raise Unchallengeable("a Krum-rule vote needs its distance table, not only one chunk of its model")
    size = recipe.chunk_size
    values = np.frombuffer(data, dtype=">i4").astype(np.int64)
    claimed = fp.chunks(honest, size).copy()
    claimed[chunk] = values
    claimed = claimed.ravel()[: honest.size]
    accepted, updates, samples = accepted_updates(revealed, vote, store, recipe, shapes, parent_q.size)
    revealed = in_reveal_order(revealed)
    return Evidence(
        task_id,
        round_id,
        vote,
        parent_q,
        claimed,
        accepted,
        updates,
        samples,
        recipe,
        revealed,
        claimed_proofs={chunk: list(proof)},
    )


def accepted_updates(
    revealed: Iterable[Reveal],
    vote: Vote,
    store: BlobStore,
    recipe: Recipe,
    shapes: Mapping[str, tuple[int, ...]],
    size: int,
) -> tuple[list, list, list]:
    """The reveals the vote accepted, their fixed-point vectors and sample counts
    (``Withheld`` if one cannot be fetched or does not match its revealed root)."""
    accepted = accepted_reveals(revealed, vote.rejected)
    updates, samples = [], []
    for e in accepted:
        try:
            q = _decode_vector(store.get(e.cid), shapes)
        except FedchainError as err:
            raise Withheld(f"accepted update of {e.node} is unusable: {err}", KIND_UPDATE, e.index) from None
        if q.size != size or fp.vector_root(q, recipe.chunk_size) != e.update_root:
            raise Withheld(f"accepted update of {e.node} does not match its revealed root", KIND_UPDATE, e.index)
        updates.append(q)
        samples.append(e.samples)
    return accepted, updates, samples


def _published_table(blob: bytes, store: BlobStore, vote: Vote, scores: list | None, reveals: int) -> DistanceTable:
    """The distance table a Krum vote commits to, from the blob its model's lineage names,
    checked against the vote (``Unchallengeable`` if it is missing or does not match:
    the scheme's data-availability assumption, see ``protocol.distances``)."""
    if reveals > MAX_TABLE:
        raise Unchallengeable(f"{reveals} reveals: a distance table covers at most {MAX_TABLE}")
    # This and _lineage_scores read the one field they need from the voted blob, not a whole
    # ``Lineage``: a malformed field they do not need must not make a wrong vote unchallengeable.
    try:
        named = json.loads(decode_metadata(blob)["fedchain"])["distances"]
        cid, root = str(named["cid"]), bytes.fromhex(named["root"])
    except (FedchainError, KeyError, ValueError, TypeError):
        raise Withheld("the voted model's lineage names no distance table", KIND_TABLE) from None
    try:
        table = DistanceTable.from_bytes(store.get(cid))
    except (FedchainError, TableError) as e:
        raise Withheld(f"the voted distance table cannot be used: {e}", KIND_TABLE) from None
    if table.root != root or scores is None:
        raise Withheld("the published distance table does not match the voted model's lineage", KIND_TABLE)
    tree = merkle_layers([score_leaf(a, s) for a, s in scores])[-1][0] if scores else ZERO
    if combined_scores_root(tree, root) != vote.scores_root:
        raise Withheld("the published distance table and scores do not match the voted scores root", KIND_TABLE)
    return table


def _lineage_scores(blob: bytes) -> list[tuple[str, int]] | None:
    """The scores list in a model blob's lineage (``fedchain`` metadata), if well formed."""
    try:
        scores = json.loads(decode_metadata(blob)["fedchain"])["scores"]
        return [(str(a), int(s)) for a, s in scores]
    except (FedchainError, KeyError, ValueError, TypeError):
        return None


def find_fault(
    task_id: int,
    round_id: int,
    parent_q: np.ndarray,
    revealed: Iterable[Reveal],
    vote: Vote,
    store: BlobStore,
    recipe: Recipe,
    shapes: Mapping[str, tuple[int, ...]],
):
    """The challenge of the first provable fault of ``vote``'s model (a wrong distance
    table, then a wrong value), or None if the model is the rule's aggregate of the
    updates it accepted (``Unchallengeable``: see ``gather``)."""
    if recipe.challenge_rule[0] == CHALLENGE_NONE:
        raise Unchallengeable(f"rule {recipe.rule!r} {dict(recipe.rule_params)} is not challengeable on chain")
    return gather(task_id, round_id, parent_q, revealed, vote, store, recipe, shapes).model_fault()


def find_score_fault(evidence: Evidence) -> ScoreChallenge | TotalChallenge | None:
    """The challenge of the first wrong score of the vote, else of a wrong total score,
    else None. ``Unchallengeable``: scores the contract cannot recompute, a model too
    large for one step, or a scores list that does not match the voted root."""
    r = evidence.recipe
    evidence._score_tree()
    claimed_scores = evidence._scores()
    if len(claimed_scores) != len(evidence.revealed):
        # one leaf per reveal, whatever the score: challenge_total counts them (review L-1)
        return evidence.total_challenge()
    if r.challenge_rule[3] != SCORE_COSINE:
        raise Unchallengeable(f"the {r.score!r} score is not challengeable on chain")
    if fp.chunks(evidence.parent, r.chunk_size).shape[0] > MAX_SCORE_CHUNKS:
        raise Unchallengeable(
            f"a score check reads whole vectors: at most {MAX_SCORE_CHUNKS * r.chunk_size} parameters in one step"
        )
    expected = evidence.expected_scores()
    for i, ((node, got), want) in enumerate(zip(claimed_scores, expected)):
        if node != evidence.revealed[i].node or got != want:
            return evidence.score_challenge(i)
    claimed = [s for _, s in claimed_scores]
    return evidence.total_challenge() if sum(claimed) != evidence.vote.total_score else None
