"""Tasks: create_task (pool escrow, round 0, every validation), reclaim, the views."""

import pytest

from conftest import BALANCE, TOKEN, reverts
from fedchain.chain.interface import account_from_seed
from fedchain.errors import Reverted

DELAY = 100  # ProtocolParams().unbonding_delay
GRACE = 20  # ProtocolParams().slash_grace


def test_create_task_escrows_the_pool_and_opens_round_zero(net):
    cfg = net.task_config(pool=70 * TOKEN, num_rounds=3)
    r = net.fc.tx("create_task", cfg, sender=net.owner)
    created = r.event("TaskCreated").args
    assert created == {
        "task_id": 1,
        "sponsor": net.owner.address,
        "recipe_hash": cfg["recipe_hash"],
        "model_root": cfg["model_root"],
        "model_cid": cfg["model_cid"],
        "num_rounds": 3,
        "pool": 70 * TOKEN,
    }
    opened = r.event("RoundOpened").args
    b = r.block
    assert (opened["task_id"], opened["round_id"]) == (1, 0)
    assert (opened["commit_end"], opened["reveal_end"], opened["validate_end"]) == (b + 5, b + 10, b + 15)
    assert net.schedule(1, 0) == (b, b + 5, b + 10, b + 15)
    task = net.fc.call("tasks", 1)
    assert task["sponsor"] == net.owner.address
    assert (task["round"], task["pool"], task["finished"]) == (0, 70 * TOKEN, False)
    assert {k: task[k] for k in cfg} == cfg
    rnd = net.fc.call("rounds", 1, 0)
    # the seed is the opening block's hash: unknown in that block, readable from the next (M-4)
    assert rnd["seed"] == net.fc.call("seed_of", 1, 0) == bytes(32)
    net.chain.mine(1)
    assert net.fc.call("seed_of", 1, 0) != bytes(32) and net.fc.call("rounds", 1, 0)["seed"] == bytes(32)
    assert rnd["trainer_total"] == 4 * 100 * TOKEN and rnd["validator_total"] == 3 * 100 * TOKEN
    assert rnd["status"] == 0 and rnd["leader"] == bytes(32)
    assert net.fc.call("next_task_id") == 2
    assert net.fc.call("total_pools") == 70 * TOKEN
    assert net.balance(net.owner) == BALANCE - 70 * TOKEN


def test_task_ids_count_up_and_seeds_differ(net):
    ids = [net.create_task(pool=TOKEN) for _ in range(3)]
    assert ids == [1, 2, 3]
    seeds = {net.fc.call("seed_of", t, 0) for t in ids}
    assert len(seeds) == 3
    assert net.fc.call("total_pools") == 3 * TOKEN


def test_anyone_may_sponsor(net):
    t = net.create_task(sender=net.outsiders[0], pool=5)
    assert net.fc.call("tasks", t)["sponsor"] == net.outsiders[0].address


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"num_rounds": 0}, "tasks: zero rounds"),
        ({"trainers_per_round": 0}, "tasks: empty committee"),
        ({"validators_per_round": 0}, "tasks: empty committee"),
        ({"min_reveals": 0}, "tasks: bad min_reveals"),
        ({"min_reveals": 257}, "tasks: bad min_reveals"),
        ({"commit_blocks": 0}, "tasks: zero phase length"),
        ({"reveal_blocks": 0}, "tasks: zero phase length"),
        ({"validate_blocks": 0}, "tasks: zero phase length"),
        ({"challenge_blocks": 0}, "tasks: zero phase length"),
        # the deployment's least challenge window (ProtocolParams.min_challenge_blocks = 5; review L-7)
        ({"challenge_blocks": 4}, "tasks: challenge window too short"),
        # the other three phases are 5 blocks each: the whole round and the slash grace after it must
        # end before unbonding does (review M-2)
        ({"challenge_blocks": DELAY - GRACE - 15}, "tasks: round + slash grace not shorter than unbonding delay"),
        ({"validate_blocks": DELAY}, "tasks: round + slash grace not shorter than unbonding delay"),
        ({"commit_blocks": 2**32}, "tasks: phases too long"),
        ({"trainers_per_round": 2**32 + 1}, "tasks: committee too large"),
        ({"validators_per_round": 2**32 + 1}, "tasks: committee too large"),
        ({"validator_fee_bps": 10_001}, "tasks: fee above 100%"),
        ({"pool": 0}, "tasks: empty pool"),
        # the per-task commitment cap (review I-5): at least min_reveals, at most the contract's 256
        ({"max_commits": 0}, "tasks: bad max_commits"),
        ({"max_commits": 2, "min_reveals": 3}, "tasks: bad max_commits"),
        ({"max_commits": 257}, "tasks: bad max_commits"),
    ],
)
def test_create_task_rejects_a_bad_config(net, fields, reason):
    with reverts(reason):
        net.create_task(**fields)
    assert net.fc.call("next_task_id") == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"min_reveals": 256},
        {"challenge_blocks": DELAY - GRACE - 16},
        {"validator_fee_bps": 10_000},
        {"max_commits": 1},
        {"max_commits": 3, "min_reveals": 3},
        {"trainers_per_round": 2**32, "validators_per_round": 2**32},
        {"validator_fee_bps": 0},
        {"pool": 1},
        {"commit_blocks": 1, "reveal_blocks": 1, "validate_blocks": 1, "challenge_blocks": 5},
    ],
)
def test_create_task_accepts_the_limits(net, fields):
    t = net.create_task(**fields)
    task = net.fc.call("tasks", t)
    assert {k: task[k] for k in fields} == fields


