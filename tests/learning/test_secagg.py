"""Secure aggregation (SecAgg+ over fixed point): a round with dropouts unmasks to the exact
fixed-point FedAvg of the updates that arrived; masked vectors carry no trace of their
updates; every bad input is its own clear error. Real X25519, HKDF, AES-CTR and AES-GCM from
``cryptography``, no mocks; randomness under test control where it is under test."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedchain.errors import FedchainError, LearningError
from fedchain.learning import secagg as sa
from fedchain.learning.aggregate.fedavg import aggregate_update, fedavg
from fedchain.learning.fixedpoint import MAX_UPDATES, MAX_WEIGHT, QMAX, clip_fixed, to_fixed


class DetRand:
    """Deterministic bytes (SHA-256 in counter mode) standing in for os.urandom in tests."""

    def __init__(self, seed: int):
        self.seed, self.i = seed.to_bytes(8, "big"), 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.i.to_bytes(8, "big")).digest()
            self.i += 1
        return out[:n]


def ids(n: int) -> list[str]:
    return [f"0x{(7919 * i + 13) % 2**160:040x}" for i in range(n)]


def updates_for(params: sa.SecAggParams, seed: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Realistic fixed-point updates (small Gaussian steps, a few clipped extremes) and sample counts."""
    rng = np.random.default_rng(seed)
    upd, smp = {}, {}
    for u in params.trainers:
        q = to_fixed(rng.normal(0.0, 0.02, params.dim))
        q[rng.integers(0, params.dim, 5)] = rng.choice([-QMAX, QMAX], 5)
        upd[u] = q
        smp[u] = int(rng.integers(1, 60_000))
    smp[params.trainers[0]] = 3 * MAX_WEIGHT  # capped at MAX_WEIGHT, as FedAvg caps it
    return upd, smp


@dataclass
class Round:
    params: sa.SecAggParams
    trainers: dict[str, sa.SecAggTrainer]
    adverts: dict[str, sa.KeyAdvert]
    bundles: dict[str, sa.ShareBundle]
    masked: dict[str, sa.MaskedInput]
    reveals: list[sa.Reveal]
    updates: dict[str, np.ndarray]
    samples: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)

    def unmask(self, **kw) -> sa.UnmaskResult:
        return sa.unmask(self.params, self.adverts, self.bundles, self.masked, self.reveals, **kw)

    def plain(self) -> np.ndarray:
        arrived = sorted(self.masked)
        return aggregate_update([self.updates[u] for u in arrived], [self.samples[u] for u in arrived])

    def bytes_per_trainer(self) -> dict[str, float]:
        def mean(xs):
            xs = list(xs)
            return sum(xs) / len(xs) if xs else 0.0

        return {
            "advert": mean(len(a.to_bytes()) for a in self.adverts.values()),
            "bundle": mean(len(b.to_bytes()) for b in self.bundles.values()),
            "masked": mean(len(m.to_bytes()) for m in self.masked.values()),
            "reveal": mean(len(r.to_bytes()) for r in self.reveals),
        }


def run_round(
    n: int,
    dim: int,
    *,
    seed: int = 1,
    no_advert: int = 0,
    no_share: int = 0,
    no_send: int = 0,
    no_reveal: int = 0,
    deterministic: bool = True,
    unmask: bool = True,
) -> Round:
    """One SecAgg round; the first ``no_advert`` trainers (in a shuffled order) never
    advertise, the next ``no_share`` advertise only, the next ``no_send`` share keys but send
    no masked input, the next ``no_reveal`` send it and then drop (reveal nothing)."""
    params = sa.SecAggParams.create(5, 17, ids(n), dim, hashlib.sha256(b"round seed %d" % seed).digest())
    order = list(params.trainers)
    np.random.default_rng(seed).shuffle(order)
    cut = list(itertools.accumulate([no_advert, no_share, no_send, no_reveal]))
    gone = {u: i for i, u in enumerate(order)}
    stage = {u: next((j for j, c in enumerate(cut) if gone[u] < c), 4) for u in order}
    rand = {u: (DetRand(seed * 1000 + i) if deterministic else os.urandom) for i, u in enumerate(order)}
    tr = {u: sa.SecAggTrainer(params, u, rand[u]) for u in params.trainers}
    upd, smp = updates_for(params, seed)
    sec: dict[str, float] = {}
    t0 = time.perf_counter()
    adverts = {u: tr[u].advertise() for u in params.trainers if stage[u] >= 1}
    bundles = {u: tr[u].share_keys(adverts) for u in adverts if stage[u] >= 2}
    for u in bundles:
        assert tr[u].receive_shares(bundles) == {}
    t1 = time.perf_counter()
    masked = {u: tr[u].mask(upd[u], smp[u]) for u in bundles if stage[u] >= 3}
    t2 = time.perf_counter()
    request = sa.unmask_request(bundles, masked)
    reveals = [tr[u].answer_unmasking(request) for u in bundles if stage[u] >= 4]
    t3 = time.perf_counter()
    sec.update(keys_and_shares=t1 - t0, masking=t2 - t1, reveals=t3 - t2)
    r = Round(params, tr, adverts, bundles, masked, reveals, upd, smp, sec)
    if unmask:
        t4 = time.perf_counter()
        r.unmask()
        sec["unmask"] = time.perf_counter() - t4
    return r


