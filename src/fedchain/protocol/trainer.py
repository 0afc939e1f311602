"""The trainer role: when selected, train on private data, commit, then reveal.

Raw data never leaves the trainer: only the update blob (named float32 tensors
of the parameter change) goes to the blob store, and only hashes go on chain.
Adversarial trainers in ``fedchain.sim.adversaries`` subclass this and override
``make_update`` or the phase hooks.
"""

from __future__ import annotations

import functools
import os
import secrets

import numpy as np

from fedchain.chain import commitments
from fedchain.chain.layout import Record
from fedchain.errors import LearningError, Reverted, StorageError
from fedchain.learning import fixedpoint as fp
from fedchain.learning import privacy
from fedchain.learning.train import flatten, train_local_with_loss, unflatten
from fedchain.protocol import budget
from fedchain.protocol.availability import KIND_UPDATE
from fedchain.protocol.node import Model, Node, RoundView, TaskLog
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import STORAGE_REASONS, Lineage, Vote
from fedchain.protocol.secagg_round import Board, TrainerSession, Windows, trainer_id
from fedchain.storage.cid import cid_from_digest, digest_of
from fedchain.storage.codec import encode_tensors
from fedchain.storage.merkle import merkle_proof, score_leaf

ROLE_TRAINER = 1


def client_momentum(
    buffer: dict[str, np.ndarray] | None, delta: dict[str, np.ndarray], beta: float
) -> dict[str, np.ndarray]:
    """Worker momentum (Karimireddy, He, Jaggi, ICML 2021) on updates: the trainer sends
    m_t = beta * m_{t-1} + (1 - beta) * u_t instead of its raw update u_t; the first is m_1 = u_1
    (as torch starts its momentum buffer), so early updates are not shrunk by (1 - beta).

    Trainer-side and unverifiable: nobody can check that a trainer applies it. The buffer
    lives in memory (a restarted trainer starts it again) and moves only in rounds the
    trainer takes part in; float32, as every update blob.
    """
    if buffer is None:
        return delta
    return {k: (beta * buffer[k] + (1 - beta) * delta[k]).astype(np.float32) for k in delta}


@functools.cache
def _scratch_module(recipe: Recipe):
    return recipe.build()


