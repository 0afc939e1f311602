"""What every role shares: its view of the chain, the blob store and the model.

Roles talk only through the chain and the content-addressed blob store. A node
is driven by calling ``step(task_id)`` repeatedly (a simulation loop, or a
long-running process polling the chain); each step looks at the chain, does
what the current phase asks of this node, and returns. Steps are idempotent:
what was already done (on chain or in the journal) is not done again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from eth_account.signers.local import LocalAccount

from fedchain.chain.interface import Contract, Receipt
from fedchain.errors import FedchainError, LearningError
from fedchain.learning import fixedpoint as fp
from fedchain.learning.models import build_model
from fedchain.learning.train import flatten, get_params, param_shapes, unflatten
from fedchain.protocol.journal import Journal
from fedchain.protocol.recipe import Recipe
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_tensors
from fedchain.storage.store import BlobStore

OPEN, FINALIZED, FAILED = 0, 1, 2


@dataclass(frozen=True)
class RoundView:
    task_id: int
    round_id: int
    opened: int
    commit_end: int
    reveal_end: int
    validate_end: int
    challenge_end: int
    finished: bool

    def phase(self, block: int) -> str:
        if self.finished:
            return "finished"
        if block <= self.commit_end:
            return "commit"
        if block <= self.reveal_end:
            return "reveal"
        if block <= self.validate_end:
            return "vote"
        if block <= self.challenge_end:
            return "challenge"
        return "finalize"


@dataclass(frozen=True)
class Model:
    """A global model as nodes use it: float params, the fixed-point vector, its names."""

    params: dict[str, np.ndarray]
    q: np.ndarray
    root: bytes
    cid: str


class Node:
    role = "node"

    def __init__(self, name: str, fedchain: Contract, account: LocalAccount, store: BlobStore,
                 journal: Journal, recipe: Recipe):
        self.name = name
        self.fc = fedchain
        self.chain = fedchain.chain
        self.account = account
        self.address = account.address
        self.store = store
        self.journal = journal
        self.recipe = recipe
        self.log = logging.getLogger(f"fedchain.{name}")
        self.gas_used = 0
        self._models: dict[bytes, Model] = {}

    # -- chain

    def send(self, fn: str, *args) -> Receipt:
        r = self.fc.tx(fn, *args, sender=self.account)
        self.gas_used += r.gas_used
        return r

    def view(self, task_id: int) -> RoundView:
        task = self.fc.call("tasks", task_id)
        r = task["round"]
        opened, c, rv, v = self.fc.call("schedule", task_id, r)
        return RoundView(task_id, r, opened, c, rv, v, v + task["challenge_blocks"], task["finished"])

    # -- model

    @cached_property
    def template(self) -> dict[str, np.ndarray]:
        r = self.recipe
        return get_params(build_model(r.model, r.input_shape, r.num_classes, seed=0))

    @cached_property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return param_shapes(self.template)

    def load_model(self, model_root: bytes, model_cid: bytes) -> Model:
        """Fetch, verify (CID, then root) and decode a global model blob."""
        if model_cid in self._models:
            return self._models[model_cid]
        cid = cid_from_digest(model_cid)
        tensors = decode_tensors(self.store.get(cid), self.shapes)
        q = fp.to_fixed(flatten(tensors))
        if fp.vector_root(q, self.recipe.chunk_size) != model_root:
            raise FedchainError(f"model blob {cid} does not match the model root on chain")
        model = Model(unflatten(fp.from_fixed(q), self.template), q, model_root, cid)
        self._models = {model_cid: model}  # keep only the latest
        return model

    def current_model(self, task_id: int) -> Model:
        task = self.fc.call("tasks", task_id)
        return self.load_model(task["model_root"], task["model_cid"])

    def decode_update(self, data: bytes) -> np.ndarray:
        """An update blob to its fixed-point vector; CodecError/LearningError say why not."""
        tensors = decode_tensors(data, self.shapes)
        q = fp.to_fixed(flatten(tensors))
        if q.size == 0:
            raise LearningError("empty update")
        return q
