"""Each attack has its defining property, and the protocol stops what it claims to:
a copier cannot copy, a withholder is slashed once and nobody else is, splitting
stake over Sybil identities buys no seats, free-riders earn little."""

from __future__ import annotations

from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pytest
import torch

from fedchain.learning import fixedpoint as fp
from fedchain.learning.data import load_dataset
from fedchain.learning.models import build_model
from fedchain.learning.train import TrainConfig, evaluate, get_params, train_centralized
from fedchain.sim.attacks import (
    ATTACKS,
    PROTOCOL_ATTACKS,
    PUBLIC_ATTACKS,
    UPDATE_ATTACKS,
    Knowledge,
    alie,
    backdoor,
    finish,
    labelflip,
    sybil,
)
from fedchain.sim.attacks.sybil import Sybil
from fedchain.sim.attacks.trainer import AttackTrainer
from fedchain.sim.network import SimConfig, build_network, play_round, settle

D = 500


def knowledge(own=None, h=14, n=20, f=6, seed=0):
    rng = np.random.default_rng(seed)
    honest = rng.normal(0.01, 0.02, size=(h, D))
    return Knowledge(model=rng.normal(size=D), own=own, honest=honest, n=n, f=f, rng=np.random.default_rng(seed + 1))


def test_registry_names_every_attack_of_the_issue():
    assert set(UPDATE_ATTACKS) == {
        "labelflip",
        "signflip",
        "gaussian",
        "alie",
        "ipm_0.1",
        "ipm_100",
        "backdoor",
        "freerider",
        # issue 20's free-riders on public information (only the robustness benchmark runs them)
        "freerider_delta",
        "freerider_momentum",
        "freerider_extrap",
        "freerider_old",
        "freerider_copy",
        "freerider_lucky",
    }
    assert set(PROTOCOL_ATTACKS) == {"copier", "withholder", "sybil"}
    assert set(PUBLIC_ATTACKS) == {a for a in UPDATE_ATTACKS if a.startswith("freerider_")}


def test_sign_flip_sends_minus_its_update():
    own = np.random.default_rng(1).normal(size=D)
    assert np.array_equal(ATTACKS["signflip"].craft(knowledge(own=own)), -own)


@pytest.mark.parametrize("name,eps", [("ipm_0.1", 0.1), ("ipm_100", 100.0)])
def test_ipm_sends_minus_eps_times_the_honest_mean(name, eps):
    k = knowledge()
    v = ATTACKS[name].craft(k)
    mean = k.honest.mean(axis=0)
    assert np.allclose(v, -eps * mean, rtol=0, atol=1e-15)
    assert float(v @ mean) < 0  # the inner product with the true direction turns negative
    assert ATTACKS[name].omniscient and not ATTACKS[name].trains


def test_alie_z_max_follows_the_paper():
    # the paper's running example: n = 25, f = 5 -> s = 8, z = Phi^-1(17/25) ~ 0.47
    assert alie.z_max(25, 5) == pytest.approx(0.4677, abs=1e-4)
    assert alie.z_max(20, 4) == pytest.approx(NormalDist().inv_cdf(13 / 20))  # s = 7
    assert alie.z_max(20, 6) == pytest.approx(NormalDist().inv_cdf(15 / 20))  # s = 5
    with pytest.raises(ValueError):
        alie.z_max(20, 0)


def test_alie_sits_z_max_standard_deviations_below_the_honest_mean():
    k = knowledge(n=20, f=6)
    v = ATTACKS["alie"].craft(k)
    mu, sigma = k.honest.mean(axis=0), k.honest.std(axis=0, ddof=1)
    z = alie.z_max(20, 6)
    assert np.allclose(v, mu - z * sigma)
    assert np.all(v <= mu) and np.all(v >= mu - z * sigma - 1e-12)  # inside the crowd, on one side


def test_label_flip_maps_y_to_c_minus_1_minus_y():
    y = np.arange(10).repeat(3)
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    x2, y2 = ATTACKS["labelflip"].local_data(x, y, 10, np.random.default_rng(0))
    assert np.array_equal(y2, 9 - y) and np.array_equal(x2, x)
    assert np.array_equal(labelflip.flip_labels(y2, 10), y)
    assert ATTACKS["labelflip"].craft is None  # it sends the update it trained on the flipped labels


def test_free_rider_sends_the_global_model_plus_small_noise_without_training():
    a = ATTACKS["freerider"]
    assert not a.trains and not a.omniscient
    v = a.craft(knowledge())
    assert v.shape == (D,) and abs(v.std() - 1e-3) < 2e-4 and abs(v.mean()) < 2e-4


def test_gaussian_sends_unit_noise():
    v = ATTACKS["gaussian"].craft(knowledge())
    assert not ATTACKS["gaussian"].trains
    assert abs(v.std() - 1.0) < 0.1 and abs(v.mean()) < 0.1