class Trainer(Node):
    role = "trainer"

    def __init__(self, *args, x: np.ndarray, y: np.ndarray, seed: int = 0, max_epsilon: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.x, self.y, self.seed = x, y, seed
        self.max_epsilon = max_epsilon  # a DP task: the most epsilon this trainer spends (its own cap)
        self._committed: set[tuple[int, int]] = set()  # rounds whose commit step is done
        self._revealed: set[tuple[int, int]] = set()
        self._momentum: dict[str, np.ndarray] | None = None  # client momentum buffer (recipe.client_momentum)
        self._sessions: dict[tuple[int, int], TrainerSession] = {}  # secure aggregation, per round
        self._session: TrainerSession | None = None  # the one whose update is being masked
        # a simulated fault of secure aggregation: "after_share" vanishes once its bundle is posted,
        # "after_mask" once its masked update is revealed (it never answers the unmasking request)
        self.secagg_fault = ""

    def act(self, log: TaskLog, v: RoundView, phase: str) -> None:
        task_id = log.task_id
        if self.recipe.secagg and phase in ("commit", "vote"):
            self.secagg_step(log, v, phase)
        elif phase == "commit":
            self.commit(task_id, v)
        elif phase == "reveal":
            self.reveal(task_id, v.round_id)
            if self.recipe.secagg:  # receive the others' masked updates as they come (and serve them on)
                self.replica().prefetch(ev.cid for ev in log.reveals.get(v.round_id, []))
        elif phase in ("challenge", "finalize") and (task_id, v.round_id) in self._revealed:
            self.answer_requests(log, v)

    # -- selection

    def selected(self, log: TaskLog, v: RoundView) -> bool | None:
        """Local sortition check (the contract repeats it in O(1) at commit); None while
        the round's seed cannot be read yet."""
        seed = self.round_seed(v)
        if seed is None:
            return None
        return commitments.is_selected(
            seed, self.address, self.weight(ROLE_TRAINER, v), v.trainer_total, log.config["trainers_per_round"]
        )

    # -- commit

    @property
    def net(self):
        """The local torch module: scratch space, its whole state is overwritten before
        each training. Trainers in one process (the simulation) share one per
        architecture: 20 separate copies made training measurably slower than plain
        FedAvg's single module (about 4%, benchmarks/rounds), only from memory traffic."""
        r = self.recipe
        return _scratch_module(r)

    def train(self, model: Model, round_id: int) -> dict[str, np.ndarray]:
        """The update: local training from the global model, minus the global model. Logs
        the local training loss (the last epoch's mean), the trainer's own progress figure."""
        r, spec = self.recipe, self.recipe.dp_spec
        if spec is not None and spec.mechanism == "example":  # DP-SGD: its noise from a secret seed
            params = privacy.train_local_dp(
                self.net, model.params, self.x, self.y, r.train_config(), spec, self.noise()
            )
            self.log.info("round %d: trained %d DP-SGD steps (example-level DP)", round_id, spec.steps)
        else:
            params, loss = train_local_with_loss(
                self.net, model.params, self.x, self.y, r.train_config(), seed=self.train_seed(round_id)
            )
            self.log.info("round %d: trained %d local epochs, training loss %.4f", round_id, r.epochs, loss)
        delta = {k: (params[k] - model.params[k]).astype(np.float32) for k in model.params}
        if spec is not None and spec.mechanism == "client":  # clipped and noised before it leaves
            rng = np.random.default_rng(self.noise())
            delta = unflatten(privacy.clip_and_noise(flatten(delta), spec.clip, spec.noise_multiplier, rng), delta)
        return delta

    def over_budget(self, log: TaskLog, round_id: int) -> bool:
        """Whether one more round would take this trainer past the task's cap on rounds (which
        the contracts enforce) or past its own ``max_epsilon``: then it sits the round out."""
        if self.recipe.dp_spec is None:
            return False
        done = sum(any(e.args["node"] == self.address for e in evs) for evs in log.commits.values())
        cap = self.recipe.max_dp_rounds
        if cap and done >= cap:
            self.log.warning(
                "round %d: not training: the task allows %d rounds per trainer (its max epsilon)", round_id, cap
            )
            return True
        if self.max_epsilon is None:
            return False
        eps = budget.next_epsilon(self.recipe, done)
        if eps > self.max_epsilon:
            self.log.warning(
                "round %d: not training: epsilon would reach %.3f, past this trainer's --max-epsilon %g",
                round_id,
                eps,
                self.max_epsilon,
            )
            return True
        return False

    def noise(self) -> int:
        """The seed of a DP trainer's noise: secret (from the OS), never derived from anything
        public, so that nobody can subtract the noise from the update it hides."""
        return secrets.randbits(63)

    def samples(self) -> int:
        """The example count the update is weighted by (asked right after ``make_update``)."""
        return len(self.y)

    def train_seed(self, round_id: int) -> int:
        return self.seed * 100_003 + round_id

    def make_update(self, model: Model, round_id: int) -> tuple[bytes, bytes]:
        """The update blob and its root. Honest: train, then commit to exactly what is sent."""
        delta = self.train(model, round_id)
        if self.recipe.client_momentum:
            delta = self._momentum = client_momentum(self._momentum, delta, self.recipe.client_momentum)
        q = fp.to_fixed(flatten(delta))
        if self._session is not None:  # secure aggregation: only the masked update leaves
            return self._session.mask(q, self.samples(), self.recipe.chunk_size)
        return encode_tensors(delta), fp.vector_root(q, self.recipe.chunk_size)

    # -- secure aggregation (fedchain.protocol.secagg_round)

    def secagg_step(self, log: TaskLog, v: RoundView, phase: str) -> None:
        """The board's steps around commit: advertise, share, then (receiving the shares) train,
        mask and commit; after the reveals, answer the unmasking request."""
        key, board = (log.task_id, v.round_id), self.secagg_board()
        block, w = self.chain.block_number(), Windows.of(v)
        s = self._sessions.get(key)
        if phase == "vote":
            if s is not None and not s.answered and s.bundles is not None and block <= w.answer_end:
                self.secagg_answer(log, v, s)
            return
        if key in self._committed:
            return
        if block <= w.advertise_end:
            if s is None:
                chosen = self.selected(log, v)
                if chosen is None:
                    return
                if not chosen or self.over_budget(log, v.round_id) or board.call("step", *key, self.address):
                    self._committed.add(key)  # (advertised before a restart: its secrets are lost)
                    return
                s = self._sessions[key] = TrainerSession(self.address)
                advert = s.advertise()
                self.send("advertise", *key, advert.c_pk, advert.s_pk, to=board)
                self.log.info("round %d: advertised secure-aggregation keys", v.round_id)
            return
        if s is None:  # did not advertise in time (or restarted): sit the round out
            self._committed.add(key)
            return
        if block <= w.share_end:
            if s.trainer is None:
                msgs = Board.read(board, *key, v.opened)
                try:
                    params = msgs.params(*key, self.current_model(log.task_id).q.size)
                    bundle, self_mask = s.share(msgs, params)
                except LearningError as e:
                    self.log.warning("round %d: no secure aggregation for this trainer: %s", v.round_id, e)
                    self._committed.add(key)
                    return
                self.send("share", *key, digest_of(self.store.put(bundle)), self_mask, to=board)
                self.log.info("round %d: posted its share bundle (%d bytes)", v.round_id, len(bundle))
            return
        if s.trainer is None or self.secagg_fault == "after_share":
            self._committed.add(key)
            return
        bundles = Board.read(board, *key, v.opened).bundles(s.trainer.params, self.replica(), self.log)  # served on
        if trainer_id(self.address) not in bundles:
            self.log.warning("round %d: its own share bundle is not among the usable ones: not training", v.round_id)
            self._committed.add(key)
            return
        for sharer, err in s.receive(bundles).items():
            self.log.warning("round %d: the shares from %s are unusable: %s", v.round_id, sharer, err)
        self._session = s
        try:
            self.commit(log.task_id, v)
        finally:
            self._session = None

    def secagg_answer(self, log: TaskLog, v: RoundView, s: TrainerSession) -> None:
        if self.secagg_fault:
            return
        try:
            blob = s.answer(log.reveals.get(v.round_id, []), self.replica(), self.recipe.chunk_size)
        except LearningError as e:  # a request it must refuse (too many dropouts): reveal nothing
            s.answered = True
            self.log.warning("round %d: refuses to answer the unmasking request: %s", v.round_id, e)
            return
        self.send("answer", v.task_id, v.round_id, digest_of(self.store.put(blob)), to=self.secagg_board())
        self._sessions = {k: x for k, x in self._sessions.items() if k[1] >= v.round_id}
        self.log.info("round %d: answered the unmasking request", v.round_id)

    def commit(self, task_id: int, v: RoundView) -> None:
        round_id = v.round_id
        if (task_id, round_id) in self._committed:
            return
        entry = self.journal.get("commit", task_id, round_id)
        if entry is None:
            chosen = self.selected(self.task(task_id), v)
            if chosen is None:
                return  # the seed is readable from the block after the opening one
            if not chosen or self.over_budget(self.task(task_id), round_id):
                self._committed.add((task_id, round_id))  # nothing to do this round
                return
            try:
                blob, root = self.make_update(self.current_model(task_id), round_id)
            except LearningError as e:  # training diverged (NaN/inf): send nothing, lose nothing
                self.log.warning("round %d: no update sent: local training failed: %s", round_id, e)
                self._committed.add((task_id, round_id))
                return
            cid = self.store.put(blob)
            salt = os.urandom(32)
            c = commitments.commitment(
                self.chain.chain_id, self.fc.address, task_id, round_id, self.address, root, salt
            )
            entry = self.journal.write(
                "commit",
                task_id,
                round_id,
                update_root=root.hex(),
                cid=cid,
                samples=self.samples(),
                salt=salt.hex(),
                commitment=c.hex(),
            )
        elif self.fc.call("commitment", task_id, round_id, self.address) != b"\0" * 32:
            self._committed.add((task_id, round_id))
            return  # sent before a restart
        self.send("commit", task_id, round_id, bytes.fromhex(entry["commitment"]))
        self._committed.add((task_id, round_id))
        self.log.info("round %d: committed update %s (%d samples)", round_id, entry["cid"], entry["samples"])

    # -- reveal

    def reveal(self, task_id: int, round_id: int) -> None:
        entry = self.journal.get("commit", task_id, round_id)
        if entry is None or (task_id, round_id) in self._revealed:
            return
        self._revealed.add((task_id, round_id))
        try:
            self.send(
                "reveal",
                task_id,
                round_id,
                bytes.fromhex(entry["update_root"]),
                digest_of(entry["cid"]),
                entry["samples"],
                bytes.fromhex(entry["salt"]),
            )
        except Reverted as e:
            if e.reason == "rounds: already revealed":  # before a restart
                return
            self._revealed.discard((task_id, round_id))
            if e.reason == "rounds: no commitment":  # crashed before the commit landed
                return
            raise
        except Exception:
            self._revealed.discard((task_id, round_id))  # chain unreachable: try again next step
            raise
        self._revealed.add((task_id, round_id))
        self.log.info("round %d: revealed", round_id)

    # -- availability

    def answer_requests(self, log: TaskLog, v: RoundView) -> None:
        """Answer every open availability request for this trainer's own update (its blob is
        in its store): a request nobody answers reverts the round and slashes the trainer
        (slashing.slash_withheld), whatever its voters do. Validators answer too; the
        first answer closes the request and a later one reverts harmlessly."""
        mine = next((e.index for e in log.reveals.get(v.round_id, []) if e.node == self.address), None)
        if mine is None:
            return
        votes = {e.args["vote_hash"]: e for e in log.votes.get(v.round_id, [])}
        for rid, req in self.open_requests(v):
            if req["kind"] == KIND_UPDATE and req["index"] == mine and req["leader"] in votes:
                self.answer_request(log, v, rid, req, Vote.from_event(votes[req["leader"]]))

    # -- restart

    def resume(self, task_id: int) -> None:
        """After a restart: rebuild what this trainer did in the task from its journal
        and the chain, so it reveals a journalled commitment (never a new one) and
        claims the rounds it revealed in, once."""
        for entry in self.journal.entries("commit", task_id):
            key = (task_id, entry["round"])
            if self.fc.call("commitment", *key, self.address) != b"\0" * 32:
                self._committed.add(key)
            revealed = Record.unpack(self.fc.call("record", *key, self.address)).revealed
            if revealed:
                self._revealed.add(key)
            if revealed and self.fc.call("claimed", *key, self.address):
                self._claimed.add(key)

    def outstanding_claims(self, task_id: int) -> int:
        """Rounds of the task this trainer revealed in and has not settled the claim of."""
        return sum(1 for t, _ in self._revealed - self._claimed if t == task_id)

    # -- rewards

    def claim_all(self, log: TaskLog) -> None:
        """Claim the reward of every finalized round this trainer revealed in."""
        for t, r in sorted(self._revealed - self._claimed):
            if t != log.task_id or r not in log.outcome:
                continue
            if log.outcome[r].name == "RoundFinalized":
                try:
                    self._claim(t, r, log.outcome[r].args)
                except StorageError as e:  # the model blob is not reachable yet: next step
                    self.log.warning("round %d: cannot claim yet: %s", r, e)
                    continue
            self._claimed.add((t, r))

    def _say_rejected(self, round_id: int, reason: str) -> None:
        """Tell the operator why the round paid nothing (and cost the liveness penalty):
        most often, on a network across machines, the validators could not reach this
        node's blob server."""
        if not reason.startswith(STORAGE_REASONS):  # the update itself was invalid
            self.log.info("round %d: the vote rejected this trainer's update: %s", round_id, reason)
            return
        self.log.warning(
            "round %d: the vote rejected this trainer's update (%s): the validators could not fetch an "
            "intact copy of it; make sure this node's blob server is reachable from their machines "
            "(--listen, --public-url) and announced (on by default)",
            round_id,
            reason,
        )

    def _claim(self, task_id: int, round_id: int, result: dict) -> None:
        lineage = Lineage.from_blob(self.store.get(cid_from_digest(result["model_cid"])))
        if self.address in lineage.rejected:
            self._say_rejected(round_id, lineage.rejected[self.address])
        contributors = list(lineage.scores)
        me = next((i for i, (a, _) in enumerate(contributors) if a == self.address), None)
        if me is None or contributors[me][1] == 0:
            return
        proof = merkle_proof([score_leaf(a, s) for a, s in contributors], me)
        if lineage.distances is not None:  # a Krum vote: the scores tree sits beside the distance table
            proof.append(bytes.fromhex(lineage.distances["root"]))
        try:
            r = self.send("claim", task_id, round_id, contributors[me][1], proof)
        except Reverted as e:
            self.log.warning("round %d: claim refused: %s", round_id, e.reason)
            return
        amount = r.event("RewardClaimed").args["amount"]  # credited: see Node.withdraw
        self.rewards += amount
        self.log.info("round %d: claimed %.4f tokens for score %d", round_id, amount / 1e18, contributors[me][1])
