"""Transactions against a real anvil: a stale nonce is resynchronised, a transaction
not mined in time is replaced (same nonce, so exactly one version lands), a revert
comes back with its reason, and an endpoint that went away is ``ChainUnavailable``."""

from __future__ import annotations

import threading
import time

import pytest

from fedchain.chain.anvil import Anvil
from fedchain.chain.deploy import deploy
from fedchain.chain.keys import dev_account
from fedchain.chain.rpc import RpcChain
from fedchain.errors import ChainUnavailable, Reverted

pytestmark = pytest.mark.anvil


@pytest.fixture
def anvil():
    node = Anvil()
    try:
        yield node
    finally:
        node.stop()


def test_nonce_replacement_reverts_and_outages(anvil):
    chain = RpcChain(anvil.url, timeout=10, receipt_timeout=0.5)
    owner, other = dev_account(0), dev_account(1)
    dep = deploy(chain, owner)
    token = dep.token

    # a stale nonce (another process used the key, or a crash lost the count) is resynchronised
    chain._nonces[owner.address] -= 2
    token.tx("mint", other.address, 1, sender=owner)
    assert token.call("balanceOf", other.address) == 1

    # not mined within the receipt timeout: replaced with higher fees, one version lands
    sent = chain.w3.eth.get_transaction_count(owner.address)
    chain.w3.provider.make_request("evm_setAutomine", [False])
    miner = RpcChain(anvil.url)  # its own connection: the timer thread must not share ours
    threading.Timer(1.2, miner.mine).start()
    token.tx("mint", other.address, 10, sender=owner)
    chain.w3.provider.make_request("evm_setAutomine", [True])
    assert token.call("balanceOf", other.address) == 11
    assert chain.w3.eth.get_transaction_count(owner.address) == sent + 1
    assert len([e for e in token.events() if e.name == "Transfer" and e.args.get("value") == 10]) == 1

    # a revert carries the contract's reason, before anything is sent
    with pytest.raises(Reverted) as err:
        dep.fedchain.tx("withdraw_payout", sender=other)
    assert err.value.reason == "rewards: no payout"
    assert chain.w3.eth.get_transaction_count(other.address) == 0

    anvil.stop()
    with pytest.raises(ChainUnavailable):
        chain.block_number()
    with pytest.raises(ChainUnavailable):
        token.tx("mint", other.address, 1, sender=owner)
    started = time.monotonic()
    with pytest.raises(ChainUnavailable, match="is it running"):
        RpcChain(anvil.url)
    assert time.monotonic() - started < 10
