"""The centralized baseline, trained fairly: the ceiling a federated run is read against.

One model on all the training data, with the task's model, optimizer, momentum and batch
size; only the learning rate and the number of epochs are chosen, and they are chosen on
a validation split of the *training* data (the test set is never looked at until the
final figure):

1. split the training data, stratified and seeded, into a fit part and a validation part
   (``VALIDATION_FRACTION``);
2. for each learning rate of the grid (the task's times ``LR_FACTORS``), train on the fit
   part from the initial model, measuring validation accuracy after every epoch, until
   ``PATIENCE`` epochs pass without a better one or ``max_epochs`` is reached;
3. take the (learning rate, epoch) with the best validation accuracy (ties: the lower
   validation loss, then the earlier grid entry and epoch);
4. retrain on all the training data with those settings, from the same initial model and
   seed: the baseline is ``train_local`` with the chosen ``lr`` and ``epochs``.

docs/decisions.md, "The centralized baseline", says why this split, grid and patience.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from sklearn.model_selection import train_test_split
from torch import nn

from fedchain.errors import LearningError
from fedchain.learning.train import Params, TrainConfig, evaluate_with_loss, get_params, train_epochs, train_local

LR_FACTORS = (0.2, 0.5, 1.0, 2.0)  # times the task's learning rate
PATIENCE = 10  # epochs without a better validation result (accuracy, then loss) before a trial stops
VALIDATION_FRACTION = 0.15  # of the training data, held out while choosing


@dataclass(frozen=True)
class Trial:
    """One learning rate of the grid, trained on the fit part."""

    lr: float
    epochs: int  # the epoch with the best validation accuracy
    val_accuracy: float
    val_loss: float
    epochs_run: int  # where early stopping (or max_epochs) ended it


@dataclass(frozen=True)
class Centralized:
    """The baseline's parameters (trained on all the training data) and how they were chosen."""

    params: Params
    lr: float
    epochs: int
    trials: tuple[Trial, ...]
    validation_fraction: float
    max_epochs: int
    patience: int


def lr_grid(lr: float, factors: Sequence[float] = LR_FACTORS) -> tuple[float, ...]:
    """The learning rates tried: ``lr`` times each factor."""
    return tuple(round(lr * f, 12) for f in factors)  # 0.05 * 0.2 is 0.010000000000000002


def validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, validation indices) into ``y``: disjoint, covering it, stratified by label."""
    if not 0.0 < fraction < 1.0:
        raise LearningError(f"validation fraction must be in (0, 1), got {fraction}")
    try:
        fit, val = train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed, stratify=y)
    except ValueError as e:
        raise LearningError(f"cannot split {len(y)} examples for validation ({fraction:.0%}): {e}") from None
    return np.sort(fit), np.sort(val)


def select(
    model: nn.Module,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    base: TrainConfig,
    seed: int,
    lrs: Sequence[float],
    max_epochs: int,
    patience: int = PATIENCE,
    validation_fraction: float = VALIDATION_FRACTION,
    between_epochs: Callable[[], None] | None = None,
) -> tuple[Trial, ...]:
    """Train one trial per learning rate on the fit part of ``(x, y)``, early-stopped on the
    validation part; the trials in grid order. ``model`` is overwritten.

    ``between_epochs`` is called after every epoch (the simulation stops there on Ctrl-C).
    """
    _check(lrs, max_epochs, patience)
    fit, val = validation_split(y, validation_fraction, seed)
    scratch = copy.deepcopy(model)  # evaluating must not touch the module being trained
    trials = []
    for lr in lrs:
        cfg = replace(base, lr=lr, epochs=max_epochs)
        best, best_epoch, epoch = (-1.0, 0.0), 0, 0
        for epoch, _ in enumerate(train_epochs(model, params, x[fit], y[fit], cfg, seed), start=1):
            correct, loss = evaluate_with_loss(scratch, get_params(model), x[val], y[val])
            if (correct / len(val), -loss) > best:
                best, best_epoch = (correct / len(val), -loss), epoch
            if between_epochs is not None:
                between_epochs()
            if epoch - best_epoch >= patience:
                break
        trials.append(Trial(lr, best_epoch, best[0], -best[1], epoch))
    return tuple(trials)


def best_trial(trials: Sequence[Trial]) -> Trial:
    """The highest validation accuracy; ties: the lower validation loss, then the first."""
    return max(trials, key=lambda t: (t.val_accuracy, -t.val_loss))


def centralized_baseline(
    model: nn.Module,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    base: TrainConfig,
    seed: int,
    max_epochs: int,
    lrs: Sequence[float] | None = None,
    patience: int = PATIENCE,
    validation_fraction: float = VALIDATION_FRACTION,
    between_epochs: Callable[[], None] | None = None,
) -> Centralized:
    """The centralized baseline on the training data ``(x, y)``: choose (lr, epochs) on a
    validation split (``select``), then retrain on all of ``(x, y)`` from ``params`` with
    ``base`` at those settings and the same seed. ``model`` is overwritten.

    Parameters
    ----------
    base : TrainConfig
        The task's local training: model, batch size, momentum and proximal term are kept.
    max_epochs : int
        The most epochs a trial may run (the simulation: rounds x local epochs, the passes a
        trainer makes over its own data).
    lrs : sequence of float, optional
        The learning rates tried; default ``lr_grid(base.lr)``.
    """
    lrs = lr_grid(base.lr) if lrs is None else tuple(lrs)
    trials = select(model, params, x, y, base, seed, lrs, max_epochs, patience, validation_fraction, between_epochs)
    chosen = best_trial(trials)
    final = train_local(model, params, x, y, replace(base, lr=chosen.lr, epochs=chosen.epochs), seed)
    return Centralized(final, chosen.lr, chosen.epochs, trials, validation_fraction, max_epochs, patience)


def _check(lrs: Sequence[float], max_epochs: int, patience: int) -> None:
    if len(lrs) == 0:
        raise LearningError("the learning-rate grid is empty: give at least one learning rate")
    if any(not lr > 0 for lr in lrs):
        raise LearningError(f"learning rates must be positive, got {list(lrs)}")
    if max_epochs < 1:
        raise LearningError(f"max_epochs must be at least 1, got {max_epochs}")
    if patience < 1:
        raise LearningError(f"patience must be at least 1, got {patience}")
