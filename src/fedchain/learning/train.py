"""The reference PyTorch trainer: local SGD as a function of (params, data, config, seed).

Parameters cross every boundary as ``dict[str, np.ndarray]`` of float32, keyed by the
model's ``state_dict`` names in sorted order; the protocol never sees a torch object.
The ``nn.Module`` passed in is only a scratch container: each call first overwrites it
with the given parameters, so one module can serve many trainers.

Local training is plain minibatch SGD (FedAvg, McMahan et al. 2017), optionally with
the FedProx proximal term ``mu/2 * ||w - w_global||^2`` (Li et al. 2020). Shuffling
draws from a ``torch.Generator`` seeded per call, so the same seed gives bit-identical
parameters and the global RNGs are never touched.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedchain.errors import LearningError

Params = dict[str, np.ndarray]

_EVAL_BATCH = 1024


@dataclass(frozen=True)
class TrainConfig:
    """Recipe of one local training call.

    Parameters
    ----------
    epochs : int, default 1
        Passes over the local data.
    batch_size : int, default 32
        Examples per SGD step (the last batch of an epoch may be smaller).
    lr : float, default 0.05
        SGD learning rate.
    momentum : float, default 0.0
        SGD momentum; its buffer starts at zero on every call.
    proximal_mu : float, default 0.0
        FedProx weight ``mu``; 0 disables the proximal term.
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.0
    proximal_mu: float = 0.0


def get_params(model: nn.Module) -> Params:
    """Copy of the model's ``state_dict`` as float32 numpy arrays, sorted by name."""
    state = model.state_dict()
    return {name: state[name].detach().cpu().numpy().astype(np.float32, copy=True) for name in sorted(state)}


def set_params(model: nn.Module, params: Params) -> None:
    """Overwrite the model's state with an exact copy of ``params``.

    Raises ``LearningError`` if the names or shapes differ from the model's.
    """
    expected = param_shapes(model.state_dict())
    given = param_shapes(params)
    if given != expected:
        raise LearningError(f"parameters do not fit the model: expected {expected}, got {given}")
    model.load_state_dict({name: _tensor(value, np.float32) for name, value in params.items()})


def train_local(
    model: nn.Module,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    seed: int,
) -> Params:
    """Train from ``params`` on ``(x, y)`` with SGD and return the new parameters.

    ``model`` is overwritten. The result depends only on the arguments: the same
    seed gives bit-identical parameters.
    """
    return train_local_with_loss(model, params, x, y, cfg, seed)[0]


def train_local_with_loss(
    model: nn.Module,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    seed: int,
) -> tuple[Params, float]:
    """``train_local``, and the mean cross-entropy of the last epoch's batches (as each
    was before its step; the proximal term left out): what a trainer logs as its
    local training loss."""
    losses = list(train_epochs(model, params, x, y, cfg, seed))
    return get_params(model), losses[-1] if losses else 0.0  # zero epochs: nothing measured


def train_epochs(
    model: nn.Module,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    seed: int,
) -> Iterator[float]:
    """``train_local`` one epoch at a time, for a caller that looks at the model between
    epochs (the centralized baseline's early stopping, ``fedchain.learning.baseline``).

    After each of ``cfg.epochs`` epochs it yields that epoch's mean loss (as
    ``train_local_with_loss``), with ``model`` holding the parameters so far: after epoch
    ``e`` they are bit-identical to ``train_local`` with ``epochs=e`` and the same seed.
    The caller must not touch ``model`` between two steps.
    """
    if len(x) != len(y) or len(x) == 0:
        raise LearningError(f"need matching, non-empty x and y, got {len(x)} and {len(y)}")
    set_params(model, params)
    xs, ys = _tensor(x, np.float32), _tensor(y, np.int64)
    weights = [w for w in model.parameters() if w.requires_grad]  # a LoRA model's base is frozen
    anchor = [w.detach().clone() for w in weights] if cfg.proximal_mu > 0 else None
    opt = torch.optim.SGD(weights, lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)

    model.train()
    epoch_loss = torch.zeros((), dtype=torch.float64)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(xs), generator=gen)
        epoch_loss.zero_()
        for batch in order.split(cfg.batch_size):
            loss = F.cross_entropy(model(xs[batch]), ys[batch])
            epoch_loss += loss.detach().double() * len(batch)
            if anchor is not None:
                drift = sum(((w - a) ** 2).sum() for w, a in zip(weights, anchor))
                loss = loss + cfg.proximal_mu / 2 * drift
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        yield float(epoch_loss) / len(xs)


# One trainer holding all the data: the centralized baseline once fedchain.learning.baseline
# has chosen its lr and epochs.
train_centralized = train_local


def evaluate(model: nn.Module, params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy in [0, 1] of ``params`` on ``(x, y)``; ``model`` is overwritten."""
    correct, _ = evaluate_with_loss(model, params, x, y)
    return correct / len(x)


def evaluate_with_loss(model: nn.Module, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    """(examples classified right, mean cross-entropy) of ``params`` on ``(x, y)``;
    ``model`` is overwritten. Fixed batches and a float64 sum: the same inputs give the
    same figures on one torch build."""
    if len(x) != len(y) or len(x) == 0:
        raise LearningError(f"need matching, non-empty x and y, got {len(x)} and {len(y)}")
    set_params(model, params)
    xs, ys = _tensor(x, np.float32), _tensor(y, np.int64)
    model.eval()
    correct, total = 0, 0.0
    with torch.inference_mode():
        for xb, yb in zip(xs.split(_EVAL_BATCH), ys.split(_EVAL_BATCH)):
            logits = model(xb)
            correct += int((logits.argmax(1) == yb).sum())
            total += float(F.cross_entropy(logits.double(), yb, reduction="sum"))
    return correct, total / len(xs)


def param_shapes(params: Params) -> dict[str, tuple[int, ...]]:
    """Name -> shape, sorted by name."""
    return {name: tuple(params[name].shape) for name in sorted(params)}


def flatten(params: Params) -> np.ndarray:
    """One float32 vector: every array raveled, concatenated in sorted-name order."""
    if not params:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([np.asarray(params[name], dtype=np.float32).ravel() for name in sorted(params)])


def unflatten(vec: np.ndarray, template: Params) -> Params:
    """Inverse of ``flatten``: cut ``vec`` into arrays named and shaped as ``template``."""
    shapes = param_shapes(template)
    sizes = [int(np.prod(s)) for s in shapes.values()]
    vec = np.asarray(vec, dtype=np.float32)
    if vec.ndim != 1 or vec.size != sum(sizes):
        raise LearningError(f"vector of shape {vec.shape} does not fit the template ({sum(sizes)} values)")
    pieces = np.split(vec, np.cumsum(sizes)[:-1])
    return {name: piece.reshape(shape).copy() for (name, shape), piece in zip(shapes.items(), pieces)}


def _tensor(a: np.ndarray, dtype: type) -> torch.Tensor:
    """Tensor sharing memory with ``a`` where possible (a read-only array is copied)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return torch.from_numpy(a if a.flags.writeable else a.copy())
