"""Secure aggregation: SecAgg (Bonawitz et al., CCS 2017) on the sparse graph of SecAgg+
(Bell et al., CCS 2020), in the fixed-point integers that FedAvg reaches consensus on.

Every trainer hides its update behind masks that cancel in the sum; the validators (and any
watcher) unmask only the sum of the updates that arrived, from shares that the survivors
reveal. Unmasking, ``unmask``, is a pure function of public material (key adverts, share
bundles, masked inputs, revealed shares): every machine computes the same aggregate, bit
for bit, and it equals ``fedavg.aggregate_update`` of the same updates.

The round, in four steps (each message is a blob; the chain orders them and is the
broadcast channel, so every party sees the same sets U1 >= U_shared >= U2):

1. advertise: trainer u draws two X25519 key pairs, c_u (to encrypt shares) and s_u (for
   pairwise masks), and a 32-byte self-mask seed b_u (``os.urandom``); it publishes
   ``KeyAdvert(u, c_pk, s_pk)``. U1 = the trainers who advertised.
2. share keys: u Shamir-shares b_u and the raw bytes of its s secret key among its
   neighbours in U1 (``SecAggParams.neighbours``), threshold t; each holder v's pair of
   shares is encrypted with AES-256-GCM under HKDF-SHA256(X25519(c_u, c_v)) (info: the
   round context and both c public keys, sender first), so a share blob is opaque to all
   but v. The ``ShareBundle`` also carries a salted SHA-256 commitment to every share and a
   commitment to b_u. U_shared = the trainers whose bundles were published.
3. masked input: u sends y_u = w_u q_u + PRG(b_u) + sum_{v in N(u), v > u} PRG(s_uv)
   - sum_{v in N(u), v < u} PRG(s_uv) (mod 2**64), v ranging over u's neighbours in
   U_shared, ">" the canonical order (the sorted trainer ids), w_u = min(samples_u,
   MAX_WEIGHT) its public FedAvg weight (fedchain reveals sample counts anyway), s_uv =
   HKDF-SHA256(X25519(s_u, s_v); info: context, both s public keys in byte order).
   U2 = the trainers whose masked inputs arrived by the deadline.
4. unmask: every holder answers the public ``UnmaskRequest`` (survivors U2, dropped
   U_shared - U2) with ``SecAggTrainer.answer_unmasking``: the b-share of each survivor, the
   s-share of each dropped sharer, never both for one sharer (it refuses a request, or a
   second request, that would make it reveal both). ``unmask`` verifies every revealed share
   against its commitment, reconstructs b_u for u in U2 and s_v for each dropped v with a
   neighbour in U2, subtracts PRG(b_u) and the pairwise masks that no longer cancel, and
   returns sum_{u in U2} w_u q_u and sum w_u; ``aggregate_fedavg`` floor-divides them
   exactly as ``fedavg.aggregate_update`` does.

Arithmetic and headroom. Masked vectors are numpy uint64, wrapping mod 2**64. Inputs are
int64 fixed point with |q| <= QMAX = 2**23, times weights 1 <= w <= MAX_WEIGHT = 2**20, so
|w q| <= 2**43. The unmasked sum mod 2**64, read as int64, is the exact integer
S = sum w_u q_u provided |S| < 2**63; |S| <= QMAX * W with W = sum w_u, so the bound is
W <= MAX_TOTAL_WEIGHT = (2**63 - 1) // QMAX = 2**40 - 1. With at most MAX_UPDATES = 256
trainers W <= 2**28 and |S| <= 2**51, the same bound under which ``aggregate_update``'s
int64 sum is exact: the two agree bit for bit. ``SecAggTrainer.mask`` refuses |q| > QMAX
and samples < 1; ``unmask`` refuses weights outside [1, MAX_WEIGHT] and W > 2**40 - 1.

PRG. Pairwise masks: a 32-byte seed keys AES-256 in CTR mode over zero bytes; the initial
16-byte counter block is SHA-256(VERSION "/prg-nonce/" "pair" context)[:16]. Each seed keys
exactly one stream, so the fixed nonce is never reused under one key; the keystream is read
as little-endian uint64 words. Self-masks (``self_prg``): word i is the big-endian 8 bytes at
8 (i mod 4) of keccak256(b || uint256(i // 4)), about 15 times slower than AES here but
computable by a contract, which is what lets a judge recompute an unmasked value on chain
(``secagg_judge.vy``). No numpy RNG touches a mask.

Shamir. Over GF(p), p = 2**255 - 19. A 32-byte secret is two 16-byte big-endian limbs,
each < 2**128 < p, shared with independent polynomials of degree t - 1 at the same points;
holder v's point is x = 1 + its canonical index. ``reconstruct`` interpolates at 0 from the
first t shares (by x) and checks that every further share lies on the same polynomial.

Graph and parameters (``default_degree``). The graph is the Harary graph H(k, n): the
circulant graph with offsets 1..k/2 (plus the diameter n/2 when k is odd, n even) on the
trainers in the order of SHA-256(graph_seed, id) (a public seed, e.g. the round seed, so
every party derives the same graph). H(k, n) is k-connected. With D = ceil(n/3) tolerated
dropouts and C = floor(n/5) tolerated corrupt trainers (colluding with every validator and
watcher), the defaults are k = min(n - 1, D + C + 1) (+1 when n k would be odd) and
t = k - D. Then, for ANY (worst-case, not random) choice of dropouts and corruptions:

- liveness: every trainer loses at most D of its k holders, so t holders remain;
- privacy: a corrupt coalition holds at most C < t shares of any honest trainer's secrets
  and honest holders reveal only one kind per sharer, so it can never reconstruct both b_u
  and s_u of an honest u; and removing the dropped and the corrupt (at most D + C < k
  vertices) leaves the honest survivors connected in H(k, n), so their pairwise masks
  hide every partial sum: the transcript reveals their inputs only through their total.
  Hence ``unmask`` and ``answer_unmasking`` refuse to proceed when more than k - t trainers
  are missing from U2 (``TooManyDropoutsError``), whatever the shares would allow.

Bell et al. take k = O(log n) and bound these events with high probability for random
dropouts and a graph unknown to the adversary when it corrupts. At n <= 256 the
neighbourhood bounds alone (exact hypergeometric tails: a third dropping at random, failure
below 2**-20 per round; a coalition holding t shares below 2**-40) already want k of the
order of the worst-case rule: k = 50 against 55 here for n = 100 with a fifth corrupt, 35
against 45 with a tenth. So fedchain takes the deterministic, worst-case guarantee above,
which holds even when dropouts are chosen by the adversary; the permutation seed then only
spreads neighbourhoods. Both assumptions (D, C) are arguments of ``default_degree``; k and
t can also be set directly (``SecAggParams.create(k=..., t=...)``), and the guarantee then
reads: liveness while at most k - t trainers fail to reveal, privacy while fewer than t of
any trainer's neighbours are corrupt and the corrupt plus the missing number fewer than k.

What the checks detect (and what they cannot):

- a revealed share that is not the one the sharer dealt: its salted commitment does not
  match (``ShareCommitmentError``, naming the holder). The commitment binds the holder to
  the sharer's share; it does NOT prove that the sharer's shares are consistent (Feldman
  VSS would) nor that the shared secret is the one the sharer masked with;
- a sharer whose shares are not on one polynomial: detected when more than t shares are
  revealed (``InconsistentSharesError``, attributable to the sharer, since every share was
  committed by it);
- a reconstructed secret that is not the sharer's own: s_v against its advertised public
  key, b_u against its published commitment (``SeedMismatchError``, attributable);
- a trainer whose masked input used a self mask or pairwise keys other than those it shared
  or advertised: the sum is off by a pseudo-random vector, which ``unmask`` detects (with
  overwhelming probability, any coordinate beyond QMAX * W: ``AggregateOutOfRangeError``)
  but cannot attribute. A trainer that instead adds any in-range offset to its input is
  indistinguishable from one with a different update: under masking no per-update check
  (norm bounds, robust rules, a challenge of one update) is possible, and a challenge of the
  aggregate can only recompute the unmasking from the published material.

Errors: every failure is a ``SecAggError`` (a ``LearningError``) subclass with a message.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sha3 import keccak_256

from fedchain.errors import LearningError
from fedchain.learning.aggregate.common import MAX_PARAMS
from fedchain.learning.aggregate.fedavg import weights_of
from fedchain.learning.fixedpoint import MAX_UPDATES, MAX_WEIGHT, QMAX

VERSION = b"fedchain/secagg/v1"
PRIME = (1 << 255) - 19
SECRET_BYTES = 32
LIMB_BYTES = 16
KEY_BYTES = 32
SALT_BYTES = 32
NONCE_BYTES = 12
MAX_TOTAL_WEIGHT = ((1 << 63) - 1) // QMAX  # 2**40 - 1: QMAX * W < 2**63
B_SHARE, S_SHARE = "b", "s"

RandBytes = Callable[[int], bytes]


# --- errors -------------------------------------------------------------------------------


class SecAggError(LearningError):
    """Secure aggregation failed or was refused."""


class ParameterError(SecAggError):
    """Round parameters (trainers, k, t, dimension, seed) are invalid."""


class BadKeyError(SecAggError):
    """A public key is malformed, duplicated, or gives a degenerate X25519 secret."""


class BundleError(SecAggError):
    """A share bundle is malformed or does not address exactly the sharer's holders."""


