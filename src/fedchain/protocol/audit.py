"""The observer role: replay a task's events and blobs and verify its whole history.

An auditor trusts nothing but the chain's event log and content addressing. For
every round it checks each reveal against its commitment, fetches every revealed
update (its bytes must hash to the revealed CID and its fixed-point vector to the
revealed root), recomputes the rejected set, the new model, its blob and CID, the
scores root and the total score with the validators' own ``compute_round`` code
from the previous finalized model, checks that a 2/3 quorum of committee seats
(of at least k/3 seats) voted for exactly that result, and recomputes every reward claimed. The first
difference raises ``AuditError`` naming the round, the node and the quantity.

Everything comes from events and blobs, never from contract storage, so a saved
simulation (the embedded chain is gone with its process) is audited from a file:
``save_chain`` writes the event log and the deployment facts that events lack,
and ``EventFile`` reads them back; ``ContractEvents`` reads a live chain.

Two judgments cannot be proven and are accepted as the committee stated them
(DESIGN, Money and penalties): an update rejected as unavailable or corrupt
(the auditor notes it if it can fetch valid bytes), and the reason given for a
rejected update whose blob the auditor cannot fetch either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from fedchain.chain import commitments
from fedchain.chain.abi import Event
from fedchain.chain.deploy import Deployment, read_deployment_file
from fedchain.chain.fedchain import Fedchain
from fedchain.chain.interface import Contract
from fedchain.chain.layout import FailReason, describe
from fedchain.errors import CodecError, FedchainError, StorageError
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate import uses_prev_update
from fedchain.learning.train import flatten, param_shapes, unflatten
from fedchain.protocol.node import Model
from fedchain.protocol.round import (
    STORAGE_REASONS,
    Lineage,
    Reveal,
    RoundResult,
    Vote,
    aggregate_round,
    check_updates,
    compute_round,
    in_reveal_order,
    previous_update,
    public_span,
)
from fedchain.protocol.secagg_round import Board, SecAggRoundError, unmasked
from fedchain.protocol.sponsor import task_recipe
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_tensors
from fedchain.storage.store import BlobStore

BPS = 10_000
EVENTS_FILE = "events.jsonl"
DEPLOYMENT_FILE = "deployment.json"


class AuditError(FedchainError):
    """The history differs from its recomputation: which round, node and quantity, and how.

    ``round_id`` is None for the task's setup (recipe, initial model); ``node`` is
    an address, or a label such as ``"finalized result"`` or ``"committee"``.
    """

    def __init__(self, round_id: int | None, node: str, quantity: str, expected, found):
        self.round_id, self.node, self.quantity = round_id, node, quantity
        self.expected, self.found = expected, found
        where = "task setup" if round_id is None else f"round {round_id}"
        who = f"node {node}" if node.startswith("0x") else node
        super().__init__(f"{where}, {who}: {quantity}: expected {_show(expected)}, found {_show(found)}")


def _show(value) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------- event sources


class EventSource(Protocol):
    """Where an auditor reads a contract's events, in chain order."""

    chain_id: int
    address: str

    def events(self) -> list[Event]:
        """Every event the fedchain contract emitted, oldest first."""
        ...

    def facts(self, task_id: int) -> dict:
        """What events do not say, if known: ``reporter_bps``, ``validator_fee_bps``, ``min_reveals``,
        ``validators_per_round``."""
        ...


class ContractEvents:
    """Events of a live contract (either backend), from ``from_block`` on."""

    def __init__(self, contract: Fedchain | Contract, from_block: int = 0, board: Contract | None = None):
        self.contract = contract
        self.chain_id = contract.chain.chain_id
        self.address = contract.address
        self.from_block = from_block
        self.board = board  # the secure-aggregation board, whose events a secagg task's rounds need

    def events(self) -> list[Event]:
        return _in_chain_order(self.contract, self.board, from_block=self.from_block)

    def facts(self, task_id: int) -> dict:
        task = self.contract.call("tasks", task_id)
        return {
            "reporter_bps": self.contract.call("reporter_bps"),
            "validator_fee_bps": task["validator_fee_bps"],
            "min_reveals": task["min_reveals"],
            "validators_per_round": task["validators_per_round"],
        }


