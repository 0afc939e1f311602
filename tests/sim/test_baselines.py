"""The centralized baseline is chosen fairly: its learning rate and epochs come from a
validation split of the training data only, the best validation setting wins, the final
model is ``train_local`` on all the training data at those settings, and the same seed
gives the same result. The simulation reports the chosen settings, and plain FedAvg's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from fedchain.cli.simulate import print_report
from fedchain.errors import LearningError
from fedchain.learning import baseline
from fedchain.learning.baseline import (
    Trial,
    best_trial,
    centralized_baseline,
    lr_grid,
    select,
    validation_split,
)
from fedchain.learning.models import build_model
from fedchain.learning.train import TrainConfig, evaluate_with_loss, get_params, train_epochs, train_local
from fedchain.sim.network import SimConfig, Stopped
from fedchain.sim.simulate import run

BASE = TrainConfig(epochs=1, batch_size=32, lr=0.1, momentum=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def blobs():
    """400 examples of 4 Gaussian classes in 8 dimensions, every row distinct; overlapping
    enough that accuracy keeps moving over a few epochs."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 100)
    centers = rng.normal(0, 1.0, (4, 8))
    x = (centers[y] + rng.normal(0, 1.0, (400, 8))).astype(np.float32)
    return x, y.astype(np.int64)


def logreg():
    model = build_model("logreg", (8,), 4)
    return model, get_params(model)


def test_the_validation_split_is_disjoint_covering_stratified_and_seeded(blobs):
    _, y = blobs
    fit, val = validation_split(y, 0.15, seed=3)
    assert len(np.intersect1d(fit, val)) == 0
    assert sorted([*fit, *val]) == list(range(len(y)))
    assert len(val) == 60 and np.bincount(y[val]).tolist() == [15, 15, 15, 15]
    again = validation_split(y, 0.15, seed=3)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(validation_split(y, 0.15, seed=4)[1], val)


def test_selection_trains_on_the_fit_part_and_validates_on_the_rest(blobs, monkeypatch):
    x, y = blobs
    trained, validated = [], []
    real_train, real_eval = baseline.train_epochs, baseline.evaluate_with_loss
    monkeypatch.setattr(baseline, "train_epochs", lambda m, p, xs, *a: trained.append(xs) or real_train(m, p, xs, *a))
    monkeypatch.setattr(
        baseline, "evaluate_with_loss", lambda m, p, xs, ys: validated.append(xs) or real_eval(m, p, xs, ys)
    )
    model, params = logreg()
    select(model, params, x, y, BASE, seed=0, lrs=(0.1, 0.2), max_epochs=3)

    rows = {r.tobytes(): i for i, r in enumerate(x)}
    fit = {rows[r.tobytes()] for r in trained[0]}
    val = {rows[r.tobytes()] for r in validated[0]}
    assert len(trained) == 2 and all(np.array_equal(t, trained[0]) for t in trained)
    assert len(validated) == 6 and all(np.array_equal(v, validated[0]) for v in validated)
    assert not fit & val and len(fit | val) == len(x) and len(val) == 60


def test_the_simulation_chooses_on_training_data_and_never_on_the_test_set(tmp_path, monkeypatch):
    seen = []
    real = baseline.evaluate_with_loss
    monkeypatch.setattr(baseline, "evaluate_with_loss", lambda m, p, xs, ys: seen.append(xs) or real(m, p, xs, ys))
    from fedchain.sim import simulate

    net = simulate.build_network(SimConfig(trainers=3, validators=2, rounds=1, model="logreg", epochs=2, out=tmp_path))
    report = simulate.centralized(net)
    train_rows = {r.tobytes() for r in net.data.x_train}
    test_only = {r.tobytes() for r in net.data.x_test} - train_rows
    assert seen and all(r.tobytes() in train_rows and r.tobytes() not in test_only for xs in seen for r in xs)
    assert report["centralized_selection"]["max_epochs"] == 2  # rounds x local epochs
    with pytest.raises(Stopped) as e:  # Ctrl-C: asked after every epoch
        simulate.centralized(net, stop=lambda: True)
    assert e.value.phase == "baselines" and e.value.round_id is None


def test_each_trial_stops_at_its_best_validation_epoch_plus_patience(blobs):
    """The epochs chosen are the best of the validation curve (accuracy, then loss),
    recomputed here over every epoch up to where the trial stopped."""
    x, y = blobs
    fit, val = validation_split(y, 0.15, seed=0)
    model, params = logreg()
    (trial,) = select(model, params, x, y, BASE, seed=0, lrs=(0.1,), max_epochs=30, patience=3)
    curve, scratch = [], build_model("logreg", (8,), 4)
    for _ in train_epochs(model, params, x[fit], y[fit], replace(BASE, epochs=trial.epochs_run), seed=0):
        correct, loss = evaluate_with_loss(scratch, get_params(model), x[val], y[val])
        curve.append((correct / len(val), -loss))
    assert trial.epochs == 1 + curve.index(max(curve)) and (trial.val_accuracy, -trial.val_loss) == max(curve)
    assert trial.epochs_run == 30 or trial.epochs_run == trial.epochs + 3
    assert trial.epochs_run < 30  # it did stop early: the patience rule was exercised