class ShareDecryptionError(SecAggError):
    """A holder's encrypted share does not authenticate or does not parse."""


class ShareCommitmentError(SecAggError):
    """A share does not match the commitment its sharer published."""


class NotEnoughSharesError(SecAggError):
    """Fewer than t (valid) shares of a secret."""


class InconsistentSharesError(SecAggError):
    """Shares of one secret do not lie on one polynomial of degree t - 1."""


class SeedMismatchError(SecAggError):
    """A reconstructed secret is not the one its owner advertised or committed to."""


class MaskedInputError(SecAggError):
    """A masked input has the wrong shape, type or weight, or comes from a non-sharer."""


class HeadroomError(SecAggError):
    """Inputs could overflow the signed 64-bit sum: |q| > QMAX, bad weight, or W too big."""


class RevealRefusedError(SecAggError):
    """An unmasking request or reveal that would expose both secrets of one trainer, or too
    many dropouts for the privacy guarantee."""


class TooManyDropoutsError(RevealRefusedError):
    """More than k - t trainers are missing: unmasking could expose partial sums."""


class AggregateOutOfRangeError(SecAggError):
    """The unmasked sum leaves |S| <= QMAX * W: some trainer masked with other secrets."""


# --- encoding helpers ---------------------------------------------------------------------


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _id(s: str) -> bytes:
    raw = s.encode()
    return _u32(len(raw)) + raw


def _int32(n: int) -> bytes:
    return n.to_bytes(32, "big")


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise SecAggError(f"{self.what}: truncated blob")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "big")

    def int32(self) -> int:
        return int.from_bytes(self.take(32), "big")

    def id(self) -> str:
        try:
            return self.take(self.u32()).decode()
        except UnicodeDecodeError as e:
            raise SecAggError(f"{self.what}: a trainer id is not UTF-8") from e

    def magic(self, magic: bytes) -> None:
        if self.take(len(magic)) != magic:
            raise SecAggError(f"{self.what}: not a {self.what} blob")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise SecAggError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")


def _sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def _raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _exchange(private: X25519PrivateKey, public: bytes, who: str) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as e:  # a low-order point gives the all-zero secret, which OpenSSL refuses
        raise BadKeyError(f"the public key of {who} gives no X25519 shared secret: {e}") from e


# --- parameters and the graph -------------------------------------------------------------


def default_degree(n: int, max_dropouts: int | None = None, max_corrupt: int | None = None) -> tuple[int, int]:
    """(k, t) for n trainers tolerating ``max_dropouts`` (default ceil(n/3)) dropouts and
    ``max_corrupt`` (default floor(n/5)) corrupt trainers, in the worst case (module doc)."""
    if n < 2:
        raise ParameterError(f"secure aggregation needs at least 2 trainers, not {n}")
    d = math.ceil(n / 3) if max_dropouts is None else max_dropouts
    c = n // 5 if max_corrupt is None else max_corrupt
    if d < 0 or c < 0:
        raise ParameterError("max_dropouts and max_corrupt must be non-negative")
    k = min(n - 1, d + c + 1)
    if (k * n) % 2:  # no k-regular graph: n is odd, so k < n - 1 is odd and k + 1 <= n - 1
        k += 1
    t = k - d
    if t < 1 or t <= c:
        raise ParameterError(
            f"{n} trainers cannot tolerate {d} dropouts and {c} corrupt trainers at once (need {d} + {c} < {n - 1})"
        )
    return k, t