# --- the Done-when: dropouts, bit-identical FedAvg ---------------------------------------------


def test_thirty_percent_drop_after_sending_unmasks_to_plain_fedavg_bit_for_bit():
    r = run_round(20, 5000, no_reveal=6, deterministic=False)  # os.urandom, as in production
    assert (r.params.k, r.params.t) == (12, 5)
    res = r.unmask()
    assert res.survivors == r.params.trainers and res.dropped == () and len(r.reveals) == 14
    assert res.total_weight == sum(min(s, MAX_WEIGHT) for s in r.samples.values())
    exact = sum(np.int64(min(r.samples[u], MAX_WEIGHT)) * r.updates[u] for u in r.params.trainers)
    assert res.total.dtype == np.int64 and np.array_equal(res.total, exact)
    assert res.fedavg().dtype == np.int64 and np.array_equal(res.fedavg(), r.plain())
    model = to_fixed(np.random.default_rng(3).normal(0, 1, 5000))
    ups, sms = [r.updates[u] for u in r.params.trainers], [r.samples[u] for u in r.params.trainers]
    assert np.array_equal(clip_fixed(model + res.fedavg()), fedavg(model, ups, sms))


def test_dropouts_before_sending_have_their_pairwise_masks_removed():
    # 1 never advertises, 1 advertises only, 2 share keys but send nothing, 3 send and vanish
    r = run_round(20, 5000, seed=2, no_advert=1, no_share=1, no_send=2, no_reveal=3)
    res = r.unmask()
    assert len(res.survivors) == 16 and len(res.dropped) == 2 and set(res.dropped).isdisjoint(r.masked)
    assert np.array_equal(res.fedavg(), r.plain())
    assert not any(rv.s_shares.keys() & r.masked.keys() for rv in r.reveals)  # never an s of a survivor
    assert not any(rv.b_shares.keys() & set(res.dropped) for rv in r.reveals)  # never a b of the dropped
    # without the dropped trainers' s keys the survivors' pairwise masks with them stay
    no_s = [dataclasses.replace(rv, s_shares={}) for rv in r.reveals]
    with pytest.raises(sa.NotEnoughSharesError, match="s-secret"):
        sa.unmask(r.params, r.adverts, r.bundles, r.masked, no_s)


@pytest.mark.parametrize("n", [3, 4, 5, 8, 13])
def test_small_rounds_at_the_tolerated_dropouts(n):
    d = math.ceil(n / 3)
    r = run_round(n, 300, seed=n, no_send=d // 2, no_reveal=d - d // 2)
    assert np.array_equal(r.unmask().fedavg(), r.plain())


def test_extreme_values_and_weights_stay_exact():
    params = sa.SecAggParams.create(1, 1, ids(5), 64, bytes(32))
    tr = {u: sa.SecAggTrainer(params, u, DetRand(i)) for i, u in enumerate(params.trainers)}
    adverts = {u: t.advertise() for u, t in tr.items()}
    bundles = {u: t.share_keys(adverts) for u, t in tr.items()}
    for t in tr.values():
        t.receive_shares(bundles)
    sign = np.where(np.arange(64) % 2, 1, -1).astype(np.int64)
    upd = {u: sign * QMAX * (1 if i < 3 else -1) for i, u in enumerate(params.trainers)}
    masked = {u: t.mask(upd[u], MAX_WEIGHT) for u, t in tr.items()}
    reveals = [t.answer_unmasking(sa.unmask_request(bundles, masked)) for t in tr.values()]
    res = sa.unmask(params, adverts, bundles, masked, reveals)
    assert np.array_equal(res.total, sign * QMAX * MAX_WEIGHT)  # 2**43 per coordinate
    assert np.array_equal(res.fedavg(), aggregate_update(list(upd.values()), [MAX_WEIGHT] * 5))


# --- parameters and the graph -------------------------------------------------------------


def _connected(graph: dict[str, tuple[str, ...]], removed: set[str]) -> bool:
    left = [u for u in graph if u not in removed]
    seen, todo = {left[0]}, deque([left[0]])
    while todo:
        for v in graph[todo.popleft()]:
            if v not in removed and v not in seen:
                seen.add(v)
                todo.append(v)
    return len(seen) == len(left)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 10, 20, 21, 50, 99, 100, 256])
