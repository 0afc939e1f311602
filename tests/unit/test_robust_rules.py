"""Unit tests for the robust aggregation rules (fedchain.learning.aggregate): exact
fixed-point FedMedian, FedTrimmedAvg, Krum/MultiKrum, Bulyan, centered clipping,
FLTrust and NNM, through the one entry point ``aggregate_update``.

Each rule gets a hand-checkable example, its known robustness property, a float64
reference where one makes sense, a determinism check, and a hypothesis property
that its output stays in range.
"""

from fractions import Fraction
from math import sqrt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import LearningError
from fedchain.learning.aggregate import (
    RULES,
    aggregate_update,
    enough_updates,
    min_updates,
    needs_root_scores,
    needs_root_set,
    uses_prev_update,
    zeno,
)
from fedchain.learning.aggregate.bulyan import select_bulyan
from fedchain.learning.aggregate.centeredclipping import clip_rows
from fedchain.learning.aggregate.common import dots, pairwise_sq_distances, sq_norms
from fedchain.learning.aggregate.fltrust import trust_scores
from fedchain.learning.aggregate.nnm import nnm
from fedchain.learning.fixedpoint import QMAX, SCALE
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.trainer import client_momentum


def vecs(*rows):
    return [np.array(r, dtype=np.int64) for r in rows]


def agg(rule, updates, params=None, samples=None, **kw):
    return aggregate_update(rule, params or {}, updates, samples or [1] * len(updates), **kw)


def cluster(rng, n, d, centre=0, spread=1000):
    return [rng.integers(centre - spread, centre + spread, d, endpoint=True) for _ in range(n)]


# ---------------------------------------------------------------- registry and entry point


def test_registry_names():
    assert set(RULES) == {
        "fedavg",
        "fedmedian",
        "fedtrimmedavg",
        "krum",
        "multikrum",
        "bulyan",
        "centeredclipping",
        "fltrust",
        "zeno",
    }
    assert [r for r in RULES if needs_root_set(r)] == ["fltrust"]
    assert [r for r in RULES if needs_root_scores(r)] == ["zeno"]
    assert [r for r in RULES if uses_prev_update(r)] == ["centeredclipping"]


