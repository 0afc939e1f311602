"""Model registry: every model the protocol can train, built by name with seeded init."""

from collections.abc import Callable

import torch
from torch import nn

from .cnn import CNN
from .logreg import LogisticRegression
from .mlp import MLP

MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "logreg": LogisticRegression,
    "mlp": MLP,
    "cnn": CNN,
}


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> nn.Module:
    """Build model ``name`` with initial weights fixed by ``seed``.

    The same arguments give bit-identical parameters on every call; torch's global
    RNG state is saved and restored, so building a model never shifts other
    random streams.

    Parameters
    ----------
    name : str
        One of ``MODELS``: "logreg", "mlp", "cnn".
    input_shape : tuple[int, ...]
        Shape of one example, without the batch dimension.
    num_classes : int
        Number of output logits.
    seed : int, default 0
        Seed of the initial weights.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](tuple(input_shape), num_classes)


__all__ = ["CNN", "MLP", "MODELS", "LogisticRegression", "build_model"]