def test_default_graph_is_k_regular_and_survives_the_tolerated_dropouts_and_corruptions(n):
    d, c = math.ceil(n / 3), n // 5
    params = sa.SecAggParams.create(0, 0, ids(n), 8, hashlib.sha256(b"g%d" % n).digest())
    k, t = params.k, params.t
    assert t == k - d and t > c and k <= n - 1 and (k >= d + c + 1 or k == n - 1)
    g = params.graph
    assert all(len(nb) == k and u not in nb and all(u in g[v] for v in nb) for u, nb in g.items())
    rng = np.random.default_rng(n)
    for _ in range(30):  # removing any d + c < k trainers leaves the graph connected
        removed = set(rng.choice(params.trainers, size=min(d + c, n - 2), replace=False).tolist())
        assert _connected(g, removed)
    # the layout follows the public seed: another seed, another graph; the same seed, the same
    other = sa.SecAggParams.create(0, 0, ids(n), 8, hashlib.sha256(b"h%d" % n).digest())
    same = sa.SecAggParams.create(9, 9, reversed(ids(n)), 8, hashlib.sha256(b"g%d" % n).digest())
    assert same.graph == g
    if k < n - 2:
        assert other.graph != g


def test_default_degree_values_and_refusals():
    assert sa.default_degree(20) == (12, 5)
    assert sa.default_degree(100) == (55, 21)
    assert sa.default_degree(3) == (2, 1)
    assert sa.default_degree(100, max_dropouts=10, max_corrupt=10) == (21, 11)
    with pytest.raises(sa.ParameterError, match="cannot tolerate"):
        sa.default_degree(2)
    with pytest.raises(sa.ParameterError, match="cannot tolerate"):
        sa.default_degree(10, max_dropouts=5, max_corrupt=4)


def test_bad_parameters():
    seed = bytes(32)
    with pytest.raises(sa.ParameterError, match="sorted"):
        sa.SecAggParams(0, 0, ("b", "a", "c"), 4, 2, 1, seed)
    with pytest.raises(sa.ParameterError, match="t <= k <= n - 1"):
        sa.SecAggParams(0, 0, ("a", "b", "c"), 4, 3, 1, seed)
    with pytest.raises(sa.ParameterError, match="t <= k"):
        sa.SecAggParams(0, 0, ("a", "b", "c"), 4, 2, 3, seed)
    with pytest.raises(sa.ParameterError, match="regular"):
        sa.SecAggParams(0, 0, ("a", "b", "c", "d", "e"), 4, 3, 1, seed)
    with pytest.raises(sa.ParameterError, match="dimension"):
        sa.SecAggParams(0, 0, ("a", "b", "c"), 0, 2, 1, seed)
    with pytest.raises(sa.ParameterError, match="graph_seed"):
        sa.SecAggParams(0, 0, ("a", "b", "c"), 4, 2, 1, b"short")
    with pytest.raises(sa.ParameterError, match=str(MAX_UPDATES)):
        sa.SecAggParams.create(0, 0, ids(MAX_UPDATES + 1), 4, seed, k=4, t=2)
    assert issubclass(sa.SecAggError, LearningError) and issubclass(sa.SecAggError, FedchainError)


# --- masked blobs hide their updates ----------------------------------------------------------