def test_fedavg_through_the_registry_is_fedavg():
    x = vecs([10, -7, 3], [0, 5, -1], [4, 4, 4])
    assert np.array_equal(agg("fedavg", x, samples=[1, 2, 3]), (10 + 0 + 12, -7 + 10 + 12, 3 - 2 + 12) // np.int64(6))


@pytest.mark.parametrize(
    "rule, params, kw, message",
    [
        ("fedmean", {}, {}, "unknown aggregation rule 'fedmean'"),
        ("fedtrimmedavg", {"betta": 0.1}, {}, "has no parameter betta"),
        ("fedtrimmedavg", {"beta": 0.5}, {}, r"beta must be in \[0, 0.5\)"),
        ("fedtrimmedavg", {"beta": "0.1"}, {}, "must be a finite number"),
        ("krum", {"num_malicious_nodes": -1}, {}, "must be an integer >= 0"),
        ("krum", {"num_malicious_nodes": 1.5}, {}, "must be an integer >= 0"),
        ("multikrum", {"num_nodes_to_select": 0}, {}, "must be an integer >= 1"),
        ("multikrum", {"num_nodes_to_select": 8}, {}, "between 1 and 7"),
        ("fedmedian", {"nnm": True}, {}, "nnm needs 'num_malicious_nodes'"),
        ("fedmedian", {"nnm": 1, "num_malicious_nodes": 1}, {}, "'nnm' must be true or false"),
        ("centeredclipping", {"tau": 0}, {}, "tau must be at least"),
        ("centeredclipping", {"iterations": 0}, {}, "must be an integer >= 1"),
        ("fltrust", {}, {}, "needs root_update"),
        (
            "fltrust",
            {},
            {"root_update": np.zeros(2, dtype=np.int64)},
            "root_update must be an integer vector of length 3",
        ),
        ("zeno", {}, {}, "needs root_scores"),
        ("zeno", {}, {"root_scores": [1] * 6}, "7 updates but 6 root-set scores"),
        ("zeno", {"num_malicious_nodes": 7}, {"root_scores": [1] * 7}, "0 <= num_malicious_nodes < n"),
    ],
)
def test_bad_rules_and_parameters_are_clear_errors(rule, params, kw, message):
    x = vecs(*([i, -i, 2 * i] for i in range(7)))
    with pytest.raises(LearningError, match=message):
        agg(rule, x, params, **kw)


@pytest.mark.parametrize(
    "rule, params, need",
    [
        ("fedavg", {}, 1),
        ("fedmedian", {}, 1),
        ("fedtrimmedavg", {"beta": 0.4}, 1),
        ("fltrust", {}, 1),
        ("zeno", {"num_malicious_nodes": 2}, 3),
        ("centeredclipping", {}, 1),
        ("krum", {}, 3),
        ("krum", {"num_malicious_nodes": 2}, 7),
        ("multikrum", {"num_malicious_nodes": 1, "num_nodes_to_select": 9}, 9),
        ("bulyan", {"num_malicious_nodes": 2}, 11),
        ("fedmedian", {"nnm": True, "num_malicious_nodes": 3}, 4),
    ],
)
def test_min_updates_is_exactly_where_a_rule_starts_to_accept(rule, params, need):
    assert min_updates(rule, params) == need
    x = vecs(*([i, 3 * i] for i in range(need)))
    g0 = np.array([1, 1])
    assert agg(rule, x, params, root_update=g0, root_scores=[1] * need).shape == (2,)
    if need > 1:
        with pytest.raises(LearningError):
            agg(rule, x[:-1], params, root_update=g0, root_scores=[1] * (need - 1))


def test_updates_are_checked():
    with pytest.raises(LearningError, match="no updates"):
        agg("fedmedian", [])
    with pytest.raises(LearningError, match="fixed-point range"):
        agg("fedmedian", vecs([QMAX + 1]))
    with pytest.raises(LearningError, match="one length"):
        agg("fedmedian", vecs([1, 2], [1]))
    with pytest.raises(LearningError, match="integer fixed-point"):
        agg("fedmedian", [np.array([0.5])])
    with pytest.raises(LearningError, match="2 updates but 1 sample counts"):
        aggregate_update("fedmedian", {}, vecs([1], [2]), [1])


# ---------------------------------------------------------------- FedMedian


def test_median_by_hand():
    assert np.array_equal(agg("fedmedian", vecs([1, -5], [9, 7], [4, 0])), [4, 0])
    # even count: floor of the mean of the two middle values, also for negatives
    assert np.array_equal(agg("fedmedian", vecs([1, -3], [2, -2], [4, 0], [10, 6])), [(2 + 4) // 2, (-2 + 0) // 2])
    assert np.array_equal(agg("fedmedian", vecs([-3], [-2])), [-3])  # floor(-2.5)


def test_median_and_trimmed_mean_ignore_f_extreme_outliers():
    rng = np.random.default_rng(1)
    honest = cluster(rng, 8, 50)
    lo, hi = np.min(honest, axis=0), np.max(honest, axis=0)
    for outlier in (QMAX, -QMAX):
        x = honest + [np.full(50, outlier)] * 2  # f = 2 of n = 10
        for rule, params in (("fedmedian", {}), ("fedtrimmedavg", {"beta": 0.2})):
            out = agg(rule, x, params)
            assert np.all((lo <= out) & (out <= hi)), rule
    # with beta = 0.2 and n = 10, exactly the two outliers and two honest extremes are cut
    x = honest + [np.full(50, QMAX)] * 2
    kept = np.sort(np.stack(x), axis=0)[2:8]
    assert np.array_equal(agg("fedtrimmedavg", x, {"beta": 0.2}), kept.sum(axis=0) // 6)


# ---------------------------------------------------------------- FedTrimmedAvg


def test_trimmed_mean_by_hand():
    x = vecs([1, 100], [2, -100], [3, 7], [4, 8], [1000, 9])  # beta 0.2 of 5: drop one at each end
    assert np.array_equal(agg("fedtrimmedavg", x), [(2 + 3 + 4) // 3, (7 + 8 + 9) // 3])
    assert np.array_equal(agg("fedtrimmedavg", x, {"beta": 0}), np.stack(x).sum(axis=0) // 5)


def test_trimmed_beta_is_the_exact_decimal():
    # 0.3 as a double is below 3/10, so floor(0.3 * 10) computed exactly from the double would be 2
    assert Fraction(0.3) * 10 < 3
    x = vecs([0], [0], [0], [1], [1], [1], [1], [90], [90], [90])
    assert np.array_equal(agg("fedtrimmedavg", x, {"beta": 0.3}), [(1 + 1 + 1 + 1) // 4])


# ---------------------------------------------------------------- Krum and MultiKrum


def test_krum_by_hand():
    # n = 4, f = 0: each score sums the squared distances to the n - f - 2 = 2 nearest others
    x = vecs([0], [1], [3], [10])
    # scores: 0 -> 1 + 9 = 10, 1 -> 1 + 4 = 5, 3 -> 4 + 9 = 13, 10 -> 49 + 81 = 130
    assert np.array_equal(agg("krum", x, {"num_malicious_nodes": 0}), [1])
    # MultiKrum with m = 2 averages [1] and [0] weighted by their sample counts: (1*3 + 0*1) // 4
    assert np.array_equal(
        agg("multikrum", x, {"num_malicious_nodes": 0, "num_nodes_to_select": 2}, samples=[1, 3, 1, 1]), [0]
    )
    assert np.array_equal(
        agg("multikrum", x, {"num_malicious_nodes": 0, "num_nodes_to_select": 2}, samples=[1, 5, 1, 1]), [(5 * 1) // 6]
    )


def test_krum_ties_go_to_the_lower_reveal_index():
    # n = 3, f = 0: one neighbour each; all three scores are 25
    assert np.array_equal(agg("krum", vecs([0], [10], [5])), [0])
    assert np.array_equal(agg("krum", vecs([10], [5], [0])), [10])


@pytest.mark.parametrize("rule", ["krum", "multikrum"])
def test_krum_picks_from_the_honest_cluster(rule):
    rng = np.random.default_rng(2)
    honest = cluster(rng, 9, 200, centre=500)
    attackers = [np.full(200, -4000), np.full(200, -4000) + 1, rng.integers(-QMAX, QMAX, 200)]
    x = attackers[:2] + honest + attackers[2:]
    out = agg(rule, x, {"num_malicious_nodes": 3})
    if rule == "krum":
        assert any(np.array_equal(out, h) for h in honest)
    lo, hi = np.min(honest, axis=0), np.max(honest, axis=0)
    assert np.all((lo <= out) & (out <= hi))


def test_krum_needs_n_above_2f_plus_2():
    x = vecs(*([i] for i in range(6)))
    agg("krum", x + vecs([6]), {"num_malicious_nodes": 2})  # n = 7 > 6
    with pytest.raises(LearningError, match=r"Krum needs n > 2f \+ 2 \(at least 7 updates for f = 2"):
        agg("krum", x, {"num_malicious_nodes": 2})


def test_multikrum_matches_a_float_reference():
    rng = np.random.default_rng(3)
    x = cluster(rng, 12, 300, spread=50_000)
    f, m = 3, 9
    xf = np.stack(x).astype(np.float64)
    dist = ((xf[:, None, :] - xf[None, :, :]) ** 2).sum(axis=2)
    scores = [np.sort(np.delete(dist[i], i))[: 12 - f - 2].sum() for i in range(12)]
    chosen = np.argsort(scores, kind="stable")[:m]
    ref = xf[chosen].mean(axis=0)
    out = agg("multikrum", x, {"num_malicious_nodes": f, "num_nodes_to_select": m})
    assert np.all((out <= ref) & (ref - out < 1))


# ---------------------------------------------------------------- Bulyan


def test_bulyan_requires_n_at_least_4f_plus_3():
    x = vecs(*([i] for i in range(10)))
    with pytest.raises(
        LearningError,
        match=r"bulyan: valid only for n >= 4f \+ 3; 10 updates with f = 2 "
        r"malicious needs at least 11",
    ):
        agg("bulyan", x, {"num_malicious_nodes": 2})
    agg("bulyan", x + vecs([10]), {"num_malicious_nodes": 2})


def test_bulyan_by_hand():
    # n = 7, f = 1: theta = 5 chosen by repeated Krum, then per coordinate the beta = 3 closest to the median
    x = vecs([0, 0], [1, 10], [2, 20], [3, 30], [4, 40], [5, 50], [1000, -1000])
    assert list(select_bulyan(np.stack(x), 1)) == [0, 1, 2, 3, 4]
    # chosen columns: 0..4 (median 2: keep 1, 2, 3) and 0..40 (median 20: keep 10, 20, 30)
    assert np.array_equal(agg("bulyan", x, {"num_malicious_nodes": 1}), [2, 20])


def test_bulyan_breaks_mutual_nearest_ties_by_reveal_index():
    # n = 7, f = 1: theta = 5; at the last step 3 are left and Krum counts one neighbour, so the
    # mutually nearest pair [100] and [102] ties (score 4): the one revealed first is chosen
    x = vecs([0], [1], [2], [3], [100], [102], [4000])
    chosen = select_bulyan(np.stack(x), 1)
    assert list(chosen) == [0, 1, 2, 3, 4]
    swapped = [x[i] for i in (0, 1, 2, 3, 5, 4, 6)]
    assert [int(swapped[i][0]) for i in select_bulyan(np.stack(swapped), 1)] == [0, 1, 2, 3, 102]


def test_bulyan_is_order_free_when_krum_counts_several_neighbours():
    rng = np.random.default_rng(14)
    x = cluster(rng, 15, 100, spread=QMAX // 2)  # f = 3: the last steps count f - 1 = 2 neighbours
    out = agg("bulyan", x, {"num_malicious_nodes": 3})
    for _ in range(3):
        assert np.array_equal(agg("bulyan", [x[i] for i in rng.permutation(15)], {"num_malicious_nodes": 3}), out)


def test_bulyan_ignores_f_outliers():
    rng = np.random.default_rng(4)
    honest = cluster(rng, 9, 100)
    x = honest + [np.full(100, QMAX), np.full(100, -QMAX)]
    out = agg("bulyan", x, {"num_malicious_nodes": 2})
    lo, hi = np.min(honest, axis=0), np.max(honest, axis=0)
    assert np.all((lo <= out) & (out <= hi))


# ---------------------------------------------------------------- centered clipping


def test_centered_clipping_by_hand():
    tau = 5 / SCALE  # 5 quanta
    # from centre 0: [3, 4] has norm 5 (kept), [0, 30] is clipped to [0, 5], [-8, -6] (norm 10) to [-4, -3]
    x = vecs([3, 4], [0, 30], [-8, -6])
    assert np.array_equal(clip_rows(np.stack(x), 5), [[3, 4], [0, 5], [-4, -3]])
    assert np.array_equal(agg("centeredclipping", x, {"tau": tau}), [(3 + 0 - 4) // 3, (4 + 5 - 3) // 3])
    # a second iteration starts from [-1, 2]
    v = np.array([-1, 2])
    step = clip_rows(np.stack(x) - v, 5).sum(axis=0) // 3
    assert np.array_equal(agg("centeredclipping", x, {"tau": tau, "iterations": 2}), v + step)
    # the centre is the previous aggregate update when given
    prev = np.array([3, 4])
    assert np.array_equal(
        agg("centeredclipping", x, {"tau": tau}, prev_update=prev),
        prev + clip_rows(np.stack(x) - prev, 5).sum(axis=0) // 3,
    )


def test_clipped_norm_never_exceeds_tau():
    rng = np.random.default_rng(5)
    z = rng.integers(-QMAX, QMAX, (50, 333))
    for tau_q in (1, 7, 10_000, 2**20):
        assert max(sq_norms(clip_rows(z.copy(), tau_q))) <= tau_q**2


def test_centered_clipping_bounds_one_huge_outlier_by_tau():
    rng = np.random.default_rng(6)
    honest = cluster(rng, 9, 64, spread=100)
    tau_q = SCALE // 10  # 0.1 model units
    params = {"tau": 0.1}
    base = agg("centeredclipping", honest + [honest[0]], params)
    for outlier in (np.full(64, QMAX), np.full(64, -QMAX), QMAX * (np.arange(64) % 2)):
        out = agg("centeredclipping", honest + [outlier], params)
        # replacing one of n = 10 updates moves one step by at most 2 tau / n, plus a quantum of flooring per coordinate
        assert sqrt(sq_norms((out - base)[None, :])[0]) <= 2 * tau_q / 10 + sqrt(64)
    # the plain mean moves by |outlier| / n: hundreds of times more
    assert abs(int(agg("fedavg", honest + [np.full(64, QMAX)])[0]) - int(base[0])) > 100 * tau_q / 10


def test_client_momentum_averages_a_trainers_updates_over_rounds():
    u1, u2, u3 = ({"w": np.array([v, -v], dtype=np.float32)} for v in (1.0, 3.0, -2.0))
    m1 = client_momentum(None, u1, 0.75)
    assert m1 is u1  # the first update goes out as it is
    m2 = client_momentum(m1, u2, 0.75)
    m3 = client_momentum(m2, u3, 0.75)
    assert np.array_equal(m2["w"], [1.5, -1.5]) and np.array_equal(m3["w"], [0.625, -0.625])
    assert m3["w"].dtype == np.float32
    with pytest.raises(ValueError, match="client_momentum"):
        Recipe(client_momentum=1.0)


def test_centered_clipping_with_a_large_tau_is_the_mean():
    rng = np.random.default_rng(7)
    x = cluster(rng, 10, 40)
    assert np.array_equal(agg("centeredclipping", x, {"tau": 100.0}), np.stack(x).sum(axis=0) // 10)


def test_centered_clipping_matches_a_float_reference():
    rng = np.random.default_rng(8)
    x = cluster(rng, 10, 200, spread=30_000)
    tau, iters = 1.5, 4
    v = np.zeros(200)
    xf = np.stack(x) / SCALE
    for _ in range(iters):
        z = xf - v
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        v = v + (z * np.minimum(1, tau / norms)).mean(axis=0)
    out = agg("centeredclipping", x, {"tau": tau, "iterations": iters})
    assert np.max(np.abs(out - v * SCALE)) <= 2 * iters


# ---------------------------------------------------------------- FLTrust


def test_fltrust_by_hand():
    g0 = np.array([0, 2 * SCALE])  # norm 2.0
    x = vecs([0, 4 * SCALE], [3 * SCALE, 3 * SCALE], [0, -SCALE])
    # trust: cos 1 -> 10**6, cos 45 degrees -> floor(10**6 / sqrt 2), opposite -> 0
    assert trust_scores(np.stack(x), g0) == [10**6, 707_106, 0]
    # rescaled to norm 2: [0, 2], [sqrt 2, sqrt 2] (floored at 2**-32 then to quanta)
    s2 = int(np.floor(sqrt(2) * SCALE))
    want = (np.array([0, 2 * SCALE]) * 10**6 + np.array([s2, s2]) * 707_106) // (10**6 + 707_106)
    assert np.max(np.abs(agg("fltrust", x, root_update=g0) - want)) <= 1


def test_fltrust_gives_zero_weight_to_an_update_opposite_to_the_root():
    rng = np.random.default_rng(9)
    g0 = rng.integers(-5000, 5000, 80)
    honest = [g0 + rng.integers(-2000, 2000, 80) for _ in range(5)]
    base = agg("fltrust", honest, root_update=g0)
    for attack in (-g0, -100 * g0, np.zeros(80, dtype=np.int64)):
        out = agg("fltrust", honest[:2] + [attack] + honest[2:], root_update=g0)
        assert np.array_equal(out, base)
    # nobody trusted: the model stays where it is
    assert not agg("fltrust", [-g0, -2 * g0], root_update=g0).any()


def test_fltrust_matches_a_float_reference():
    rng = np.random.default_rng(10)
    g0 = rng.integers(-30_000, 30_000, 500)
    x = [g0 * k // 4 + rng.integers(-40_000, 40_000, 500) for k in (1, 2, 8, -3, 5)]
    gf, xf = g0.astype(np.float64), np.stack(x).astype(np.float64)
    cos = xf @ gf / (np.linalg.norm(xf, axis=1) * np.linalg.norm(gf))
    ts = np.maximum(cos, 0)
    ref = (ts[:, None] * xf * (np.linalg.norm(gf) / np.linalg.norm(xf, axis=1))[:, None]).sum(axis=0) / ts.sum()
    assert np.max(np.abs(agg("fltrust", x, root_update=g0) - ref)) <= 2


def test_fltrust_rescaling_saturates_instead_of_overflowing():
    d = 4096
    g0 = np.full(d, QMAX)  # norm 64 * QMAX
    tiny = np.zeros(d, dtype=np.int64)
    tiny[0] = 1  # rescaled by 64 * QMAX
    out = agg("fltrust", [tiny], root_update=g0)
    assert out[0] == 2 * QMAX and not out[1:].any()


# ---------------------------------------------------------------- NNM


def test_zeno_by_hand():
    x = vecs([10, 0], [-50, 7], [20, 4], [2, 2], [6, -6])
    scores = [5, 0, 9, 3, 7]
    # b = 2: at most 3 kept, the highest positive scores: indices 2, 4, 0; FedAvg over them
    want = (np.int64(10) * 1 + 20 * 3 + 6 * 5, 0 * 1 + 4 * 3 - 6 * 5)
    assert np.array_equal(
        agg("zeno", x, {"num_malicious_nodes": 2}, samples=[1, 2, 3, 4, 5], root_scores=scores),
        np.array(want, dtype=np.int64) // 9,
    )
    # b = 0: every positive score is kept, the zero-scored update never is
    assert np.array_equal(agg("zeno", x, {}, root_scores=scores), np.array([38, 0]) // 4)


def test_zeno_ties_go_to_the_lower_reveal_index_and_no_positive_score_keeps_the_model():
    x = vecs([1, 1], [2, 2], [3, 3], [4, 4])
    assert np.array_equal(agg("zeno", x, {"num_malicious_nodes": 2}, root_scores=[4, 4, 4, 9]), [2, 2])  # rows 0, 3
    assert np.array_equal(agg("zeno", x, {"num_malicious_nodes": 1}, root_scores=[0, 0, 0, 0]), [0, 0])


def test_zeno_clip_bounds_kept_updates_by_the_median_norm():
    x = vecs([3, 4], [6, 8], [0, 5], [300, 400])  # norms 5, 10, 5, 500; upper median 10
    scores = [1, 1, 1, 1]
    plain = agg("zeno", x, {}, root_scores=scores)
    clipped = agg("zeno", x, {"clip": True}, root_scores=scores)
    assert np.array_equal(plain, np.array([309, 417]) // 4)
    assert np.array_equal(clipped, np.array([3 + 6 + 0 + 6, 4 + 8 + 5 + 8]) // 4)  # 500 -> norm 10: (6, 8)
    with pytest.raises(LearningError, match="'clip' must be true or false"):
        agg("zeno", x, {"clip": 1}, root_scores=scores)


def test_zeno_leaves_out_what_the_root_set_scores_zero_whatever_its_size():
    rng = np.random.default_rng(3)
    honest = cluster(rng, 7, 50, centre=500)
    attackers = [np.full(50, -QMAX)] * 3  # scored 0 by the root set: left out, however extreme
    out = agg("zeno", honest + attackers, {"num_malicious_nodes": 3}, root_scores=[3] * 7 + [0] * 3)
    assert np.array_equal(out, agg("fedavg", honest))


def test_zeno_counts_a_trainer_once_per_seat():
    """One update with 3 seats (a stake above the sortition cap) is kept and clipped as its
    3 copies from 3 one-seat identities would be; one seat each is the plain rule."""
    x = vecs([3, 4], [6, 8], [0, 5], [300, 400])  # norms 5, 10, 5, 500
    scores, params = [4, 3, 2, 9], {"num_malicious_nodes": 2, "clip": True}
    copies = agg("zeno", [*x, x[3], x[3]], params, samples=[2, 3, 4, 5, 5, 5], root_scores=[*scores, 9, 9])
    whole = agg("zeno", x, params, samples=[2, 3, 4, 15], root_scores=scores, seats=[10_000] * 3 + [30_000])
    assert np.array_equal(whole, copies)  # 6 seats, b = 2: the big one (3 seats) and the best one seat
    assert not np.array_equal(whole, agg("zeno", x, params, samples=[2, 3, 4, 15], root_scores=scores))
    assert np.array_equal(
        agg("zeno", x, params, root_scores=scores, seats=[10_000] * 4), agg("zeno", x, params, root_scores=scores)
    )
    # the best first until n - b seats are kept: a 3-seat update with 2 seats left keeps 2 of them
    assert zeno.select([9, 8, 7, 1], 3, seats=[10_000, 30_000, 10_000, 10_000]) == {0: 10_000, 1: 20_000}
    assert zeno.select([9, 8, 7, 1], 2) == {0: 10_000, 1: 10_000}
    part = agg(
        "zeno",
        x,
        {"num_malicious_nodes": 3},
        samples=[2, 3, 4, 15],
        root_scores=[9, 3, 2, 8],
        seats=[10_000] * 3 + [30_000],
    )  # 3 seats kept: row 0's and 2 of row 3's, weighing 10 of 15
    assert np.array_equal(part, (2 * x[0] + 10 * x[3]) // 12)
    # a sliver kept of a one-sample update still weighs one sample (FedAvg refuses weight 0)
    sliver = agg(
        "zeno",
        x,
        {"num_malicious_nodes": 3},
        samples=[2, 3, 4, 1],
        root_scores=[9, 3, 2, 8],
        seats=[10_000] * 3 + [30_000],
    )  # 2 of row 3's 3 seats: 2/3 of one sample
    assert np.array_equal(sliver, (2 * x[0] + 1 * x[3]) // 3)
    with pytest.raises(LearningError, match="seat count"):
        agg("zeno", x, params, root_scores=scores, seats=[10_000] * 3)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.integers(-QMAX, QMAX), min_size=3, max_size=3), st.integers(1, 4)), min_size=1, max_size=9
    ),
    st.sampled_from([0.0, 0.2, 0.25, 0.3, 0.45]),
)
def test_median_and_trimmed_mean_count_an_update_once_per_seat(rows, beta):
    """An update with k whole seats is aggregated as k one-seat copies of it would be (so a
    stake split over identities that send one update moves no coordinate); equal seats are
    the plain rule, bit for bit."""
    x = [np.array(r, np.int64) for r, _ in rows]
    k = [m for _, m in rows]
    copies = [u for u, m in zip(x, k) for _ in range(m)]
    seats = [m * 10_000 for m in k]
    assert np.array_equal(agg("fedmedian", x, seats=seats), agg("fedmedian", copies))
    assert np.array_equal(agg("fedmedian", x, seats=[10_000] * len(x)), agg("fedmedian", x))
    params = {"beta": beta}
    try:
        expected = agg("fedtrimmedavg", copies, params)
    except LearningError:  # trimming leaves nothing: the same error with seats
        with pytest.raises(LearningError, match="leaves nothing"):
            agg("fedtrimmedavg", x, params, seats=seats)
    else:
        assert np.array_equal(agg("fedtrimmedavg", x, params, seats=seats), expected)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 3), min_size=5, max_size=8))
def test_every_rule_counts_an_update_once_per_seat(seed, k):
    """One update with k whole seats is aggregated as k one-seat copies of it (sent by k
    identities) would be, under every rule, NNM first or not; with one seat each, the plain
    rule."""
    rng = np.random.default_rng(seed)
    x = cluster(rng, len(k), 6, spread=3000)
    copies = [u for u, m in zip(x, k) for _ in range(m)]
    seats = [m * 10_000 for m in k]
    f = 1
    root = rng.integers(-3000, 3000, 6)
    cases = [
        ("fedmedian", {}),
        ("fedtrimmedavg", {"beta": 0.2}),
        ("krum", {"num_malicious_nodes": f}),
        ("multikrum", {"num_malicious_nodes": f}),
        ("centeredclipping", {"tau": 0.02, "iterations": 2}),
        ("fltrust", {}),
        ("fedmedian", {"nnm": True, "num_malicious_nodes": f}),
        ("fedtrimmedavg", {"nnm": True, "num_malicious_nodes": f, "beta": 0.1}),
    ]
    if len(k) >= 7:  # Bulyan needs n >= 4f + 3
        cases.append(("bulyan", {"num_malicious_nodes": f}))
    for rule, params in cases:
        kw = {"root_update": root} if rule == "fltrust" else {}
        # sample counts are ignored by all of these but MultiKrum, which weighs a copy as the whole
        whole = agg(rule, x, params, samples=[5 * m for m in k], seats=seats, **kw)
        assert np.array_equal(whole, agg(rule, copies, params, samples=[5] * len(copies), **kw)), (rule, params)
        assert np.array_equal(agg(rule, x, params, seats=[10_000] * len(x), **kw), agg(rule, x, params, **kw))


@pytest.mark.parametrize(
    "rule, params, n",
    [
        ("krum", {"num_malicious_nodes": 1}, 5),
        ("multikrum", {"num_malicious_nodes": 1, "num_nodes_to_select": 5}, 5),
        ("bulyan", {"num_malicious_nodes": 1}, 7),
        ("zeno", {"num_malicious_nodes": 4}, 5),
        ("fedmedian", {"nnm": True, "num_malicious_nodes": 4}, 5),
    ],
)
def test_the_fewest_updates_a_rule_takes_are_counted_in_seats(rule, params, n):
    """n - 1 updates, one of them with two seats, are enough where n one-seat updates are
    (their copies would be n updates); without the extra seat they are not."""
    x = vecs(*([i, 3 * i] for i in range(n - 1)))
    kw = {"root_scores": list(range(1, n))} if rule == "zeno" else {}
    seats = [10_000] * (n - 2) + [20_000]
    assert enough_updates(rule, params, seats) and not enough_updates(rule, params, [10_000] * (n - 1))
    assert agg(rule, x, params, seats=seats, **kw).shape == (2,)
    with pytest.raises(LearningError):
        agg(rule, x, params, **kw)


def test_median_and_trimmed_mean_with_part_seats_by_hand():
    x = vecs([0], [10], [20], [30])
    # 1.6 seats at 0, one each at 10, 20, 30: 46,000 positions; 0 covers [0, 16000), 10 covers
    # [16000, 26000), 20 [26000, 36000), 30 [36000, 46000). Both middle positions (22999 and
    # 23000) are 10's.
    seats = [16_000, 10_000, 10_000, 10_000]
    assert agg("fedmedian", x, seats=seats).tolist() == [10]
    # beta 0.25 trims floor(0.25 * 4.6) = 1 whole seat at each end: positions [10000, 36000) are
    # kept, 6000 of 0's, all of 10's and 20's, none of 30's
    assert agg("fedtrimmedavg", x, {"beta": 0.25}, seats=seats).tolist() == [(10 + 20) * 10_000 // 26_000]
    with pytest.raises(LearningError, match="seat count"):
        agg("fedmedian", x, seats=[10_000, 0, 10_000, 10_000])


def test_nnm_by_hand():
    x = np.stack(vecs([0, 0], [2, 0], [10, 0], [11, 4]))
    # f = 1: each update is mixed with its 3 nearest (itself included)
    # 0 -> {0, 2, 10}; 2 -> {2, 0, 10}; 10 -> {10, 11, 2}; 11 -> {11, 10, 2}
    assert np.array_equal(nnm(x, 1), [[4, 0], [4, 0], [(10 + 11 + 2) // 3, 4 // 3], [(10 + 11 + 2) // 3, 4 // 3]])
    assert np.array_equal(nnm(x, 0), np.tile(x.sum(axis=0) // 4, (4, 1)))


def test_nnm_composes_with_any_rule():
    rng = np.random.default_rng(11)
    x = cluster(rng, 11, 30) + [np.full(30, QMAX), np.full(30, -QMAX)]
    mixed = list(nnm(np.stack(x), 2))
    for rule, params in (
        ("fedmedian", {}),
        ("krum", {"num_malicious_nodes": 2}),
        ("fedavg", {}),
        ("bulyan", {"num_malicious_nodes": 2}),
    ):
        with_nnm = agg(rule, x, params | {"nnm": True, "num_malicious_nodes": 2})
        assert np.array_equal(with_nnm, agg(rule, mixed, params))


def test_nnm_matches_a_float_reference():
    rng = np.random.default_rng(12)
    x = np.stack(cluster(rng, 9, 100, spread=10**6))
    xf = x.astype(np.float64)
    dist = ((xf[:, None, :] - xf[None, :, :]) ** 2).sum(axis=2)
    ref = np.stack([xf[np.argsort(dist[i], kind="stable")[:7]].mean(axis=0) for i in range(9)])
    out = nnm(x, 2)
    assert np.all((out <= ref) & (ref - out < 1))


# ---------------------------------------------------------------- exactness, determinism, range


def test_pairwise_distances_are_exact_beyond_int64():
    d = 2**15 + 3  # |x_i - x_j|**2 = d * (2 * QMAX)**2 > 2**63
    x = np.stack([np.full(d, QMAX), np.full(d, -QMAX)])
    assert pairwise_sq_distances(x) == [[0, d * (2 * QMAX) ** 2], [d * (2 * QMAX) ** 2, 0]]
    assert d * (2 * QMAX) ** 2 > 2**63


@pytest.mark.parametrize("d", [0, 1, 63, 64, 65, 200])
def test_norms_dots_and_distances_equal_python_integer_arithmetic(d):
    x = np.random.default_rng(d).integers(-QMAX, QMAX, (5, d), endpoint=True)
    py = [[int(v) for v in row] for row in x]
    assert sq_norms(x) == [sum(v * v for v in r) for r in py]
    assert dots(x, x[0]) == [sum(a * b for a, b in zip(r, py[0])) for r in py]
    assert pairwise_sq_distances(x) == [[sum((a - b) ** 2 for a, b in zip(r, s)) for s in py] for r in py]


PERMUTATION_INVARIANT = [
    ("fedavg", {}),
    ("fedmedian", {}),
    ("fedtrimmedavg", {"beta": 0.25}),
    ("centeredclipping", {"tau": 0.01, "iterations": 2}),
    ("fltrust", {}),
    ("zeno", {"num_malicious_nodes": 3}),
]
# Krum, Bulyan and NNM break ties by reveal index; without ties (continuous-looking data) they are invariant too
ORDER_FREE_WITHOUT_TIES = [
    ("krum", {"num_malicious_nodes": 2}),
    ("multikrum", {"num_malicious_nodes": 2}),
    ("fedmedian", {"nnm": True, "num_malicious_nodes": 2}),
]


@pytest.mark.parametrize("rule, params", PERMUTATION_INVARIANT + ORDER_FREE_WITHOUT_TIES)
def test_same_bits_under_permutation(rule, params):
    rng = np.random.default_rng(13)
    x = cluster(rng, 11, 257, spread=QMAX // 2)
    samples = list(rng.integers(1, 1000, 11))
    g0 = rng.integers(-1000, 1000, 257)
    scores = list(rng.permutation(11) * 7 + 1)  # distinct: Zeno's ranking has no ties to break
    out = aggregate_update(rule, params, x, samples, root_update=g0, root_scores=scores)
    for _ in range(3):
        p = rng.permutation(11)
        again = aggregate_update(
            rule, params, [x[i] for i in p], [samples[i] for i in p], root_update=g0, root_scores=[scores[i] for i in p]
        )
        assert again.dtype == np.int64 and np.array_equal(again, out)


def all_rule_params(n):
    f = (n - 3) // 4
    return [
        ("fedavg", {}),
        ("fedmedian", {}),
        ("fedtrimmedavg", {}),
        ("krum", {"num_malicious_nodes": f}),
        ("multikrum", {"num_malicious_nodes": f}),
        ("bulyan", {"num_malicious_nodes": f}),
        ("centeredclipping", {"tau": 0.5, "iterations": 3}),
        ("fltrust", {}),
        ("zeno", {"num_malicious_nodes": f}),
        ("zeno", {"num_malicious_nodes": f, "clip": True}),
        ("fedtrimmedavg", {"nnm": True, "num_malicious_nodes": f}),
    ]


@st.composite
def update_sets(draw):
    n = draw(st.integers(3, 12), label="updates")
    d = draw(st.integers(1, 130), label="length")
    hi = draw(st.sampled_from([0, 1, 3, 1000, QMAX]), label="magnitude")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    x = [rng.integers(-hi, hi, d, endpoint=True) for _ in range(n)]
    if draw(st.booleans(), label="extremes"):
        x[0] = np.full(d, QMAX)
        x[-1] = np.full(d, -QMAX)
    g0 = rng.integers(-hi, hi, d, endpoint=True)
    prev = rng.integers(-2 * QMAX, 2 * QMAX, d, endpoint=True) if draw(st.booleans(), label="prev") else None
    return x, list(rng.integers(1, 5000, n)), g0, prev


@settings(max_examples=60, deadline=None)
@given(update_sets())
def test_outputs_stay_in_the_fixed_point_range(case):
    x, samples, g0, prev = case
    biggest = max(int(np.abs(u).max()) for u in x)
    for rule, params in all_rule_params(len(x)):
        out = aggregate_update(
            rule, params, x, samples, root_update=g0, prev_update=prev, root_scores=[int(abs(u).sum()) % 3 for u in x]
        )
        assert out.dtype == np.int64 and out.shape == x[0].shape
        if rule == "centeredclipping":  # in the hull of the centre and the updates, one quantum per iteration
            centre = 0 if prev is None else int(np.abs(prev).max())
            assert int(np.abs(out).max()) <= max(biggest, centre) + 3
        elif rule == "fltrust":  # rescaled to the root update's norm, saturated at the widest model step
            assert int(np.abs(out).max()) <= 2 * QMAX
        else:  # a selection or (trimmed, weighted) mean of the updates: never outside their range
            assert int(np.abs(out).max()) <= biggest
