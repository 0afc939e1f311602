"""The sponsor's evaluation (issue 21): figures on held-out data, the report it publishes
through reports.vy, and what readers (``fedchain status``) make of reports, on the
embedded chain with a real model blob and a real round."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import Result, Scores, h32, reverts
from fedchain.chain.deploy import Deployment
from fedchain.cli import app
from fedchain.cli.status import collect, render
from fedchain.errors import CodecError
from fedchain.learning.data import load_dataset
from fedchain.learning.models import build_model
from fedchain.learning.train import TrainConfig, get_params, train_local
from fedchain.protocol.evaluation import (
    HeldOut,
    Report,
    SponsorEvaluation,
    check_report,
    evaluate,
    history_table,
    read_reports,
)
from fedchain.protocol.node import TaskLog
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import Lineage
from fedchain.protocol.sponsor import publish_model
from fedchain.storage.cid import digest_of
from fedchain.storage.store import LocalBlobStore

RECIPE = Recipe(model="logreg", dataset="digits")


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits", seed=0)
    test = HeldOut(d.x_test, d.y_test, hashlib.sha256(d.x_test.tobytes()).hexdigest())
    initial = get_params(build_model("logreg", (1, 8, 8), 10, seed=0))
    trained = train_local(
        build_model("logreg", (1, 8, 8), 10), initial, d.x_train, d.y_train, TrainConfig(epochs=3, lr=0.1), seed=0
    )
    return test, initial, trained


def report(**kw) -> Report:
    base = dict(task=1, round=0, model_cid="bafkrei-model", test_sha256="ab" * 32, test_size=360, correct=300, loss=0.5)
    return Report(**(base | kw))


# ---------------------------------------------------------------- the report


def test_a_report_round_trips_and_only_its_canonical_form_parses():
    r = report(loss=0.4321)
    data = r.to_bytes()
    assert Report.from_bytes(data) == r and json.loads(data)["accuracy"] == round(300 / 360, 6)
    d = json.loads(data)
    bad = {
        "not JSON": b"\xff{",
        "wrong fields": json.dumps({**d, "extra": 1}).encode(),
        "version": json.dumps({**d, "version": 2}, sort_keys=True, separators=(",", ":")).encode(),
        "counts": json.dumps({**d, "correct": 361}, sort_keys=True, separators=(",", ":")).encode(),
        "canonical": json.dumps({**d, "accuracy": 0.99}, sort_keys=True, separators=(",", ":")).encode(),
        "types": json.dumps({**d, "loss": "low"}, sort_keys=True, separators=(",", ":")).encode(),
        "finite": json.dumps({**d, "loss": float("nan")}, sort_keys=True, separators=(",", ":")).encode(),
    }
    for why, blob in bad.items():
        with pytest.raises(CodecError, match={"types": "wrong field types", "finite": "is finite"}.get(why, why)):
            Report.from_bytes(blob)
    assert len(r.to_bytes()) < 1024  # reports.vy takes up to 1,024 bytes


def test_evaluation_is_deterministic_and_check_report_finds_every_wrong_figure(digits, tmp_path):
    test, initial, trained = digits
    before, after = evaluate(RECIPE, initial, test), evaluate(RECIPE, trained, test)
    assert evaluate(RECIPE, trained, test) == after
    assert after[0] / len(test.y) > 0.8 > 0.3 > before[0] / len(test.y)  # trained beats chance (0.1) by far
    assert after[1] < before[1]
    store = LocalBlobStore(tmp_path)
    _, cid = publish_model(store, trained, RECIPE, Lineage(0, None))
    blob = store.get(cid)
    correct, loss = evaluate(RECIPE, trained, test)  # the blob holds the fixed-point model: figures may differ
    honest = Report(1, 0, cid, test.sha256, len(test.y), *evaluate_blob(blob, test))
    assert check_report(honest, RECIPE, blob, test) == []
    assert check_report(report(test_sha256=test.sha256, test_size=len(test.y), correct=honest.correct + 1,
                               loss=honest.loss + 0.01), RECIPE, blob, test) == [
        f"{honest.correct} right, not {honest.correct + 1}",
        f"loss {honest.loss}, not {honest.loss + 0.01}",
    ]  # fmt: skip
    assert check_report(honest, RECIPE, blob, HeldOut(test.x, test.y, "00" * 32))[0].startswith("test data")
    assert abs(correct - honest.correct) <= 2


def evaluate_blob(blob: bytes, test: HeldOut) -> tuple[int, float]:
    from fedchain.protocol.evaluation import decode_model

    return evaluate(RECIPE, decode_model(RECIPE, blob), test)


# ---------------------------------------------------------------- reports.vy


def test_only_the_sponsor_reports_and_only_once_a_round(net):
    task = net.create_task()
    rep = net.reports
    r = rep.tx("publish", task, 0, b"figures", sender=net.owner)
    assert r.event("Reported").args == {
        "task_id": task,
        "round_id": 0,
        "sponsor": net.owner.address,
        "report": b"figures",
    }
    assert rep.call("published", task, 0) and not rep.call("published", task, 1)
    with reverts("reports: already reported"):
        rep.tx("publish", task, 0, b"other figures", sender=net.owner)
    with reverts("reports: not the sponsor"):
        rep.tx("publish", task, 1, b"figures", sender=net.outsiders[0])
    with reverts("reports: not the sponsor"):  # no such task: it has no sponsor
        rep.tx("publish", task + 1, 0, b"figures", sender=net.owner)
    rep.tx("publish", task, 1, b"", sender=net.owner)  # the contract judges nothing of the content
    assert [e.args["round_id"] for e in rep.events()] == [0, 1]


# ---------------------------------------------------------------- the sponsor's loop and the readers


def finalize_round(net, task: int, model_cid: str) -> None:
    """Play round 0 of ``task`` (three reveals, every validator votes) to a model at ``model_cid``."""
    revealers = net.trainers[:3]
    for t in revealers:
        net.commit(task, 0, t)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    for t in revealers:
        net.reveal(task, 0, t)
    scores = Scores(tuple(t.address for t in revealers), (1, 2, 3))
    result = Result(h32("root"), digest_of(model_cid), scores, rejected=0b010)
    net.to_vote_phase(task, 0)
    for v in net.validators:
        net.vote(task, 0, v, result)
    net.to_finalizable(task, 0)
    net.finalize(task, result)


def test_the_sponsor_publishes_each_finalized_round_and_status_shows_it(net, digits, tmp_path, caplog, capsys):
    test, initial, trained = digits
    store = LocalBlobStore(tmp_path)
    _, cid = publish_model(store, trained, RECIPE, Lineage(0, None))
    _, initial_cid = publish_model(store, initial, RECIPE, Lineage(-1, None))
    task = net.create_task(num_rounds=2, model_cid=digest_of(initial_cid))
    finalize_round(net, task, cid)
    ev = SponsorEvaluation(task, RECIPE, store, net.owner, net.reports, test, logging.getLogger("fedchain.sponsor"))
    tl = TaskLog(net.fc, task).poll()
    with caplog.at_level(logging.INFO):
        ev.update(tl)
        ev.update(tl)  # idempotent: evaluated and published once
    assert ev.done()
    correct, loss = evaluate_blob(store.get(cid), test)
    acc = round(correct / len(test.y), 6)
    row = ev.history()["rounds"][0]
    budgets = tl.outcome[0].args["trainer_budget"] + tl.outcome[0].args["validator_budget"]
    assert row == {
        "round": 0,
        "status": "finalized",
        "model_cid": cid,
        "accuracy": acc,
        "loss": loss,
        "accepted": 2,
        "rejected": 1,
        "paid": budgets,
    }
    assert f"round 0: accuracy {acc:.3f}, loss {loss:.3f}, 2 accepted, 1 rejected, paid" in caplog.text
    assert caplog.text.count("published the evaluation report") == 1
    assert history_table(ev.history())[-1].split()[:2] == ["0", f"{acc:.3f}"]
    first = evaluate_blob(store.get(initial_cid), test)
    assert ev.history()["initial"] == {"accuracy": round(first[0] / len(test.y), 6), "loss": first[1]}
    assert "initial model: accuracy" in caplog.text

    # a reader takes the sponsor's report of the round's model, and refuses the others
    net.reports.tx("publish", task, 1, b"{not json", sender=net.owner)
    net.reports.tx("publish", task, 2, report(task=task, round=2).to_bytes(), sender=net.owner)
    found = read_reports(net.reports, task, net.owner.address, {0: cid})
    assert found[0].report == Report(task, 0, cid, test.sha256, len(test.y), correct, loss)
    assert found[1].problem.startswith("malformed report: not JSON")
    assert found[2].problem == "the round is not finalized"
    assert read_reports(net.reports, task, net.outsiders[0].address, {0: cid}) == {}  # not the sponsor's
    assert read_reports(net.reports, task, net.owner.address, {0: "bafkrei-other"})[0].problem == (
        f"evaluates model {cid}, not the round's"
    )

    # status: the round's figures in --json and in the table
    dep = Deployment(net.token, net.fc, 0, reports=net.reports)
    st = collect(dep, task)
    r0 = st["rounds"][0]
    assert (r0["accuracy"], r0["loss"], r0["report"], r0["test_examples"]) == (acc, loss, "published", len(test.y))
    assert st["rounds"][1]["accuracy"] is None and st["rounds"][1]["report"] is None  # open
    render(st)
    table = capsys.readouterr().out
    assert "accuracy" in table and f"{acc:.3f}" in table
    old = collect(Deployment(net.token, net.fc, 0), task)["rounds"][0]  # a deployment file without reports
    assert old["accuracy"] is None and old["report"] == "no reports contract in this deployment"


def test_a_missing_model_blob_is_retried_and_a_missing_report_is_shown_as_such(net, digits, tmp_path):
    test, _, trained = digits
    task = net.create_task(num_rounds=2)
    elsewhere = LocalBlobStore(tmp_path / "elsewhere")
    _, cid = publish_model(elsewhere, trained, RECIPE, Lineage(0, None))
    finalize_round(net, task, cid)
    store = LocalBlobStore(tmp_path / "sponsor")
    ev = SponsorEvaluation(task, RECIPE, store, net.owner, net.reports, test, logging.getLogger("t"))
    tl = TaskLog(net.fc, task).poll()
    ev.update(tl)  # nor is the initial model's (the task's is a made-up CID): retried, said once
    assert not ev.done() and ev.rows[0]["accuracy"] is None and ev.initial is None
    assert collect(Deployment(net.token, net.fc, 0, reports=net.reports), task)["rounds"][0]["report"] == "missing"
    store.put(elsewhere.get(cid))  # the blob becomes reachable
    ev.update(tl)
    assert ev.done() and ev.rows[0]["accuracy"] > 0.8


def test_task_create_checks_the_test_data_before_anything_else(tmp_path):
    runner = CliRunner()
    args = ["task", "create", "--dev-account", "1", "--deployment", str(tmp_path / "none.json")]
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 1, 28, 28), np.float32), y=np.zeros(4, np.int64))
    labels = tmp_path / "labels.npz"
    np.savez(labels, x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([0, 1, 2, 10]))
    cases = {
        str(tmp_path / "absent.npz"): "no such file",
        str(wrong): "examples of shape (1, 28, 28); the task's model takes (1, 8, 8)",
        str(labels): "the task has classes 0..9",
    }
    handlers = logging.getLogger().handlers[:]
    try:
        for path, why in cases.items():
            out = runner.invoke(app, [*args, "--test", path, "--home", str(tmp_path / "sponsor")])
            assert out.exit_code == 2 and f"--test: {path}" in out.output and why in out.output, out.output
            assert not (tmp_path / "sponsor").exists()  # nothing written either
            assert "Traceback" not in out.output
    finally:  # the command set up logging to its (now closed) output: leave the root logger as it was
        logging.getLogger().handlers[:] = handlers
    out = runner.invoke(app, [*args, "--test", str(wrong), "--no-wait"])
    assert out.exit_code == 2 and "drop --no-wait" in out.output


def test_a_failed_round_is_in_the_history_without_figures(net, digits, tmp_path):
    test, _, _ = digits
    task = net.create_task(num_rounds=2)
    net.to_vote_phase(task, 0)
    net.fc.tx("advance", task, sender=net.outsiders[0])  # no reveals: the round fails
    ev = SponsorEvaluation(task, RECIPE, LocalBlobStore(tmp_path), net.owner, net.reports, test, logging.getLogger("t"))
    ev.update(TaskLog(net.fc, task).poll())
    row = ev.history()["rounds"][0]
    assert row["status"].startswith("failed: ") and row["accuracy"] is None and row["paid"] == 0
    assert history_table(ev.history())[-1].split()[:2] == ["0", "failed:"]
    assert not net.reports.events()  # nothing to report
