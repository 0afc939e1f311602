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

from fedchain.chain.abi import Event
from fedchain.chain.interface import Contract, Receipt, artifact
from fedchain.errors import FedchainError, Reverted
from fedchain.learning import fixedpoint as fp
from fedchain.learning.train import flatten, param_shapes, unflatten
from fedchain.protocol.availability import answer_from_store
from fedchain.protocol.journal import Journal
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import Reveal, Vote
from fedchain.protocol.sponsor import load_base
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_tensors
from fedchain.storage.store import BlobStore, Replicating

OPEN, FINALIZED, FAILED = 0, 1, 2


@dataclass(frozen=True)
class RoundView:
    """A round as its RoundOpened event describes it (immutable once opened). Its
    seed is not in that event: it comes from the opening block's hash, readable from
    the next block on (``Node.round_seed``)."""

    task_id: int
    round_id: int
    opened: int
    commit_end: int
    reveal_end: int
    validate_end: int
    challenge_end: int
    trainer_total: int
    validator_total: int

    def phase(self, block: int) -> str:
        if block <= self.commit_end:
            return "commit"
        if block <= self.reveal_end:
            return "reveal"
        if block <= self.validate_end:
            return "vote"
        if block <= self.challenge_end:
            return "challenge"
        return "finalize"


class TaskLog:
    """Everything a node learned about one task from the chain's events.

    Nodes follow the event log instead of polling storage: the log is what an
    observer replays, and reading it is cheap on both backends. ``poll`` asks
    only for blocks from the last one seen (inclusive: several transactions
    can share a block) and drops events it already holds. Replaying from
    block 0, it ignores the task's events before its ``TaskCreated``: a task
    id is known before the task exists, so nothing logged under it earlier
    belongs to it (SECURITY-REVIEW H-2; the contract also refuses ``advance``
    on a task that does not exist).
    """

    def __init__(self, fedchain: Contract, task_id: int, from_block: int = 0, me: str | None = None):
        self.fc = fedchain
        self.me = me  # an address whose slashes (events of no task) are kept in ``slashed``
        self.slashed: list[Event] = []
        self.task_id = task_id
        self.cursor = from_block
        self._seen: set[tuple[int, int]] = set()
        self.config = fedchain.call("tasks", task_id)  # static fields only are used
        self.rounds: dict[int, RoundView] = {}
        self.commits: dict[int, list] = {}
        self.reveals: dict[int, list[Reveal]] = {}
        self.votes: dict[int, list] = {}
        self.joins: dict[int, list] = {}
        self.outcome: dict[int, Event] = {}  # round -> RoundFinalized or RoundFailed event
        self.finished = False
        self.initial_model_cid: bytes | None = None  # from TaskCreated (``config`` holds the latest model)
        self.created = from_block > 0  # a log that starts later starts after the creation

    def poll(self) -> TaskLog:
        head = self.fc.chain.block_number()
        for e in self.fc.events(self.cursor, head):
            key = (e.block, e.log_index)
            if key in self._seen:
                continue
            if e.name == "Slashed" and e.args["node"] == self.me and self.created:
                self._seen.add(key)
                self.slashed.append(e)
                continue
            if e.args.get("task_id") != self.task_id:
                continue
            self._seen.add(key)
            if not self.created:
                if e.name != "TaskCreated":
                    continue
                self.created = True
            self._apply(e)
        self.cursor = head
        self._seen = {k for k in self._seen if k[0] >= head}
        return self

    def _apply(self, e) -> None:
        a = e.args
        if e.name == "RoundOpened":
            self.rounds[a["round_id"]] = RoundView(
                self.task_id,
                a["round_id"],
                e.block,
                a["commit_end"],
                a["reveal_end"],
                a["validate_end"],
                a["validate_end"] + self.config["challenge_blocks"],
                a["trainer_total"],
                a["validator_total"],
            )
        elif e.name == "Committed":
            self.commits.setdefault(a["round_id"], []).append(e)
        elif e.name == "Revealed":
            self.reveals.setdefault(a["round_id"], []).append(Reveal.from_event(e))
        elif e.name == "Voted":
            self.votes.setdefault(a["round_id"], []).append(e)
        elif e.name == "Joined":
            self.joins.setdefault(a["round_id"], []).append(e)
        elif e.name in ("RoundFinalized", "RoundFailed"):
            self.outcome[a["round_id"]] = e
        elif e.name == "TaskFinished":
            self.finished = True
        elif e.name == "TaskCreated":
            self.initial_model_cid = a["model_cid"]

    @property
    def current(self) -> RoundView:
        return self.rounds[max(self.rounds)]


