"""Differential privacy of each trainer's released updates: accounting, client-level
clip-and-noise with the bound a validator checks, example-level DP-SGD with Opacus.

What is protected, and against whom. Every update is a public blob, so the guarantee is
each trainer's own, about its own released updates, composed over the rounds it took part
in. Those rounds are on chain, so anyone can recompute a trainer's epsilon. Selection by
on-chain sortition is public too: a trainer's participation is not secret, and there is no
privacy amplification by client sampling.

Two mechanisms (``DpSpec.mechanism``):

- ``"client"``, DP-FedAvg run locally by each trainer (McMahan et al. 2018, "Learning
  Differentially Private Recurrent Language Models"): the trainer clips its update's L2
  norm to C and adds N(0, (sigma C)^2 I) before it commits (``clip_and_noise``).
  Neighbouring datasets: the trainer's whole dataset replaced by any other. Two clipped
  updates differ by at most 2C, so each round the trainer takes part in is
  ``GaussianDpEvent(sigma / 2)`` (accountant relation ``REPLACE_ONE``).
- ``"example"``, DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy") with
  Opacus (``train_local_dp``): neighbouring = one example added or removed. Each round is
  ``steps`` compositions of ``PoissonSampledDpEvent(q, GaussianDpEvent(sigma))`` (relation
  ``ADD_OR_REMOVE_ONE``). The recipe fixes q and steps (each trainer samples each of its
  examples with probability q at every step; its expected batch is q n), so epsilon depends
  only on the recipe and the number of rounds: the chain can enforce a maximum epsilon as a
  maximum number of rounds per trainer (``max_rounds``).

Accountant: dp-accounting's RDP accountant (``dp_accounting.rdp.RdpAccountant``, Mironov
2017; the subsampled Gaussian of Mironov, Talwar and Zhang 2019) over ``RDP_ORDERS``, with
the RDP-to-(epsilon, delta) conversion dp-accounting applies (Canonne, Kamath and Steinke
2020, Prop. 12). The
orders are written out here rather than taken from the library's default, so that an
upgrade of dp-accounting cannot silently move a bound the chain enforces. For small sigma
with larger q, dp-accounting's series for some fractional orders do not converge; it logs
a warning (absl) and drops those orders, so the bound stays valid, slightly looser. Opacus's
separate RDP code gives the same epsilon (1e-6) wherever the series converge.

What a validator can and cannot check. For client-level DP, ``norm_bound_fixed`` bounds the
squared norm of an honest update's fixed-point integers (a clipped update plus Gaussian
noise), except with probability ``failure``; ``within_norm_bound`` checks it exactly, the
same on every machine. That bounds any trainer's influence; it cannot prove noise was
added. The guarantee is the trainer's own: it adds its own noise, drawn from a secret seed
(``clip_and_noise``, ``train_local_dp``).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import warnings
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedchain.errors import LearningError
from fedchain.learning.fixedpoint import CHUNK_SIZE, FRAC_BITS, QMAX, chunked_dot
from fedchain.learning.train import Params, TrainConfig, get_params, set_params

Mechanism = Literal["client", "example"]

# RDP orders: dp-accounting 0.6.0's DEFAULT_RDP_ORDERS, i.e. Opacus's default orders
# (1.1 to 10.9 by 0.1, then 12 to 63) plus 11 and 128, 256, 512, 1024 (large orders give the
# tightest bound when epsilon is small: few rounds or much noise).
RDP_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]
)

MAX_ROUNDS = 10**6  # max_rounds never answers more (an unlimited budget reads as this)
CALIBRATION_RTOL = 1e-4  # calibrate_noise's relative tolerance on sigma
NORM_FAILURE = 2.0**-40  # default chance that an honest client-level update fails its bound

# norm_bound_fixed's margins: a relative 2**-20 on the real bound covers the float32 cast of
# the release (2**-24) and float64 rounding in clipping and adding noise (below 2**-24 for
# up to 2**28 coordinates); 1 per coordinate covers rounding to fixed point (1/2), also when
# the vector is published model minus global model (rounding plus float32 addition, 3/4).
_REL_MARGIN = Decimal(2) ** -20
_COORD_SLACK = Decimal(1)
_DECIMAL_DIGITS = 60


@dataclass(frozen=True)
class DpSpec:
    """A recipe's differential privacy: the mechanism and its parameters.

    Parameters
    ----------
    mechanism : {"client", "example"}
        Client-level DP-FedAvg (``clip_and_noise`` on the update) or example-level DP-SGD
        (``train_local_dp``).
    noise_multiplier : float
        sigma, >= 0: the noise's standard deviation is sigma * clip. 0 means no privacy
        (epsilon is infinite).
    clip : float
        C > 0: the update's L2 norm bound ("client") or each example's gradient's ("example").
    delta : float
        The delta of the (epsilon, delta) guarantee, in (0, 1).
    sampling_rate : float or None
        "example" only: q in (0, 1], the Poisson sampling rate of each DP-SGD step.
    steps : int or None
        "example" only: DP-SGD steps per round, >= 1.
    """

    mechanism: Mechanism
    noise_multiplier: float
    clip: float
    delta: float
    sampling_rate: float | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        if self.mechanism not in ("client", "example"):
            raise ValueError(f"privacy: mechanism must be 'client' or 'example', got {self.mechanism!r}")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier >= 0):
            raise ValueError(f"privacy: noise_multiplier must be finite and >= 0, got {self.noise_multiplier}")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"privacy: clip must be finite and > 0, got {self.clip}")
        if not 0 < self.delta < 1:
            raise ValueError(f"privacy: delta must be in (0, 1), got {self.delta}")
        if self.mechanism == "client":
            if self.sampling_rate is not None or self.steps is not None:
                raise ValueError(
                    "privacy: client-level DP takes no sampling_rate or steps (they belong to example-level DP-SGD)"
                )
            return
        if self.sampling_rate is None or not 0 < self.sampling_rate <= 1:
            raise ValueError(f"privacy: example-level DP needs sampling_rate in (0, 1], got {self.sampling_rate}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"privacy: example-level DP needs an integer steps >= 1, got {self.steps!r}")


# -- accounting


# dp-accounting (1.3 s) and Opacus (3.6 s) are imported where they are used, not with this module:
# every node imports the recipe, which imports this module, and most tasks have no DP.


def round_event(spec: DpSpec):
    """The dp-accounting event (``dp_event.DpEvent``) of one round a trainer takes part in
    (module docstring)."""
    from dp_accounting import dp_event  # type: ignore[import-untyped, unused-ignore]

    if spec.noise_multiplier == 0:
        return dp_event.NonPrivateDpEvent()
    if spec.mechanism == "client":
        return dp_event.GaussianDpEvent(spec.noise_multiplier / 2)  # sensitivity 2C: replace-one
    step = dp_event.PoissonSampledDpEvent(spec.sampling_rate, dp_event.GaussianDpEvent(spec.noise_multiplier))
    return dp_event.SelfComposedDpEvent(step, spec.steps)


def neighboring_relation(spec: DpSpec):
    """Client level: the trainer's dataset replaced; example level: one example added or removed
    (a ``dp_accounting.NeighboringRelation``)."""
    from dp_accounting.privacy_accountant import NeighboringRelation  # type: ignore[import-untyped, unused-ignore]

    return NeighboringRelation.REPLACE_ONE if spec.mechanism == "client" else NeighboringRelation.ADD_OR_REMOVE_ONE


def epsilon(spec: DpSpec, rounds: int) -> float:
    """A trainer's epsilon (at ``spec.delta``) after taking part in ``rounds`` rounds.

    0 rounds give 0.0; sigma = 0 gives inf. Non-decreasing in ``rounds``.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"privacy: rounds must be an integer >= 0, got {rounds!r}")
    if rounds == 0:
        return 0.0
    return _epsilon(spec, rounds)