def test_masked_vectors_are_uncorrelated_with_their_updates_and_uniform():
    r = run_round(20, 5000, seed=11, no_reveal=6, unmask=False)
    words = []
    for u, m in r.masked.items():
        q = r.updates[u].astype(np.float64)
        uniform = m.y.astype(np.float64) / 2.0**64
        signed = m.y.view(np.int64).astype(np.float64)
        for y in (uniform, signed):
            assert abs(np.corrcoef(y, q)[0, 1]) < 0.06  # 4.2 sigma at 5,000 values
        words.append(m.y)
    y = np.concatenate(words)  # 100,000 words
    top = (y >> np.uint64(63)).astype(np.int64)
    assert abs(int(top.sum()) - y.size / 2) < 5 * math.sqrt(y.size / 4)
    counts = np.bincount((y >> np.uint64(60)).astype(np.int64), minlength=16)
    chi2 = float(((counts - y.size / 16) ** 2 / (y.size / 16)).sum())
    assert chi2 < 50.0  # 15 degrees of freedom: p < 1e-5
    # the same secrets hide a zero update and an extreme one alike: masked words differ from the
    # update in about half of their top bits, whatever the update
    t = r.trainers[r.params.trainers[5]]
    zero = np.zeros(r.params.dim, dtype=np.int64)
    for q in (zero, np.full(r.params.dim, QMAX, dtype=np.int64)):
        hi = (t.mask(q, 1000).y >> np.uint64(63)).astype(np.int64)
        assert abs(int(hi.sum()) - r.params.dim / 2) < 5 * math.sqrt(r.params.dim / 4)


def test_prg_is_aes_ctr_and_seed_separated():
    ctx = b"ctx"
    a = sa.prg(bytes(32), 1000, b"self", ctx)
    assert a.dtype == np.uint64 and a.shape == (1000,)
    assert np.array_equal(a, sa.prg(bytes(32), 1000, b"self", ctx))
    assert np.array_equal(a[:10], sa.prg(bytes(32), 10, b"self", ctx))  # a prefix of the stream
    assert not np.array_equal(a, sa.prg(bytes(32), 1000, b"pair", ctx))
    assert not np.array_equal(a, sa.prg(b"\x01" + bytes(31), 1000, b"self", ctx))


# --- Shamir ---------------------------------------------------------------------------------


def test_shamir_round_trips_and_refuses():
    rand = DetRand(5)
    for secret in (bytes(32), b"\xff" * 32, rand(32)):
        for t, n in ((1, 1), (1, 4), (3, 5), (7, 7), (21, 55)):
            xs = list(range(1, n + 1))
            shares = sa.share(secret, t, xs, rand)
            assert set(shares) == set(xs) and all(s.t == t for s in shares.values())
            rng = np.random.default_rng(t * n)
            for m in {t, n}:
                pick = rng.choice(xs, size=m, replace=False)
                assert sa.reconstruct(shares[int(x)] for x in pick) == secret
            if t > 1:
                with pytest.raises(sa.NotEnoughSharesError, match=f"{t - 1} shares, {t} needed"):
                    sa.reconstruct(shares[x] for x in xs[: t - 1])
    shares = sa.share(b"k" * 32, 3, [1, 2, 3, 4, 5], rand)
    bad = dataclasses.replace(shares[5], ys=(shares[5].ys[0] + 1, shares[5].ys[1]))
    with pytest.raises(sa.InconsistentSharesError, match="x=5"):
        sa.reconstruct([shares[1], shares[2], shares[3], shares[4], bad])
    with pytest.raises(sa.NotEnoughSharesError):
        sa.reconstruct([])
    with pytest.raises(sa.SecAggError, match="32 bytes"):
        sa.share(b"short", 2, [1, 2])
    with pytest.raises(sa.SecAggError, match="threshold"):
        sa.share(bytes(32), 3, [1, 2])
    with pytest.raises(sa.SecAggError, match="distinct"):
        sa.share(bytes(32), 1, [1, 1])


# --- every error path -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> Round:
    """A 12-trainer round (k = 7, t = 3, 4 dropouts tolerated): 2 sharers drop before sending, 2 after."""
    return run_round(12, 256, seed=7, no_send=2, no_reveal=2)


