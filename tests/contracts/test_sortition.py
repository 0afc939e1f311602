"""Sortition: the contract's ``is_selected`` against its Python twin, eligibility
only for stake added before a round opened, and the statistics of
stake-weighted selection (committee size, splitting stake across identities)."""

import math

import pytest
from eth_utils import keccak, to_checksum_address

from conftest import ROLE_TRAINER, ROLE_VALIDATOR, STAKE, TOKEN, reverts
from fedchain.chain import commitments as cm
from fedchain.chain.interface import account_from_seed

SEEDS = [keccak(text=f"seed{i}") for i in range(2000)]


def address(name: str) -> str:
    return to_checksum_address(keccak(text=name)[12:])


def seats(identities: list[tuple[str, int]], total: int, k: int) -> list[int]:
    """Seats won by ``identities`` (address, weight) in each of ``SEEDS``."""
    return [sum(cm.is_selected(seed, a, w, total, k) for a, w in identities) for seed in SEEDS]


def assert_mean_near(samples: list[int], expected: float, variance: float, sigmas: float = 4.5) -> None:
    """The sample mean is within ``sigmas`` binomial standard errors of ``expected``."""
    mean = sum(samples) / len(samples)
    tolerance = sigmas * math.sqrt(variance / len(samples))
    assert abs(mean - expected) <= tolerance, f"mean {mean} vs {expected} ± {tolerance}"


# ---------------------------------------------------------------- twin == contract


def test_contract_and_python_twin_agree(net):
    crowd = [account_from_seed(f"crowd{i}") for i in range(12)]
    stakes = [STAKE, 2 * STAKE, 3 * STAKE] * 4
    net.fund(crowd)
    for a, s in zip(crowd, stakes):
        net.fc.tx("stake", ROLE_TRAINER, s, sender=a)
    net.chain.mine(1)
    nodes = crowd + net.trainers + net.validators + net.outsiders
    outcomes = set()
    for _ in range(6):
        task = net.create_task(trainers_per_round=3, validators_per_round=1, pool=TOKEN)
        rnd = net.fc.call("rounds", task, 0)
        for role, k, total in [(ROLE_TRAINER, 3, rnd["trainer_total"]), (ROLE_VALIDATOR, 1, rnd["validator_total"])]:
            for node in nodes:
                s = net.stake_of(node)
                weight = s["active"] if s["role"] == role else 0
                twin = cm.is_selected(net.fc.call("seed_of", task, 0), node.address, weight, total, k)
                assert net.fc.call("is_selected", task, 0, node.address, role) == twin
                outcomes.add(twin)
        net.chain.mine(1)  # a new seed for the next task
    assert outcomes == {True, False}


def test_commit_follows_selection(net):
    """Selected nodes may commit, the others revert; seeds differ between runs,
    so open tasks until both outcomes have been seen."""
    crowd = [account_from_seed(f"crowd{i}") for i in range(10)]
    net.fund(crowd, stake_role=ROLE_TRAINER)
    net.chain.mine(1)
    seen = set()
    for _ in range(20):
        task = net.create_task(trainers_per_round=5, pool=TOKEN)  # p = 5/14 per node
        for a in crowd:
            if net.fc.call("is_selected", task, 0, a.address, ROLE_TRAINER):
                net.commit(task, 0, a)
                seen.add(True)
            else:
                with reverts("rounds: not selected"):
                    net.commit(task, 0, a)
                seen.add(False)
        if seen == {True, False}:
            return
        net.chain.mine(1)
    pytest.fail("20 seeds selected everyone or no one")


def test_weight_at_or_above_total_over_k_is_always_selected():
    for seed in SEEDS[:50]:
        assert cm.is_selected(seed, address("whale"), 100, 300, 3)
        assert not cm.is_selected(seed, address("whale"), 0, 300, 3)
        assert not cm.is_selected(seed, address("whale"), 100, 0, 3)
        assert not cm.is_selected(seed, address("whale"), 100, 300, 0)


# ---------------------------------------------------------------- eligibility


