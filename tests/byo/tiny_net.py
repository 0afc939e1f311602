"""A model of the user's own, as fedchain takes one: ``--model tests.byo.tiny_net:make``.

Any PyTorch module works; fedchain calls ``make(input_shape, num_classes)`` under a fixed seed
and trains and averages its state_dict, which must be all floating tensors.
"""

import math

from torch import nn


def make(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A small MLP with a LayerNorm (its weight and bias are averaged like any parameter)."""
    features = math.prod(input_shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 24), nn.LayerNorm(24), nn.Tanh(), nn.Linear(24, num_classes))