def test_create_task_needs_allowance_and_balance(net):
    poor = account_from_seed("poor")
    net.chain.fund(poor.address, 10**21)
    with reverts("erc20: insufficient allowance"):
        net.create_task(sender=poor)
    net.token.tx("approve", net.fc.vault.address, 2**256 - 1, sender=poor)
    with reverts("erc20: transfer amount exceeds balance"):
        net.create_task(sender=poor)


def test_phase_lengths_never_corrupt_the_schedule(net):
    try:
        t = net.create_task(commit_blocks=2**64)
    except Reverted:
        return  # refusing such a task is a fine fix
    opened, commit_end, reveal_end, validate_end = net.schedule(t, 0)
    assert commit_end == opened + 2**64


# ---------------------------------------------------------------- reclaim


def test_reclaim_returns_what_is_left_after_the_last_round(net):
    t = net.create_task(num_rounds=1, pool=100 * TOKEN, validator_fee_bps=1_000)
    net.play_round(t, 0, scores=[0, 0, 0])  # total score 0: the trainer budget stays in the pool
    task = net.fc.call("tasks", t)
    assert task["finished"] and task["pool"] == 90 * TOKEN
    before = net.balance(net.owner)
    r = net.fc.tx("reclaim", t, sender=net.owner)
    assert r.event("PoolReclaimed").args == {"task_id": t, "sponsor": net.owner.address, "amount": 90 * TOKEN}
    assert net.balance(net.owner) == before + 90 * TOKEN
    assert net.fc.call("tasks", t)["pool"] == 0
    assert net.fc.call("total_pools") == 0
    with reverts("tasks: empty pool"):
        net.fc.tx("reclaim", t, sender=net.owner)


def test_reclaim_after_all_rounds_failed_returns_the_whole_pool(net):
    t = net.create_task(num_rounds=2, pool=30 * TOKEN)
    for rnd in range(2):
        net.to_vote_phase(t, rnd)
        net.fc.tx("advance", t, sender=net.outsiders[0])
    net.fc.tx("reclaim", t, sender=net.owner)
    assert net.balance(net.owner) == BALANCE


def test_reclaim_rejects_others_than_the_sponsor(net):
    t = net.create_task(num_rounds=1)
    with reverts("tasks: not the sponsor"):
        net.fc.tx("reclaim", t, sender=net.outsiders[0])
    with reverts("tasks: not the sponsor"):
        net.fc.tx("reclaim", 99, sender=net.owner)


def test_reclaim_rejects_an_unfinished_task(net):
    t = net.create_task(num_rounds=1)
    with reverts("tasks: not finished"):
        net.fc.tx("reclaim", t, sender=net.owner)
    net.play_round(t, 0, finalize=False)
    with reverts("tasks: not finished"):
        net.fc.tx("reclaim", t, sender=net.owner)


def test_reclaim_rejects_an_empty_pool(net):
    t = net.create_task(num_rounds=1, pool=100 * TOKEN)
    net.play_round(t, 0)  # the only round spends the whole pool
    assert net.fc.call("tasks", t)["pool"] == 0
    with reverts("tasks: empty pool"):
        net.fc.tx("reclaim", t, sender=net.owner)


def test_a_slash_in_a_task_is_burned_and_never_reaches_its_sponsor(net):
    # SECURITY-REVIEW M-5: slashes used to refill the pool the sponsor reclaims
    t = net.create_task(num_rounds=1, pool=100 * TOKEN)
    silent = net.trainers[3]
    net.play_round(t, 0, silent=[silent])
    pool = net.fc.call("tasks", t)["pool"]
    net.slashing.tx("slash_missing_reveal", t, 0, silent.address, sender=net.outsiders[0])
    penalty = net.params.liveness_penalty
    share = penalty * net.params.reporter_bps // 10_000
    assert net.fc.call("tasks", t)["pool"] == pool
    assert net.fc.call("burned") == penalty - share
    assert pool == 0  # the one round paid out the whole pool, and the slash did not refill it
    with reverts("tasks: empty pool"):
        net.fc.tx("reclaim", t, sender=net.owner)
