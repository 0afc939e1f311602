"""The trainer role: when selected, train on private data, commit, then reveal.

Raw data never leaves the trainer: only the update blob (named float32 tensors
of the parameter change) goes to the blob store, and only hashes go on chain.
Adversarial trainers in ``fedchain.sim.adversaries`` subclass this and override
``make_update`` or the phase hooks.
"""

from __future__ import annotations

import json
import os

import numpy as np
from eth_utils import keccak

from fedchain.chain import commitments
from fedchain.errors import Reverted
from fedchain.learning import fixedpoint as fp
from fedchain.learning.models import build_model
from fedchain.learning.train import TrainConfig, flatten, train_local
from fedchain.protocol.node import FINALIZED, Model, Node
from fedchain.storage.cid import cid_of, digest_of, cid_from_digest
from fedchain.storage.codec import decode_metadata, encode_tensors
from fedchain.storage.merkle import merkle_proof, score_leaf

ROLE_TRAINER = 1


class Trainer(Node):
    role = "trainer"

    def __init__(self, *args, x: np.ndarray, y: np.ndarray, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.x, self.y, self.seed = x, y, seed
        self._revealed: set[tuple[int, int]] = set()  # rounds to claim for
        self.rewards = 0

    def step(self, task_id: int) -> None:
        v = self.view(task_id)
        phase = v.phase(self.chain.block_number())
        if phase == "commit":
            self.commit(task_id, v.round_id, v.opened)
        elif phase == "reveal":
            self.reveal(task_id, v.round_id)
        self.claim_all(task_id)

    # -- selection

    def selected(self, task_id: int, round_id: int, opened: int) -> bool:
        """Local sortition check (the contract repeats it in O(1) at commit)."""
        rnd = self.fc.call("rounds", task_id, round_id)
        stake = self.fc.call("stakes", self.address)
        k = self.fc.call("tasks", task_id)["trainers_per_round"]
        ok = stake["role"] == ROLE_TRAINER and stake["since_block"] < opened and stake["active"] >= self.fc.call("min_stake")
        return ok and commitments.is_selected(rnd["seed"], self.address, stake["active"], rnd["trainer_total"], k)

    # -- commit

    def train(self, model: Model, round_id: int) -> dict[str, np.ndarray]:
        r = self.recipe
        net = build_model(r.model, r.input_shape, r.num_classes, seed=0)
        cfg = TrainConfig(epochs=r.epochs, batch_size=r.batch_size, lr=r.lr, proximal_mu=r.proximal_mu)
        params = train_local(net, model.params, self.x, self.y, cfg, seed=self.seed * 100_003 + round_id)
        return {k: (params[k] - model.params[k]).astype(np.float32) for k in model.params}

    def make_update(self, model: Model, round_id: int) -> tuple[bytes, bytes]:
        """The update blob and its root. Honest: train, then commit to exactly what is sent."""
        delta = self.train(model, round_id)
        q = fp.to_fixed(flatten(delta))
        return encode_tensors(delta), fp.vector_root(q, self.recipe.chunk_size)

    def commit(self, task_id: int, round_id: int, opened: int) -> None:
        entry = self.journal.get("commit", task_id, round_id)
        if entry is None:
            if not self.selected(task_id, round_id, opened):
                return
            blob, root = self.make_update(self.current_model(task_id), round_id)
            cid = self.store.put(blob)
            salt = os.urandom(32)
            c = commitments.commitment(self.chain.chain_id, self.fc.address, task_id, round_id,
                                       self.address, root, salt)
            entry = self.journal.write("commit", task_id, round_id, update_root=root.hex(), cid=cid,
                                       samples=len(self.y), salt=salt.hex(), commitment=c.hex())
        elif self.fc.call("commitment", task_id, round_id, self.address) != b"\0" * 32:
            return  # sent before a restart
        self.send("commit", task_id, round_id, bytes.fromhex(entry["commitment"]))
        self.log.info("round %d: committed update %s (%d samples)", round_id, entry["cid"], entry["samples"])

    # -- reveal

    def reveal(self, task_id: int, round_id: int) -> None:
        entry = self.journal.get("commit", task_id, round_id)
        if entry is None or self.fc.call("record", task_id, round_id, self.address) != 0:
            return
        if self.fc.call("commitment", task_id, round_id, self.address) == b"\0" * 32:
            return  # crashed before the commit landed: nothing to reveal
        self.send("reveal", task_id, round_id, bytes.fromhex(entry["update_root"]), digest_of(entry["cid"]),
                  entry["samples"], bytes.fromhex(entry["salt"]))
        self._revealed.add((task_id, round_id))
        self.log.info("round %d: revealed", round_id)

    # -- rewards

    def claim_all(self, task_id: int) -> None:
        for key in sorted(self._revealed):
            t, r = key
            if t != task_id:
                continue
            rnd = self.fc.call("rounds", t, r)
            if rnd["status"] == FINALIZED:
                self._claim(t, r, rnd)
                self._revealed.discard(key)
            elif rnd["status"] != 0:
                self._revealed.discard(key)  # failed round: nothing to claim

    def _claim(self, task_id: int, round_id: int, rnd: dict) -> None:
        ev = next(e for e in self.fc.events(rnd_block_hint(self, task_id, round_id))
                  if e.name == "RoundFinalized" and e.args["task_id"] == task_id and e.args["round_id"] == round_id)
        lineage = json.loads(decode_metadata(self.store.get(cid_from_digest(ev.args["model_cid"])))["fedchain"])
        contributors = [(a, s) for a, s in lineage["scores"]]
        me = next((i for i, (a, _) in enumerate(contributors) if a == self.address), None)
        if me is None or contributors[me][1] == 0:
            return
        leaves = [score_leaf(a, s) for a, s in contributors]
        try:
            r = self.send("claim", task_id, round_id, contributors[me][1], merkle_proof(leaves, me))
        except Reverted as e:
            self.log.warning("round %d: claim refused: %s", round_id, e.reason)
            return
        amount = r.event("RewardClaimed").args["amount"]
        self.rewards += amount
        self.log.info("round %d: claimed %.4f tokens for score %d", round_id, amount / 1e18, contributors[me][1])


def rnd_block_hint(node: Node, task_id: int, round_id: int) -> int:
    """First block worth scanning for a round's events: its opening block."""
    return node.fc.call("schedule", task_id, round_id)[0]
