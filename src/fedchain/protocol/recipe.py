"""A task's recipe: everything a node needs to train and validate, hashed on chain.

The recipe travels as a canonical JSON blob (sorted keys, no spaces); the task
stores keccak256 of those bytes, and every node checks the hash before use.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from eth_utils import keccak

from fedchain.learning.fixedpoint import CHUNK_SIZE, FRAC_BITS
from fedchain.learning.train import TrainConfig


@dataclass(frozen=True)
class Recipe:
    model: str = "mlp"
    dataset: str = "digits"
    input_shape: tuple[int, ...] = (1, 8, 8)
    num_classes: int = 10
    rule: str = "fedavg"
    score: str = "cosine"
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.0
    proximal_mu: float = 0.0
    frac_bits: int = FRAC_BITS
    chunk_size: int = CHUNK_SIZE

    def __post_init__(self) -> None:
        # 1 and 1.0 are equal recipes: give them one canonical encoding (and hash).
        for name in ("lr", "momentum", "proximal_mu"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))

    def train_config(self, epochs: int | None = None) -> TrainConfig:
        """The local training this recipe prescribes (``epochs`` overrides, for baselines)."""
        return TrainConfig(epochs=self.epochs if epochs is None else epochs, batch_size=self.batch_size,
                           lr=self.lr, momentum=self.momentum, proximal_mu=self.proximal_mu)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @property
    def hash(self) -> bytes:
        return keccak(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Recipe":
        d = json.loads(data)
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)
