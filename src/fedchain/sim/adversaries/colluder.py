"""Validators in a colluding committee: they vote for a sabotaged result.

Every colluder computes the honest result, then corrupts one part of it and
publishes a matching model blob, so the result looks complete:

- ``Colluder`` (collusion "model"): the new model is the parent moved *against*
  the aggregate update (w - (w' - w)), clipped to the fixed-point range;
- ``ScoreColluder`` ("score"): the model is right, but the last revealer is
  given the whole score mass (10**6) and everyone else nothing;
- ``TotalColluder`` ("total"): model and scores are right, the total score is
  inflated (every trainer's reward shrinks; the rest stays unpaid);
- ``DistanceSumColluder`` ("distance-sum", Krum rules): the distance table's
  root claims a larger distance between reveals 0 and 1 than its children add
  up to;
- ``DistanceLeafColluder`` ("distance-leaf", Krum rules): chunk 0's distance
  between reveals 0 and 1 is inflated and every sum above it agrees, so the
  table is consistent and only the chunk data shows the lie;
- ``WithholdingColluder`` ("withhold-model"): the sabotaged model of "model",
  but its blob is published nowhere, and availability requests go unanswered;
- ``WithholdingTableColluder`` ("withhold-table", Krum rules): the corrupt
  table of "distance-leaf", never published, requests unanswered;
- ``HidingColluder`` ("hide-model"): the sabotaged model of "model", kept
  private but every availability request answered from it.

Without the availability game the two withholders escape every challenge
(no proof can be built without the data); with it a watcher's request that
nobody answers reverts the round (SECURITY-REVIEW H-3).

Being deterministic, all colluders cast the same vote; with 2/3 of the
committee's seats it leads, and only a watcher's challenge stops it.
"""

import dataclasses

from fedchain.errors import BlobNotFound
from fedchain.learning import fixedpoint as fp
from fedchain.learning.train import flatten, unflatten
from fedchain.protocol.distances import DistanceTable, combined_scores_root
from fedchain.protocol.round import Lineage
from fedchain.protocol.validator import Validator
from fedchain.storage.cid import cid_of
from fedchain.storage.codec import decode_metadata, decode_tensors, encode_tensors
from fedchain.storage.merkle import merkle_root, score_leaf
from fedchain.storage.store import MultiStore


class Colluder(Validator):
    publish = True  # whether the sabotaged blobs go to the blob store

    def compute(self, log, v):
        honest = super().compute(log, v)
        parent = self.current_model(v.task_id).q
        new = fp.to_fixed(flatten(decode_tensors(honest.blob, self.shapes)))
        bad = fp.clip_fixed(2 * parent - new)
        blob = encode_tensors(unflatten(fp.from_fixed(bad), self.template), decode_metadata(honest.blob))
        if self.publish:
            self.store.put(blob)
        return dataclasses.replace(
            honest, model_root=fp.vector_root(bad, self.recipe.chunk_size), model_cid=cid_of(blob), blob=blob
        )


class ScoreColluder(Validator):
    def compute(self, log, v):
        honest = super().compute(log, v)
        scores = [(a, 0) for a, _ in honest.scores[:-1]] + [(honest.scores[-1][0], 10**6)]
        lineage = dataclasses.replace(Lineage.from_blob(honest.blob), scores=tuple(scores))
        tensors = decode_tensors(honest.blob, self.shapes)
        blob = encode_tensors(tensors, {"fedchain": lineage.to_json()})
        self.store.put(blob)
        scores_root = merkle_root([score_leaf(a, s) for a, s in scores])
        if lineage.distances is not None:  # a Krum task: the scores tree sits beside the distance table
            scores_root = combined_scores_root(scores_root, bytes.fromhex(lineage.distances["root"]))
        return dataclasses.replace(
            honest,
            model_cid=cid_of(blob),
            blob=blob,
            scores=scores,
            scores_root=scores_root,
            total_score=sum(s for _, s in scores),
        )


class TotalColluder(Validator):
    def compute(self, log, v):
        honest = super().compute(log, v)
        return dataclasses.replace(honest, total_score=honest.total_score + 10**6)


class _TableColluder(Validator):
    """Publishes a corrupted distance table (``corrupt``) with the honest model and scores."""

    publish = True  # whether the corrupt table goes to the blob store

    def corrupt(self, table: DistanceTable) -> DistanceTable:
        raise NotImplementedError

    def compute(self, log, v):
        honest = super().compute(log, v)
        if honest.table_blob is None:
            return honest  # not a Krum task: nothing to corrupt
        table = self.corrupt(DistanceTable.from_bytes(honest.table_blob))
        table_blob = table.to_bytes()
        if self.publish:
            self.store.put(table_blob)
        lineage = dataclasses.replace(
            Lineage.from_blob(honest.blob), distances={"cid": cid_of(table_blob), "root": table.root.hex()}
        )
        blob = encode_tensors(decode_tensors(honest.blob, self.shapes), {"fedchain": lineage.to_json()})
        self.store.put(blob)
        tree = merkle_root([score_leaf(a, s) for a, s in honest.scores])
        return dataclasses.replace(
            honest,
            model_cid=cid_of(blob),
            blob=blob,
            table_blob=table_blob,
            scores_root=combined_scores_root(tree, table.root),
        )


class DistanceSumColluder(_TableColluder):
    def corrupt(self, table):
        sums = [[list(node) for node in level] for level in table.sums]
        sums[-1][0][0] += 10**9  # the root only: its children no longer add up to it
        return DistanceTable.from_bytes(DistanceTable(sums, table.hashes).to_bytes())


class DistanceLeafColluder(_TableColluder):
    def corrupt(self, table):
        leaves = [list(leaf) for leaf in table.sums[0]]
        leaves[0][0] += 10**9  # chunk 0, reveals (0, 1); the tree is rebuilt over it
        return DistanceTable.build(leaves)


class WithholdingColluder(Colluder):
    publish = False

    def answer_requests(self, log, v):
        """A withholder answers no availability request."""


class WithholdingTableColluder(DistanceLeafColluder):
    publish = False

    def answer_requests(self, log, v):
        """A withholder answers no availability request."""


class HidingColluder(Colluder):
    """The sabotaged model of "model", its blob kept private ("hide-model"): it answers
    every availability request from it, so the watcher must walk down the tree."""

    publish = False

    def compute(self, log, v):
        result = super().compute(log, v)
        self.private[result.model_cid] = result.blob
        return result

    @property
    def private(self) -> dict:
        if "_private" not in self.__dict__:
            self._private: dict = {}
        return self._private

    def answer_requests(self, log, v):
        store = MultiStore([_DictStore(self.private), self.store])
        shared, self.store = self.store, store
        try:
            super().answer_requests(log, v)
        finally:
            self.store = shared


class _DictStore:
    """A private, in-memory blob store (only its owner reads it)."""

    def __init__(self, blobs: dict):
        self.blobs = blobs

    def get(self, cid: str) -> bytes:
        if cid not in self.blobs:
            raise BlobNotFound(f"blob {cid} not held privately")
        return self.blobs[cid]

    def put(self, data: bytes) -> str:
        cid = cid_of(data)
        self.blobs[cid] = data
        return cid

    def has(self, cid: str) -> bool:
        return cid in self.blobs


COLLUDERS = {
    "model": Colluder,
    "score": ScoreColluder,
    "total": TotalColluder,
    "distance-sum": DistanceSumColluder,
    "distance-leaf": DistanceLeafColluder,
    "withhold-model": WithholdingColluder,
    "withhold-table": WithholdingTableColluder,
    "hide-model": HidingColluder,
}
