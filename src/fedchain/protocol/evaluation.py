"""The sponsor's evaluation: each finalized round's model on the sponsor's held-out test
data, published on chain (``reports.vy``) so that anyone reads the figures from the chain
alone and can check them against the model blob.

A report is canonical JSON (sorted keys, no spaces) carried in the ``Reported`` event's
data: the task, the round, the model's CID, the test set's sha256 (of its .npz file) and
size, the examples classified right, the accuracy and the mean cross-entropy loss. The
contract lets only the task's sponsor publish, once per round; a reader
(``read_reports``) still takes only reports whose event names the task's sponsor and
whose model CID is the round's finalized model, and says why it refuses one. Whoever
holds the test data recomputes the figures from the model blob (``check_report``).
The figures are the sponsor's word on its own data: nothing on chain depends on them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from eth_account.signers.local import LocalAccount

from fedchain.chain.interface import Contract
from fedchain.chain.layout import FailReason, describe
from fedchain.errors import CodecError, LearningError, Reverted, StorageError
from fedchain.learning.train import evaluate_with_loss, param_shapes
from fedchain.protocol.node import TaskLog
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.runner import tokens
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_tensors
from fedchain.storage.store import BlobStore

REPORT_VERSION = 1
DIGITS = 6  # accuracy and loss in a report: rounded to 6 decimals


@dataclass(frozen=True)
class HeldOut:
    """The sponsor's test data and the sha256 of the .npz file it came from."""

    x: np.ndarray
    y: np.ndarray
    sha256: str


@dataclass(frozen=True)
class Report:
    """One round's evaluation as published (see the module docstring)."""

    task: int
    round: int
    model_cid: str
    test_sha256: str
    test_size: int
    correct: int
    loss: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.test_size

    def to_bytes(self) -> bytes:
        d = {
            "version": REPORT_VERSION,
            "task": self.task,
            "round": self.round,
            "model_cid": self.model_cid,
            "test_sha256": self.test_sha256,
            "test_size": self.test_size,
            "correct": self.correct,
            "accuracy": round(self.accuracy, DIGITS),
            "loss": round(self.loss, DIGITS),
        }
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Report:
        """Parse a published report; ``CodecError`` saying what is wrong unless it is
        exactly the canonical encoding of a consistent report."""
        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise CodecError(f"not JSON: {e}") from None
        ints = ("task", "round", "test_size", "correct", "version")
        if not isinstance(d, dict) or set(d) != {*ints, "model_cid", "test_sha256", "accuracy", "loss"}:
            raise CodecError("not a report: wrong fields")
        if d["version"] != REPORT_VERSION:
            raise CodecError(f"report version {d['version']!r}, this fedchain reads {REPORT_VERSION}")
        counts_ok = all(type(d[k]) is int and d[k] >= 0 for k in ints)
        if not counts_ok or d["test_size"] == 0 or d["correct"] > d["test_size"]:
            raise CodecError("not a report: counts must be integers, 0 <= correct <= test_size, test_size > 0")
        if not all(isinstance(d[k], str) for k in ("model_cid", "test_sha256")) or type(d["loss"]) not in (int, float):
            raise CodecError("not a report: wrong field types")
        if not math.isfinite(d["loss"]) or d["loss"] < 0:
            raise CodecError(f"not a report: loss {d['loss']!r} (a cross-entropy is finite and >= 0)")
        report = cls(d["task"], d["round"], d["model_cid"], d["test_sha256"], d["test_size"], d["correct"], d["loss"])
        if report.to_bytes() != data:
            raise CodecError("not canonical (or its accuracy is not correct / test_size)")
        return report


def evaluate(recipe: Recipe, params: dict[str, np.ndarray], test: HeldOut) -> tuple[int, float]:
    """(examples right, mean cross-entropy loss rounded as published) of ``params`` on the test data."""
    net = recipe.build()
    correct, loss = evaluate_with_loss(net, params, test.x, test.y)
    return correct, round(loss, DIGITS)


def decode_model(recipe: Recipe, blob: bytes) -> dict[str, np.ndarray]:
    """A model blob (already checked against its CID) as the recipe's model's parameters."""
    return decode_tensors(blob, param_shapes(recipe.template()))