@dataclass(frozen=True)
class SecAggParams:
    """The public parameters of one SecAgg round; ``trainers`` sorted and unique (the
    canonical order), ``dim`` the update length, ``graph_seed`` 32 public bytes."""

    task_id: int
    round_id: int
    trainers: tuple[str, ...]
    dim: int
    k: int
    t: int
    graph_seed: bytes

    @classmethod
    def create(
        cls,
        task_id: int,
        round_id: int,
        trainers: Iterable[str],
        dim: int,
        graph_seed: bytes,
        *,
        k: int | None = None,
        t: int | None = None,
        max_dropouts: int | None = None,
        max_corrupt: int | None = None,
    ) -> SecAggParams:
        ids = tuple(sorted(set(trainers)))
        if k is None or t is None:
            dk, dt = default_degree(len(ids), max_dropouts, max_corrupt)
            k = dk if k is None else k
            t = dt if t is None else t
        return cls(task_id, round_id, ids, dim, k, t, graph_seed)

    def __post_init__(self) -> None:
        n = len(self.trainers)
        if not all(isinstance(u, str) and u for u in self.trainers):
            raise ParameterError("trainer ids must be non-empty strings")
        if list(self.trainers) != sorted(set(self.trainers)):
            raise ParameterError("trainers must be sorted and unique (the canonical order)")
        if not 2 <= n <= MAX_UPDATES:
            raise ParameterError(f"{n} trainers: secure aggregation takes 2 to {MAX_UPDATES}")
        if not 1 <= self.dim <= MAX_PARAMS:
            raise ParameterError(f"dimension {self.dim} outside 1..{MAX_PARAMS}")
        if not 1 <= self.t <= self.k <= n - 1:
            raise ParameterError(f"need 1 <= t <= k <= n - 1, got t={self.t}, k={self.k}, n={n}")
        if (self.k * n) % 2:
            raise ParameterError(f"no {self.k}-regular graph on {n} trainers (k n is odd)")
        for name, v in (("task_id", self.task_id), ("round_id", self.round_id)):
            if not 0 <= v < 1 << 256:
                raise ParameterError(f"{name} must be a uint256")
        if not isinstance(self.graph_seed, bytes) or len(self.graph_seed) != 32:
            raise ParameterError("graph_seed must be 32 bytes")

    @cached_property
    def context(self) -> bytes:
        return VERSION + _int32(self.task_id) + _int32(self.round_id)

    @cached_property
    def index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.trainers)}

    @cached_property
    def ring(self) -> tuple[str, ...]:
        """The trainers in the public pseudo-random order the circulant graph is laid on."""
        return tuple(sorted(self.trainers, key=lambda u: (_sha256(VERSION, b"/graph/", self.graph_seed, _id(u)), u)))

    @cached_property
    def graph(self) -> dict[str, tuple[str, ...]]:
        n, ring = len(self.trainers), self.ring
        offsets = list(range(1, self.k // 2 + 1))
        if self.k % 2:
            offsets.append(n // 2)
        pos = {u: i for i, u in enumerate(ring)}
        out = {}
        for u in self.trainers:
            p = pos[u]
            nb = {ring[(p + o) % n] for o in offsets} | {ring[(p - o) % n] for o in offsets}
            out[u] = tuple(sorted(nb, key=self.index.__getitem__))
        return out

    def neighbours(self, u: str) -> tuple[str, ...]:
        self.check_trainer(u)
        return self.graph[u]

    def x_of(self, holder: str) -> int:
        """The Shamir evaluation point of a holder: 1 + its canonical index."""
        self.check_trainer(holder)
        return 1 + self.index[holder]

    def check_trainer(self, u: str) -> None:
        if u not in self.index:
            raise SecAggError(f"{u!r} is not a trainer of this round")

    @property
    def max_missing(self) -> int:
        """The most trainers that may be missing from U2 (k - t): the tolerated dropouts."""
        return self.k - self.t


# --- PRG and seeds ------------------------------------------------------------------------


def prg(seed: bytes, n: int, purpose: bytes, context: bytes) -> np.ndarray:
    """n uint64 words of AES-256-CTR keystream under ``seed`` (module doc)."""
    if len(seed) != 32:
        raise SecAggError("a mask seed is 32 bytes")
    nonce = _sha256(VERSION, b"/prg-nonce/", purpose, context)[:16]
    enc = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    stream = enc.update(bytes(8 * n)) + enc.finalize()
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


def self_prg(seed: bytes, n: int) -> np.ndarray:
    """The self-mask: n uint64 words, word i the big-endian 8 bytes at 8 (i mod 4) of
    keccak256(seed || uint256(i // 4)). Keccak, not AES, so that a judge contract can expand
    one word of it (``secagg_judge.vy``); b is a fresh 32-byte secret per trainer and round,
    so the stream needs no further domain."""
    if len(seed) != 32:
        raise SecAggError("a mask seed is 32 bytes")
    blocks = -(-n // 4)
    stream = b"".join(keccak_256(seed + i.to_bytes(32, "big")).digest() for i in range(blocks))
    return np.frombuffer(stream, dtype=">u8")[:n].astype(np.uint64)


def self_mask_hash(seed: bytes) -> bytes:
    """keccak256 of a self-mask seed: what a trainer posts on the board with its bundle, and
    what every unmasking (and the judge) holds the rebuilt seed to."""
    return keccak_256(seed).digest()


def pair_seed(params: SecAggParams, private: X25519PrivateKey, own_pk: bytes, peer_pk: bytes, peer: str) -> bytes:
    """s_uv = HKDF-SHA256(X25519(s_u, s_v)), info: context and both s public keys, sorted."""
    lo, hi = sorted((own_pk, peer_pk))
    return _hkdf(_exchange(private, peer_pk, peer), params.context + b"/pairwise" + lo + hi)


def _share_key(
    params: SecAggParams, private: X25519PrivateKey, peer_pk: bytes, peer: str, sender_pk: bytes, receiver_pk: bytes
) -> bytes:
    """The AES-256-GCM key of the shares from sender to receiver: HKDF-SHA256(X25519(c_u, c_v)),
    info: context and both c public keys, sender first (each side passes the other's key)."""
    return _hkdf(_exchange(private, peer_pk, peer), params.context + b"/share-key" + sender_pk + receiver_pk)


def b_commitment(params: SecAggParams, sharer: str, seed: bytes) -> bytes:
    return _sha256(params.context, b"/self-seed/", _id(sharer), seed)


def share_commitment(
    params: SecAggParams, kind: str, sharer: str, holder: str, x: int, ys: tuple[int, int], salt: bytes
) -> bytes:
    """SHA-256 over the context, the kind, both ids, the share and a 32-byte salt."""
    return _sha256(
        params.context,
        b"/share-commitment/",
        kind.encode(),
        _id(sharer),
        _id(holder),
        _int32(x),
        _int32(ys[0]),
        _int32(ys[1]),
        salt,
    )


# --- Shamir secret sharing ----------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One holder's share of a 32-byte secret: the point x, one y per 16-byte limb, and the
    threshold t of the sharing."""

    x: int
    ys: tuple[int, int]
    t: int


def _field_element(randbytes: RandBytes) -> int:
    while True:
        v = int.from_bytes(randbytes(32), "big") & ((1 << 255) - 1)
        if v < PRIME:
            return v


def share(secret: bytes, t: int, holders: Sequence[int], randbytes: RandBytes = os.urandom) -> dict[int, Share]:
    """Shamir shares of a 32-byte ``secret`` at the distinct points ``holders`` (1 <= x < p);
    any t of them reconstruct it, t - 1 reveal nothing."""
    if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
        raise SecAggError(f"a shared secret is {SECRET_BYTES} bytes")
    xs = list(holders)
    if len(set(xs)) != len(xs) or not all(isinstance(x, int) and 1 <= x < PRIME for x in xs):
        raise SecAggError("share points must be distinct integers in 1..p-1")
    if not 1 <= t <= len(xs):
        raise SecAggError(f"threshold {t} outside 1..{len(xs)} holders")
    limbs = [int.from_bytes(secret[i : i + LIMB_BYTES], "big") for i in range(0, SECRET_BYTES, LIMB_BYTES)]
    polys = [[limb] + [_field_element(randbytes) for _ in range(t - 1)] for limb in limbs]
    out = {}
    for x in xs:
        ys = []
        for coeffs in polys:
            y = 0
            for c in reversed(coeffs):
                y = (y * x + c) % PRIME
            ys.append(y)
        out[x] = Share(x, (ys[0], ys[1]), t)
    return out


def _interpolator(xs: Sequence[int]) -> Callable[[Sequence[int], int], int]:
    """Lagrange interpolation through the points xs, evaluated at any z (barycentric)."""
    weights = []
    for j, xj in enumerate(xs):
        d = 1
        for m, xm in enumerate(xs):
            if m != j:
                d = d * (xj - xm) % PRIME
        weights.append(pow(d, -1, PRIME))

    def at(ys: Sequence[int], z: int) -> int:
        if z in xs:
            return ys[xs.index(z)] % PRIME
        ell = 1
        for xm in xs:
            ell = ell * (z - xm) % PRIME
        s = 0
        for xj, wj, yj in zip(xs, weights, ys):
            s = (s + wj * yj * pow(z - xj, -1, PRIME)) % PRIME
        return ell * s % PRIME

    return at


def reconstruct(shares: Iterable[Share]) -> bytes:
    """The secret from at least t shares (Lagrange at 0 over the t lowest points); every
    further share must lie on the same polynomial. Raises ``NotEnoughSharesError`` on fewer
    than t shares, ``InconsistentSharesError`` on shares of different sharings."""
    by_x: dict[int, Share] = {}
    for s in shares:
        if s.x in by_x and by_x[s.x] != s:
            raise InconsistentSharesError(f"two different shares at the point x={s.x}")
        by_x[s.x] = s
    if not by_x:
        raise NotEnoughSharesError("no shares to reconstruct from")
    ordered = [by_x[x] for x in sorted(by_x)]
    t = ordered[0].t
    if any(s.t != t for s in ordered) or t < 1:
        raise InconsistentSharesError("shares of different thresholds")
    if len(ordered) < t:
        raise NotEnoughSharesError(f"{len(ordered)} shares, {t} needed")
    base, extra = ordered[:t], ordered[t:]
    at = _interpolator([s.x for s in base])
    limbs = []
    for i in range(2):
        ys = [s.ys[i] for s in base]
        for e in extra:
            if at(ys, e.x) != e.ys[i] % PRIME:
                raise InconsistentSharesError(f"the share at x={e.x} is not on the polynomial of the others")
        limbs.append(at(ys, 0))
    if any(limb >> (8 * LIMB_BYTES) for limb in limbs):
        raise InconsistentSharesError("the shares do not encode a 32-byte secret")
    return b"".join(limb.to_bytes(LIMB_BYTES, "big") for limb in limbs)


# --- messages (blobs) ---------------------------------------------------------------------

_MAGIC = b"FSA1"


@dataclass(frozen=True)
class KeyAdvert:
    """Step 1: a trainer's two X25519 public keys (raw, 32 bytes each)."""

    trainer: str
    c_pk: bytes
    s_pk: bytes

    def to_bytes(self) -> bytes:
        return _MAGIC + b"A" + _id(self.trainer) + self.c_pk + self.s_pk

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyAdvert:
        r = _Reader(data, "key advert")
        r.magic(_MAGIC + b"A")
        out = cls(r.id(), r.take(KEY_BYTES), r.take(KEY_BYTES))
        r.end()
        return out


@dataclass(frozen=True)
class ShareBundle:
    """Step 2: a sharer's encrypted shares (holder -> nonce || AES-GCM ciphertext), the
    commitments to each holder's (b-share, s-share), and the commitment to b."""

    sharer: str
    b_commitment: bytes
    ciphertexts: Mapping[str, bytes]
    commitments: Mapping[str, tuple[bytes, bytes]]

    def to_bytes(self) -> bytes:
        parts = [_MAGIC, b"B", _id(self.sharer), self.b_commitment, _u32(len(self.ciphertexts))]
        for h in sorted(self.ciphertexts):
            cb, cs = self.commitments[h]
            ct = self.ciphertexts[h]
            parts += [_id(h), cb, cs, _u32(len(ct)), ct]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> ShareBundle:
        r = _Reader(data, "share bundle")
        r.magic(_MAGIC + b"B")
        sharer, bc = r.id(), r.take(32)
        cts: dict[str, bytes] = {}
        coms: dict[str, tuple[bytes, bytes]] = {}
        for _ in range(r.u32()):
            h = r.id()
            coms[h] = (r.take(32), r.take(32))
            cts[h] = r.take(r.u32())
        r.end()
        return cls(sharer, bc, cts, coms)


@dataclass(frozen=True, eq=False)
class MaskedInput:
    """Step 3: a trainer's masked vector (uint64, mod 2**64) and its public FedAvg weight."""

    trainer: str
    weight: int
    y: np.ndarray

    def to_bytes(self) -> bytes:
        y = np.asarray(self.y, dtype=np.uint64)
        return (
            _MAGIC
            + b"M"
            + _id(self.trainer)
            + self.weight.to_bytes(8, "big")
            + _u32(y.size)
            + y.astype("<u8").tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> MaskedInput:
        r = _Reader(data, "masked input")
        r.magic(_MAGIC + b"M")
        trainer, weight, n = r.id(), r.u64(), r.u32()
        y = np.frombuffer(r.take(8 * n), dtype="<u8").astype(np.uint64)
        r.end()
        return cls(trainer, weight, y)


@dataclass(frozen=True)
class RevealedShare:
    """A share as a holder reveals it: its point, its limbs, and the commitment's salt."""

    x: int
    ys: tuple[int, int]
    salt: bytes


@dataclass(frozen=True)
class Reveal:
    """Step 4: one holder's answer: b-shares of survivors, s-shares of dropped sharers."""

    holder: str
    b_shares: Mapping[str, RevealedShare]
    s_shares: Mapping[str, RevealedShare]

    def to_bytes(self) -> bytes:
        parts = [_MAGIC, b"R", _id(self.holder)]
        for group in (self.b_shares, self.s_shares):
            parts.append(_u32(len(group)))
            for sharer in sorted(group):
                s = group[sharer]
                parts += [_id(sharer), _u32(s.x), _int32(s.ys[0]), _int32(s.ys[1]), s.salt]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Reveal:
        r = _Reader(data, "reveal")
        r.magic(_MAGIC + b"R")
        holder = r.id()
        groups: list[dict[str, RevealedShare]] = []
        for _ in range(2):
            g = {}
            for _ in range(r.u32()):
                sharer = r.id()
                x = r.u32()
                g[sharer] = RevealedShare(x, (r.int32(), r.int32()), r.take(SALT_BYTES))
            groups.append(g)
        r.end()
        return cls(holder, groups[0], groups[1])


@dataclass(frozen=True)
class UnmaskRequest:
    """What every holder is asked in step 4, derived from public facts alone: the survivors
    U2 (masked input arrived) and the dropped sharers U_shared - U2."""

    survivors: frozenset[str]
    dropped: frozenset[str]


def unmask_request(bundles: Collection[str], masked_inputs: Collection[str]) -> UnmaskRequest:
    """The request for the sharers ``bundles`` (U_shared) of which ``masked_inputs`` (U2) arrived."""
    survivors = frozenset(masked_inputs)
    return UnmaskRequest(survivors, frozenset(bundles) - survivors)


_PLAINTEXT_BYTES = 4 + 6 * 32


def _encode_pair(x: int, b: Share, b_salt: bytes, s: Share, s_salt: bytes) -> bytes:
    return _u32(x) + _int32(b.ys[0]) + _int32(b.ys[1]) + b_salt + _int32(s.ys[0]) + _int32(s.ys[1]) + s_salt


def _decode_pair(data: bytes) -> tuple[RevealedShare, RevealedShare]:
    r = _Reader(data, "share plaintext")
    x = r.u32()
    b = RevealedShare(x, (r.int32(), r.int32()), r.take(SALT_BYTES))
    s = RevealedShare(x, (r.int32(), r.int32()), r.take(SALT_BYTES))
    r.end()
    return b, s


def _aad(params: SecAggParams, sharer: str, holder: str) -> bytes:
    return params.context + b"/share/" + _id(sharer) + _id(holder)


# --- validation of public material --------------------------------------------------------


def validate_adverts(params: SecAggParams, adverts: Mapping[str, KeyAdvert]) -> None:
    """Every advert is a trainer's own, with 32-byte keys, and no key appears twice."""
    seen: set[bytes] = set()
    for u, a in adverts.items():
        params.check_trainer(u)
        if a.trainer != u:
            raise BadKeyError(f"the advert filed under {u!r} is {a.trainer!r}'s")
        for key in (a.c_pk, a.s_pk):
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise BadKeyError(f"{u!r}: a public key is {KEY_BYTES} raw bytes")
            if key in seen:
                raise BadKeyError(f"{u!r}: public key {key.hex()[:16]}... appears twice in the round")
            seen.add(key)


def holders_of(params: SecAggParams, sharer: str, adverts: Collection[str]) -> tuple[str, ...]:
    """The trainers that hold ``sharer``'s shares: its neighbours that advertised keys."""
    return tuple(v for v in params.neighbours(sharer) if v in adverts)


def validate_bundle(params: SecAggParams, adverts: Mapping[str, KeyAdvert], bundle: ShareBundle) -> None:
    """A bundle addresses exactly its sharer's holders, at least t of them, with 32-byte
    commitments and ciphertexts of the right size."""
    u = bundle.sharer
    if u not in adverts:
        raise BundleError(f"{u!r} shared keys without advertising them")
    holders = holders_of(params, u, adverts)
    if len(holders) < params.t:
        raise BundleError(f"{u!r} has {len(holders)} holders, fewer than t={params.t}")
    if set(bundle.ciphertexts) != set(holders) or set(bundle.commitments) != set(holders):
        raise BundleError(f"the bundle of {u!r} does not address exactly its {len(holders)} holders")
    if len(bundle.b_commitment) != 32 or any(len(c) != 32 for pair in bundle.commitments.values() for c in pair):
        raise BundleError(f"the bundle of {u!r} has a malformed commitment")
    size = NONCE_BYTES + _PLAINTEXT_BYTES + 16
    if any(len(ct) != size for ct in bundle.ciphertexts.values()):
        raise BundleError(f"the bundle of {u!r} has a ciphertext of the wrong size")


def _validate_bundles(
    params: SecAggParams, adverts: Mapping[str, KeyAdvert], bundles: Mapping[str, ShareBundle]
) -> None:
    for u, b in bundles.items():
        if b.sharer != u:
            raise BundleError(f"the bundle filed under {u!r} is {b.sharer!r}'s")
        validate_bundle(params, adverts, b)


def _check_request(params: SecAggParams, survivors: Collection[str], dropped: Collection[str]) -> None:
    both = set(survivors) & set(dropped)
    if both:
        raise RevealRefusedError(
            f"refusing a request that names {sorted(both)} both survivor and dropped: "
            "it would reveal both of their secrets"
        )
    for u in (*survivors, *dropped):
        params.check_trainer(u)
    missing = len(params.trainers) - len(set(survivors))
    if missing > params.max_missing:
        raise TooManyDropoutsError(
            f"{missing} of {len(params.trainers)} trainers are missing, more than k - t = {params.max_missing}: "
            "unmasking could expose partial sums"
        )


# --- the trainer's side -------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class TrainerKeys:
    """A trainer's three secrets for one round: the c key pair (shares sent to it), the s key
    pair (its pairwise masks) and its self-mask seed b. Drawn before the round's trainers are
    known (step 1 needs only the public keys), then handed to ``SecAggTrainer``."""

    c: X25519PrivateKey
    s: X25519PrivateKey
    b: bytes

    @classmethod
    def draw(cls, randbytes: RandBytes = os.urandom) -> TrainerKeys:
        c = X25519PrivateKey.from_private_bytes(randbytes(KEY_BYTES))
        s = X25519PrivateKey.from_private_bytes(randbytes(KEY_BYTES))
        return cls(c, s, randbytes(SECRET_BYTES))

    def advert(self, trainer: str) -> KeyAdvert:
        return KeyAdvert(trainer, _raw_public(self.c), _raw_public(self.s))


class SecAggTrainer:
    """One trainer's secrets and state for one round: ``advertise``, ``share_keys``,
    ``receive_shares``, ``mask``, then ``answer_unmasking`` (as a holder). ``keys``: secrets
    drawn earlier (``TrainerKeys.draw``), else drawn here from ``randbytes``."""

    def __init__(
        self, params: SecAggParams, trainer: str, randbytes: RandBytes = os.urandom, keys: TrainerKeys | None = None
    ):
        params.check_trainer(trainer)
        self.params, self.trainer, self._rand = params, trainer, randbytes
        keys = keys if keys is not None else TrainerKeys.draw(randbytes)
        self._c, self._s, self._b = keys.c, keys.s, keys.b
        self._adverts: dict[str, KeyAdvert] | None = None
        self._shared: frozenset[str] | None = None
        self._held: dict[str, tuple[RevealedShare, RevealedShare]] = {}
        self._revealed: dict[str, str] = {}

    def advertise(self) -> KeyAdvert:
        return KeyAdvert(self.trainer, _raw_public(self._c), _raw_public(self._s))

    def share_keys(self, adverts: Mapping[str, KeyAdvert]) -> ShareBundle:
        """Shares of b and of the s secret key for each holder, encrypted to it and committed."""
        p = self.params
        validate_adverts(p, adverts)
        if adverts.get(self.trainer) != self.advertise():
            raise BadKeyError(f"the adverts do not hold {self.trainer!r}'s own keys")
        holders = holders_of(p, self.trainer, adverts)
        if len(holders) < p.t:
            raise NotEnoughSharesError(f"only {len(holders)} of {self.trainer!r}'s neighbours advertised, t={p.t}")
        xs = [p.x_of(v) for v in holders]
        s_secret = self._s.private_bytes_raw()
        b_sh = share(self._b, p.t, xs, self._rand)
        s_sh = share(s_secret, p.t, xs, self._rand)
        own_c = adverts[self.trainer].c_pk
        cts, coms = {}, {}
        for v, x in zip(holders, xs):
            b_salt, s_salt = self._rand(SALT_BYTES), self._rand(SALT_BYTES)
            coms[v] = (
                share_commitment(p, B_SHARE, self.trainer, v, x, b_sh[x].ys, b_salt),
                share_commitment(p, S_SHARE, self.trainer, v, x, s_sh[x].ys, s_salt),
            )
            key = _share_key(p, self._c, adverts[v].c_pk, v, own_c, adverts[v].c_pk)
            nonce = self._rand(NONCE_BYTES)
            plain = _encode_pair(x, b_sh[x], b_salt, s_sh[x], s_salt)
            cts[v] = nonce + AESGCM(key).encrypt(nonce, plain, _aad(p, self.trainer, v))
        self._adverts = dict(adverts)
        return ShareBundle(self.trainer, b_commitment(p, self.trainer, self._b), cts, coms)

    def receive_shares(self, bundles: Mapping[str, ShareBundle], strict: bool = True) -> dict[str, SecAggError]:
        """Decrypt and check the shares addressed to this trainer; ``bundles`` (all published
        ones) fix U_shared. A share that fails is not held; ``strict`` raises on the first,
        otherwise the failures come back by sharer (complaints the protocol may act on)."""
        p = self.params
        if self._adverts is None:
            raise SecAggError("receive_shares before share_keys")
        _validate_bundles(p, self._adverts, bundles)
        if self.trainer not in bundles:
            raise SecAggError(f"{self.trainer!r}'s own bundle is not among the published ones")
        complaints: dict[str, SecAggError] = {}
        held: dict[str, tuple[RevealedShare, RevealedShare]] = {}
        for u in sorted(bundles, key=p.index.__getitem__):
            bundle = bundles[u]
            if self.trainer not in bundle.ciphertexts:
                continue
            try:
                held[u] = self._open(bundle)
            except SecAggError as e:
                if strict:
                    raise
                complaints[u] = e
        self._held, self._shared = held, frozenset(bundles)
        return complaints

    def _open(self, bundle: ShareBundle) -> tuple[RevealedShare, RevealedShare]:
        p, u, me = self.params, bundle.sharer, self.trainer
        assert self._adverts is not None
        blob = bundle.ciphertexts[me]
        sender = self._adverts[u].c_pk
        key = _share_key(p, self._c, sender, u, sender, self._adverts[me].c_pk)
        try:
            plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(p, u, me))
            b, s = _decode_pair(plain)
        except (InvalidTag, SecAggError) as e:
            raise ShareDecryptionError(f"the share from {u!r} to {me!r} does not decrypt: {e!r}") from e
        if b.x != p.x_of(me):
            raise ShareDecryptionError(f"the share from {u!r} to {me!r} is at x={b.x}, not {p.x_of(me)}")
        cb, cs = bundle.commitments[me]
        if share_commitment(p, B_SHARE, u, me, b.x, b.ys, b.salt) != cb or (
            share_commitment(p, S_SHARE, u, me, s.x, s.ys, s.salt) != cs
        ):
            raise ShareCommitmentError(f"the share from {u!r} to {me!r} does not match {u!r}'s commitment")
        return b, s

    def mask(self, update: np.ndarray, samples: int) -> MaskedInput:
        """y = w q + PRG(b) +- PRG(s_uv) over this trainer's neighbours in U_shared."""
        p = self.params
        if self._adverts is None or self._shared is None:
            raise SecAggError("mask before share_keys and receive_shares")
        q = np.asarray(update)
        if q.shape != (p.dim,) or q.dtype.kind not in "iu":
            raise MaskedInputError(f"the update must be an integer vector of length {p.dim}, not {q.dtype} {q.shape}")
        q = q.astype(np.int64)
        if q.size and int(np.abs(q).max()) > QMAX:
            raise HeadroomError(f"an update value leaves the fixed-point range |q| <= QMAX = {QMAX}")
        if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 1:
            raise HeadroomError(f"the sample count must be a positive integer, not {samples!r}")
        w = weights_of([int(samples)])[0]
        y = (q * np.int64(w)).view(np.uint64).copy()
        y += self_prg(self._b, p.dim)
        own = self._adverts[self.trainer].s_pk
        me = p.index[self.trainer]
        for v in p.neighbours(self.trainer):
            if v not in self._shared:
                continue
            mask = prg(pair_seed(p, self._s, own, self._adverts[v].s_pk, v), p.dim, b"pair", p.context)
            if p.index[v] > me:
                y += mask
            else:
                y -= mask
        return MaskedInput(self.trainer, w, y)

    def answer_unmasking(self, request: UnmaskRequest) -> Reveal:
        """The b-share of every survivor and the s-share of every dropped sharer this trainer
        holds. Refuses (``RevealRefusedError``) a request naming a trainer on both sides, one
        with more than k - t trainers missing, or one that, with what this trainer already
        revealed, would expose both secrets of one sharer; nothing is revealed then."""
        p = self.params
        _check_request(p, request.survivors, request.dropped)
        if self._shared is not None and not request.survivors <= self._shared:
            raise RevealRefusedError("the request names survivors that never shared keys")
        plan: dict[str, str] = {}
        for u in self._held:
            kind = B_SHARE if u in request.survivors else S_SHARE if u in request.dropped else None
            if kind is None:
                continue
            if self._revealed.get(u, kind) != kind:
                raise RevealRefusedError(
                    f"{self.trainer!r} refuses to reveal the {kind}-share of {u!r}: "
                    f"it already revealed its {self._revealed[u]}-share, and never reveals both"
                )
            plan[u] = kind
        self._revealed.update(plan)
        b_shares = {u: self._held[u][0] for u, k in plan.items() if k == B_SHARE}
        s_shares = {u: self._held[u][1] for u, k in plan.items() if k == S_SHARE}
        return Reveal(self.trainer, b_shares, s_shares)


# --- unmasking: the validators' pure function ---------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """A revealed share that ``unmask(strict=False)`` left out, and why."""

    holder: str
    sharer: str
    kind: str
    reason: str


@dataclass(frozen=True, eq=False)
class UnmaskResult:
    """The exact sum of the survivors' weighted updates (int64), their total weight, who
    survived and who dropped after sharing, and the shares left out (lenient mode)."""

    total: np.ndarray
    total_weight: int
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    rejected: tuple[Rejection, ...] = field(default=())
    self_seeds: Mapping[str, bytes] = field(default_factory=dict)  # each survivor's rebuilt b (public now)

    def fedavg(self) -> np.ndarray:
        return aggregate_fedavg(self.total, self.total_weight)


def aggregate_fedavg(unmasked_sum: np.ndarray, total_weight: int) -> np.ndarray:
    """The FedAvg update from the unmasked sum: floor(sum w q / sum w) in int64, exactly
    ``fedavg.aggregate_update`` (the new model is ``clip_fixed(model + this)``)."""
    s = np.asarray(unmasked_sum)
    if s.ndim != 1 or s.dtype != np.int64:
        raise SecAggError("the unmasked sum is a 1-d int64 vector")
    if not 1 <= int(total_weight) <= MAX_TOTAL_WEIGHT:
        raise HeadroomError(f"total weight {total_weight} outside 1..{MAX_TOTAL_WEIGHT}")
    return s // np.int64(total_weight)


def _check_masked(params: SecAggParams, shared: Collection[str], masked: Mapping[str, MaskedInput]) -> int:
    total = 0
    for u, m in masked.items():
        params.check_trainer(u)
        if m.trainer != u:
            raise MaskedInputError(f"the masked input filed under {u!r} is {m.trainer!r}'s")
        if u not in shared:
            raise MaskedInputError(f"{u!r} sent a masked input without sharing its keys: its mask cannot be removed")
        y = m.y
        if not isinstance(y, np.ndarray) or y.dtype != np.uint64 or y.shape != (params.dim,):
            raise MaskedInputError(
                f"the masked input of {u!r} must be a uint64 vector of length {params.dim}, "
                f"not {getattr(y, 'dtype', type(y))} {getattr(y, 'shape', '')}"
            )
        if isinstance(m.weight, bool) or not isinstance(m.weight, int) or not 1 <= m.weight <= MAX_WEIGHT:
            raise HeadroomError(f"the weight of {u!r} is {m.weight!r}, outside 1..MAX_WEIGHT = {MAX_WEIGHT}")
        total += m.weight
    if total > MAX_TOTAL_WEIGHT:
        raise HeadroomError(f"total weight {total} exceeds {MAX_TOTAL_WEIGHT}: the sum could overflow int64")
    return total


def unmask(
    params: SecAggParams,
    adverts: Mapping[str, KeyAdvert],
    bundles: Mapping[str, ShareBundle],
    masked_inputs: Mapping[str, MaskedInput],
    reveals: Iterable[Reveal],
    strict: bool = True,
) -> UnmaskResult:
    """Sum of the masked inputs with every mask removed: a pure, deterministic function of
    the published material (the order of the mappings and of ``reveals`` does not matter).

    ``strict`` raises on the first bad revealed share (a share off its commitment, from a
    non-holder, of the wrong kind); otherwise such shares are left out and listed in
    ``rejected``. Either way, too few good shares, inconsistent shares or a secret that is
    not its owner's raise, and no secret is ever reconstructed in both kinds."""
    p = params
    validate_adverts(p, adverts)
    _validate_bundles(p, adverts, bundles)
    if not masked_inputs:
        raise MaskedInputError("no masked inputs arrived")
    weight = _check_masked(p, bundles, masked_inputs)
    request = unmask_request(bundles, masked_inputs)
    _check_request(p, request.survivors, request.dropped)
    survivors = sorted(request.survivors, key=p.index.__getitem__)
    need_s = [v for v in sorted(request.dropped, key=p.index.__getitem__) if set(p.neighbours(v)) & request.survivors]

    pools: dict[tuple[str, str], dict[str, Share]] = {}
    rejected: list[Rejection] = []

    def reject(holder: str, sharer: str, kind: str, error: SecAggError) -> None:
        if strict:
            raise error
        rejected.append(Rejection(holder, sharer, kind, str(error)))

    by_holder: dict[str, list[Reveal]] = {}
    for rv in reveals:
        if rv not in by_holder.setdefault(rv.holder, []):
            by_holder[rv.holder].append(rv)
    for h in sorted(by_holder):
        rvs = by_holder[h]
        if h not in p.index or len(rvs) > 1:
            why = "is not a trainer" if h not in p.index else "sent different reveals"
            for rv in rvs:
                for kind, group in ((B_SHARE, rv.b_shares), (S_SHARE, rv.s_shares)):
                    for u in sorted(group):
                        reject(h, u, kind, ShareCommitmentError(f"a reveal from {h!r}, which {why}, is not accepted"))
            continue
        rv = rvs[0]
        both = set(rv.b_shares) & set(rv.s_shares)
        for kind, group in ((B_SHARE, rv.b_shares), (S_SHARE, rv.s_shares)):
            for u in sorted(group):
                rs = group[u]
                if u in both:
                    reject(h, u, kind, RevealRefusedError(f"{h!r} revealed both secrets of {u!r}: refused"))
                    continue
                wanted = B_SHARE if u in request.survivors else S_SHARE if u in request.dropped else None
                if wanted != kind:
                    what = "a survivor" if wanted == B_SHARE else "a dropped sharer" if wanted else "no sharer"
                    reject(h, u, kind, RevealRefusedError(f"{h!r} revealed the {kind}-share of {u!r}, {what}: refused"))
                    continue
                com = bundles[u].commitments.get(h)
                if com is None:
                    reject(h, u, kind, ShareCommitmentError(f"{h!r} is not a holder of {u!r}'s shares"))
                    continue
                ok = (
                    isinstance(rs.salt, bytes)
                    and rs.x == p.x_of(h)
                    and len(rs.ys) == 2
                    and all(isinstance(y, int) and 0 <= y < PRIME for y in rs.ys)
                    and share_commitment(p, kind, u, h, rs.x, rs.ys, rs.salt) == com[0 if kind == B_SHARE else 1]
                )
                if not ok:
                    reject(
                        h,
                        u,
                        kind,
                        ShareCommitmentError(
                            f"the {kind}-share of {u!r} revealed by {h!r} does not match its commitment"
                        ),
                    )
                    continue
                pools.setdefault((kind, u), {})[h] = Share(rs.x, (rs.ys[0], rs.ys[1]), p.t)

    def secret(kind: str, u: str) -> bytes:
        shares = pools.get((kind, u), {})
        try:
            return reconstruct(shares[h] for h in sorted(shares, key=p.index.__getitem__))
        except NotEnoughSharesError as e:
            raise NotEnoughSharesError(f"the {kind}-secret of {u!r}: {len(shares)} valid shares, t={p.t} needed") from e
        except InconsistentSharesError as e:
            raise InconsistentSharesError(f"{u!r} dealt inconsistent {kind}-shares: {e}") from e

    acc = np.zeros(p.dim, dtype=np.uint64)
    seeds: dict[str, bytes] = {}
    for u in survivors:
        b = secret(B_SHARE, u)
        if b_commitment(p, u, b) != bundles[u].b_commitment:
            raise SeedMismatchError(f"the reconstructed self-mask seed of {u!r} is not the one it committed to")
        acc += masked_inputs[u].y
        acc -= self_prg(b, p.dim)
        seeds[u] = b
    for v in need_s:
        key = X25519PrivateKey.from_private_bytes(secret(S_SHARE, v))
        own = _raw_public(key)
        if own != adverts[v].s_pk:
            raise SeedMismatchError(f"the reconstructed s key of {v!r} does not match its advertised public key")
        for u in p.neighbours(v):
            if u not in request.survivors:
                continue
            mask = prg(pair_seed(p, key, own, adverts[u].s_pk, u), p.dim, b"pair", p.context)
            if p.index[v] > p.index[u]:  # u added +mask for this pair; take it back
                acc -= mask
            else:
                acc += mask
    total = acc.view(np.int64).copy()
    bound = np.int64(QMAX * weight)  # < 2**63; compared without abs(), which wraps at -2**63
    if bool(np.any((total > bound) | (total < -bound))):
        raise AggregateOutOfRangeError(
            f"the unmasked sum leaves |S| <= QMAX * W = {bound}: some trainer masked with secrets other "
            "than those it shared (not attributable from the transcript)"
        )
    dropped = tuple(sorted(request.dropped, key=p.index.__getitem__))
    return UnmaskResult(total, weight, tuple(survivors), dropped, tuple(rejected), seeds)