def test_a_revealed_share_off_its_commitment_is_refused_or_left_out(base):
    rv = base.reveals[0]
    u = sorted(rv.b_shares)[0]
    s = rv.b_shares[u]
    forged = dataclasses.replace(rv, b_shares={**rv.b_shares, u: dataclasses.replace(s, ys=(s.ys[0] ^ 1, s.ys[1]))})
    reveals = [forged, *base.reveals[1:]]
    with pytest.raises(sa.ShareCommitmentError, match="does not match its commitment"):
        sa.unmask(base.params, base.adverts, base.bundles, base.masked, reveals)
    res = sa.unmask(base.params, base.adverts, base.bundles, base.masked, reveals, strict=False)
    assert [(x.holder, x.sharer, x.kind) for x in res.rejected] == [(rv.holder, u, "b")]
    assert np.array_equal(res.fedavg(), base.plain())  # the others' shares suffice
    # a share revealed by a trainer that does not hold it
    outsider = next(h for h in base.params.trainers if h not in base.bundles[u].commitments)
    fake = sa.Reveal(outsider, {u: s}, {})
    with pytest.raises(sa.ShareCommitmentError, match="not a holder"):
        sa.unmask(base.params, base.adverts, base.bundles, base.masked, [*base.reveals, fake])


def test_too_few_shares(base):
    survivor = sorted(base.masked)[0]
    holding = [rv for rv in base.reveals if survivor in rv.b_shares]
    keep = {rv.holder for rv in holding[: base.params.t - 1]}
    reveals = [
        rv
        if rv.holder in keep
        else dataclasses.replace(rv, b_shares={k: v for k, v in rv.b_shares.items() if k != survivor})
        for rv in base.reveals
    ]
    with pytest.raises(sa.NotEnoughSharesError, match=f"{survivor!r}: {base.params.t - 1} valid shares"):
        sa.unmask(base.params, base.adverts, base.bundles, base.masked, reveals)


def test_masked_input_of_the_wrong_length_type_weight_or_sender(base):
    u = sorted(base.masked)[0]
    m = base.masked[u]

    def with_(**kw):
        return sa.unmask(
            base.params, base.adverts, base.bundles, {**base.masked, u: dataclasses.replace(m, **kw)}, base.reveals
        )

    with pytest.raises(sa.MaskedInputError, match="length 256"):
        with_(y=m.y[:-1])
    with pytest.raises(sa.MaskedInputError, match="uint64"):
        with_(y=m.y.view(np.int64))
    with pytest.raises(sa.HeadroomError, match="MAX_WEIGHT"):
        with_(weight=MAX_WEIGHT + 1)
    with pytest.raises(sa.HeadroomError, match="MAX_WEIGHT"):
        with_(weight=0)
    no_bundle = {k: v for k, v in base.bundles.items() if k != u}
    with pytest.raises((sa.MaskedInputError, sa.BundleError)):
        sa.unmask(base.params, base.adverts, no_bundle, base.masked, base.reveals)
    with pytest.raises(sa.MaskedInputError, match="no masked inputs"):
        sa.unmask(base.params, base.adverts, base.bundles, {}, base.reveals)


def test_mask_refuses_inputs_that_could_overflow():
    r = run_round(5, 16, seed=3, unmask=False)
    t = r.trainers[r.params.trainers[0]]
    q = np.zeros(16, dtype=np.int64)
    with pytest.raises(sa.HeadroomError, match="QMAX"):
        t.mask(np.full(16, QMAX + 1, dtype=np.int64), 10)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(sa.HeadroomError, match="sample count"):
            t.mask(q, bad)
    with pytest.raises(sa.MaskedInputError, match="length 16"):
        t.mask(np.zeros(15, dtype=np.int64), 10)
    with pytest.raises(sa.MaskedInputError, match="integer"):
        t.mask(np.zeros(16), 10)
    assert t.mask(q, 10 * MAX_WEIGHT).weight == MAX_WEIGHT  # the FedAvg cap
    assert sa.MAX_TOTAL_WEIGHT == 2**40 - 1 and QMAX * sa.MAX_TOTAL_WEIGHT < 2**63
    with pytest.raises(sa.HeadroomError, match="total weight"):
        sa.aggregate_fedavg(np.zeros(3, dtype=np.int64), 2**40)


def test_a_lie_about_the_own_self_mask_makes_the_sum_out_of_range():
    params = sa.SecAggParams.create(1, 2, ids(10), 2000, bytes(32))
    tr = {u: sa.SecAggTrainer(params, u, DetRand(40 + i)) for i, u in enumerate(params.trainers)}
    adverts = {u: t.advertise() for u, t in tr.items()}
    bundles = {u: t.share_keys(adverts) for u, t in tr.items()}
    for t in tr.values():
        t.receive_shares(bundles)
    liar = tr[params.trainers[4]]
    liar._b = DetRand(999)(32)  # masks with a seed other than the one it shared
    upd, smp = updates_for(params, 4)
    masked = {u: t.mask(upd[u], smp[u]) for u, t in tr.items()}
    reveals = [t.answer_unmasking(sa.unmask_request(bundles, masked)) for t in tr.values()]
    with pytest.raises(sa.AggregateOutOfRangeError, match="not attributable"):
        sa.unmask(params, adverts, bundles, masked, reveals)