def test_stake_after_the_round_opened_is_not_eligible(net):
    late = net.outsiders[0]
    task = net.create_task()
    net.chain.mine(1)
    net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=late)
    assert net.fc.call("rounds", task, 0)["trainer_total"] == 4 * STAKE  # the snapshot excludes it
    assert not net.fc.call("is_selected", task, 0, late.address, ROLE_TRAINER)
    with reverts("rounds: not selected"):
        net.commit(task, 0, late)
    net.chain.mine(1)
    later = net.create_task(trainers_per_round=5)  # opened after the stake: eligible (100 * 5 >= 500)
    assert net.fc.call("is_selected", later, 0, late.address, ROLE_TRAINER)
    net.commit(later, 0, late)


def test_stake_in_the_opening_block_is_not_eligible(net):
    """Stake added in the block a round opens in does not count, even before the opening tx."""
    early = net.outsiders[0]
    net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=early)
    task = net.create_task()  # same block
    assert net.fc.call("rounds", task, 0)["trainer_total"] == 5 * STAKE
    assert not net.fc.call("is_selected", task, 0, early.address, ROLE_TRAINER)
    with reverts("rounds: not selected"):
        net.commit(task, 0, early)


def test_stake_one_block_before_opening_is_eligible(net):
    early = net.outsiders[0]
    net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=early)
    net.chain.mine(1)
    task = net.create_task(trainers_per_round=5)
    assert net.fc.call("is_selected", task, 0, early.address, ROLE_TRAINER)


def test_top_up_after_opening_forfeits_the_round(net):
    v = net.validators[0]
    task = net.create_task()
    net.chain.mine(1)
    net.fc.tx("stake", ROLE_VALIDATOR, TOKEN, sender=v)
    with reverts("rounds: not selected"):
        net.join(task, 0, [v])


def test_unbonded_stake_stops_counting_at_once(net):
    t = net.trainers[0]
    task = net.create_task(trainers_per_round=1)  # weight 100 of 400: selected with p = 1/4
    net.fc.tx("unbond", STAKE, sender=t)
    assert not net.fc.call("is_selected", task, 0, t.address, ROLE_TRAINER)
    with reverts("rounds: not selected"):
        net.commit(task, 0, t)


def test_stake_below_minimum_after_a_slash_is_not_eligible(net):
    task = net.create_task(num_rounds=2)
    silent = net.trainers[3]
    net.play_round(task, 0, silent=[silent])
    net.slashing.tx("slash_missing_reveal", task, 0, silent.address, sender=net.outsiders[0])
    assert net.stake_of(silent)["active"] < STAKE
    assert not net.fc.call("is_selected", task, 1, silent.address, ROLE_TRAINER)


# ---------------------------------------------------------------- statistics (Python twin)


def test_expected_committee_size_is_k():
    nodes = [(address(f"n{i}"), 1) for i in range(20)]
    k = 5
    p = k / 20
    assert_mean_near(seats(nodes, 20, k), k, 20 * p * (1 - p))


