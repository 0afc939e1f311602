"""The vault, rewards and tasks contracts trust each other only through addresses bound at
deployment: every protocol-only entry point refuses anyone else, and the vault caps what a
claims contract can credit by the budgets it was given, whatever that contract computes."""

from __future__ import annotations

from conftest import STAKE, TOKEN, reverts
from fedchain.chain.interface import account_from_seed, artifact


def test_only_the_bound_contracts_move_money(net):
    mallory = net.outsiders[0]
    vault, core, tasks = net.fc.vault, net.fc.core, net.fc.tasks_contract
    with reverts("vault: not tasks"):
        vault.tx("escrow", mallory.address, TOKEN, sender=mallory)
    with reverts("vault: not tasks"):
        vault.tx("release", mallory.address, TOKEN, sender=mallory)
    with reverts("vault: not fedchain"):
        vault.tx("spend", TOKEN, sender=mallory)
    with reverts("vault: not fedchain"):
        vault.tx("slash", net.trainers[0].address, STAKE, 1, mallory.address, sender=mallory)
    with reverts("vault: not rewards"):
        vault.tx("credit", mallory.address, TOKEN, sender=mallory)
    task = net.create_task()
    with reverts("tasks: not allowed"):
        core.tx("open_task", 99, mallory.address, net.task_config(), sender=mallory)
    with reverts("tasks: not allowed"):
        core.tx("move_pool", task, TOKEN, False, sender=mallory)
    assert net.fc.call("tasks", task)["pool"] == net.task_config()["pool"]
    with reverts("vault: already bound"):
        vault.tx("bind", mallory.address, mallory.address, mallory.address, sender=net.owner)
    with reverts("tasks: already bound"):
        tasks.tx("bind", mallory.address, sender=net.owner)
    with reverts("tasks: not the deployer"):
        tasks.tx("bind", mallory.address, sender=mallory)


def test_a_vault_is_bound_once_by_its_deployer_to_real_addresses(net):
    owner, other = net.owner, net.outsiders[0]
    vault = net.chain.deploy(artifact("vault"), net.token.address, STAKE, 100, 1_000, sender=owner)
    with reverts("vault: not the deployer"):
        vault.tx("bind", other.address, other.address, other.address, sender=other)
    with reverts("vault: empty address"):
        vault.tx("bind", other.address, "0x" + "00" * 20, other.address, sender=owner)


def test_a_claims_contract_cannot_credit_more_than_the_budgets(net):
    """Defence in depth: a vault bound to a rogue 'rewards' (here an account) can credit it
    at most what fedchain turned into budgets."""
    owner, core, rogue, tasks = net.owner, account_from_seed("core"), account_from_seed("rogue"), net.outsiders[1]
    for a in (core, rogue, tasks):
        net.chain.fund(a.address, 10**21)
    vault = net.chain.deploy(artifact("vault"), net.token.address, STAKE, 100, 1_000, sender=owner)
    vault.tx("bind", core.address, rogue.address, tasks.address, sender=owner)
    net.token.tx("approve", vault.address, 10 * TOKEN, sender=tasks)
    vault.tx("escrow", tasks.address, 10 * TOKEN, sender=tasks)  # a pool of 10
    vault.tx("spend", 4 * TOKEN, sender=core)  # a round budget of 4
    with reverts("vault: more than the budgets"):
        vault.tx("credit", rogue.address, 4 * TOKEN + 1, sender=rogue)
    vault.tx("credit", rogue.address, 4 * TOKEN, sender=rogue)
    with reverts("vault: more than the budgets"):
        vault.tx("credit", rogue.address, 1, sender=rogue)
    assert (vault.call("total_pools"), vault.call("total_owed"), vault.call("unclaimed")) == (6 * TOKEN, 4 * TOKEN, 0)
    assert net.token.call("balanceOf", vault.address) == 10 * TOKEN