def test_a_shared_secret_that_is_not_the_owners_is_attributed(base):
    dropped = sorted(set(base.bundles) - set(base.masked))[0]
    # the s key its holders reconstruct is not the one its published advert names
    other = (
        X25519PrivateKey.from_private_bytes(DetRand(77)(32)).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    adverts = {**base.adverts, dropped: dataclasses.replace(base.adverts[dropped], s_pk=other)}
    with pytest.raises(sa.SeedMismatchError, match=f"s key of {dropped!r}"):
        sa.unmask(base.params, adverts, base.bundles, base.masked, base.reveals)
    # the b seed its holders reconstruct is not the one it committed to
    survivor = sorted(base.masked)[0]
    bundles = {**base.bundles, survivor: dataclasses.replace(base.bundles[survivor], b_commitment=bytes(32))}
    with pytest.raises(sa.SeedMismatchError, match=f"self-mask seed of {survivor!r}"):
        sa.unmask(base.params, base.adverts, bundles, base.masked, base.reveals)


def test_a_dealer_of_inconsistent_shares_is_named():
    params = sa.SecAggParams.create(1, 3, ids(9), 100, bytes(32))
    tr = {u: sa.SecAggTrainer(params, u, DetRand(60 + i)) for i, u in enumerate(params.trainers)}
    adverts = {u: t.advertise() for u, t in tr.items()}
    bundles = {u: t.share_keys(adverts) for u, t in tr.items()}
    dealer = params.trainers[2]
    holder = sorted(bundles[dealer].commitments)[0]
    # the dealer re-deals one holder's b-share off its polynomial, committed and encrypted properly
    b, s = tr[holder]._open(bundles[dealer])
    b = dataclasses.replace(b, ys=((b.ys[0] + 1) % sa.PRIME, b.ys[1]))
    x = params.x_of(holder)
    cpk = adverts[dealer].c_pk
    key = sa._share_key(params, tr[dealer]._c, adverts[holder].c_pk, holder, cpk, adverts[holder].c_pk)
    plain = sa._encode_pair(x, sa.Share(x, b.ys, params.t), b.salt, sa.Share(x, s.ys, params.t), s.salt)
    nonce = bytes(12)
    ct = nonce + AESGCM(key).encrypt(nonce, plain, sa._aad(params, dealer, holder))
    com = (sa.share_commitment(params, "b", dealer, holder, x, b.ys, b.salt), bundles[dealer].commitments[holder][1])
    bundles[dealer] = dataclasses.replace(
        bundles[dealer],
        ciphertexts={**bundles[dealer].ciphertexts, holder: ct},
        commitments={**bundles[dealer].commitments, holder: com},
    )
    for t in tr.values():
        assert t.receive_shares(bundles) == {}  # every share matches its commitment
    upd, smp = updates_for(params, 5)
    masked = {u: t.mask(upd[u], smp[u]) for u, t in tr.items()}
    reveals = [t.answer_unmasking(sa.unmask_request(bundles, masked)) for t in tr.values()]
    with pytest.raises(sa.InconsistentSharesError, match=f"{dealer!r} dealt inconsistent b-shares"):
        sa.unmask(params, adverts, bundles, masked, reveals)


def test_share_blobs_are_opaque_and_tampering_is_caught():
    r = run_round(8, 32, seed=9, unmask=False)
    u = r.params.trainers[0]
    holder, other = sorted(r.bundles[u].ciphertexts)[:2]
    ct = bytearray(r.bundles[u].ciphertexts[holder])
    ct[20] ^= 1
    bundles = {
        **r.bundles,
        u: dataclasses.replace(r.bundles[u], ciphertexts={**r.bundles[u].ciphertexts, holder: bytes(ct)}),
    }
    t = r.trainers[holder]
    with pytest.raises(sa.ShareDecryptionError, match=f"from {u!r}"):
        t.receive_shares(bundles)
    complaints = t.receive_shares(bundles, strict=False)
    assert list(complaints) == [u] and isinstance(complaints[u], sa.ShareDecryptionError)
    assert u not in t._held
    # a share addressed to one holder does not open for another
    swapped = dict(r.bundles[u].ciphertexts)
    swapped[holder], swapped[other] = swapped[other], swapped[holder]
    with pytest.raises(sa.ShareDecryptionError):
        t.receive_shares({**r.bundles, u: dataclasses.replace(r.bundles[u], ciphertexts=swapped)})
    # a bundle that leaves out one of the sharer's holders
    short = dataclasses.replace(
        r.bundles[u],
        ciphertexts={k: c for k, c in r.bundles[u].ciphertexts.items() if k != holder},
        commitments={k: c for k, c in r.bundles[u].commitments.items() if k != holder},
    )
    with pytest.raises(sa.BundleError, match="exactly"):
        sa.validate_bundle(r.params, r.adverts, short)


def test_bad_public_keys():
    r = run_round(6, 8, seed=4, unmask=False)
    a, b = r.params.trainers[:2]
    dup = {**r.adverts, b: dataclasses.replace(r.adverts[b], s_pk=r.adverts[a].s_pk)}
    with pytest.raises(sa.BadKeyError, match="twice"):
        sa.validate_adverts(r.params, dup)
    with pytest.raises(sa.BadKeyError, match="32 raw bytes"):
        sa.validate_adverts(r.params, {**r.adverts, b: dataclasses.replace(r.adverts[b], c_pk=b"x")})
    fresh = run_round(6, 8, seed=5, unmask=False)
    t = fresh.trainers[a]
    neighbour = fresh.params.neighbours(a)[0]
    low_order = {**fresh.adverts, neighbour: dataclasses.replace(fresh.adverts[neighbour], c_pk=bytes(32))}
    with pytest.raises(sa.BadKeyError, match="no X25519 shared secret"):
        t.share_keys(low_order)


# --- never both secrets of one trainer ----------------------------------------------------


def test_a_survivor_refuses_to_reveal_both_secrets_of_one_peer(base):
    holder = base.reveals[0].holder
    t = base.trainers[holder]
    survivor = sorted(base.reveals[0].b_shares)[0]
    assert survivor in base.masked
    # asking again, now claiming the survivor dropped: its s-share would join the b-share already out
    flipped = sa.UnmaskRequest(
        frozenset(set(base.masked) - {survivor}),
        frozenset(set(base.bundles) - set(base.masked)) | {survivor},
    )
    with pytest.raises(sa.RevealRefusedError, match=f"refuses to reveal the s-share of {survivor!r}"):
        t.answer_unmasking(flipped)
    # a request naming a trainer on both sides is refused outright, and reveals nothing new
    both = sa.UnmaskRequest(frozenset(base.masked), frozenset(set(base.bundles) - set(base.masked)) | {survivor})
    before = dict(t._revealed)
    with pytest.raises(sa.RevealRefusedError, match="both survivor and dropped"):
        t.answer_unmasking(both)
    assert t._revealed == before
    # the same request again is answered the same way
    request = sa.unmask_request(base.bundles, base.masked)
    assert t.answer_unmasking(request) == base.reveals[0]


def test_unmasking_refuses_reveals_that_expose_both_secrets(base):
    rv = base.reveals[0]
    survivor = sorted(rv.b_shares)[0]
    s_share = base.trainers[rv.holder]._held[survivor][1]
    with_s = dataclasses.replace(rv, s_shares={**rv.s_shares, survivor: s_share})
    for bad in (with_s, dataclasses.replace(rv, b_shares={}, s_shares={survivor: s_share})):
        with pytest.raises(sa.RevealRefusedError, match=f"of {survivor!r}"):
            sa.unmask(base.params, base.adverts, base.bundles, base.masked, [bad, *base.reveals[1:]])
    res = sa.unmask(base.params, base.adverts, base.bundles, base.masked, [with_s, *base.reveals[1:]], strict=False)
    assert {(x.sharer, x.kind) for x in res.rejected} == {(survivor, "b"), (survivor, "s")}
    assert np.array_equal(res.fedavg(), base.plain())
    # a b-share of a trainer that dropped before sending is refused too
    dropped = sorted(set(base.bundles) - set(base.masked))[0]
    h = next(h for h in base.bundles[dropped].commitments if dropped in base.trainers[h]._held)
    bad_b = sa.Reveal(h, {dropped: base.trainers[h]._held[dropped][0]}, {})
    others = [r for r in base.reveals if r.holder != h]
    with pytest.raises(sa.RevealRefusedError, match="a dropped sharer"):
        sa.unmask(base.params, base.adverts, base.bundles, base.masked, [bad_b, *others])


def test_too_many_dropouts_are_refused_for_privacy():
    r = run_round(12, 64, seed=8, no_send=4, no_reveal=0, unmask=False)  # k - t = 4: 4 missing is fine
    assert r.params.max_missing == 4
    assert np.array_equal(r.unmask().fedavg(), r.plain())
    masked = dict(sorted(r.masked.items())[1:])  # 5 missing
    request = sa.unmask_request(r.bundles, masked)
    holder = sorted(masked)[0]
    with pytest.raises(sa.TooManyDropoutsError, match="more than k - t = 4"):
        r.trainers[holder].answer_unmasking(request)
    with pytest.raises(sa.TooManyDropoutsError):
        sa.unmask(r.params, r.adverts, r.bundles, masked, r.reveals)


# --- determinism and blobs ------------------------------------------------------------------


def test_unmasking_is_deterministic_from_the_published_blobs(base):
    first = base.unmask()
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = list(base.reveals)
        rng.shuffle(order)
        shuffled = lambda d: dict(sorted(d.items(), key=lambda kv: rng.random()))  # noqa: E731
        again = sa.unmask(base.params, shuffled(base.adverts), shuffled(base.bundles), shuffled(base.masked), order)
        assert np.array_equal(again.total, first.total) and again.total_weight == first.total_weight
        assert (again.survivors, again.dropped) == (first.survivors, first.dropped)
    # rebuilt from the bytes alone, and from fewer (still enough) reveals: the same bits
    adverts = {u: sa.KeyAdvert.from_bytes(a.to_bytes()) for u, a in base.adverts.items()}
    bundles = {u: sa.ShareBundle.from_bytes(b.to_bytes()) for u, b in base.bundles.items()}
    masked = {u: sa.MaskedInput.from_bytes(m.to_bytes()) for u, m in base.masked.items()}
    reveals = [sa.Reveal.from_bytes(rv.to_bytes()) for rv in base.reveals]
    assert adverts == base.adverts and bundles == base.bundles and reveals == base.reveals
    from_blobs = sa.unmask(base.params, adverts, bundles, masked, reveals)
    assert np.array_equal(from_blobs.total, first.total)
    # base is at the tolerated 4 dropouts; a round with 2 gives the same sum from any 6 of its 8 reveals
    r = run_round(12, 256, seed=7, no_send=1, no_reveal=1)
    full = r.unmask()
    for drop in ([0, 1], [3, 7], [5, 6]):
        fewer = [rv for i, rv in enumerate(r.reveals) if i not in drop]
        assert np.array_equal(sa.unmask(r.params, r.adverts, r.bundles, r.masked, fewer).total, full.total)
    assert np.array_equal(first.fedavg(), base.plain())


def test_blobs_refuse_garbage(base):
    blob = base.bundles[sorted(base.bundles)[0]].to_bytes()
    with pytest.raises(sa.SecAggError, match="truncated"):
        sa.ShareBundle.from_bytes(blob[:-1])
    with pytest.raises(sa.SecAggError, match="trailing"):
        sa.MaskedInput.from_bytes(base.masked[sorted(base.masked)[0]].to_bytes() + b"\0")
    with pytest.raises(sa.SecAggError, match="not a reveal"):
        sa.Reveal.from_bytes(blob)


# --- scale: 100 trainers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "n,dropout", [(20, 0.0), (20, 0.1), (20, 0.3), (100, 0.0), (100, 0.1), (100, 0.3)], ids=lambda v: str(v)
)
def test_rounds_at_scale_report_time_and_bytes(n, dropout, capsys):
    gone = round(n * dropout)
    r = run_round(n, 5000, seed=n + gone, no_send=gone // 2, no_reveal=gone - gone // 2, deterministic=False)
    assert np.array_equal(r.unmask().fedavg(), r.plain())
    b = r.bytes_per_trainer()
    with capsys.disabled():
        print(
            f"\nsecagg n={n} k={r.params.k} t={r.params.t} dropout={dropout:.0%} dim=5000: "
            + " ".join(f"{k}={v:.3f}s" for k, v in r.seconds.items())
            + f" total={sum(r.seconds.values()):.3f}s | bytes/trainer "
            + " ".join(f"{k}={v:.0f}" for k, v in b.items())
        )
