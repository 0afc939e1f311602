"""Uploads random bytes instead of a tensor file (and commits to an honest root)."""

import numpy as np

from fedchain.protocol.trainer import Trainer


class Garbage(Trainer):
    def make_update(self, model, round_id):
        _, root = super().make_update(model, round_id)
        return np.random.default_rng(round_id).bytes(4096), root
