"""LoRA fine-tuning of a base model: the base is frozen, trainers send adapter tensors only.

A task that names a base model (``Recipe.base_model``, the CID of a model blob: the final
model of an earlier task, or a model file its sponsor published) and a LoRA rank trains
low-rank adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"),
made by peft, on the base's linear and convolutional layers that the recipe names. Every
blob of such a task, the initial model, each update and each round's model, holds the
adapter tensors only; the base's weights stay in the one base blob every node fetches and
checks against its CID.

How adapters are aggregated, and why. The rule aggregates the tensors it is given, in
exact fixed point, as for any model: each adapter matrix A and B is averaged on its own
(FedIT, Zhang et al. 2023). The mean of the products B_i A_i is not the product of the
means, so the aggregate is not the mean of the trainers' low-rank weight changes; the
alternative that is (FFA-LoRA, Sun et al. 2024: freeze A, train B only) halves the
adapters' capacity, and the averaged-A-and-B form is what LoRA users run with Flower and
peft today. What matters for fedchain holds either way: the aggregate is a deterministic
integer function of the revealed tensors, so validators agree on it bit for bit and a
watcher can recompute it.

``LoraNet.state_dict`` holds only what is trained (the adapters, named without peft's
adapter name), so everything that reads or writes a model's parameters
(``fedchain.learning.train.get_params``/``set_params``, the codec, aggregation, scores)
works on adapters unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

_ADAPTER = "default"  # peft's name of the one adapter; left out of fedchain's tensor names


class LoraNet(nn.Module):
    """A frozen base model with trainable LoRA adapters on the modules named ``targets``.

    Parameters
    ----------
    base : nn.Module
        The base architecture; its weights are overwritten with ``base_params`` and frozen.
    base_params : Mapping[str, np.ndarray]
        The base model's tensors, as its blob holds them.
    rank, alpha : int, float
        LoRA rank r and scaling alpha (the update is alpha / r * B A).
    targets : Sequence[str]
        Names of the base's ``nn.Linear`` / ``nn.Conv2d`` modules that get adapters.
    full : Sequence[str], default ()
        Names of modules trained in full beside the adapters (a classifier head for the new
        task, as peft's ``modules_to_save``): their tensors are sent too.
    """

    def __init__(
        self,
        base: nn.Module,
        base_params: Mapping[str, np.ndarray],
        rank: int,
        alpha: float,
        targets: Sequence[str],
        full: Sequence[str] = (),
    ):
        super().__init__()
        import peft  # heavy (transformers): imported only by LoRA tasks

        from fedchain.learning.train import set_params

        set_params(base, dict(base_params))
        names = {n for n, _ in base.named_modules()}
        missing = [t for t in (*targets, *full) if t not in names]
        if missing:
            raise ValueError(
                f"LoRA targets {missing} are not modules of the base model (it has {sorted(names - {''})})"
            )
        cfg = peft.LoraConfig(
            r=rank,
            lora_alpha=alpha,  # type: ignore[arg-type]  # peft's annotation says int; it scales by any number
            target_modules=list(targets),
            lora_dropout=0.0,
            bias="lora_only",
        )
        self.peft = peft.get_peft_model(base, cfg)
        for n, p in self.peft.named_parameters():
            if any(n.startswith(f"base_model.model.{m}.") for m in full):
                p.requires_grad_(True)

    def forward(self, x: Tensor) -> Tensor:
        return self.peft(x)

    def _trained(self) -> dict[str, nn.Parameter]:
        return {
            n.removeprefix("base_model.model.").replace(f".{_ADAPTER}.", "."): p
            for n, p in self.peft.named_parameters()
            if p.requires_grad
        }

    def state_dict(self, *args, **kwargs) -> OrderedDict[str, Tensor]:  # type: ignore[override]
        """The adapters only: what a LoRA task's blobs carry."""
        return OrderedDict((n, p.detach()) for n, p in self._trained().items())

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True, assign: bool = False):
        trained = self._trained()
        if set(state_dict) != set(trained):
            raise ValueError(f"adapter tensors {sorted(state_dict)} do not fit this model's {sorted(trained)}")
        with torch.no_grad():
            for n, p in trained.items():
                p.copy_(state_dict[n])
        return nn.modules.module._IncompatibleKeys([], [])


# Base models by CID. A blob never changes under its CID, so one process-wide table serves
# every node and task in it; fedchain.protocol.sponsor.load_base fetches, checks and adds them.
_BASES: dict[str, dict[str, np.ndarray]] = {}


def register_base(cid: str, params: Mapping[str, np.ndarray]) -> None:
    """Make the base model ``cid`` (already checked against its CID) available to ``base_params``."""
    _BASES[cid] = {k: np.array(v, np.float32) for k, v in params.items()}


def loaded() -> set[str]:
    """The CIDs of the base models this process has loaded."""
    return set(_BASES)


def base_params(cid: str) -> dict[str, np.ndarray]:
    """The base model ``cid``'s tensors; an error naming it if this process has not loaded it."""
    if cid not in _BASES:
        raise ValueError(f"base model {cid} is not loaded here (fedchain.protocol.sponsor.load_base fetches it)")
    return _BASES[cid]
