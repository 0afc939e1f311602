"""Model registry: every model the protocol can train, built by name with seeded init: a
built-in (``MODELS``), or any PyTorch module named by an entry point ``package.module:factory``
that each participant installs (``fedchain.learning.models.source``)."""

import functools
from collections.abc import Callable

import torch
from torch import nn

from .cnn import CNN
from .logreg import LogisticRegression
from .mlp import MLP
from .source import ModelError, build, is_entry_point

MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "logreg": LogisticRegression,
    "mlp": MLP,
    "mlp256": functools.partial(MLP, hidden=256),  # wide enough for LoRA adapters to pay (benchmarks/lora)
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
        One of ``MODELS``: "logreg", "mlp", "cnn"; or an entry point ``package.module:factory``
        this process was allowed to build (``source.allow``): ``factory(input_shape,
        num_classes)`` is called under the same seed and must return an ``nn.Module`` whose
        state_dict is all floating tensors (``ModelError``, a ``ValueError``, otherwise).
    input_shape : tuple[int, ...]
        Shape of one example, without the batch dimension.
    num_classes : int
        Number of output logits.
    seed : int, default 0
        Seed of the initial weights.
    """
    entry = is_entry_point(name)
    if not entry and name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)} or name package.module:factory")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if entry:
            return build(name, tuple(input_shape), num_classes)
        return MODELS[name](tuple(input_shape), num_classes)


__all__ = ["CNN", "MLP", "MODELS", "LogisticRegression", "ModelError", "build_model", "is_entry_point"]
