"""The embedded backend: titanoboa's in-process EVM (py-evm), no server.

Calls are ABI-encoded by ``fedchain.chain.abi`` and executed as raw messages,
so results and logs decode exactly as on the JSON-RPC backend. Each
transaction starts with cold storage (access counters are reset), and its gas
includes the intrinsic cost, so figures match a real chain. Blocks advance only
when ``mine`` is called: several transactions may share a block, as on a real
chain.
"""

from __future__ import annotations

import bisect
from typing import Any

import boa
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from fedchain.chain.abi import Event, intrinsic_gas, revert_reason
from fedchain.chain.interface import Artifact, Chain, Contract, Receipt
from fedchain.errors import ChainError, Reverted


class EmbeddedChain(Chain):
    """A private in-process chain; each instance has its own state."""

    chain_id = 31337

    def __init__(self) -> None:
        self.env = boa.Env()
        self.env.enable_fast_mode()  # skips boa's per-call tracing hooks; same EVM semantics
        self.env.evm.patch.chain_id = self.chain_id
        self.env.evm.patch.block_number = 1
        self._logs: list[Event] = []
        self._log_blocks: list[int] = []  # parallel to _logs, nondecreasing: bisect on it

    def deploy(self, art: Artifact, *args: Any, sender: LocalAccount) -> Contract:
        code = art.bytecode + art.codec.encode_constructor(args)
        self.env._reset_access_counters()
        address, computation = self.env.deploy(sender=sender.address, bytecode=code)
        if computation.is_error:
            raise Reverted(revert_reason(computation.output), f"deploy {art.name}")
        contract = Contract(self, art, to_checksum_address(str(address)))
        self._record(contract, computation)
        return contract

    def transact(self, contract: Contract, fn: str, args: tuple, *, sender: LocalAccount, gas: int | None = None) -> Receipt:
        data = contract.artifact.codec.encode_call(fn, args)
        self.env._reset_access_counters()
        c = self.env.execute_code(to_address=contract.address, sender=sender.address, data=data, gas=gas)
        if c.is_error:
            raise Reverted(revert_reason(c.output), fn)
        events = self._record(contract, c)
        return Receipt(c.get_gas_used() + intrinsic_gas(data), self.block_number(), events)

    def call(self, contract: Contract, fn: str, args: tuple) -> Any:
        data = contract.artifact.codec.encode_call(fn, args)
        c = self.env.execute_code(to_address=contract.address, data=data, is_modifying=False)
        if c.is_error:
            raise Reverted(revert_reason(c.output), fn)
        return contract.artifact.codec.decode_output(fn, c.output)

    def _record(self, contract: Contract, computation) -> list[Event]:
        block = self.block_number()
        events = []
        for _, address, topics, data in computation.get_raw_log_entries():
            ev = contract.artifact.codec.decode_log(
                [t.to_bytes(32, "big") for t in topics], data, block,
                to_checksum_address(address), len(self._logs),
            )
            if ev is None:  # e.g. the token's Transfer: another contract's ABI
                continue
            self._logs.append(ev)
            self._log_blocks.append(block)
            events.append(ev)
        return events

    def events(self, contract: Contract, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        lo = bisect.bisect_left(self._log_blocks, from_block)
        hi = len(self._logs) if to_block is None else bisect.bisect_right(self._log_blocks, to_block)
        return [e for e in self._logs[lo:hi] if e.address == contract.address]

    def block_number(self) -> int:
        return self.env.evm.patch.block_number

    def mine(self, blocks: int = 1) -> None:
        if blocks < 0:
            raise ChainError("cannot mine a negative number of blocks")
        self.env.time_travel(blocks=blocks)

    def fund(self, address: str, wei: int) -> None:
        self.env.set_balance(address, wei)
