"""staking (through fedchain's exports) and the deployment parameters: stake,
unbond, withdraw, the unbonding boundary, and every revert reason."""

import pytest

from conftest import BALANCE, MAX_UINT, ROLE_TRAINER, ROLE_VALIDATOR, STAKE, TOKEN, make_net, reverts
from fedchain.chain.deploy import ProtocolParams, deploy
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import account_from_seed

DELAY = ProtocolParams().unbonding_delay


# ---------------------------------------------------------------- deployment


def test_views_report_the_deployment_parameters(net):
    p = net.params
    assert net.fc.call("token") == net.token.address
    assert net.fc.call("min_stake") == p.min_stake
    assert net.fc.call("unbonding_delay") == p.unbonding_delay
    assert net.fc.call("liveness_penalty") == p.liveness_penalty
    assert net.fc.call("safety_penalty_bps") == p.safety_penalty_bps
    assert net.fc.call("reporter_bps") == p.reporter_bps
    assert net.fc.call("next_task_id") == 1


@pytest.mark.parametrize(
    "params, reason",
    [
        (ProtocolParams(min_stake=0), "staking: zero minimum stake"),
        (ProtocolParams(safety_penalty_bps=10_001), "fedchain: penalty above 100%"),
        (ProtocolParams(reporter_bps=5_001), "vault: reporter share too large"),
    ],
)
def test_deploy_rejects_bad_parameters(params, reason):
    chain = EmbeddedChain()
    owner = account_from_seed("owner")
    with reverts(reason):
        deploy(chain, owner, params)


def test_deploy_accepts_the_largest_shares():
    chain = EmbeddedChain()
    d = deploy(chain, account_from_seed("owner"), ProtocolParams(safety_penalty_bps=10_000, reporter_bps=5_000))
    assert d.fedchain.call("safety_penalty_bps") == 10_000
    assert d.fedchain.call("reporter_bps") == 5_000


# ---------------------------------------------------------------- stake


def test_stake_locks_tokens_and_counts_from_the_next_round(net):
    a = net.outsiders[0]
    total = net.fc.call("total_active", ROLE_TRAINER)
    r = net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=a)
    assert r.event("Staked").args == {"node": a.address, "role": ROLE_TRAINER, "amount": STAKE, "active": STAKE}
    assert net.stake_of(a) == {
        "role": ROLE_TRAINER,
        "active": STAKE,
        "unbonding": 0,
        "release_block": 0,
        "since_block": r.block,
    }
    assert net.fc.call("total_active", ROLE_TRAINER) == total + STAKE
    assert net.balance(a) == BALANCE - STAKE


def test_stake_tops_up_and_restarts_eligibility(net):
    v = net.validators[0]
    net.chain.mine(3)
    r = net.fc.tx("stake", ROLE_VALIDATOR, 1, sender=v)  # a top-up may be below the minimum
    assert r.event("Staked").args["active"] == STAKE + 1
    assert net.stake_of(v)["since_block"] == r.block
    assert net.fc.call("total_active", ROLE_VALIDATOR) == 3 * STAKE + 1


@pytest.mark.parametrize("role", [0, 3, 255])
def test_stake_rejects_an_unknown_role(net, role):
    with reverts("staking: unknown role"):
        net.fc.tx("stake", role, STAKE, sender=net.outsiders[0])


def test_stake_rejects_a_second_role(net):
    with reverts("staking: role mismatch"):
        net.fc.tx("stake", ROLE_VALIDATOR, STAKE, sender=net.trainers[0])


def test_stake_rejects_zero(net):
    with reverts("staking: zero amount"):
        net.fc.tx("stake", ROLE_TRAINER, 0, sender=net.outsiders[0])


def test_stake_rejects_less_than_the_minimum(net):
    with reverts("staking: below minimum stake"):
        net.fc.tx("stake", ROLE_TRAINER, STAKE - 1, sender=net.outsiders[0])
    net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=net.outsiders[0])  # exactly the minimum


def test_stake_needs_allowance_and_balance(net):
    poor = account_from_seed("poor")
    net.chain.fund(poor.address, 10**21)
    with reverts("erc20: insufficient allowance"):
        net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=poor)
    net.token.tx("approve", net.fc.vault.address, MAX_UINT, sender=poor)
    with reverts("erc20: transfer amount exceeds balance"):
        net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=poor)


