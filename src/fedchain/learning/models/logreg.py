"""Multinomial logistic regression: one linear layer on the flattened input."""

import math

from torch import Tensor, nn


class LogisticRegression(nn.Module):
    """Softmax regression; the loss (cross-entropy) applies the softmax.

    Parameters
    ----------
    input_shape : tuple[int, ...]
        Shape of one example, e.g. ``(40,)`` or ``(1, 8, 8)``; it is flattened.
    num_classes : int
        Number of output logits.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.fc = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))
