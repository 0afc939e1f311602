"""Sends an update whose tensors hold NaN."""

import numpy as np

from fedchain.protocol.trainer import Trainer
from fedchain.storage.codec import encode_tensors


class NaNUpdate(Trainer):
    def make_update(self, model, round_id):
        delta = self.train(model, round_id)
        first = sorted(delta)[0]
        delta[first] = delta[first].copy()
        delta[first].flat[0] = np.nan
        return encode_tensors(delta), b"\x11" * 32