@functools.lru_cache(maxsize=4096)
def _epsilon(spec: DpSpec, rounds: int) -> float:
    # Cached: every trainer asks it each round (its budget) and an example-level figure costs
    # up to ~0.2 s. dp-accounting logs (absl) each fractional order whose series does not
    # converge and is dropped (a valid, slightly looser bound): quiet here, said in the docstring.
    from dp_accounting.rdp import RdpAccountant  # type: ignore[import-untyped, unused-ignore]

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        accountant = RdpAccountant(list(RDP_ORDERS), neighboring_relation(spec))
        accountant.compose(round_event(spec), rounds)
        return float(accountant.get_epsilon(spec.delta))
    finally:
        absl.setLevel(level)


@functools.lru_cache(maxsize=256)
def max_rounds(spec: DpSpec, max_epsilon: float) -> int:
    """The largest k <= ``MAX_ROUNDS`` with ``epsilon(spec, k) <= max_epsilon``.

    epsilon is non-decreasing in k, so an exponential search then a bisection find it with
    about 2 log2(k) evaluations.
    """
    if math.isnan(max_epsilon) or max_epsilon < 0:
        raise ValueError(f"privacy: max_epsilon must be >= 0, got {max_epsilon}")
    if epsilon(spec, 1) > max_epsilon:
        return 0
    lo = 1  # epsilon(lo) <= max_epsilon
    while True:
        hi = min(2 * lo, MAX_ROUNDS)
        if hi == lo:
            return lo
        if epsilon(spec, hi) > max_epsilon:
            break
        lo = hi
    while hi - lo > 1:  # epsilon(lo) <= max_epsilon < epsilon(hi)
        mid = (lo + hi) // 2
        if epsilon(spec, mid) <= max_epsilon:
            lo = mid
        else:
            hi = mid
    return lo


