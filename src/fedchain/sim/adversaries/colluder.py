"""Validators in a colluding committee: they vote for a sabotaged result.

Every colluder computes the honest result, then corrupts one part of it and
publishes a matching model blob, so the result looks complete:

- ``Colluder`` (collusion "model"): the new model is the parent moved *against*
  the aggregate update (w - (w' - w)), clipped to the fixed-point range;
- ``ScoreColluder`` ("score"): the model is right, but the last revealer is
  given the whole score mass (10**6) and everyone else nothing;
- ``TotalColluder`` ("total"): model and scores are right, the total score is
  inflated (every trainer's reward shrinks; the rest stays unpaid).

Being deterministic, all colluders cast the same vote; with 2/3 of the
committee stake it leads, and only a watcher's challenge stops it.
"""

import dataclasses
import json

from fedchain.learning import fixedpoint as fp
from fedchain.learning.train import flatten, unflatten
from fedchain.protocol.validator import Validator
from fedchain.storage.cid import cid_of
from fedchain.storage.codec import decode_metadata, decode_tensors, encode_tensors
from fedchain.storage.merkle import merkle_root, score_leaf


class Colluder(Validator):
    def compute(self, log, v):
        honest = super().compute(log, v)
        parent = self.current_model(v.task_id).q
        new = fp.to_fixed(flatten(decode_tensors(honest.blob, self.shapes)))
        bad = fp.clip_fixed(2 * parent - new)
        blob = encode_tensors(unflatten(fp.from_fixed(bad), self.template), decode_metadata(honest.blob))
        self.store.put(blob)
        return dataclasses.replace(honest, model_root=fp.vector_root(bad, self.recipe.chunk_size),
                                   model_cid=cid_of(blob), blob=blob)


class ScoreColluder(Validator):
    def compute(self, log, v):
        honest = super().compute(log, v)
        scores = [(a, 0) for a, _ in honest.scores[:-1]] + [(honest.scores[-1][0], 10**6)]
        meta = decode_metadata(honest.blob)
        lineage = json.loads(meta["fedchain"]) | {"scores": scores}
        tensors = decode_tensors(honest.blob, self.shapes)
        blob = encode_tensors(tensors, {"fedchain": json.dumps(lineage, sort_keys=True)})
        self.store.put(blob)
        return dataclasses.replace(honest, model_cid=cid_of(blob), blob=blob, scores=scores,
                                   scores_root=merkle_root([score_leaf(a, s) for a, s in scores]),
                                   total_score=sum(s for _, s in scores))


class TotalColluder(Validator):
    def compute(self, log, v):
        honest = super().compute(log, v)
        return dataclasses.replace(honest, total_score=honest.total_score + 10**6)


COLLUDERS = {"model": Colluder, "score": ScoreColluder, "total": TotalColluder}
