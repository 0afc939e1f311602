"""A validator in a colluding committee: votes for a sabotaged model.

Every colluder computes the honest result, then replaces the new model by
the parent moved *against* the aggregate update (w - (w' - w)), clipped to
the fixed-point range, and publishes that blob so the result looks complete.
The scores and rejected set stay honest. Being deterministic, all colluders
cast the same vote; with 2/3 of the committee stake it leads, and only a
watcher's challenge stops it.
"""

import dataclasses

from fedchain.learning import fixedpoint as fp
from fedchain.learning.train import flatten, unflatten
from fedchain.protocol.validator import Validator
from fedchain.storage.cid import cid_of
from fedchain.storage.codec import decode_metadata, decode_tensors, encode_tensors


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
