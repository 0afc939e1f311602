"""The security review's findings we chose not to change, each attack run to show what it
gets (docs/decisions.md, "Security review"; README, "Security model"):

* L-4: a trainer reports its own missing reveal from a second address: it recovers the
  reporter share and still loses the rest (90% of the liveness penalty by default).
* L-5: rewards nobody claims stay owed, for ever, and a round leaves at most a wei of dust
  per claim: nothing is lost, nothing leaks.
* L-6: a token whose ``transfer`` returns nothing (USDT's shape) fails closed: staking with
  it reverts and moves nothing.
* I-1: a trainer that claims more samples than anyone gains nothing past FedAvg's cap.
* I-3: with nobody calling ``finalize``, a rejected update is still slashed within the slash
  grace (``slash_rejected_before_finalize``), so M-2 does not rest on a keeper.
"""

from __future__ import annotations

import numpy as np
import pytest
import vyper

from conftest import STAKE, reverts
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import Artifact, account_from_seed, artifact
from fedchain.errors import Reverted
from fedchain.learning.aggregate import aggregate_update
from fedchain.learning.fixedpoint import MAX_WEIGHT

ROLE_TRAINER = 1


def test_l4_self_reporting_from_a_second_address_still_loses_most_of_the_penalty(net):
    task = net.create_task()
    me, my_other_address = net.trainers[0], net.outsiders[0]
    net.commit(task, 0, me)
    net.to_vote_phase(task, 0)  # the reveal phase is over: the commitment was never revealed
    with reverts("slashing: cannot report yourself"):
        net.slashing.tx("slash_missing_reveal", task, 0, me.address, sender=me)
    before = net.stake_of(me)["active"] + net.fc.call("payouts", my_other_address.address)
    net.slashing.tx("slash_missing_reveal", task, 0, me.address, sender=my_other_address)
    after = net.stake_of(me)["active"] + net.fc.call("payouts", my_other_address.address)
    penalty = net.params.liveness_penalty
    assert before - after == penalty - penalty * net.params.reporter_bps // 10_000  # 4.5 of 5 tokens by default
    net.assert_conserved()


def test_l5_unclaimed_rewards_stay_owed_and_claimable_and_dust_is_below_a_wei_a_claim(net):
    task = net.create_task()
    result = net.play_round(task, revealers=net.trainers[:3], scores=[1, 2, 4])
    for t in net.trainers[:2]:
        net.claim(task, 0, t, result)
        net.fc.tx("withdraw_payout", sender=t)
    waiting = net.fc.call("total_owed")  # the third trainer's reward and the validators' fees wait for them
    net.chain.mine(1_000)  # rewards never expire (L-5): nothing returns them to a pool
    late = net.claim(task, 0, net.trainers[2], result).event("RewardClaimed").args["amount"]
    assert 0 < late <= waiting
    paid = [net.trainers[2]]
    for v in net.validators:
        net.fc.tx("claim_validator", task, 0, sender=v)
        paid.append(v)
    for who in paid:
        net.fc.tx("withdraw_payout", sender=who)
    assert net.fc.call("total_owed") < 3 + len(net.validators)  # a wei of dust a claim at most
    net.assert_conserved()


USDT_SHAPED = """
# pragma version 0.4.3
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

@external
def mint(to: address, amount: uint256):
    self.balanceOf[to] += amount

@external
def approve(spender: address, amount: uint256):
    self.allowance[msg.sender][spender] = amount

@external
def transfer(to: address, amount: uint256):  # no return value, as USDT
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount

@external
def transferFrom(owner: address, to: address, amount: uint256):
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
"""


def test_l6_a_token_that_returns_nothing_fails_closed():
    chain = EmbeddedChain()
    owner = account_from_seed("l6-owner")
    chain.fund(owner.address, 10**21)
    out = vyper.compile_code(USDT_SHAPED, output_formats=["abi", "bytecode"])
    token = chain.deploy(Artifact("usdt_shaped", out["abi"], bytes.fromhex(out["bytecode"][2:])), sender=owner)
    vault = chain.deploy(artifact("vault"), token.address, STAKE, 100, 1_000, sender=owner)
    token.tx("mint", owner.address, 10 * STAKE, sender=owner)
    token.tx("approve", vault.address, 10 * STAKE, sender=owner)
    with pytest.raises(Reverted):  # `assert extcall token.transferFrom(...)` cannot decode a missing bool
        vault.tx("stake", ROLE_TRAINER, STAKE, sender=owner)
    assert token.call("balanceOf", vault.address) == 0 and token.call("balanceOf", owner.address) == 10 * STAKE
    assert vault.call("total_active", ROLE_TRAINER) == 0


def test_i1_claiming_more_samples_than_the_cap_gains_nothing():
    rng = np.random.default_rng(0)
    liar, honest = rng.integers(-(2**16), 2**16, 64), rng.integers(-(2**16), 2**16, 64)
    capped = aggregate_update("fedavg", {}, [liar, honest], [MAX_WEIGHT, 500])
    assert np.array_equal(aggregate_update("fedavg", {}, [liar, honest], [10**12, 500]), capped)
    # the rational report is the cap: a trainer's weight is whatever it says up to 2**20 (argued, not fixed)
    assert not np.array_equal(aggregate_update("fedavg", {}, [liar, honest], [500, 500]), capped)


def test_i3_a_rejected_update_is_slashed_though_nobody_finalizes(net):
    task = net.create_task()
    t = net.trainers[:2]
    for x in t:
        net.commit(task, 0, x)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    for x in t:
        net.reveal(task, 0, x)
    result = net.result(task, 0, {t[0]: 1, t[1]: 0}, rejected=1 << 1)  # reveal 1 rejected
    net.to_vote_phase(task, 0)
    for v in net.validators:
        net.vote(task, 0, v, result)
    net.to_finalizable(task, 0)  # the window is over and nobody calls finalize
    with reverts("slashing: round not finalized"):
        net.slashing.tx("slash_rejected", task, 0, t[1].address, sender=net.outsiders[0])
    ev = net.slashing.tx(
        "slash_rejected_before_finalize", task, 0, t[1].address, *result.args, sender=net.outsiders[0]
    ).event("Slashed")
    assert (ev.args["node"], ev.args["reason"]) == (t[1].address, 3)
    assert net.fc.call("rounds", task, 0)["status"] == 0  # still open: no keeper was needed
    net.assert_conserved()
