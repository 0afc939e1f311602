"""The protocol's core contracts seen as one: what nodes, sponsors and the audit talk to.

On chain, fedchain is several contracts with one concern each (docs/architecture.md):
``fedchain`` (the core: rounds, and each task's configuration and pool), ``vault``
(every token: stakes, pools, budgets, payouts), ``rewards`` (claims) and ``tasks``
(creating, funding and reclaiming tasks), beside the judges (slashing, challenges,
availability). A node does not care which of them holds ``claim`` or ``stake``:
``Fedchain.tx`` and ``Fedchain.call`` send each function to the contract whose ABI
has it, and ``Fedchain.events`` merges their events in chain order. The members stay
reachable (``.core``, ``.vault``, ``.rewards``, ``.tasks_contract``) for code that
needs one address, e.g. a token approval goes to ``.vault``, the contract that pulls
tokens.

A function name in two members goes to the first of core, vault, rewards, tasks; the
only such names are views of the same value (``token``, ``vault``) and ``tasks`` (the
core's task records; the tasks contract is ``.tasks_contract``).
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from fedchain.chain.abi import Event
from fedchain.chain.interface import Chain, Contract, Receipt, artifact


class Fedchain:
    """fedchain's core, vault and rewards contracts behind one ``tx``/``call``/``events``."""

    def __init__(self, core: Contract, vault: Contract, rewards: Contract, tasks: Contract):
        self.core, self.vault, self.rewards, self.tasks_contract = core, vault, rewards, tasks
        self.members = (core, vault, rewards, tasks)
        self.chain = core.chain
        self.address = core.address  # commitments and events name the core contract
        self.artifact = core.artifact
        self._route: dict[str, Contract] = {}
        for member in reversed(self.members):  # the first member wins a shared name
            for item in member.artifact.abi:
                if item.get("type") == "function":
                    self._route[item["name"]] = member

    @classmethod
    def at(cls, chain: Chain, core_address: str) -> Fedchain:
        """The deployment whose core is at ``core_address``: the core names its vault and
        tasks contract (immutables) and the vault its rewards contract (bound once)."""
        core = chain.at(artifact("fedchain"), core_address)
        vault = chain.at(artifact("vault"), core.call("vault"))
        return cls(
            core,
            vault,
            chain.at(artifact("rewards"), vault.call("rewards")),
            chain.at(artifact("tasks"), core.call("task_registry")),
        )

    def contract_for(self, fn: str) -> Contract:
        """The member contract that defines ``fn``."""
        try:
            return self._route[fn]
        except KeyError:
            raise AttributeError(f"no fedchain contract has a function {fn!r}") from None

    def tx(self, fn: str, *args: Any, sender: LocalAccount, gas: int | None = None) -> Receipt:
        return self.contract_for(fn).tx(fn, *args, sender=sender, gas=gas)

    def call(self, fn: str, *args: Any) -> Any:
        return self.contract_for(fn).call(fn, *args)

    def events(self, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        return self.chain.events_of(list(self.members), from_block, to_block)

    def __repr__(self) -> str:
        return (
            f"<fedchain at {self.core.address} (vault {self.vault.address}, rewards {self.rewards.address}, "
            f"tasks {self.tasks_contract.address})>"
        )