@pytest.mark.parametrize("parts", [2, 5])
def test_splitting_stake_keeps_the_expected_seats(parts):
    """A node with 50 of 1000 stake, k = 10, wins 0.5 seats on average; split
    across ``parts`` identities it still wins 0.5 (each identity 0.5/parts)."""
    total, k, weight = 1_000, 10, 50
    p = k * weight / total
    whole = seats([(address("whale"), weight)], total, k)
    split = seats([(address(f"whale{i}"), weight // parts) for i in range(parts)], total, k)
    assert_mean_near(whole, p, p * (1 - p))
    q = p / parts
    assert_mean_near(split, p, parts * q * (1 - q))


def test_splitting_above_the_cap_recovers_only_the_proportional_share():
    """A node above total/k wins one seat every time; split below the cap it wins
    k*w/total seats on average: its stake-proportional share and never more."""
    total, k, weight = 1_000, 10, 200
    assert seats([(address("whale"), weight)], total, k) == [1] * len(SEEDS)
    split = seats([(address(f"whale{i}"), 50) for i in range(4)], total, k)
    assert_mean_near(split, k * weight / total, 4 * 0.5 * 0.5)


# ---------------------------------------------------------------- seats (reward weight)


def revealed_seats(net, task: int, nodes) -> dict[str, int]:
    for t in nodes:
        net.commit(task, 0, t)
    net.to_reveal_phase(task, 0)
    return {t.address: net.reveal(task, 0, t).event("Revealed").args["seats_bps"] for t in nodes}


def test_a_stake_above_the_cap_is_paid_for_the_seats_it_stands_for(net):
    """k = 4, stakes 3:1:1:1 (T = 6 stakes): the large one is certain of its seat and
    stands for k*w/T = 2 seats; the others are paid for one when selected."""
    whale = net.trainers[0]
    net.fc.tx("stake", ROLE_TRAINER, 2 * STAKE, sender=whale)
    net.chain.mine(1)
    task = net.create_task(trainers_per_round=4)
    chosen = [t for t in net.trainers if net.fc.call("is_selected", task, 0, t.address, ROLE_TRAINER)]
    assert whale in chosen and len(chosen) > 1  # the seed pinned by conftest selects some of the rest
    got = revealed_seats(net, task, chosen)
    assert got == {t.address: 20_000 if t is whale else 10_000 for t in chosen}
    assert got[whale.address] == cm.seats_bps(4, 3 * STAKE, 6 * STAKE)
    assert (net.fc.call("record", task, 0, whale.address) >> 160) & (2**64 - 1) == 20_000


def test_seats_round_down_to_the_basis_point(net):
    """k = 4, stakes 2:1:1:1 (T = 5): 4 * 2/5 = 1.6 seats, 16,000 basis points."""
    whale = net.trainers[0]
    net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=whale)
    net.chain.mine(1)
    task = net.create_task(trainers_per_round=4)
    assert revealed_seats(net, task, [whale])[whale.address] == 16_000 == cm.seats_bps(4, 2 * STAKE, 5 * STAKE)


def test_topping_up_after_the_seed_buys_no_seats(net):
    """Stake added after the round opened does not count in it: a whale that tops up
    between commit and reveal is paid for one seat, not for its new or old weight."""
    whale = net.trainers[0]
    net.fc.tx("stake", ROLE_TRAINER, 2 * STAKE, sender=whale)
    net.chain.mine(1)
    task = net.create_task(trainers_per_round=4)
    net.commit(task, 0, whale)
    net.fc.tx("stake", ROLE_TRAINER, 4 * STAKE, sender=whale)
    net.to_reveal_phase(task, 0)
    assert net.reveal(task, 0, whale).event("Revealed").args["seats_bps"] == 10_000


def test_unbonding_before_the_reveal_lowers_the_seats(net):
    whale = net.trainers[0]
    net.fc.tx("stake", ROLE_TRAINER, 2 * STAKE, sender=whale)  # 3 of 6 stakes
    net.chain.mine(1)
    task = net.create_task(trainers_per_round=4)
    net.commit(task, 0, whale)
    net.fc.tx("unbond", STAKE, sender=whale)  # 2 of the 6 counted at opening: 4 * 2/6 seats
    net.to_reveal_phase(task, 0)
    assert net.reveal(task, 0, whale).event("Revealed").args["seats_bps"] == 13_333


def test_seats_make_expected_reward_linear_in_stake():
    """Expected paid seats = P(selected) * seats: k*w/T whether the stake sits below
    the cap (paid one seat, selected with p = k*w/T) or above it (selected surely,
    paid k*w/T seats); so a stake split into identities expects what it does whole."""
    from fedchain.sim.attacks.sybil import selection_probability

    total, k = 1_000 * STAKE, 10
    for w in (10 * STAKE, 100 * STAKE, 150 * STAKE, 400 * STAKE):
        whole = selection_probability(w, total, k) * cm.seats_bps(k, w, total)
        for parts in (2, 4, 8):
            split = parts * selection_probability(w // parts, total, k) * cm.seats_bps(k, w // parts, total)
            assert abs(whole - split) <= 1, (w, parts)  # basis points: one for integer rounding
        assert abs(whole - k * w * 10_000 // total) <= 1
