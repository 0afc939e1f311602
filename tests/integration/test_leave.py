"""Leaving the network from the command line, against a real anvil: ``fedchain unstake``
refuses what the contract would refuse before sending anything, and ``fedchain withdraw``
pays out unbonded stake once the delay has passed, with any payouts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fedchain.chain.anvil import Anvil
from fedchain.chain.deploy import ProtocolParams, deploy
from fedchain.chain.keys import dev_account
from fedchain.chain.rpc import RpcChain
from fedchain.cli import app

pytestmark = pytest.mark.anvil
TOKEN = 10**18


@pytest.fixture
def staked(tmp_path):
    """A deployment on a fresh anvil (unbonding delay 30 blocks) with dev account 1 staked
    300 tokens as a trainer; yields (chain, deployment, its file, the account)."""
    node = Anvil()
    try:
        chain = RpcChain(node.url)
        owner, me = dev_account(0), dev_account(1)
        dep = deploy(chain, owner, ProtocolParams(unbonding_delay=30))
        path = tmp_path / "deployment.json"
        dep.save(path, rpc=node.url)
        dep.token.tx("mint", me.address, 500 * TOKEN, sender=owner)
        dep.token.tx("approve", dep.fedchain.vault.address, 500 * TOKEN, sender=me)
        dep.fedchain.tx("stake", 1, 300 * TOKEN, sender=me)
        yield chain, dep, path, me
    finally:
        node.stop()


def cli(path, *args: str):
    return CliRunner().invoke(app, [*args, "--deployment", str(path), "--dev-account", "1"])


def test_unstake_checks_first_then_withdraw_pays_out_after_the_delay(staked):
    chain, dep, path, me = staked
    fc = dep.fedchain
    nonce = chain.w3.eth.get_transaction_count(me.address)

    # refused before anything is sent: more than staked, a remainder below the minimum (100)
    for amount, words in (("400", "at most the active stake, 300"), ("250", "below the minimum 100")):
        r = cli(path, "unstake", "--amount", amount)
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    r = cli(path, "withdraw")
    assert r.exit_code == 1 and "`fedchain unstake` first" in r.output
    assert chain.w3.eth.get_transaction_count(me.address) == nonce  # nothing sent, no gas spent

    r = cli(path, "unstake", "--amount", "200")
    assert r.exit_code == 0 and "200 tokens unbonding, 100 still staked" in r.output, r.output
    release = fc.call("stakes", me.address)["release_block"]
    r = cli(path, "withdraw")
    assert r.exit_code == 1 and f"until block {release}" in r.output
    before = dep.token.call("balanceOf", me.address)

    r = cli(path, "unstake")  # the rest: everything still active
    assert r.exit_code == 0 and "100 tokens unbonding, 0 still staked" in r.output, r.output
    release = fc.call("stakes", me.address)["release_block"]
    chain.mine_to(release)
    r = cli(path, "withdraw")
    assert r.exit_code == 0 and "withdrew 300 tokens of stake" in r.output, r.output
    assert dep.token.call("balanceOf", me.address) == before + 300 * TOKEN
    assert fc.call("stakes", me.address)["role"] == 0  # no stake left: no role
    r = cli(path, "unstake")
    assert r.exit_code == 1 and "no active stake" in r.output