def check_report(report: Report, recipe: Recipe, model_blob: bytes, test: HeldOut) -> list[str]:
    """What in ``report`` the model blob and the test data do not bear out (empty: it checks out)."""
    wrong = []
    if (report.test_sha256, report.test_size) != (test.sha256, len(test.y)):
        wrong.append(f"test data {report.test_sha256[:12]}… ({report.test_size}), not this one")
    correct, loss = evaluate(recipe, decode_model(recipe, model_blob), test)
    if correct != report.correct:
        wrong.append(f"{correct} right, not {report.correct}")
    if abs(loss - report.loss) > 10**-DIGITS:
        wrong.append(f"loss {loss}, not {report.loss}")
    return wrong


@dataclass(frozen=True)
class Published:
    """A report read from the chain: the report, or why a reader refuses it."""

    round: int
    block: int
    report: Report | None = None
    problem: str | None = None


def read_reports(
    reports: Contract, task_id: int, sponsor: str, models: Mapping[int, str], from_block: int = 0
) -> dict[int, Published]:
    """The task's reports by round: per round the first one that checks out (else the last
    refused, with why). ``models``: each finalized round's model CID."""
    out: dict[int, Published] = {}
    for e in reports.events(from_block):
        a = e.args
        if e.name != "Reported" or a["task_id"] != task_id or a["sponsor"] != sponsor:
            continue  # reports.vy refuses other senders; a reader checks anyway
        r = a["round_id"]
        if r not in out or out[r].report is None:
            out[r] = judge(task_id, r, e.block, a["report"], models.get(r))
    return out


def judge(task_id: int, round_id: int, block: int, data: bytes, model_cid: str | None) -> Published:
    """One published report, checked against its event's task and round and the round's model."""
    try:
        report = Report.from_bytes(data)
    except CodecError as e:
        return Published(round_id, block, problem=f"malformed report: {e}")
    if (report.task, report.round) != (task_id, round_id):
        return Published(round_id, block, problem=f"names task {report.task} round {report.round}")
    if model_cid is None:
        return Published(round_id, block, problem="the round is not finalized")
    if report.model_cid != model_cid:
        return Published(round_id, block, problem=f"evaluates model {report.model_cid}, not the round's")
    return Published(round_id, block, report)


@dataclass
class SponsorEvaluation:
    """What the sponsor's loop keeps of each round: its outcome, and with test data the
    finalized model's accuracy and loss, published on chain when the deployment has
    a reports contract. ``update`` is idempotent and retries what failed (a model blob
    not reachable yet, a chain that went away): call it on every poll."""

    task_id: int
    recipe: Recipe
    store: BlobStore
    sponsor: LocalAccount
    reports: Contract | None
    test: HeldOut | None
    log: logging.Logger
    rows: dict[int, dict] = field(default_factory=dict)
    initial: dict | None = None
    _unpublished: dict[int, Report] = field(default_factory=dict)
    _warned: set[int] = field(default_factory=set)

    def update(self, tl: TaskLog) -> None:
        if self.test is not None and self.initial is None and tl.initial_model_cid is not None:
            self._baseline(tl.initial_model_cid)
        for r in sorted(tl.outcome):
            if r not in self.rows:
                self.rows[r] = outcome_row(tl, r)
            row = self.rows[r]
            if self._to_evaluate(row):
                self._evaluate(row)
        for r in sorted(self._unpublished):
            self._publish(self._unpublished[r])

    def done(self) -> bool:
        """Every finalized round evaluated and its report published (trivially without test data)."""
        return not self._unpublished and not any(self._to_evaluate(row) for row in self.rows.values())

    def _to_evaluate(self, row: dict) -> bool:
        return self.test is not None and row["status"] == "finalized" and row["accuracy"] is None and "error" not in row

    def _baseline(self, model_cid: bytes) -> None:
        """Evaluate the task's initial model as published (the History's first line; not reported)."""
        assert self.test is not None  # only called with test data
        blob = self._fetch(-1, cid_from_digest(model_cid))
        if blob is None:
            return
        correct, loss = evaluate(self.recipe, decode_model(self.recipe, blob), self.test)
        self.initial = {"accuracy": round(correct / len(self.test.y), DIGITS), "loss": loss}
        self.log.info("initial model: accuracy %.3f, loss %.3f", self.initial["accuracy"], loss)

    def _evaluate(self, row: dict) -> None:
        r, cid = row["round"], row["model_cid"]
        assert self.test is not None  # only called with test data
        blob = self._fetch(r, cid)
        if blob is None:
            return
        try:
            correct, loss = evaluate(self.recipe, decode_model(self.recipe, blob), self.test)
        except (CodecError, LearningError) as e:  # a finalized model that is not the recipe's model
            row["error"] = str(e)
            self.log.warning("round %d: model %s cannot be evaluated: %s", r, cid, e)
            return
        report = Report(self.task_id, r, cid, self.test.sha256, len(self.test.y), correct, loss)
        row.update(accuracy=round(report.accuracy, DIGITS), loss=loss)
        self.log.info(
            "round %d: accuracy %.3f, loss %.3f, %d accepted, %d rejected, paid %s tokens",
            r,
            report.accuracy,
            loss,
            row["accepted"],
            row["rejected"],
            tokens(row["paid"]),
        )
        if self.reports is not None:
            self._unpublished[r] = report

    def _fetch(self, r: int, cid: str) -> bytes | None:
        """The model blob (checked against its CID), or None while no peer serves it (said once)."""
        try:
            return self.store.get(cid)
        except StorageError as e:
            if r not in self._warned:
                self._warned.add(r)
                what = "the initial model" if r < 0 else f"round {r}'s model"
                self.log.warning("cannot evaluate %s yet, %s not fetched: %s", what, cid, e)
            return None

    def _publish(self, report: Report) -> None:
        """Send the report (a chain that is away raises: kept for the next poll)."""
        assert self.reports is not None  # reports are kept for publishing only with the contract
        try:
            self.reports.tx("publish", self.task_id, report.round, report.to_bytes(), sender=self.sponsor)
            self.log.info("round %d: published the evaluation report on chain", report.round)
        except Reverted as e:
            if e.reason != "reports: already reported":  # already: sent before, its receipt lost
                self.log.warning("round %d: report not published: %s", report.round, e)
        del self._unpublished[report.round]

    def history(self) -> dict:
        """The task's History: per round its outcome, accuracy, loss, updates and payment."""
        test = None if self.test is None else {"sha256": self.test.sha256, "examples": len(self.test.y)}
        rows = [row for _, row in sorted(self.rows.items())]
        return {"task": self.task_id, "test": test, "initial": self.initial, "rounds": rows}


