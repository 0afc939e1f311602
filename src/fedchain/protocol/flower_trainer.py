"""A trainer whose local training is a Flower client's ``fit`` (``fedchain.flower``).

The protocol around it is the honest ``Trainer``'s: the update is the client's new arrays
minus the global ones, as named float32 tensors ``p000``, ``p001``, ... (the recipe's
``param_shapes``), committed and revealed as any update, weighted by the example count the
client's fit reports. The client holds its own data: the trainer holds none.
"""

from __future__ import annotations

import numpy as np

from fedchain.errors import LearningError
from fedchain.flower import FlowerClient
from fedchain.protocol.node import Model
from fedchain.protocol.recipe import param_names
from fedchain.protocol.trainer import Trainer


class FlowerTrainer(Trainer):
    def __init__(self, *args, client: FlowerClient, **kwargs):
        empty = np.zeros(0, dtype=np.float32)
        super().__init__(*args, x=empty, y=empty.astype(np.int64), **kwargs)
        self.client = client
        self._examples = 0

    def train(self, model: Model, round_id: int) -> dict[str, np.ndarray]:
        """The client's fit as an update. Whatever goes wrong in the client's own code (it
        raises, or returns the wrong number or shapes of arrays; NaN is caught when the update is
        encoded) is a ``LearningError``: the trainer sends nothing this round and logs why."""
        names = param_names(len(self.recipe.param_shapes))
        try:
            arrays, self._examples, metrics = self.client.fit([model.params[k] for k in names], round_id + 1)
        except Exception as e:  # the client is the user's code: any failure of it is its own
            raise LearningError(f"the Flower client's fit failed: {type(e).__name__}: {e}") from None
        shapes = [tuple(np.shape(a)) for a in arrays]
        if shapes != list(self.recipe.param_shapes):
            raise LearningError(
                f"{self.client.entry.spec} returned {len(shapes)} arrays shaped {shapes}, not the task's "
                f"{len(self.recipe.param_shapes)} shaped {list(self.recipe.param_shapes)}"
            )
        self.log.info("round %d: Flower fit on %d examples, metrics %s", round_id, self._examples, metrics)
        return {
            k: (np.asarray(a, dtype=np.float32) - model.params[k]).astype(np.float32) for k, a in zip(names, arrays)
        }

    def samples(self) -> int:
        return self._examples