def calibrate_noise(spec: DpSpec, rounds: int, target_epsilon: float) -> float:
    """The smallest noise multiplier, within a relative ``CALIBRATION_RTOL``, whose epsilon
    after ``rounds`` rounds is at most ``target_epsilon``; ``spec.noise_multiplier`` is ignored.

    Returns sigma with ``epsilon(replace(spec, noise_multiplier=sigma), rounds) <= target``
    while sigma * (1 - CALIBRATION_RTOL) gives more (bisection on a bracket found by
    doubling or halving from 1). 0 rounds need no noise: 0.0.
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"privacy: target_epsilon must be finite and > 0, got {target_epsilon}")
    if rounds == 0:
        return 0.0

    def fits(sigma: float) -> bool:
        return epsilon(_with_sigma(spec, sigma), rounds) <= target_epsilon

    hi = 1.0
    while not fits(hi):
        hi *= 2
        if hi > 2.0**30:
            raise ValueError(f"privacy: no noise multiplier up to 2**30 reaches epsilon {target_epsilon}")
    lo = hi / 2
    while fits(lo):
        hi, lo = lo, lo / 2
        if lo < 2.0**-30:
            return hi
    while hi - lo > CALIBRATION_RTOL * hi:  # not fits(lo), fits(hi)
        mid = (lo + hi) / 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _with_sigma(spec: DpSpec, sigma: float) -> DpSpec:
    return DpSpec(spec.mechanism, sigma, spec.clip, spec.delta, spec.sampling_rate, spec.steps)


# -- client level: the release and the validator's bound


def clip_and_noise(update: np.ndarray, clip: float, noise_multiplier: float, rng: np.random.Generator) -> np.ndarray:
    """Client-level release: ``update`` scaled to L2 norm at most ``clip``, plus
    N(0, (noise_multiplier * clip)^2 I); float32, the same shape (a flat vector).

    The noise must be unpredictable to everyone else: a trainer passes
    ``np.random.default_rng(secrets.randbits(128))``, never a generator seeded from public
    values (round seed, address, CID), from which anyone could subtract the noise again.
    Computed in float64, then rounded once to float32.
    """
    u = np.asarray(update, dtype=np.float64)
    if u.ndim != 1:
        raise ValueError(f"privacy: update must be a flat vector, got shape {u.shape}")
    if not np.all(np.isfinite(u)):
        raise ValueError("privacy: update has NaN/Inf; there is nothing to clip")
    if not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"privacy: clip must be finite and > 0, got {clip}")
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ValueError(f"privacy: noise_multiplier must be finite and >= 0, got {noise_multiplier}")
    norm = float(np.linalg.norm(u))
    if norm > clip:
        u = u * (clip / norm)
    return (u + rng.normal(0.0, noise_multiplier * clip, size=u.shape)).astype(np.float32)


def norm_bound(dim: int, clip: float, noise_multiplier: float, failure: float = NORM_FAILURE) -> float:
    """B with ||clip(u) + z|| <= B except with probability at most ``failure``, for
    z ~ N(0, (sigma C)^2 I_dim): B = C + sigma C (sqrt(dim) + sqrt(2 ln(1/failure))).

    ||clip(u)|| <= C, and ||z|| is a sigma C-Lipschitz function of a standard normal vector
    whose mean is at most sqrt(dim), so P(||z|| > sigma C (sqrt(dim) + t)) <= exp(-t^2 / 2)
    (Gaussian concentration, e.g. Boucheron, Lugosi and Massart 2013, Thm 5.6).
    """
    _check_bound_args(dim, clip, noise_multiplier, failure)
    return clip + noise_multiplier * clip * (math.sqrt(dim) + math.sqrt(2 * math.log(1 / failure)))


def norm_bound_fixed(
    dim: int, clip: float, noise_multiplier: float, frac_bits: int = FRAC_BITS, failure: float = NORM_FAILURE
) -> int:
    """Bound on the squared L2 norm of an honest client-level update's fixed-point integers
    (q = round(x * 2**frac_bits), ``fedchain.learning.fixedpoint``), for consensus.

    ceil((2**frac_bits B (1 + 2**-20) + sqrt(dim))**2) + 1 with B of ``norm_bound``: the
    relative margin covers float32 and float64 rounding of the release, and 1 per coordinate
    the fixed-point rounding (see ``_REL_MARGIN``, ``_COORD_SLACK``). Computed with Python's
    ``decimal`` at 60 digits from the exact values of the float arguments (square root and
    logarithm correctly rounded), so every machine gets the same integer; the final + 1
    covers the last-digit rounding.
    """
    _check_bound_args(dim, clip, noise_multiplier, failure)
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, int) or not 0 <= frac_bits <= 62:
        raise ValueError(f"privacy: frac_bits must be an integer in [0, 62], got {frac_bits!r}")
    with localcontext() as ctx:  # local: vyper (the chain layer) forbids changing the global context
        ctx.prec = _DECIMAL_DIGITS
        c, sigma, d = Decimal(clip), Decimal(noise_multiplier), Decimal(dim)
        tail = (2 * (1 / Decimal(failure)).ln()).sqrt()
        bound = c + sigma * c * (d.sqrt() + tail)
        norm_q = Decimal(2) ** frac_bits * bound * (1 + _REL_MARGIN) + _COORD_SLACK * d.sqrt()
        return int((norm_q * norm_q).to_integral_value(rounding=ROUND_CEILING)) + 1


def within_norm_bound(q: np.ndarray, bound_sq: int) -> bool:
    """Whether the integer vector ``q`` has squared L2 norm <= ``bound_sq``, exactly.

    Fixed-point values (|q| <= QMAX = 2**23) go through ``chunked_dot`` (int64 within a chunk
    of 64, Python ints across chunks); any larger int64 is squared as a Python int.
    """
    q = np.asarray(q)
    if q.dtype.kind not in "iu":
        raise ValueError(f"privacy: within_norm_bound needs an integer vector, got dtype {q.dtype}")
    q = q.ravel()
    if q.size == 0:
        return bound_sq >= 0
    if q.dtype.kind == "i" and int(q.min()) >= -QMAX and int(q.max()) <= QMAX:
        total = chunked_dot(q.astype(np.int64), q.astype(np.int64), CHUNK_SIZE)
    else:
        total = sum(v * v for v in map(int, q.tolist()))
    return total <= bound_sq


def _check_bound_args(dim: int, clip: float, noise_multiplier: float, failure: float) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
        raise ValueError(f"privacy: dim must be an integer >= 0, got {dim!r}")
    if not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"privacy: clip must be finite and > 0, got {clip}")
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ValueError(f"privacy: noise_multiplier must be finite and >= 0, got {noise_multiplier}")
    if not 0 < failure < 1:
        raise ValueError(f"privacy: failure must be in (0, 1), got {failure}")


# -- example level: DP-SGD with Opacus


def train_local_dp(
    model: nn.Module,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    spec: DpSpec,
    seed: int,
) -> Params:
    """``train_local`` with example-level DP-SGD: ``spec.steps`` steps, each on a Poisson
    sample of the examples at rate ``spec.sampling_rate``; returns the new parameters.

    Each step clips every sampled example's gradient to L2 norm ``spec.clip``, sums, adds
    N(0, (sigma C)^2 I) and divides by the expected batch q n (Opacus's ``DPOptimizer`` on a
    ``GradSampleModule``; batches from Opacus's ``UniformWithReplacementSampler`` with
    ``steps`` fixed, not 1/q). An empty sample is still a step: noise only. Then SGD at
    ``cfg.lr`` with ``cfg.momentum`` (post-processing of the noisy gradients, so privacy is
    unchanged). ``cfg.epochs`` and ``cfg.batch_size`` are not used (q and steps replace
    them); ``cfg.proximal_mu`` must be 0.

    Opacus wraps a deep copy of ``model``; ``model`` itself only ends up holding the
    result, as after ``train_local``, and the names are ``get_params(model)``'s.

    ``seed`` drives both the sampling and the noise, so for a real guarantee it must be
    secret (``secrets.randbits(63)``); a public seed lets anyone subtract the noise. The
    same seed gives the same parameters (simulations use that). Noise is ``torch.normal``
    from a seeded CPU generator: Opacus's ``secure_mode`` against floating-point attacks
    (Mironov 2012) is not used.

    Checked 2026-12 with opacus 1.6.0 on torch 2.13.0 (CPU): per-example gradients of
    logreg, mlp and cnn match autograd one example at a time, empty batches work. torch
    warns "Full backward hook is firing when gradients are computed with respect to module
    outputs since no inputs require gradients" (Opacus's hooks on the first layer, whose input
    needs no gradient); that is expected and silenced here.
    """
    if spec.mechanism != "example":
        raise ValueError(f"privacy: train_local_dp is example-level DP-SGD, got a {spec.mechanism!r} spec")
    if cfg.proximal_mu != 0:
        raise ValueError("privacy: FedProx (proximal_mu > 0) is not supported with example-level DP")
    if len(x) != len(y) or len(x) == 0:
        raise LearningError(f"need matching, non-empty x and y, got {len(x)} and {len(y)}")
    assert spec.sampling_rate is not None and spec.steps is not None  # DpSpec checked them
    set_params(model, params)
    work = copy.deepcopy(model)
    xs, ys = torch.tensor(np.asarray(x, dtype=np.float32)), torch.tensor(np.asarray(y, dtype=np.int64))
    gen = torch.Generator().manual_seed(seed)
    GradSampleModule, DPOptimizer, UniformWithReplacementSampler = _opacus()
    gsm = GradSampleModule(work, loss_reduction="sum")
    opt = DPOptimizer(
        torch.optim.SGD(work.parameters(), lr=cfg.lr, momentum=cfg.momentum),
        noise_multiplier=spec.noise_multiplier,
        max_grad_norm=spec.clip,
        expected_batch_size=spec.sampling_rate * len(xs),
        loss_reduction="mean",  # divide the noisy sum by expected_batch_size
        generator=gen,
    )
    sampler = UniformWithReplacementSampler(
        num_samples=len(xs), sample_rate=spec.sampling_rate, generator=gen, steps=spec.steps
    )
    gsm.train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        for batch in sampler:
            index = torch.tensor(batch, dtype=torch.int64)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(gsm(xs[index]), ys[index], reduction="sum").backward()
            opt.step()
    gsm.remove_hooks()
    result = get_params(work)
    set_params(model, result)
    return result


def _opacus():
    """Opacus's GradSampleModule, DPOptimizer and UniformWithReplacementSampler. Importing Opacus
    adds a stderr handler to the root logger (every log line would then be printed twice in a
    node whose logging is set up already): whatever it adds is taken out again."""
    before = list(logging.root.handlers)
    try:
        from opacus import GradSampleModule  # type: ignore[import-untyped, unused-ignore]
        from opacus.optimizers import DPOptimizer  # type: ignore[import-untyped, unused-ignore]
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler  # type: ignore[import-untyped, unused-ignore]
    finally:
        for h in [h for h in logging.root.handlers if h not in before]:
            logging.root.removeHandler(h)
    return GradSampleModule, DPOptimizer, UniformWithReplacementSampler