def test_role_is_free_again_after_withdrawing_everything(net):
    t = net.trainers[0]
    net.fc.tx("unbond", STAKE, sender=t)
    net.chain.mine(DELAY)
    net.fc.tx("withdraw", sender=t)
    assert net.stake_of(t)["role"] == 0
    net.fc.tx("stake", ROLE_VALIDATOR, STAKE, sender=t)
    assert net.stake_of(t)["role"] == ROLE_VALIDATOR


# ---------------------------------------------------------------- unbond


def test_unbond_moves_stake_to_the_queue(net):
    t = net.trainers[0]
    net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=t)
    r = net.fc.tx("unbond", STAKE, sender=t)
    assert r.event("UnbondRequested").args == {"node": t.address, "amount": STAKE, "release_block": r.block + DELAY}
    s = net.stake_of(t)
    assert (s["active"], s["unbonding"], s["release_block"]) == (STAKE, STAKE, r.block + DELAY)
    assert net.fc.call("total_active", ROLE_TRAINER) == 4 * STAKE
    assert net.fc.call("total_unbonding") == STAKE


def test_second_unbond_adds_and_restarts_the_delay(net):
    t = net.trainers[0]
    net.fc.tx("stake", ROLE_TRAINER, 2 * STAKE, sender=t)
    net.fc.tx("unbond", STAKE, sender=t)
    net.chain.mine(10)
    r = net.fc.tx("unbond", STAKE, sender=t)
    s = net.stake_of(t)
    assert (s["active"], s["unbonding"], s["release_block"]) == (STAKE, 2 * STAKE, r.block + DELAY)


def test_unbond_rejects_zero(net):
    with reverts("staking: zero amount"):
        net.fc.tx("unbond", 0, sender=net.trainers[0])


def test_unbond_rejects_more_than_active(net):
    with reverts("staking: amount exceeds active stake"):
        net.fc.tx("unbond", STAKE + 1, sender=net.trainers[0])
    with reverts("staking: amount exceeds active stake"):
        net.fc.tx("unbond", 1, sender=net.outsiders[0])


def test_unbond_rejects_a_remainder_below_the_minimum(net):
    t = net.trainers[0]
    net.fc.tx("stake", ROLE_TRAINER, STAKE // 2, sender=t)
    with reverts("staking: below minimum stake"):
        net.fc.tx("unbond", STAKE, sender=t)
    net.fc.tx("unbond", STAKE // 2, sender=t)  # leaves exactly the minimum


# ---------------------------------------------------------------- withdraw


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_withdraw_boundary_at_release_block(net, offset):
    """Withdrawable from ``release_block`` on (unbond block + delay), not one block before."""
    t = net.trainers[0]
    release = net.fc.tx("unbond", STAKE, sender=t).event("UnbondRequested").args["release_block"]
    net.chain.mine_to(release + offset)
    if offset < 0:
        with reverts("staking: still unbonding"):
            net.fc.tx("withdraw", sender=t)
        return
    r = net.fc.tx("withdraw", sender=t)
    assert r.block == release + offset
    assert r.event("Withdrawn").args == {"node": t.address, "amount": STAKE}
    assert net.balance(t) == BALANCE
    assert net.stake_of(t)["unbonding"] == 0
    assert net.fc.call("total_unbonding") == 0


def test_withdraw_keeps_the_role_while_stake_remains(net):
    t = net.trainers[0]
    net.fc.tx("stake", ROLE_TRAINER, STAKE, sender=t)
    net.fc.tx("unbond", STAKE, sender=t)
    net.chain.mine(DELAY)
    net.fc.tx("withdraw", sender=t)
    s = net.stake_of(t)
    assert (s["role"], s["active"], s["unbonding"]) == (ROLE_TRAINER, STAKE, 0)


def test_withdraw_rejects_nothing_unbonding(net):
    with reverts("staking: nothing unbonding"):
        net.fc.tx("withdraw", sender=net.trainers[0])
    with reverts("staking: nothing unbonding"):
        net.fc.tx("withdraw", sender=net.outsiders[0])


def test_withdraw_twice_fails(net):
    t = net.validators[0]
    net.fc.tx("unbond", STAKE, sender=t)
    net.chain.mine(DELAY)
    net.fc.tx("withdraw", sender=t)
    with reverts("staking: nothing unbonding"):
        net.fc.tx("withdraw", sender=t)


def test_custom_unbonding_delay():
    net = make_net(EmbeddedChain(), ProtocolParams(unbonding_delay=7, min_stake=TOKEN))
    t = net.trainers[0]
    release = net.fc.tx("unbond", STAKE, sender=t).event("UnbondRequested").args["release_block"]
    assert release == net.chain.block_number() + 7
    net.assert_conserved()
