"""One scripted round, end to end, on both backends: register (stake), select,
commit, reveal, join and vote, finalize, claim, withdraw the payout, unbond,
withdraw. Token conservation is checked after every step.

The anvil case starts its own node (``-m anvil`` selects it, ``-m "not anvil"``
skips it); on anvil every transaction mines its own block, so the phases are
long enough for all of a phase's transactions.
"""

import pytest

from conftest import BALANCE, MAX_UINT, ROLE_TRAINER, ROLE_VALIDATOR, STAKE, TOKEN, Net, make_net, reverts
from fedchain.chain.deploy import ProtocolParams, deploy
from fedchain.chain.interface import account_from_seed


def test_register_commit_reveal_vote_finalize_claim_unbond_withdraw(chain):
    params = ProtocolParams()
    sponsor = account_from_seed("flow-sponsor")
    trainers = [account_from_seed(f"flow-trainer{i}") for i in range(3)]
    validators = [account_from_seed(f"flow-validator{i}") for i in range(3)]
    chain.fund(sponsor.address, 10**21)
    d = deploy(chain, sponsor, params)
    token, fc = d.token, d.fedchain
    net = Net(chain, token, fc, d.slashing, d.challenges, d.availability, sponsor, trainers, validators, [], params)
    net.fund([sponsor])

    # register: mint, approve, stake in a role
    for node, role in [*((t, ROLE_TRAINER) for t in trainers), *((v, ROLE_VALIDATOR) for v in validators)]:
        chain.fund(node.address, 10**21)
        token.tx("mint", node.address, BALANCE, sender=sponsor)
        token.tx("approve", fc.vault.address, MAX_UINT, sender=node)
        fc.tx("stake", role, STAKE, sender=node)
    net.assert_conserved()
    chain.mine(1)  # stake counts from the next round opened

    # the sponsor opens a task; its round 0 selects everyone (k * stake >= total)
    task = net.create_task(
        num_rounds=1,
        trainers_per_round=3,
        validators_per_round=3,
        commit_blocks=10,
        reveal_blocks=10,
        validate_blocks=10,
        challenge_blocks=5,
        pool=90 * TOKEN,
    )
    assert fc.call("tasks", task)["pool"] == 90 * TOKEN
    net.assert_conserved()
    for t in trainers:
        assert fc.call("is_selected", task, 0, t.address, ROLE_TRAINER)
    for v in validators:
        assert fc.call("is_selected", task, 0, v.address, ROLE_VALIDATOR)

    # commit, join, reveal
    for t in trainers:
        net.commit(task, 0, t)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    for i, t in enumerate(trainers):
        assert net.reveal(task, 0, t).event("Revealed").args["index"] == i
    net.assert_conserved()

    # vote the same result, finalize after the challenge window
    result = net.result(task, 0, {trainers[0]: 1, trainers[1]: 2, trainers[2]: 3})
    net.to_vote_phase(task, 0)
    names = [[e.name for e in net.vote(task, 0, v, result).events] for v in validators]
    assert names == [["Voted"], ["Voted", "QuorumReached"], ["Voted"]]
    net.to_finalizable(task, 0)
    fin = net.finalize(task, result, sender=validators[0])
    assert [e.name for e in fin.events] == ["RoundFinalized", "TaskFinished"]
    assert fc.call("tasks", task)["model_root"] == result.model_root
    net.assert_conserved()

    # claim (credited) and withdraw the payout (transferred)
    budget = fc.call("rounds", task, 0)
    for t, score in zip(trainers, [1, 2, 3]):
        claimed = net.claim(task, 0, t, result).event("RewardClaimed").args["amount"]
        assert claimed == budget["trainer_budget"] * score // 6
    for v in validators:
        fc.tx("claim_validator", task, 0, sender=v)
    with reverts("rewards: already claimed"):  # both backends report the contract's reason
        net.claim(task, 0, trainers[0], result)
    net.assert_conserved()
    for node in [*trainers, *validators]:
        owed = fc.call("payouts", node.address)
        assert fc.tx("withdraw_payout", sender=node).event("PayoutWithdrawn").args["amount"] == owed > 0
        assert net.balance(node) == BALANCE - STAKE + owed
    net.assert_conserved()

    # unbond, wait out the delay, withdraw
    for node in [*trainers, *validators]:
        release = fc.tx("unbond", STAKE, sender=node).event("UnbondRequested").args["release_block"]
        assert release == chain.block_number() + params.unbonding_delay
    net.assert_conserved()
    chain.mine_to(release)
    for node in [*trainers, *validators]:
        fc.tx("withdraw", sender=node)
        assert fc.call("stakes", node.address)["role"] == 0
    net.assert_conserved()

    # everything paid out: the vault holds only unclaimed rounding dust
    dust = token.call("balanceOf", fc.vault.address)
    assert dust == fc.call("total_owed") < 10
    assert fc.call("total_active", ROLE_TRAINER) == fc.call("total_active", ROLE_VALIDATOR) == 0


def _receipts_of_two_rounds(chain) -> list[tuple[str, int]]:
    """(function, gas used) of every transaction: deploy-time setup, two rounds with
    votes and finalize, every claim, a payout withdrawal."""
    sent = []
    transact = chain.transact

    def recording(contract, fn, args, **kwargs):
        receipt = transact(contract, fn, args, **kwargs)
        sent.append((fn, receipt.gas_used))
        return receipt

    chain.transact = recording
    net = make_net(chain)
    # anvil mines a block per transaction: phases long enough for a phase's transactions
    task = net.create_task(commit_blocks=10, reveal_blocks=10, validate_blocks=10, challenge_blocks=5)
    results = [net.play_round(task) for _ in range(2)]
    for rnd, result in enumerate(results):
        for t in net.trainers[:3]:
            net.claim(task, rnd, t, result)
        for v in net.validators:
            net.fc.tx("claim_validator", task, rnd, sender=v)
    net.fc.tx("withdraw_payout", sender=net.trainers[0])
    net.assert_conserved()
    return sent


@pytest.mark.anvil
def test_embedded_receipts_equal_anvils():
    """The simulation reports gas from the embedded chain: it must be what a real node
    charges, transaction for transaction (cold access, committed storage, refunds)."""
    from fedchain.chain.anvil import Anvil
    from fedchain.chain.embedded import EmbeddedChain
    from fedchain.chain.rpc import RpcChain

    anvil = Anvil()
    try:
        on_anvil = _receipts_of_two_rounds(RpcChain(anvil.url))
    finally:
        anvil.stop()
    embedded = _receipts_of_two_rounds(EmbeddedChain())
    assert len(embedded) > 60
    assert embedded == on_anvil
