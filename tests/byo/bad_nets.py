"""Entry points that are not models fedchain can take, one per way to get it wrong
(tests/learning/test_entry_models.py)."""

from torch import nn

NOT_CALLABLE = 3


def raises(input_shape, num_classes):
    raise RuntimeError("no GPU here")


def not_a_module(input_shape, num_classes):
    return {"weight": [1.0, 2.0]}


def counts_batches(input_shape, num_classes):
    """A BatchNorm keeps an integer counter (num_batches_tracked) in its state_dict."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes), nn.BatchNorm1d(num_classes))


def no_tensors(input_shape, num_classes):
    return nn.ReLU()