class EventFile:
    """Events saved by ``save_chain``: ``events.jsonl`` and the ``deployment.json`` beside it."""

    def __init__(self, path: Path):
        path = Path(path)
        self.path = path / EVENTS_FILE if path.is_dir() else path
        self.info = read_deployment_file(self.path.parent / DEPLOYMENT_FILE)
        self.chain_id = self.info["chain_id"]
        self.address = self.info["fedchain"]

    @cached_property
    def _events(self) -> list[Event]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            raise FedchainError(f"no event log at {self.path}: save one with `fedchain simulate`") from None
        out = []
        for n, line in enumerate(lines, 1):
            try:
                out.append(event_from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                raise FedchainError(f"{self.path}, line {n}: not an event ({e})") from None
        return out

    def events(self) -> list[Event]:
        return self._events

    def facts(self, task_id: int) -> dict:
        task = self.info.get("tasks", {}).get(str(task_id), {})
        params = self.info.get("params", {})
        known = {
            "reporter_bps": params.get("reporter_bps"),
            "validator_fee_bps": task.get("validator_fee_bps"),
            "min_reveals": task.get("min_reveals"),
            "validators_per_round": task.get("validators_per_round"),
        }
        return {k: v for k, v in known.items() if v is not None}


# Every bytes field in fedchain's events is a bytes32 ("0x" + 64 hex digits); addresses
# are 20 bytes and stay checksummed strings. tests/security/test_audit.py checks the ABI.
def _encode(value):
    return "0x" + value.hex() if isinstance(value, bytes) else value


def _decode(value):
    if isinstance(value, str) and len(value) == 66 and value.startswith("0x"):
        return bytes.fromhex(value[2:])
    return value


def event_to_json(e: Event) -> dict:
    return {
        "name": e.name,
        "args": {k: _encode(v) for k, v in e.args.items()},
        "block": e.block,
        "address": e.address,
        "log_index": e.log_index,
    }


def event_from_json(d: dict) -> Event:
    return Event(d["name"], {k: _decode(v) for k, v in d["args"].items()}, d["block"], d["address"], d["log_index"])


def _in_chain_order(*contracts: Fedchain | Contract | None, from_block: int) -> list[Event]:
    """The events of several contracts merged in chain order (block, then log index)."""
    events = [e for c in contracts if c is not None for e in c.events(from_block)]
    return sorted(events, key=lambda e: (e.block, e.log_index)) if len(contracts) > 1 else events


def save_chain(deployment: Deployment, folder: Path, task_id: int) -> Path:
    """Write the contract's event log and the facts an audit needs that events lack.

    ``folder/events.jsonl`` holds one decoded event a line; ``folder/deployment.json``
    is a deployment file (addresses, chain id, block) plus the task id, the protocol
    parameters and the task's static configuration. Returns ``folder``.
    """
    fc = deployment.fedchain
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (EVENTS_FILE + ".tmp")
    with tmp.open("w") as f:
        for e in _in_chain_order(fc, deployment.secagg, from_block=deployment.block):
            f.write(json.dumps(event_to_json(e)) + "\n")
    os.replace(tmp, folder / EVENTS_FILE)
    params = {
        k: fc.call(k)
        for k in ("min_stake", "unbonding_delay", "liveness_penalty", "safety_penalty_bps", "reporter_bps")
    }
    task = {k: _encode(v) for k, v in fc.call("tasks", task_id).items()}
    deployment.save(
        folder / DEPLOYMENT_FILE,
        chain="embedded",
        events=EVENTS_FILE,
        task_id=task_id,
        params=params,
        tasks={str(task_id): task},
    )
    return folder


# ---------------------------------------------------------------- the audit


@dataclass
class Version:
    """One round of the model's lineage, as verified."""

    round_id: int
    status: str  # "finalized", "failed: <why>" or "open"
    parent_cid: str
    model_cid: str | None = None
    scores: list[tuple[str, int]] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    voters: list[str] = field(default_factory=list)
    dissenters: list[str] = field(default_factory=list)
    claims: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    task_id: int
    initial_cid: str = ""
    versions: list[Version] = field(default_factory=list)
    updates: int = 0
    claims: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return sum(v.status != "open" for v in self.versions)

    def summary(self) -> str:
        finalized = sum(v.status == "finalized" for v in self.versions)
        return f"verified {self.rounds} rounds ({finalized} finalized), {self.updates} updates, {self.claims} claims"


@dataclass
class _Round:
    """A round's events, grouped."""

    opened: Event
    commits: dict[str, Event] = field(default_factory=dict)
    reveals: list[Reveal] = field(default_factory=list)
    joins: dict[str, int] = field(default_factory=dict)
    votes: list[Event] = field(default_factory=list)
    equivocated: set[str] = field(default_factory=set)
    outcome: Event | None = None
    claims: list[Event] = field(default_factory=list)


class _Recording:
    """A blob store that remembers which reads failed and why (storage, not content)."""

    def __init__(self, store: BlobStore):
        self.store = store
        self.failures: dict[str, StorageError] = {}

    def get(self, cid: str) -> bytes:
        try:
            return self.store.get(cid)
        except StorageError as e:
            self.failures[cid] = e
            raise

    def put(self, data: bytes) -> str:
        raise StorageError("an audit stores nothing")

    def has(self, cid: str) -> bool:
        return self.store.has(cid)


class Auditor:
    """Verify one task's history; ``report`` holds what was verified so far.

    Parameters
    ----------
    source : EventSource
        The contract's events (a live contract or a saved file).
    store : BlobStore
        Where the blobs are read; every read is checked against its CID.
    task_id : int
        The task to audit.
    """

    def __init__(self, source: EventSource, store: BlobStore, task_id: int):
        self.source = source
        self.store = store
        self.task_id = task_id
        self.report = AuditReport(task_id)

    def run(self, on_round: Callable[[Version], None] | None = None) -> AuditReport:
        events = self.source.events()
        created = next((e for e in events if e.name == "TaskCreated" and e.args["task_id"] == self.task_id), None)
        if created is None:
            raise FedchainError(f"no task {self.task_id} in the event log of {self.source.address}")
        self.created = created.args
        self.events = events
        model = self._setup()
        rounds = self._group(events)
        budgets = self._budgets(events)
        for r in sorted(rounds):
            version, model = self._round(r, rounds[r], model, budgets)
            self.report.versions.append(version)
            if on_round:
                on_round(version)
        if not any(e.name == "TaskFinished" and e.args["task_id"] == self.task_id for e in events):
            self.report.notes.append(self._unfinished())
        return self.report

    def _unfinished(self) -> str:
        """What a task that has not finished (yet: live, or an interrupted simulation) consists of."""
        open_ = [v.round_id for v in self.report.versions if v.status == "open"]
        return f"the task has not finished: {self.report.rounds} of {self.created['num_rounds']} rounds decided" + (
            f", round {open_[0]} open" if open_ else ""
        )

    # -- setup

    def _setup(self) -> Model:
        """The recipe (checked against its hash), the model's template, and the
        initial model (checked against its root), as a validator loads them."""
        cid = cid_from_digest(self.created["model_cid"])
        data = self._blob(cid, None, "sponsor", "initial model blob")
        self.report.initial_cid = cid
        try:
            self.recipe = r = task_recipe(self.source, self.store, self.task_id)
        except FedchainError as e:
            raise AuditError(None, "sponsor", "recipe", self.created["recipe_hash"], str(e)) from None
        r.check_model_source()  # an entry-point model is built from the source the task pins, or not at all
        self.template = r.template()
        try:
            q = fp.to_fixed(flatten(decode_tensors(data, param_shapes(self.template))))
        except FedchainError as e:
            raise AuditError(None, "sponsor", "initial model", "a model of the recipe's shape", str(e)) from None
        root = fp.vector_root(q, r.chunk_size)
        if root != self.created["model_root"]:
            raise AuditError(None, "sponsor", "initial model root", root, self.created["model_root"])
        return self._model(q, root, cid)

    def _model(self, q: np.ndarray, root: bytes, cid: str) -> Model:
        return Model(unflatten(fp.from_fixed(q), self.template), q, root, cid)

    def _blob(self, cid: str, round_id: int | None, node: str, quantity: str) -> bytes:
        try:
            return self.store.get(cid)
        except StorageError as e:
            raise AuditError(round_id, node, quantity, cid, str(e)) from None

    def _group(self, events: list[Event]) -> dict[int, _Round]:
        rounds: dict[int, _Round] = {}
        for e in events:
            a = e.args
            if a.get("task_id") != self.task_id or "round_id" not in a:
                continue
            if e.name == "RoundOpened":
                rounds[a["round_id"]] = _Round(e)
                continue
            rnd = rounds.get(a["round_id"])
            if rnd is None:
                raise AuditError(
                    a["round_id"],
                    a.get("node") or a.get("validator") or "?",
                    e.name,
                    "an opened round",
                    "an event before its RoundOpened",
                )
            if e.name == "Committed":
                rnd.commits[a["node"]] = e
            elif e.name == "Revealed":
                rnd.reveals.append(Reveal.from_event(e))
            elif e.name == "Joined":
                rnd.joins[a["validator"]] = a["weight"]
            elif e.name == "Voted":
                rnd.votes.append(e)
            elif e.name == "Equivocated":
                rnd.equivocated.add(a["validator"])
            elif e.name in ("RoundFinalized", "RoundFailed"):
                rnd.outcome = e
            elif e.name == "RewardClaimed":
                rnd.claims.append(e)
        return rounds

    def _budgets(self, events: list[Event]) -> dict[int, tuple[int, int]] | None:
        """Each finalized round's (validator, trainer) budget from the pool's history:
        pool // rounds left, the fee share to validators, nothing to trainers if the
        total score is zero (slashes are burned: they never refill a pool). None
        without the fee share."""
        facts = self.source.facts(self.task_id)
        if "validator_fee_bps" not in facts:
            self.report.notes.append("budgets not recomputed: the task's fee share is unknown")
            return None
        pool, out = self.created["pool"], {}
        for e in events:
            a = e.args
            if e.name == "RoundFinalized" and a["task_id"] == self.task_id:
                budget = pool // (self.created["num_rounds"] - a["round_id"])
                fee = budget * facts["validator_fee_bps"] // BPS
                out[a["round_id"]] = (fee, (budget - fee) if a["total_score"] else 0)
                pool -= sum(out[a["round_id"]])
            elif e.name == "PoolReclaimed" and a["task_id"] == self.task_id:
                pool -= a["amount"]
            elif e.name == "PoolFunded" and a["task_id"] == self.task_id:
                pool += a["amount"]  # a top-up
        return out

    # -- one round

    def _round(self, r: int, rnd: _Round, model: Model, budgets) -> tuple[Version, Model]:
        revealed = in_reveal_order(rnd.reveals)
        self._check_reveals(r, rnd, revealed)
        self.report.updates += len(revealed)
        version = Version(r, "open", model.cid)
        if rnd.outcome is None:
            self._no_claims(r, rnd, "an open round")
            return version, model
        if rnd.outcome.name == "RoundFailed":
            version.status = f"failed: {describe(FailReason, rnd.outcome.args['reason'])}"
            self._check_failure(r, rnd, revealed, model)
            self._no_claims(r, rnd, "a failed round")
            return version, model

        f = rnd.outcome.args
        result = self._recompute(r, revealed, model, f, version)
        self._check_result(r, "finalized result", f, result)
        majority = self._check_votes(r, rnd, f, result, version)
        if budgets is not None and budgets.get(r) != (f["validator_budget"], f["trainer_budget"]):
            raise AuditError(
                r,
                "finalized result",
                "budgets (validator, trainer)",
                budgets.get(r),
                (f["validator_budget"], f["trainer_budget"]),
            )
        self._check_claims(r, rnd, f, result, majority, version)
        version.status, version.model_cid = "finalized", result.model_cid
        version.scores, version.rejected = result.scores, result.reasons
        return version, self._model(
            fp.to_fixed(flatten(decode_tensors(result.blob))), result.model_root, result.model_cid
        )

    def _check_reveals(self, r: int, rnd: _Round, revealed: list[Reveal]) -> None:
        """Each reveal opens its sender's commitment, and reveal indices count from 0."""
        for i, ev in enumerate(revealed):
            committed = rnd.commits.get(ev.node)
            if committed is None:
                raise AuditError(r, ev.node, "commitment", "a Committed event before the reveal", "none")
            opened = commitments.commitment(
                self.source.chain_id, self.source.address, self.task_id, r, ev.node, ev.update_root, ev.salt
            )
            if opened != committed.args["commitment"]:
                raise AuditError(r, ev.node, "commitment", committed.args["commitment"], opened)
            if ev.index != i:
                raise AuditError(r, ev.node, "reveal index", i, ev.index)

    def _check_failure(self, r: int, rnd: _Round, revealed: list[Reveal], model: Model) -> None:
        assert rnd.outcome is not None  # called for a failed round only
        reason = rnd.outcome.args["reason"]
        if reason == 3:  # reverted by a challenge: the leading result must indeed be wrong
            h = _quorum(rnd, self._least_committee())
            lead = next((e.args for e in rnd.votes if e.args["vote_hash"] == h), None)
            mine = (
                self._unmask(r, revealed, model)
                if self.recipe.secagg
                else compute_round(self.task_id, r, model, revealed, self.store, self.recipe, self.template)
            )
            if lead is not None and mine.vote().hash() == h:
                raise AuditError(r, "challenger", "reverted result", "a wrong result", _show(h))
            return
        min_reveals = self.source.facts(self.task_id).get("min_reveals")
        if reason == 1 and min_reveals is not None and len(revealed) >= min_reveals:
            raise AuditError(
                r, "committee", "failure (too few reveals)", f"fewer than {min_reveals} reveals", len(revealed)
            )
        if reason == 2 and (h := _quorum(rnd, self._least_committee())) is not None:
            raise AuditError(
                r,
                "committee",
                "failure (no quorum)",
                "no vote with 2/3 of the committee seats",
                f"vote {_show(h)} has it",
            )

    def _recompute(self, r: int, revealed: list[Reveal], model: Model, f: dict, version: Version) -> RoundResult:
        """The round as an honest validator computes it, with the committee's
        unprovable judgments (availability) taken from the finalized lineage."""
        if self.recipe.secagg:  # unmasked from the board's messages, as validators do
            return self._unmask(r, revealed, model)
        cid = cid_from_digest(f["model_cid"])
        try:
            stated = dict(Lineage.from_blob(self._blob(cid, r, "finalized result", "model blob")).rejected)
        except CodecError:  # no lineage, or a malformed one (LineageError)
            stated = {}  # the CID comparison below names the difference
        store = _Recording(self.store)
        shapes = param_shapes(self.template)
        bound = self.recipe.norm_bound_sq(shapes)
        updates, samples, reasons = check_updates(revealed, store, shapes, self.recipe.chunk_size, bound)
        for ev in revealed:
            node, ucid = ev.node, ev.cid
            rejected_on_chain = bool(f["rejected"] >> ev.index & 1)
            failure = store.failures.get(ucid)
            if not rejected_on_chain:
                if failure is not None:
                    raise AuditError(r, node, "update blob", ucid, str(failure))
                if node in reasons:
                    raise AuditError(r, node, "rejected set", f"rejected ({reasons[node]})", "accepted")
            elif failure is not None or stated.get(node, "").startswith(STORAGE_REASONS):
                # availability is the committee's judgment (and nobody can check a blob gone now)
                if node in updates:
                    version.notes.append(f"{node} was rejected ({stated[node]}), but the auditor fetched it")
                    del updates[node], samples[node]
                why = stated.get(node, reasons.get(node))
                assert why is not None, "check_updates gives a reason for every blob it could not fetch"
                reasons[node] = why
            elif node not in reasons:  # the auditor fetched a valid update
                raise AuditError(r, node, "rejected set", "accepted", f"rejected ({stated.get(node, 'no reason')})")
            elif stated.get(node) != reasons[node]:
                raise AuditError(r, node, "rejection reason", reasons[node], stated.get(node))
        # keep reveal order, as check_updates does
        reasons = {ev.node: reasons[ev.node] for ev in revealed if ev.node in reasons}
        prev = (
            previous_update(model, self.store, param_shapes(self.template))
            if uses_prev_update(self.recipe.rule)
            else None
        )
        public = (
            public_span(model, self.store, param_shapes(self.template)) if self.recipe.score == "innovation" else []
        )
        return aggregate_round(
            self.task_id, r, model, revealed, updates, samples, reasons, self.recipe, self.template, prev, public
        )

    def _unmask(self, r: int, revealed: list[Reveal], model: Model) -> RoundResult:
        """A secure-aggregation round as its validators compute it, from the board's events."""
        board = Board.of(self.events, self.task_id, r)
        if not board.adverts:
            raise AuditError(r, "board", "secure-aggregation messages", "the board's events", "none in the log")
        try:
            return unmasked(self.task_id, r, model, revealed, board, self.store, self.recipe, self.template).result
        except SecAggRoundError as e:
            raise AuditError(r, "finalized result", "unmasking", "an unmaskable round", str(e)) from None

    def _check_result(self, r: int, who: str, got: dict, result: RoundResult) -> None:
        """The fields of a RoundFinalized or Voted event against the recomputed result."""
        for quantity, expected, found in (
            ("rejected set", result.rejected, got["rejected"]),
            ("model root", result.model_root, got["model_root"]),
            ("model CID", result.model_cid, cid_from_digest(got["model_cid"])),
            ("scores root", result.scores_root, got["scores_root"]),
            ("total score", result.total_score, got["total_score"]),
        ):
            if expected != found:
                raise AuditError(r, who, quantity, expected, found)

    def _check_votes(self, r: int, rnd: _Round, f: dict, result: RoundResult, version: Version) -> int:
        """The finalized result had a quorum; returns the majority seats it was paid by."""
        winner = Vote.from_event(f).hash()
        majority = 0
        for ev in rnd.votes:
            a, v = ev.args, ev.args["validator"]
            if a["vote_hash"] == winner:
                self._check_result(r, v, a, result)
            own = Vote.from_event(a).hash()
            if own != a["vote_hash"]:
                raise AuditError(r, v, "vote hash", own, a["vote_hash"])
            if v not in rnd.joins:
                raise AuditError(r, v, "committee weight", "a Joined event before the vote", "none")
            if v in rnd.equivocated:
                version.notes.append(f"{v} equivocated: its vote does not count")
            elif a["vote_hash"] == winner:
                majority += rnd.joins[v]
                version.voters.append(v)
            else:
                version.dissenters.append(v)
        committee = max(sum(rnd.joins.values()), self._least_committee())
        if 3 * majority < 2 * committee:
            raise AuditError(r, "committee", "majority seats", f"at least 2/3 of {committee}", majority)
        return majority

    def _least_committee(self) -> int:
        """The seats a quorum is counted against at least: k/3 (fedchain.vy ``_has_quorum``),
        0 if the task's k is unknown."""
        k = self.source.facts(self.task_id).get("validators_per_round", 0)
        return k * BPS // 3

    def _check_claims(self, r: int, rnd: _Round, f: dict, result: RoundResult, majority: int, version: Version) -> None:
        scores = dict(result.scores)
        seen: set[str] = set()
        for ev in rnd.claims:
            node, amount = ev.args["node"], ev.args["amount"]
            if node in seen:
                raise AuditError(r, node, "reward", "one claim", "a second claim")
            seen.add(node)
            if node in scores:
                expected = f["trainer_budget"] * scores[node] // f["total_score"] if f["total_score"] else 0
            elif node in version.voters:
                expected = f["validator_budget"] * rnd.joins[node] // majority
            else:
                expected = 0
            if amount != expected:
                raise AuditError(r, node, "reward", expected, amount)
        version.claims = len(rnd.claims)
        self.report.claims += len(rnd.claims)

    def _no_claims(self, r: int, rnd: _Round, what: str) -> None:
        if rnd.claims:
            c = rnd.claims[0].args
            raise AuditError(r, c["node"], "reward", f"nothing for {what}", c["amount"])


def _quorum(rnd: _Round, least_committee: int) -> bytes | None:
    """The vote hash that 2/3 of the committee's seats (and of ``least_committee``) backs
    (equivocators withdrawn), if any."""
    tally: dict[bytes, int] = {}
    for ev in rnd.votes:
        if ev.args["validator"] not in rnd.equivocated:
            tally[ev.args["vote_hash"]] = tally.get(ev.args["vote_hash"], 0) + rnd.joins.get(ev.args["validator"], 0)
    committee = max(sum(rnd.joins.values()), least_committee)
    return next((h for h, t in tally.items() if 3 * t >= 2 * committee), None)
