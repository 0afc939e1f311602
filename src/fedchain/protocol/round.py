"""The round's computation, and the typed records it is computed from.

``Reveal`` is a ``Revealed`` event, ``Vote`` the five fields a validator votes for (a
``Voted`` or ``RoundFinalized`` event, or a journal entry), ``Lineage`` the metadata a
model blob carries (its round, parent, scores, rejected updates). ``compute_round`` is
what every honest validator computes for a round: decode and check each revealed update,
aggregate with the task's rule, score, and write the new model with its lineage. It is a
pure function of the previous model, the reveals, the blobs they name and the recipe, so
validators, watchers, auditors, challengers and the robustness benchmark all run this one
copy, and any disagreement is evidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fedchain.chain import commitments
from fedchain.errors import BlobCorrupt, BlobNotFound, CodecError, LearningError, LineageError
from fedchain.learning import fixedpoint as fp
from fedchain.learning import privacy
from fedchain.learning.aggregate import (
    aggregate_update,
    enough_updates,
    needs_root_scores,
    needs_root_set,
    uses_prev_update,
)
from fedchain.learning.train import flatten, param_shapes, unflatten
from fedchain.protocol import root_set
from fedchain.protocol.distances import DistanceTable, combined_scores_root, has_table
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.root_set import round_scores
from fedchain.storage.cid import cid_from_digest, cid_of, digest_of
from fedchain.storage.codec import decode_metadata, decode_tensors, encode_tensors
from fedchain.storage.merkle import merkle_root, score_leaf
from fedchain.storage.store import BlobStore

if TYPE_CHECKING:  # node.py imports this module
    from fedchain.protocol.node import Model

ZERO = b"\0" * 32


# -- the records


@dataclass(frozen=True)
class Reveal:
    """One revealed update, as its ``Revealed`` event states it."""

    task_id: int
    round_id: int
    node: str
    index: int  # reveal order in the round, from 0
    update_root: bytes
    update_cid: bytes  # the CID's 32-byte digest, as on chain (``cid`` names the blob)
    samples: int
    salt: bytes
    seats_bps: int  # the seats the trainer's stake stands for, in basis points

    @classmethod
    def from_event(cls, ev) -> Reveal:
        if ev.name != "Revealed":
            raise ValueError(f"a Reveal is read from a Revealed event, not {ev.name}")
        a = ev.args
        return cls(
            a["task_id"],
            a["round_id"],
            a["node"],
            a["index"],
            a["update_root"],
            a["update_cid"],
            a["samples"],
            a["salt"],
            a["seats_bps"],
        )

    @property
    def cid(self) -> str:
        return cid_from_digest(self.update_cid)


VOTE_FIELDS = ("model_root", "model_cid", "scores_root", "total_score", "rejected")


@dataclass(frozen=True)
class Vote:
    """A round's result as validators vote for it and ``finalize`` takes it: the order of
    the fields is the contracts' (``args()``), their hash the vote hash."""

    model_root: bytes
    model_cid: bytes  # the CID's digest, as on chain
    scores_root: bytes
    total_score: int
    rejected: int  # bit i: the update revealed i-th was rejected

    @classmethod
    def from_event(cls, ev) -> Vote:
        """From a ``Voted`` or ``RoundFinalized`` event (or its ``args``)."""
        a = getattr(ev, "args", ev)
        return cls(*(a[f] for f in VOTE_FIELDS))

    @classmethod
    def from_journal(cls, entry: Mapping) -> Vote:
        return cls(
            bytes.fromhex(entry["model_root"]),
            digest_of(entry["model_cid"]),
            bytes.fromhex(entry["scores_root"]),
            entry["total_score"],
            entry["rejected"],
        )

    def args(self) -> tuple:
        return (self.model_root, self.model_cid, self.scores_root, self.total_score, self.rejected)

    def hash(self) -> bytes:
        return commitments.vote_hash(*self.args())

    @property
    def cid(self) -> str:
        return cid_from_digest(self.model_cid)