def outcome_row(tl: TaskLog, r: int) -> dict:
    """A round's line of the History from its outcome event (accuracy and loss to come)."""
    e = tl.outcome[r]
    a = e.args
    finalized = e.name == "RoundFinalized"
    rejected = bin(a["rejected"]).count("1") if finalized else 0
    return {
        "round": r,
        "status": "finalized" if finalized else f"failed: {describe(FailReason, a['reason'])}",
        "model_cid": cid_from_digest(a["model_cid"]) if finalized else None,
        "accuracy": None,
        "loss": None,
        "accepted": len(tl.reveals.get(r, [])) - rejected if finalized else 0,
        "rejected": rejected,
        "paid": a["trainer_budget"] + a["validator_budget"] if finalized else 0,
    }


def history_table(history: dict) -> list[str]:
    """The History as a few aligned lines, for the sponsor's log."""
    head = f"History of task {history['task']}"
    if history["test"]:
        head += f" (test data: {history['test']['examples']} examples, sha256 {history['test']['sha256'][:12]}…)"
    lines = [head, f"{'round':>7} {'accuracy':>9} {'loss':>8} {'accepted':>9} {'rejected':>9} {'paid':>10}"]

    def fig(v) -> str:
        return "-" if v is None else f"{v:.3f}"

    if history["initial"]:
        i = history["initial"]
        lines.append(f"{'initial':>7} {fig(i['accuracy']):>9} {fig(i['loss']):>8} {'-':>9} {'-':>9} {'-':>10}")
    for r in history["rounds"]:
        if r["status"] != "finalized":
            lines.append(f"{r['round']:>7} {r['status']}")
            continue
        lines.append(
            f"{r['round']:>7} {fig(r['accuracy']):>9} {fig(r['loss']):>8} {r['accepted']:>9} "
            f"{r['rejected']:>9} {tokens(r['paid']):>10}"
        )
    return lines


def report_fields(published: Published | None) -> dict:
    """What ``fedchain status --json`` adds to a finalized round: accuracy, loss, and the
    report's state ("published", "missing", or why it is refused)."""
    if published is None:
        return {"accuracy": None, "loss": None, "report": "missing"}
    if published.report is None:
        return {"accuracy": None, "loss": None, "report": f"refused: {published.problem}"}
    rep = published.report
    return {
        "accuracy": round(rep.accuracy, DIGITS),
        "loss": rep.loss,
        "report": "published",
        "test_examples": rep.test_size,
        "test_sha256": rep.test_sha256,
        "report_block": published.block,
    }