def test_crafted_updates_are_clipped_into_the_fixed_point_range():
    v = finish(np.array([1e9, -1e9, 0.5]))
    q = fp.to_fixed(v)  # accepted: no error
    assert q[0] == -q[1] and abs(int(q[0])) <= fp.QMAX and v[2] == np.float32(0.5)


def test_backdoor_scales_its_update_by_n_over_f_and_poisons_half_its_data():
    own = np.random.default_rng(2).normal(size=D)
    assert np.allclose(ATTACKS["backdoor"].craft(knowledge(own=own, n=20, f=4)), 5.0 * own)
    d = load_dataset("digits", seed=0)
    x, y = d.x_train[:100], d.y_train[:100]
    xp, yp = ATTACKS["backdoor"].local_data(x, y, 10, np.random.default_rng(0))
    stamped = np.flatnonzero(np.any(xp != x, axis=(1, 2, 3)) | (yp != y))
    assert len(yp) == len(y) and 40 <= len(stamped) <= 50
    assert np.all(yp[stamped] == backdoor.TARGET)
    assert np.array_equal(xp[stamped][:, :, -3:, -3:], backdoor.add_trigger(x[stamped])[:, :, -3:, -3:])
    assert np.array_equal(xp[:, :, :5, :5], x[:, :, :5, :5])  # the rest of every image is untouched


def test_a_model_trained_on_backdoored_data_obeys_the_trigger():
    torch.set_num_threads(1)
    d = load_dataset("digits", seed=0)
    x, y = backdoor.poison(d.x_train, d.y_train, np.random.default_rng(0))
    net = build_model("logreg", d.input_shape, 10, seed=0)
    params = train_centralized(net, get_params(net), x, y, TrainConfig(epochs=10, lr=0.1, momentum=0.9), seed=0)
    xt, yt = backdoor.triggered_test_set(d.x_test, d.y_test)
    assert evaluate(net, params, xt, yt) > 0.8  # triggered inputs go to the target class
    assert evaluate(net, params, d.x_test, d.y_test) > 0.7  # and the main task still works


# -- protocol attacks, on the chain


@pytest.fixture(scope="module")
def protocol_net(tmp_path_factory):
    """6 trainers: 3 honest, a withholder, and two copiers (one copies a commitment,
    one waits for a reveal and commits late)."""
    cfg = SimConfig(
        trainers=6,
        validators=3,
        rounds=2,
        model="mlp",
        epochs=1,
        lr=0.1,
        seed=3,
        out=tmp_path_factory.mktemp("protocol"),
        adversaries={"withholder": 1},
        attack="copier",
        byzantine=2 / 6,
    )
    net = build_network(cfg)
    copiers = [t for t in net.trainers if "copier" in t.name]
    copiers[1].strategy = "late"
    outcomes = [play_round(net) for _ in range(cfg.rounds)]
    settle(net)
    return net, outcomes


def test_copier_cannot_copy(protocol_net):
    net, outcomes = protocol_net
    assert all(o.finalized for o in outcomes)
    by_strategy = {t.strategy: t for t in net.trainers if "copier" in t.name}
    # a copied commitment is bound to its committer's address: the copier cannot open it
    assert "rounds: reveal does not match commitment" in by_strategy["commitment"].refusals
    # once an update is revealed, the commit phase is over: copying it is too late
    assert by_strategy["late"].refusals[:2] == ["rounds: commit phase over", "rounds: no commitment"]
    fc = net.deployment.fedchain
    revealed = {e.args["node"] for e in fc.events() if e.name == "Revealed"}
    for t in by_strategy.values():
        assert t.rewards == 0 and t.address not in revealed


def test_only_provable_non_reveals_are_slashed_each_once(protocol_net):
    net, _ = protocol_net
    fc = net.deployment.fedchain
    slashed = [e.args["node"] for e in fc.events() if e.name == "Slashed"]
    withholder = next(t for t in net.trainers if "withholder" in t.name)
    copier = next(t for t in net.trainers if getattr(t, "strategy", None) == "commitment")
    # the withholder and the commitment copier committed and never opened; nobody else is slashed
    assert sorted(slashed) == sorted([withholder.address, copier.address])
    assert net.conservation_gap() == 0
    honest = [t for t in net.trainers if type(t).__name__ == "Trainer"]
    assert all(t.rewards > 0 for t in honest)


