"""Sends a well-formed tensor file whose first tensor has the wrong shape."""

import numpy as np

from fedchain.learning import fixedpoint as fp
from fedchain.learning.train import flatten
from fedchain.protocol.trainer import Trainer
from fedchain.storage.codec import encode_tensors


class WrongShape(Trainer):
    def make_update(self, model, round_id):
        delta = self.train(model, round_id)
        first = sorted(delta)[0]
        delta[first] = np.zeros(delta[first].size + 1, dtype=np.float32)
        return encode_tensors(delta), fp.vector_root(fp.to_fixed(flatten(delta)), self.recipe.chunk_size)