@dataclass(frozen=True)
class Lineage:
    """A model blob's ``fedchain`` metadata: where the model comes from.

    A task's initial model has ``round`` -1, no parent and the recipe; a round's model its
    task, round, parent CID, rule, every reveal's paid score (reveal order), the rejected
    updates' reasons and, under a Krum rule, the distance table it commits to. The JSON
    (sorted keys, absent fields left out) names the blob, so it must not change.
    """

    round: int
    parent: str | None
    scores: tuple[tuple[str, int], ...] = ()
    rejected: Mapping[str, str] = field(default_factory=dict)
    task: int | None = None
    rule: str | None = None
    distances: Mapping[str, str] | None = None  # {"cid": ..., "root": hex}
    recipe: str | None = None  # the initial model's: the recipe's bytes, decoded
    # under the innovation score: the accepted updates' CIDs in reveal order, the next
    # round's public span (``public_span``); absent otherwise, so other blobs keep their names
    updates: tuple[str, ...] | None = None
    base: str | None = None  # a fine-tuning task's initial model's: the CID of the base model

    def to_json(self) -> str:
        d = asdict(self)
        d = {k: v for k, v in d.items() if v is not None or k == "parent"}
        d["scores"] = [list(s) for s in self.scores]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Lineage:
        try:
            d = json.loads(text)
            if not isinstance(d, dict):
                raise TypeError(f"a JSON object, not {type(d).__name__}")
            parent, distances, rejected = d["parent"], d.get("distances"), d["rejected"]
            if parent is not None and not isinstance(parent, str):
                raise TypeError("parent is not a CID")
            if not isinstance(rejected, dict) or (distances is not None and not isinstance(distances, dict)):
                raise TypeError("rejected and distances must be objects")
            updates = d.get("updates")
            if updates is not None and not (isinstance(updates, list) and all(isinstance(c, str) for c in updates)):
                raise TypeError("updates must be a list of CIDs")
            # the conversions the readers of lineages have always made
            scores = tuple((str(a), int(s)) for a, s in d["scores"])
            return cls(
                int(d["round"]),
                parent,
                scores,
                {str(k): str(v) for k, v in rejected.items()},
                None if d.get("task") is None else int(d["task"]),
                d.get("rule"),
                None if distances is None else {"cid": str(distances["cid"]), "root": str(distances["root"])},
                d.get("recipe"),
                None if updates is None else tuple(updates),
                None if d.get("base") is None else str(d["base"]),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise LineageError(f"malformed model lineage: {type(e).__name__}: {e}") from None

    @classmethod
    def from_blob(cls, blob: bytes) -> Lineage:
        """The lineage in a model blob (``LineageError`` if it has none or a malformed one)."""
        try:
            text = decode_metadata(blob)["fedchain"]
        except KeyError:
            raise LineageError("the model blob has no fedchain lineage in its metadata") from None
        return cls.from_json(text)


@dataclass(frozen=True)
class RoundResult:
    """What a validator computed for a round, and the vote it makes of it."""

    model_root: bytes
    model_cid: str
    scores_root: bytes
    total_score: int
    rejected: int
    scores: list[tuple[str, int]]
    reasons: dict[str, str]
    blob: bytes = field(repr=False)  # the new model's safetensors file, named by model_cid
    table_blob: bytes | None = field(default=None, repr=False)  # Krum rules: the distance table (protocol.distances)
    # the accepted updates' root-set scores, in reveal order, where the round computed them (Zeno)
    root_set_scores: list[int] | None = field(default=None, repr=False)

    def vote(self) -> Vote:
        return Vote(self.model_root, digest_of(self.model_cid), self.scores_root, self.total_score, self.rejected)

    @classmethod
    def of(
        cls,
        new_q: np.ndarray,
        lineage: Lineage,
        scores_root: bytes,
        rejected: int,
        template: dict[str, np.ndarray],
        chunk_size: int,
        **extra,
    ) -> RoundResult:
        """The result whose model is ``new_q`` (its blob carries ``lineage``)."""
        blob = encode_tensors(unflatten(fp.from_fixed(new_q), template), {"fedchain": lineage.to_json()})
        scores = list(lineage.scores)
        return cls(
            fp.vector_root(new_q, chunk_size),
            cid_of(blob),
            scores_root,
            sum(s for _, s in scores),
            rejected,
            scores,
            dict(lineage.rejected),
            blob,
            **extra,
        )


# -- the deterministic round computation (validators and auditors share it)


def decode_update(data: bytes, shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray:
    """An update blob to its fixed-point vector; CodecError/LearningError say why not."""
    q = fp.to_fixed(flatten(decode_tensors(data, shapes)))
    if q.size == 0:
        raise LearningError("empty update")
    return q


def check_update(
    ev: Reveal, store: BlobStore, shapes: Mapping[str, tuple[int, ...]], chunk_size: int, bound_sq: int = 0
) -> np.ndarray:
    """Fetch and check one revealed update; raise with the reason to reject it. ``bound_sq``
    > 0 bounds its squared fixed-point norm (a client-level DP task's, ``Recipe.norm_bound_sq``)."""
    q = decode_update(store.get(ev.cid), shapes)
    if fp.vector_root(q, chunk_size) != ev.update_root:
        raise LearningError("update root does not match the blob")
    if bound_sq and not privacy.within_norm_bound(q, bound_sq):
        raise LearningError("update norm above the task's client-level DP bound (clip plus noise)")
    return q


# Rejections that judge availability (no copy, or no intact copy, could be fetched):
# they cannot be proven on chain, and an auditor takes the committee's word for them.
STORAGE_REASONS = ("unavailable: ", "CID mismatch: ")


def check_updates(
    revealed: Iterable[Reveal],
    store: BlobStore,
    shapes: Mapping[str, tuple[int, ...]],
    chunk_size: int,
    bound_sq: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, str]]:
    """(updates, sample counts, rejection reasons), each keyed by node, in reveal order.

    Reasons name no local path or peer: every validator must write the same
    string, since the model blob that carries them is named by its hash.
    """
    updates, samples, reasons = {}, {}, {}
    for ev in revealed:
        node = ev.node
        cid = ev.cid
        try:
            updates[node] = check_update(ev, store, shapes, chunk_size, bound_sq)
            samples[node] = ev.samples
        except BlobNotFound:
            reasons[node] = f"unavailable: {cid}"
        except BlobCorrupt:
            reasons[node] = f"CID mismatch: blob {cid} does not hash to its CID"
        except (CodecError, LearningError) as e:
            reasons[node] = str(e)
    return updates, samples, reasons


def aggregate_round(
    task_id: int,
    round_id: int,
    model: Model,
    revealed: list[Reveal],
    updates: dict[str, np.ndarray],
    samples: dict[str, int],
    reasons: dict[str, str],
    recipe: Recipe,
    template: dict[str, np.ndarray],
    prev_update: np.ndarray | None = None,
    public: Sequence[np.ndarray] = (),
) -> RoundResult:
    """The round's result from the checked updates: the new model (the recipe's rule from
    ``model``), its blob with the lineage in its metadata, each reveal's score and the
    rejected set.

    ``revealed`` is in reveal-index order; ``updates`` and ``samples`` hold the accepted
    ones and ``reasons`` the rejected ones, as ``check_updates`` returns them.
    ``prev_update`` is the update that made ``model`` (centered clipping's centre; see
    ``previous_update``); ``public`` the round's public span (the innovation score's; see
    ``public_span``).
    """
    accepted = list(updates.values())
    seats_of = {ev.node: ev.seats_bps for ev in revealed}
    seats = [seats_of[node] for node in updates]
    # Zeno selects by the root-set score; a task scored on the root set pays by the same numbers
    by_root_set = (
        root_set.validation_round_scores(recipe, model.q, accepted, template, seats)
        if needs_root_scores(recipe.rule)
        else None
    )
    new_q = (
        fp.clip_fixed(
            model.q
            + aggregate_update(
                recipe.rule,
                recipe.rule_params,
                accepted,
                list(samples.values()),
                root_update=root_set.root_update(recipe, model.q, template) if needs_root_set(recipe.rule) else None,
                prev_update=prev_update,
                root_scores=by_root_set,
                seats=seats,
            )
        )
        if enough_updates(recipe.rule, recipe.rule_params, seats)
        else model.q
    )
    round_score = round_scores(recipe, model.q, accepted, new_q - model.q, template, seats, public, by_root_set)
    node_scores = dict(zip(updates, round_score))
    # paid scores: the rule's score times the seats the trainer's stake stands for
    scores = [(ev.node, commitments.paid_score(node_scores.get(ev.node, 0), ev.seats_bps)) for ev in revealed]
    rejected = sum(1 << ev.index for ev in revealed if ev.node in reasons)
    distances = None
    scores_root = merkle_root([score_leaf(a, s) for a, s in scores]) if scores else ZERO
    table_blob = None
    if has_table(recipe) and revealed:
        # Krum's distances, committed beside the scores so that a challenge can dispute them
        table = DistanceTable.of_round([updates.get(ev.node) for ev in revealed], model.q.size, recipe.chunk_size)
        table_blob = table.to_bytes()
        distances = {"cid": cid_of(table_blob), "root": table.root.hex()}
        scores_root = combined_scores_root(scores_root, table.root)
    cids = tuple(ev.cid for ev in revealed if ev.node in updates) if recipe.score == "innovation" else None
    lineage = Lineage(round_id, model.cid, tuple(scores), reasons, task_id, recipe.rule, distances, updates=cids)
    return RoundResult.of(
        new_q,
        lineage,
        scores_root,
        rejected,
        template,
        recipe.chunk_size,
        table_blob=table_blob,
        root_set_scores=by_root_set,
    )


def compute_round(
    task_id: int,
    round_id: int,
    model: Model,
    revealed: Iterable[Reveal],
    store: BlobStore,
    recipe: Recipe,
    template: dict[str, np.ndarray],
) -> RoundResult:
    """What every honest validator computes for a round: a pure function of the previous
    finalized ``model``, the round's reveals (any order), the blobs they name and the
    task's recipe. Nothing is stored: the caller keeps ``result.blob`` if it wants.
    """
    revealed = in_reveal_order(revealed)
    shapes = param_shapes(template)
    checked = check_updates(revealed, store, shapes, recipe.chunk_size, recipe.norm_bound_sq(shapes))
    prev = previous_update(model, store, shapes) if uses_prev_update(recipe.rule) else None
    public = public_span(model, store, shapes) if recipe.score == "innovation" else []
    return aggregate_round(task_id, round_id, model, revealed, *checked, recipe, template, prev, public)


def in_reveal_order(revealed: Iterable[Reveal]) -> list[Reveal]:
    return sorted(revealed, key=lambda e: e.index)


def previous_update(model: Model, store: BlobStore, shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray | None:
    """The aggregate update that produced ``model``: ``model`` minus its parent, the parent
    named in ``model``'s lineage (None for the task's initial model, which has none).
    A blob that cannot be fetched raises (StorageError): without it no validator can
    compute the round, and none should vote on a guess."""
    try:
        parent = json.loads(decode_metadata(store.get(model.cid))["fedchain"]).get("parent")
    except (CodecError, KeyError, ValueError, TypeError, AttributeError):
        return None
    if not parent:
        return None
    return model.q - decode_update(store.get(parent), shapes)


# global updates in the innovation score's public span (the rest of the span is the last
# round's accepted updates): enough that an extrapolation of earlier rounds is in the span
PUBLIC_ROUNDS = 4


def public_span(model: Model, store: BlobStore, shapes: Mapping[str, tuple[int, ...]]) -> list[np.ndarray]:
    """What everybody knew before this round's commits, as the innovation score reads it: the
    last ``PUBLIC_ROUNDS`` global updates, newest first (``model`` less its parent, the parent
    less its own, ..., as far as the task goes back), then the updates ``model``'s round
    accepted, in reveal order (the CIDs in its lineage). Empty for the task's initial model.
    A blob that cannot be fetched raises (StorageError), as in ``previous_update``; the store
    checks each against its CID before it is decoded."""
    lineage = Lineage.from_blob(store.get(model.cid))
    parent: str | None = lineage.parent
    if parent is None:
        return []
    if lineage.updates is None:
        raise LineageError(f"model {model.cid} has no accepted updates in its lineage (not an innovation-score task)")
    span: list[np.ndarray] = []
    q = model.q
    while parent is not None and len(span) < PUBLIC_ROUNDS:
        blob = store.get(parent)
        older = decode_update(blob, shapes)
        span.append(q - older)
        q, parent = older, Lineage.from_blob(blob).parent
    return span + [decode_update(store.get(cid), shapes) for cid in lineage.updates]