def test_sybil_split_buys_no_seats_below_the_cap():
    total, k = 100 * 10**18, 10
    stake = 5 * 10**18  # five minimum stakes
    whole = sybil.expected_seats([stake], total, k)
    split = sybil.expected_seats([stake // 5] * 5, total, k)
    assert whole == split == Fraction((2**256 - 1) // total * stake * k, 2**256)
    assert abs(float(split) - k * stake / total) < 1e-12
    # the sortition code agrees: is_selected over many round seeds
    seeds = [i.to_bytes(32, "big") for i in range(3000)]
    nodes = [f"0x{i + 1:040x}" for i in range(5)]
    sampled = sybil.sampled_seats(seeds, nodes, [stake // 5] * 5, total, k)
    sd = (5 * 0.1 * 0.9 / len(seeds)) ** 0.5
    assert abs(sampled - float(split)) < 5 * sd


def test_sybil_split_at_the_cap_only_recovers_the_stake_proportional_share():
    total, k = 20 * 10**18, 20  # every minimum stake is certain of its seat (k * w >= T)
    stake = 3 * 10**18
    whole = sybil.expected_seats([stake], total, k)
    split = sybil.expected_seats([stake // 3] * 3, total, k)
    assert whole == 1 and split == 3 == Fraction(k * stake, total)  # never above its share of the seats


def test_sybil_identities_each_hold_one_stake_and_share_one_update(tmp_path):
    cfg = SimConfig(
        trainers=6,
        validators=3,
        rounds=2,
        model="mlp",
        epochs=1,
        lr=0.1,
        seed=4,
        out=tmp_path,
        attack="sybil",
        byzantine=0.5,
    )
    net = build_network(cfg)
    for _ in range(cfg.rounds):
        play_round(net)
    settle(net)
    syb = [t for t in net.trainers if "sybil" in t.name]
    assert len(syb) == 3 and all(t.party is syb[0].party for t in syb)
    fc = net.deployment.fedchain
    # each identity holds the minimum stake: the party's selection weight is exactly what it staked
    assert all(fc.call("stakes", t.address)["active"] == cfg.stake for t in syb)
    opened = [e.args for e in fc.events() if e.name == "RoundOpened"]
    assert all(a["trainer_total"] == cfg.trainers * cfg.stake for a in opened[: cfg.rounds])
    # one update sent k times is scored, and paid, k times the same (whether that is a bonus for
    # splitting is the next test's question)
    assert syb[0].rewards > 0 and len({t.rewards for t in syb}) == 1
    assert not [e for e in fc.events() if e.name == "Slashed"]


@pytest.mark.parametrize("score", ["cosine", "validation"])
def test_sybil_party_earns_no_more_split_than_whole(tmp_path, score):
    """Issue 4's bar: splitting a stake over identities gains no reward. The same party
    (the last 4 of 20 trainers: their data pooled, one update a round) takes part twice,
    with the same seed: split, 4 identities of one stake each; whole, one identity
    holding the 4 stakes. Sortition selects everyone (k = 20, T = 20 stakes), so the
    whole identity is certain of its one seat and reveals with 4 seats' weight, while
    each split identity reveals with one; its FedAvg weight is the pooled sample count
    either way, and the root-set score counts its update once per seat (n, the median norm).
    Without seats the split party earned 2.6 times what the whole one did (cosine, measured)."""

    def run(split: bool) -> tuple[list, list, list]:
        cfg = SimConfig(
            trainers=20,
            validators=3,
            rounds=3,
            model="mlp",
            epochs=1,
            lr=0.1,
            seed=1,
            out=tmp_path / str(split),
            attack="sybil",
            byzantine=0.2,
            sybil_split=split,
            score=score,
        )
        net = build_network(cfg)
        for _ in range(cfg.rounds):
            assert play_round(net).finalized
        settle(net)
        party = [t for t in net.trainers if isinstance(t, Sybil)]
        seats = [
            e.args["seats_bps"]
            for e in net.deployment.fedchain.events()
            if e.name == "Revealed" and e.args["node"] in {t.address for t in party}
        ]
        assert net.conservation_gap() == 0
        return [t.rewards for t in party], seats, [t.rewards for t in net.trainers if not isinstance(t, Sybil)]

    split, split_seats, split_honest = run(True)
    whole, whole_seats, whole_honest = run(False)
    assert len(split) == 4 and len(whole) == 1
    assert split_seats == [10_000] * 12 and whole_seats == [40_000] * 3
    assert sum(whole) > 0
    # the same model either way (FedAvg weighs the pooled samples once or in four parts), so the
    # party is paid the same up to the claims' integer division, and so is every honest trainer
    assert abs(sum(split) - sum(whole)) <= 12
    assert all(abs(a - b) <= 3 for a, b in zip(split_honest, whole_honest))


def _trainer_rewards(tmp_path, attack: str | None, seed: int = 0) -> tuple[list[str], list[int]]:
    cfg = SimConfig(
        trainers=20,
        validators=3,
        rounds=4,
        model="mlp",
        epochs=2,
        lr=0.1,
        seed=seed,
        out=tmp_path / (attack or "honest"),
        attack=attack,
        byzantine=0.2 if attack else 0.0,
    )
    net = build_network(cfg)
    for _ in range(cfg.rounds):
        play_round(net)
    settle(net)
    return [type(t).__name__ for t in net.trainers], [t.rewards for t in net.trainers]


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="known gap, docs/robustness.md 'Sybil, rewards': under FedAvg and the cosine score "
    "a party's copies of its pooled update earn 1.5-2.0x what its identities earn as "
    "separate honest trainers",
)
def test_sybil_party_earns_no_more_than_its_identities_would_honestly(tmp_path):
    # A stricter comparison than issue 4's bar (splitting gains nothing: the split-vs-whole test
    # above): the same seed, partitions and initial model run twice: the last 4 of 20 trainers as
    # one Sybil party (pooled data, one update sent 4 times), then the same 4 as honest trainers on
    # their own data. The gap is the pooling of data, not the split: the party earns as much as one
    # identity with its data and stake. Neutral is a ratio of 1; 15% is allowed because the two
    # runs' models differ, and with them the same identities' reward.
    # Measured with this setup at seeds 0-5: 1.50-1.76 (seed 0: 1.50); the full-size runs of
    # benchmarks/sybil: 1.75-1.97. Strict: once a fix (e.g. counting identical updates once) makes
    # this pass, the mark and the doc's figures must go. Only the last assert may fail "expectedly":
    # a broken setup fails the test (pytest.fail is not an AssertionError).
    kinds, sybil_run = _trainer_rewards(tmp_path, "sybil")
    party = [i for i, k in enumerate(kinds) if k == "Sybil"]
    _, honest_run = _trainer_rewards(tmp_path, None)
    if len(party) != 4 or not sum(honest_run[i] for i in party):
        pytest.fail(f"setup: {len(party)} Sybil identities, honest reward {sum(honest_run[i] for i in party)}")
    assert sum(sybil_run[i] for i in party) <= 1.15 * sum(honest_run[i] for i in party)


def test_free_riders_earn_clearly_less_than_honest_trainers(tmp_path):
    cfg = SimConfig(
        trainers=6,
        validators=3,
        rounds=3,
        model="mlp",
        epochs=1,
        lr=0.1,
        seed=5,
        out=tmp_path,
        attack="freerider",
        byzantine=2 / 6,
    )
    net = build_network(cfg)
    for _ in range(cfg.rounds):
        play_round(net)
    settle(net)
    riders = [t for t in net.trainers if isinstance(t, AttackTrainer)]
    honest = [t for t in net.trainers if t not in riders]
    assert len(riders) == 2
    per_rider = sum(t.rewards for t in riders) / len(riders)
    per_honest = sum(t.rewards for t in honest) / len(honest)
    assert per_honest > 0 and per_rider < 0.1 * per_honest


def test_zeno_on_chain_leaves_sign_flippers_out_of_the_model_and_the_rewards(tmp_path):
    """A Zeno task (root-set scores) on the embedded chain: the validators' model is the
    FedAvg of exactly the updates the root set scores positive; the sign flippers are not
    among them and earn nothing."""
    from fedchain.learning.aggregate import fedavg
    from fedchain.protocol.root_set import validation_round_scores
    from fedchain.protocol.round import check_updates, in_reveal_order

    cfg = SimConfig(
        trainers=6,
        validators=3,
        rounds=1,
        model="mlp",
        epochs=1,
        lr=0.1,
        seed=6,
        out=tmp_path,
        rule="zeno",
        rule_params={"num_malicious_nodes": 2},
        score="validation",
        attack="signflip",
        byzantine=2 / 6,
    )
    net = build_network(cfg)
    v = net.validators[0]
    parent = v.current_model(net.task_id)
    assert play_round(net).finalized
    settle(net)
    revealed = in_reveal_order(v.task(net.task_id).reveals[0])
    updates, samples, reasons = check_updates(revealed, net.store, v.shapes, net.recipe.chunk_size)
    assert not reasons and len(updates) == 6
    scores = dict(
        zip(updates, validation_round_scores(net.recipe, parent.q, list(updates.values()), net.initial_params))
    )
    flippers = {t.address for t in net.trainers if isinstance(t, AttackTrainer)}
    assert len(flippers) == 2 and all(scores[a] == 0 for a in flippers)
    kept = [a for a in updates if scores[a] > 0]
    assert len(kept) >= 2
    want = fp.clip_fixed(parent.q + fedavg.aggregate_update([updates[a] for a in kept], [samples[a] for a in kept]))
    assert np.array_equal(v.current_model(net.task_id).q, want)
    assert all(t.rewards == 0 for t in net.trainers if t.address in flippers)
    assert all(t.rewards > 0 for t in net.trainers if t.address in kept)