@dataclass(frozen=True)
class Model:
    """A global model as nodes use it: float params, the fixed-point vector, its names."""

    params: dict[str, np.ndarray]
    q: np.ndarray
    root: bytes
    cid: str


class Node:
    role = "node"

    def __init__(
        self, name: str, fedchain: Contract, account: LocalAccount, store: BlobStore, journal: Journal, recipe: Recipe
    ):
        self.name = name
        self.fc = fedchain
        self.chain = fedchain.chain
        self.account = account
        self.address = account.address
        self.store = store
        self.journal = journal
        self.recipe = recipe
        load_base(store, recipe)  # a LoRA task's base model, fetched and checked once per process
        self.log = logging.getLogger(f"fedchain.{name}")
        self.gas_used = 0
        self._models: dict[bytes, Model] = {}
        self._tasks: dict[int, TaskLog] = {}
        self._claimed: set[tuple[int, int]] = set()  # (task, round) whose reward was settled
        self._seeds: dict[tuple[int, int], bytes] = {}
        self.rewards = 0  # claimed rewards, in wei
        self._min_stake: int | None = None
        # secure aggregation's board (secagg.vy, from the deployment file): a secure-aggregation
        # task's trainers and validators need it; fedchain.vy does not know its address
        self.board: Contract | None = None
        self._replica: Replicating | None = None

    def step(self, task_id: int) -> None:
        """Catch up with the chain, claim what is due, then do what the phase asks."""
        log = self.task(task_id)
        self.claim_all(log)
        if not log.finished:
            v = log.current
            self.act(log, v, v.phase(self.chain.block_number()))

    def act(self, log: TaskLog, v: RoundView, phase: str) -> None:
        raise NotImplementedError

    def claim_all(self, log: TaskLog) -> None:
        raise NotImplementedError

    def resume(self, task_id: int) -> None:
        """After a restart: rebuild what this node did in the task from its journal and the chain."""
        raise NotImplementedError

    def outstanding_claims(self, task_id: int) -> int:
        """Rounds of the task whose reward or fee this node has yet to claim."""
        raise NotImplementedError

    # -- chain

    def send(self, fn: str, *args, to: Contract | None = None) -> Receipt:
        """Send ``fn`` to fedchain, or to the contract ``to`` (e.g. ``self.slashing``)."""
        r = (to or self.fc).tx(fn, *args, sender=self.account)
        self.gas_used += r.gas_used
        return r

    @cached_property
    def slashing(self) -> Contract:
        """The contract that judges faults (its address is fixed in fedchain)."""
        return self.chain.at(artifact("slashing"), self.fc.call("slashing"))

    @cached_property
    def availability(self) -> Contract:
        """The data-availability game (its address is fixed in fedchain)."""
        return self.chain.at(artifact("availability"), self.fc.call("availability"))

    def open_requests(self, v: RoundView) -> list[tuple[bytes, dict]]:
        """The round's availability requests still open: (id, the contract's record). One
        call when none is open (every honest round): the events are read only then."""
        if not self.availability.call("open_requests", v.task_id, v.round_id):
            return []
        out = []
        for e in self.availability.events(v.validate_end):  # requests come after the vote phase
            a = e.args
            if e.name == "Requested" and (a["task_id"], a["round_id"]) == (v.task_id, v.round_id):
                req = self.availability.call("requests", a["request_id"])
                if req["open"]:
                    out.append((a["request_id"], req))
        return out

    def answer_requests_about(self, log: TaskLog, v: RoundView, vote: Vote) -> None:
        """Answer every open availability request about the result ``vote`` from the
        blobs this node can fetch: the voted model, the updates it accepted, its distance
        table. A request nobody answers reverts the round and slashes its voters, so
        whoever holds the data of a result it knows is right answers for it. The answer's
        bond pays for its gas; a request another node answered first reverts harmlessly."""
        leader = vote.hash()
        for rid, req in self.open_requests(v):
            if req["leader"] == leader:  # not about another result
                self.answer_request(log, v, rid, req, vote)

    def answer_request(self, log: TaskLog, v: RoundView, rid: bytes, req: dict, vote: Vote) -> None:
        """Answer one open request (made against ``vote``) from the blobs this node can
        fetch; a request another node answered first reverts harmlessly."""
        try:
            fn, call = answer_from_store(
                req, vote, log.reveals.get(v.round_id, []), self.store, self.recipe, self.shapes
            )
        except (FedchainError, LookupError, StopIteration) as e:
            self.log.warning("round %d: cannot answer availability request %s: %s", v.round_id, rid.hex()[:12], e)
            return
        try:
            self.send(fn, rid, *call, to=self.availability)
        except Reverted as e:
            self.log.debug("answer not needed: %s", e.reason)
            return
        self.log.info("round %d: answered availability request %s (kind %d)", v.round_id, rid.hex()[:12], req["kind"])

    def replica(self) -> Replicating:
        """This node's store, keeping what it fetches (``Replicating``): one per node."""
        if self._replica is None:
            self._replica = Replicating(self.store)
        return self._replica

    def secagg_board(self) -> Contract:
        """The board of a secure-aggregation task, or a clear error if this node was given none."""
        if self.board is None:
            raise FedchainError(
                "this task uses secure aggregation, but the deployment names no secagg board contract: "
                "deploy with this fedchain version"
            )
        return self.board

    def round_seed(self, v: RoundView) -> bytes | None:
        """The round's sortition seed, or None while it cannot be read yet (in the
        block that opened the round) or any more (256 blocks later, never drawn)."""
        key = (v.task_id, v.round_id)
        if key not in self._seeds:
            seed = self.fc.call("seed_of", *key)
            if seed == bytes(32):
                return None
            self._seeds[key] = seed
        return self._seeds[key]

    def withdraw(self) -> int:
        """Withdraw claimed rewards (credited on chain by each claim) in one transfer."""
        owed = self.fc.call("payouts", self.address)
        if owed:
            self.send("withdraw_payout")
            self.log.info("withdrew %.4f tokens of rewards", owed / 1e18)
        return owed

    def task(self, task_id: int) -> TaskLog:
        """The node's event log of a task, brought up to the chain's head."""
        if task_id not in self._tasks:
            self._tasks[task_id] = TaskLog(self.fc, task_id, me=self.address)
        return self._tasks[task_id].poll()

    def weight(self, role: int, view: RoundView) -> int:
        """This node's selection weight in a round: its stake if eligible, else 0."""
        s = self.fc.call("stakes", self.address)
        if self._min_stake is None:
            self._min_stake = self.fc.call("min_stake")
        ok = s["role"] == role and s["since_block"] < view.opened and s["active"] >= self._min_stake
        return s["active"] if ok else 0

    # -- model

    @cached_property
    def template(self) -> dict[str, np.ndarray]:
        return self.recipe.template()

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
        """The last finalized model (the task's initial model before any)."""
        log = self.task(task_id)
        done = [e for e in log.outcome.values() if e.name == "RoundFinalized"]
        if done:
            last = max(done, key=lambda e: e.args["round_id"]).args
            return self.load_model(last["model_root"], last["model_cid"])
        return self.load_model(log.config["model_root"], log.config["model_cid"])
