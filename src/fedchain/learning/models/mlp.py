"""Multi-layer perceptron with one hidden ReLU layer."""

import math

from torch import Tensor, nn


class MLP(nn.Module):
    """Flatten -> Linear(hidden) -> ReLU -> Linear(num_classes).

    Parameters
    ----------
    input_shape : tuple[int, ...]
        Shape of one example, e.g. ``(40,)`` or ``(1, 28, 28)``; it is flattened.
    num_classes : int
        Number of output logits.
    hidden : int, default 64
        Width of the hidden layer.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 64):
        super().__init__()
        self.hidden = nn.Linear(math.prod(input_shape), hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(x.flatten(1)).relu())