def test_train_epochs_is_train_local_one_epoch_at_a_time(blobs):
    x, y = blobs
    model, params = logreg()
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.05, momentum=0.9)
    scratch = build_model("logreg", (8,), 4)
    steps = []
    for _ in train_epochs(model, params, x, y, cfg, seed=5):
        steps.append(get_params(model))
    for e, got in enumerate(steps, start=1):
        want = train_local(scratch, params, x, y, replace(cfg, epochs=e), seed=5)
        assert all(np.array_equal(got[k], want[k]) for k in want)


def test_a_clearly_bad_learning_rate_loses_wherever_it_sits_in_the_grid(blobs):
    x, y = blobs
    model, params = logreg()
    for lrs in ((1e-6, 0.1), (0.1, 1e-6)):
        trials = select(model, params, x, y, BASE, seed=0, lrs=lrs, max_epochs=5, patience=2)
        good = next(t for t in trials if t.lr == 0.1)
        bad = next(t for t in trials if t.lr == 1e-6)
        assert good.val_accuracy > bad.val_accuracy + 0.2
        assert best_trial(trials) == good


def test_best_trial_breaks_ties_by_validation_loss_then_grid_order():
    a, b, c = Trial(0.1, 3, 0.9, 0.30, 5), Trial(0.2, 4, 0.9, 0.20, 6), Trial(0.4, 2, 0.8, 0.10, 4)
    assert best_trial([a, b, c]) == b
    assert best_trial([a, replace(a, lr=0.5)]) == a


def test_the_baseline_is_train_local_on_all_the_data_at_the_chosen_settings(blobs):
    x, y = blobs
    model, params = logreg()
    c = centralized_baseline(model, params, x, y, BASE, seed=0, max_epochs=30, lrs=(1e-6, 0.05, 0.2), patience=3)
    chosen = best_trial(c.trials)
    assert (c.lr, c.epochs) == (chosen.lr, chosen.epochs) and c.lr != 1e-6
    assert c.epochs < c.max_epochs  # so a retrain for max_epochs would differ
    want = train_local(model, params, x, y, replace(BASE, lr=c.lr, epochs=c.epochs), seed=0)
    assert all(np.array_equal(c.params[k], want[k]) for k in want)
    assert [t.lr for t in c.trials] == [1e-6, 0.05, 0.2] and (c.max_epochs, c.patience) == (30, 3)


def test_the_default_grid_is_the_tasks_lr_times_the_factors():
    assert lr_grid(0.05) == (0.01, 0.025, 0.05, 0.1)


def test_the_same_seed_gives_the_same_baseline(blobs):
    x, y = blobs
    runs = [centralized_baseline(*logreg(), x, y, BASE, seed=s, max_epochs=4, patience=2) for s in (1, 1, 2)]
    assert runs[0].trials == runs[1].trials and (runs[0].lr, runs[0].epochs) == (runs[1].lr, runs[1].epochs)
    assert all(np.array_equal(runs[0].params[k], runs[1].params[k]) for k in runs[0].params)
    assert runs[0].trials != runs[2].trials  # another seed: another split and shuffle


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lrs": ()}, "the learning-rate grid is empty"),
        ({"lrs": (0.1, 0.0)}, "learning rates must be positive"),
        ({"max_epochs": 0}, "max_epochs must be at least 1, got 0"),
        ({"patience": 0}, "patience must be at least 1, got 0"),
        ({"validation_fraction": 1.0}, "validation fraction must be in (0, 1), got 1.0"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(blobs, kwargs, message):
    x, y = blobs
    with pytest.raises(LearningError) as e:
        centralized_baseline(*logreg(), x, y, BASE, seed=0, **({"max_epochs": 3} | kwargs))
    assert message in str(e.value)


def test_a_class_too_small_to_split_is_a_clear_error(blobs):
    x, y = blobs
    y = y.copy()
    y[0] = 4  # a class of one example: it cannot be on both sides
    with pytest.raises(LearningError, match="cannot split 400 examples for validation"):
        validation_split(y, 0.15, seed=0)


def test_the_report_and_the_summary_name_the_chosen_settings(tmp_path):
    cfg = SimConfig(trainers=3, validators=2, rounds=2, model="logreg", epochs=1, out=Path(tmp_path))
    report = run(cfg)
    assert report["centralized_epochs"] in range(1, 3)
    assert report["centralized_lr"] in report["centralized_selection"]["lr_grid"] == list(lr_grid(cfg.lr))
    assert report["plain_fedavg_settings"] == {
        "chosen": "the task's settings",
        "rounds": 2,
        "local_epochs": 1,
        "lr": cfg.lr,
        "momentum": cfg.momentum,
        "batch_size": cfg.batch_size,
    }
    console = Console(record=True, width=200)
    print_report(console, report)
    text = console.export_text()
    assert (
        f"{report['centralized_accuracy']:.4f} (lr {report['centralized_lr']:g}, "
        f"{report['centralized_epochs']} epochs: chosen on a validation split)" in text
    )
    assert f"{report['plain_fedavg_accuracy']:.4f} (the task's lr 0.05, 1 local epochs, 2 rounds)" in text
