"""A task's recipe: everything a node needs to train and validate, hashed on chain.

The recipe travels as a canonical JSON blob (sorted keys, no spaces); the task
stores ``keccak256(abi_encode(rule, num, den, score, keccak256(those bytes)))`` and
every node checks the hash before use. ``challenge_rule`` = (rule, param1, param2,
score) tells the challenge contract, which cannot parse JSON, how the round may be
recomputed on chain (with the contract's chunk size and scale, without NNM): the
registered rule's ``chain_code`` and ``chain_params`` (``fedchain.learning.aggregate.registry``:
1 FedAvg, 2 FedMedian, 3 FedTrimmedAvg with beta = param1 / param2, 4 Krum, 5
MultiKrum and 6 Bulyan with f = param1, MultiKrum's m = param2; 0 a rule it cannot
check, or one this code does not know); score 1 the cosine score, 0 a score it
cannot check. See ``recipe_hash``.
``rule_params`` holds the aggregation rule's parameters (see
``fedchain.learning.aggregate``) as a JSON object inside that blob.

A task whose trainers are Flower clients (``fedchain.flower``) names the client's entry
point as its model (``"flower:MODULE:ATTR"``) and lists ``param_shapes``, the shapes of the
client's parameters in its order: the tensors ``p000``, ``p001``, ... (``param_names``) are
the whole model as every node sees it. A recipe without ``param_shapes`` encodes as before
(the key is left out), so existing recipes keep their bytes and hashes.

A task whose model is any PyTorch model its participants install names it by an entry point
``package.module:factory`` (``fedchain.learning.models.source``) and must pin its source in
``model_source``; so does a Flower task. A recipe without ``model_source`` encodes as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from eth_abi import encode
from eth_utils import keccak
from torch import nn

from fedchain.learning import privacy
from fedchain.learning.aggregate import registry
from fedchain.learning.aggregate.registry import CHALLENGE_NONE, CHALLENGE_SECAGG
from fedchain.learning.fixedpoint import CHUNK_SIZE, FRAC_BITS
from fedchain.learning.models import build_model, is_entry_point, lora
from fedchain.learning.models.source import check_source
from fedchain.learning.train import Params, TrainConfig, get_params

SCORE_NONE, SCORE_COSINE = 0, 1
# what `fedchain simulate` and `fedchain task create` pay by unless told (cli.checks.score): the
# score under which public-information free-riders earn next to nothing (docs/incentives.md)
DEFAULT_SCORE = "innovation"
FLOWER = "flower:"  # the model of a task trained by Flower clients: "flower:MODULE:ATTR"


DP_FIELDS = ("dp", "dp_noise", "dp_clip", "dp_delta", "dp_sampling_rate", "dp_steps", "dp_max_epsilon")


def param_names(n: int) -> list[str]:
    """The tensor names of a model given as an ordered list of arrays (a Flower client's)."""
    return [f"p{i:03d}" for i in range(n)]


def recipe_hash(data: bytes, challenge_rule: tuple[int, int, int, int]) -> bytes:
    """The recipe commitment on chain: binds the recipe bytes and the challenge rule."""
    return keccak(encode(["uint256"] * 4 + ["bytes32"], [*challenge_rule, keccak(data)]))


def _canonical_value(key: str, value: Any) -> Any:
    """One JSON scalar per value: an integral float is the int it equals (10.0 -> 10)."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"rule parameter {key!r} must be finite, got {value!r}")
        return int(value) if value.is_integer() else value
    raise ValueError(f"rule parameter {key!r} must be a JSON scalar (bool, number, string), got {value!r}")


class RuleParams(Mapping):
    """The aggregation rule's parameters: a read-only mapping of JSON scalars, compared and
    hashed by its canonical JSON, so equal parameters give one encoding (and one recipe hash)."""

    def __init__(self, params: Mapping[str, Any] | Iterable = ()):
        d = dict(params)
        if any(not isinstance(k, str) for k in d):
            raise ValueError("rule parameter names must be strings")
        self._d = {k: _canonical_value(k, d[k]) for k in sorted(d)}
        self._json = json.dumps(self._d, sort_keys=True, separators=(",", ":"))

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        try:
            return self._json == (other if isinstance(other, RuleParams) else RuleParams(other))._json
        except ValueError:
            return False

    def __hash__(self) -> int:
        return hash(self._json)

    def __repr__(self) -> str:
        return f"RuleParams({self._d!r})"


@dataclass(frozen=True)
class Recipe:
    model: str = "mlp"
    dataset: str = "digits"
    input_shape: tuple[int, ...] = (1, 8, 8)
    num_classes: int = 10
    rule: str = "fedavg"
    rule_params: Mapping[str, Any] = field(default_factory=RuleParams)
    # "cosine", "validation" or "innovation" (fedchain.protocol.root_set). The field's default is the
    # score every task can run (any model, Flower, LoRA, secagg); the command line's default is
    # DEFAULT_SCORE where the task can run it (cli.checks.score; docs/decisions.md, "The default score")
    score: str = "cosine"
    root_set_size: int = 100  # validators' root set, drawn from the held-out split
    data_seed: int = 0  # seed of the train/test split and of the root set draw
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.0
    client_momentum: float = 0.0
    proximal_mu: float = 0.0
    frac_bits: int = FRAC_BITS
    chunk_size: int = CHUNK_SIZE
    param_shapes: tuple[tuple[int, ...], ...] = ()  # a Flower client's parameters (see above)
    # sha256 of the source files of a Flower client or of an entry-point model
    # (fedchain.learning.models.source.source_hash): every node that runs it checks that the copy
    # it has installed is this one
    model_source: str = ""
    # Fine-tuning (fedchain.learning.models.lora): the CID of the base model's blob the task
    # starts from (an earlier task's model, or a model file its sponsor published). With
    # lora_rank > 0 only LoRA adapters on the modules lora_targets names are trained, and every
    # blob of the task holds adapters only; lora_alpha 0 means alpha = rank. All left out of
    # the bytes when unset, so other recipes keep their hashes.
    base_model: str = ""
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_targets: tuple[str, ...] = ()
    lora_full: tuple[str, ...] = ()  # modules trained in full beside the adapters (a new head)
    # Differential privacy (fedchain.learning.privacy): dp "client" (each trainer clips its update
    # to dp_clip and adds Gaussian noise dp_noise * dp_clip) or "example" (DP-SGD: dp_steps steps
    # a round, each on a Poisson sample at rate dp_sampling_rate, gradients clipped to dp_clip);
    # epsilon at dp_delta. dp_max_epsilon > 0 caps every trainer's epsilon: the contracts refuse
    # a commit past the rounds it allows (``max_dp_rounds``). All left out of the bytes when unset.
    dp: str = ""
    dp_noise: float = 0.0
    dp_clip: float = 0.0
    dp_delta: float = 0.0
    dp_sampling_rate: float = 0.0
    dp_steps: int = 0
    dp_max_epsilon: float = 0.0
    # Secure aggregation (fedchain.protocol.secagg_round): trainers mask their updates and the
    # validators unmask only the sum, through the secagg.vy board. FedAvg only; every aggregated
    # update is paid the same score; the unmasked aggregate of a round without dropouts can be
    # challenged on chain (CHALLENGE_SECAGG, secagg_judge.vy). Left out of the bytes when unset.
    secagg: bool = False

    def __post_init__(self) -> None:
        # 1 and 1.0 are equal recipes: give them one canonical encoding (and hash).
        for name in (
            "lr",
            "momentum",
            "client_momentum",
            "proximal_mu",
            "lora_alpha",
            "dp_noise",
            "dp_clip",
            "dp_delta",
            "dp_sampling_rate",
            "dp_max_epsilon",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "rule_params", RuleParams(self.rule_params))
        object.__setattr__(self, "param_shapes", tuple(tuple(int(d) for d in s) for s in self.param_shapes))
        if self.model.startswith(FLOWER) != bool(self.param_shapes):
            raise ValueError(f"a {FLOWER}MODULE:ATTR model lists its param_shapes, and only such a model does")
        if self.entry_point is not None and not self.model_source:
            raise ValueError(f"the entry-point model {self.model} needs model_source, the sha256 of its source")
        if not 0.0 <= self.client_momentum < 1.0:
            raise ValueError(f"client_momentum must be in [0, 1), got {self.client_momentum}")
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        object.__setattr__(self, "lora_full", tuple(self.lora_full))
        if (
            self.lora_rank < 0
            or (self.lora_rank > 0) != bool(self.lora_targets)
            or (self.lora_full and not self.lora_rank)
        ):
            raise ValueError("a LoRA task has lora_rank > 0 and lora_targets (lora_full optional); other tasks none")
        if self.lora_rank and (not self.base_model or self.flower is not None):
            raise ValueError("LoRA fine-tunes a base model: name its base_model (a model CID); not with Flower clients")
        spec = self.dp_spec  # raises on a malformed privacy setting
        if spec is not None and (self.flower is not None or (spec.mechanism == "example" and self.lora_rank)):
            raise ValueError(
                "differential privacy is for fedchain's own trainers: not with Flower clients, nor DP-SGD with LoRA"
            )
        rule = registry.RULES.get(self.rule)
        if self.secagg and (
            rule is None or not rule.masked_sum or self.rule_params or self.score != "cosine" or self.flower
        ):
            raise ValueError(
                "secure aggregation sums the updates without seeing any: only plain FedAvg (no rule parameters), "
                "with the default score (every aggregated update is paid the same), and fedchain's own trainers "
                f"(not {self.rule} {dict(self.rule_params)}, score {self.score}"
                + (", Flower clients)" if self.flower else ")")
            )
        if self.lora_rank and self.uses_root_set:
            raise ValueError(
                f"a LoRA task is scored by cosine with a rule that needs no root set ({self.score} score, {self.rule} "
                "rule): the exact integer forward pass those run has no LoRA layers"
            )

    @property
    def uses_root_set(self) -> bool:
        """Whether validators evaluate on the root set: a root-set score, or a rule that trains or
        scores on it (FLTrust, Zeno)."""
        rule = registry.RULES.get(self.rule)
        return self.score != "cosine" or (rule is not None and (rule.needs_root_set or rule.needs_root_scores))

    def train_config(self, epochs: int | None = None) -> TrainConfig:
        """The local training this recipe prescribes (``epochs`` overrides, for baselines)."""
        return TrainConfig(
            epochs=self.epochs if epochs is None else epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            proximal_mu=self.proximal_mu,
        )

    @property
    def dp_spec(self) -> privacy.DpSpec | None:
        """The task's differential privacy (``fedchain.learning.privacy``), or None."""
        if not self.dp:
            if any(getattr(self, k) for k in DP_FIELDS):
                raise ValueError("privacy settings without a mechanism: set dp to 'client' or 'example'")
            return None
        example = self.dp == "example"
        spec = privacy.DpSpec(
            self.dp,  # type: ignore[arg-type]  # DpSpec checks it is "client" or "example"
            self.dp_noise,
            self.dp_clip,
            self.dp_delta,
            self.dp_sampling_rate if example else None,
            self.dp_steps if example else None,
        )
        if self.dp_max_epsilon < 0:
            raise ValueError(f"privacy: dp_max_epsilon must be >= 0 (0: no cap), got {self.dp_max_epsilon}")
        return spec

    def norm_bound_sq(self, shapes: Mapping[str, tuple[int, ...]]) -> int:
        """The bound validators hold every update's squared fixed-point norm to: a client-level
        DP task's (``privacy.norm_bound_fixed``: a clipped, noised update exceeds it with
        probability at most 2^-40), else 0 (none)."""
        spec = self.dp_spec
        if spec is None or spec.mechanism != "client" or spec.noise_multiplier == 0 or self.secagg:
            return 0  # (under secure aggregation nobody sees a single update to bound)
        dim = sum(math.prod(s) for s in shapes.values())
        return privacy.norm_bound_fixed(dim, spec.clip, spec.noise_multiplier, self.frac_bits)

    @property
    def max_dp_rounds(self) -> int:
        """The most rounds one trainer may take part in: those that keep its epsilon at most
        ``dp_max_epsilon`` (0: no cap). The task stores it on chain; the contracts enforce it."""
        spec = self.dp_spec
        if spec is None or not self.dp_max_epsilon:
            return 0
        return privacy.max_rounds(spec, self.dp_max_epsilon)

    @property
    def flower(self) -> str | None:
        """The Flower client's ``MODULE:ATTR`` if Flower clients train this task."""
        return self.model.removeprefix(FLOWER) if self.model.startswith(FLOWER) else None

    @property
    def entry_point(self) -> str | None:
        """The model's ``package.module:factory`` if it is a PyTorch model its participants install."""
        return self.model if is_entry_point(self.model) and self.flower is None else None

    def check_model_source(self) -> None:
        """``ModelError`` unless an entry-point model's installed source is the one this recipe
        pins (both hashes named): whoever builds the model calls this first."""
        if self.entry_point is not None:
            check_source(self.model_source, [self.entry_point])

    def template(self) -> Params:
        """The model's tensors (zeros for a Flower client's, whose values only it knows), named
        and shaped as every blob of the task is."""
        if self.param_shapes:
            return {k: np.zeros(s, np.float32) for k, s in zip(param_names(len(self.param_shapes)), self.param_shapes)}
        if self.lora_rank:  # the adapters' shapes do not depend on the base's values
            return get_params(self.build(base=self.template_base()))
        return self.template_base()

    def template_base(self) -> Params:
        """The architecture's own tensors (seed 0): every blob of a task without LoRA, and a LoRA
        task's base model blob, is named and shaped as these."""
        return get_params(build_model(self.model, tuple(self.input_shape), self.num_classes, seed=0))

    def build(self, seed: int = 0, base: Params | None = None) -> nn.Module:
        """A fresh module of the task's model, initialised by ``seed``: its ``state_dict`` is what
        every blob of the task holds. A LoRA task's is the base model (``base``, else the one
        ``fedchain.learning.models.lora.register_base`` loaded for ``base_model``) with adapters."""
        net = build_model(self.model, tuple(self.input_shape), self.num_classes, seed=seed)
        if not self.lora_rank:
            return net
        params = base if base is not None else lora.base_params(self.base_model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            alpha = self.lora_alpha or self.lora_rank
            return lora.LoraNet(net, params, self.lora_rank, alpha, self.lora_targets, self.lora_full)

    def to_bytes(self) -> bytes:
        d = asdict(self) | {"rule_params": dict(self.rule_params)}
        if not self.param_shapes:
            del d["param_shapes"]  # recipes from before Flower clients keep their bytes
        if not self.model_source:
            del d["model_source"]
        for k in ("base_model", "lora_rank", "lora_alpha", "lora_targets", "lora_full", *DP_FIELDS, "secagg"):
            if not d[k]:
                del d[k]  # recipes from before fine-tuning keep their bytes
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @cached_property
    def challenge_rule(self) -> tuple[int, int, int, int]:
        """The on-chain challenge rule (see challenges.vy): (rule, param1, param2, score), the
        registered rule's ``chain_code`` and ``chain_params``. Cached: a recipe is immutable, and
        a secure-aggregation task's rule holds the model's length (a model build)."""
        if self.chunk_size != 64 or self.frac_bits != 16:
            return (CHALLENGE_NONE, 0, 1, SCORE_NONE)
        if self.secagg:  # the unmasked aggregate only (secagg_judge.vy): no single update has a score
            return (CHALLENGE_SECAGG, sum(math.prod(v.shape) for v in self.template().values()), 1, SCORE_NONE)
        score = SCORE_COSINE if self.score == "cosine" else SCORE_NONE
        rule = registry.RULES.get(self.rule)  # unknown here: its nodes refuse it when they aggregate
        if rule is None or not rule.challengeable or self.rule_params.get("nnm"):
            return (CHALLENGE_NONE, 0, 1, score)
        return (rule.chain_code, *rule.chain_params(self.rule_params), score)

    @property
    def hash(self) -> bytes:
        return recipe_hash(self.to_bytes(), self.challenge_rule)

    @classmethod
    def from_bytes(cls, data: bytes) -> Recipe:
        d = json.loads(data)
        d["input_shape"] = tuple(d["input_shape"])
        d["param_shapes"] = tuple(tuple(s) for s in d.get("param_shapes", ()))
        return cls(**d)
