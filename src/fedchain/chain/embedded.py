"""The embedded backend: titanoboa's in-process EVM (py-evm), no server.

Calls are ABI-encoded by ``fedchain.chain.abi`` and executed as raw messages,
so results and logs decode exactly as on the JSON-RPC backend. Each
transaction starts with cold storage (access counters are reset) and with its
storage "original values" reset (so EIP-2200 SSTORE pricing sees earlier
transactions as committed), its refunds are applied (capped at 1/5 of the gas
used, EIP-3529), and its gas includes the intrinsic cost: figures equal
anvil's receipts (benchmarks/gas compares them).

Block hashes are a fixed function of the block number (``block_hash``), so
``blockhash`` answers as on a real chain (the same hash for a block however
late it is asked, nothing beyond 256 blocks back) and round seeds (the hash of
a round's opening block) and therefore whole simulations are reproducible. The
embedded chain has no randomness beacon: its seeds are predictable, which is
fine for a simulation and never for a real deployment. Blocks advance only
when ``mine`` is called: several transactions may share a block, as on a real
chain.
"""

from __future__ import annotations

import bisect
from typing import Any

import boa
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from fedchain.chain.abi import Event, checksum, intrinsic_gas, revert_reason
from fedchain.chain.interface import Artifact, Chain, Contract, Receipt
from fedchain.errors import ChainError, Reverted

GENESIS_TIMESTAMP = 1_767_225_600  # 2026-01-01T00:00:00Z


def block_hash(number: int) -> bytes:
    """The embedded chain's hash of block ``number``."""
    return keccak(b"fedchain-embedded-block" + number.to_bytes(32, "big"))


class EmbeddedChain(Chain):
    """A private in-process chain; each instance has its own state."""

    chain_id = 31337

    def __init__(self) -> None:
        self.env = boa.Env()
        self.env.enable_fast_mode()  # skips boa's per-call tracing hooks; same EVM semantics
        self.env.evm.patch.chain_id = self.chain_id
        self.env.evm.patch.block_number = 1
        self.env.evm.patch.timestamp = GENESIS_TIMESTAMP
        self._hash_ancestors()
        self._logs: list[Event] = []
        self._log_blocks: list[int] = []  # parallel to _logs, nondecreasing: bisect on it
        self._artifacts: dict[str, Artifact] = {}  # address -> ABI, to decode the logs it emits

    def deploy(self, art: Artifact, *args: Any, sender: LocalAccount) -> Contract:
        code = art.bytecode + art.codec.encode_constructor(args)
        self._new_transaction()
        address, computation = self.env.deploy(sender=sender.address, bytecode=code)
        if computation.is_error:
            raise Reverted(revert_reason(computation.output), f"deploy {art.name}")
        contract = self.at(art, checksum(str(address)))
        self._record(contract, computation)
        return contract

    def at(self, art: Artifact, address: str) -> Contract:
        self._artifacts[checksum(address)] = art
        return Contract(self, art, address)

    def transact(
        self, contract: Contract, fn: str, args: tuple, *, sender: LocalAccount, gas: int | None = None
    ) -> Receipt:
        data = contract.artifact.codec.encode_call(fn, args)
        self._new_transaction()
        c = self.env.execute_code(to_address=contract.address, sender=sender.address, data=data, gas=gas)
        if c.is_error:
            raise Reverted(revert_reason(c.output), fn)
        events = self._record(contract, c)
        used = c.get_gas_used() + intrinsic_gas(data)
        return Receipt(used - min(c.get_gas_refund(), used // 5), self.block_number(), events)

    def _new_transaction(self) -> None:
        """What a real chain does between transactions: cold access lists, committed storage."""
        self.env._reset_access_counters()
        self.env.evm.vm.state.lock_changes()

    def call(self, contract: Contract, fn: str, args: tuple) -> Any:
        data = contract.artifact.codec.encode_call(fn, args)
        c = self.env.execute_code(to_address=contract.address, data=data, is_modifying=False)
        if c.is_error:
            raise Reverted(revert_reason(c.output), fn)
        return contract.artifact.codec.decode_output(fn, c.output)

    def _record(self, contract: Contract, computation) -> list[Event]:
        """Keep every log a known contract emitted (a call may reach several contracts)
        and return them all, as a receipt over JSON-RPC lists every log of its transaction."""
        block = self.block_number()
        events = []
        for _, address, topics, data in computation.get_raw_log_entries():
            address = checksum(address)
            art = self._artifacts.get(address)
            if art is None:
                continue
            ev = art.codec.decode_log([t.to_bytes(32, "big") for t in topics], data, block, address, len(self._logs))
            if ev is None:
                continue
            self._logs.append(ev)
            self._log_blocks.append(block)
            events.append(ev)
        return events

    def events(self, contract: Contract, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        lo = bisect.bisect_left(self._log_blocks, from_block)
        hi = len(self._logs) if to_block is None else bisect.bisect_right(self._log_blocks, to_block)
        return [e for e in self._logs[lo:hi] if e.address == contract.address]

    def events_of(self, contracts: list[Contract], from_block: int = 0, to_block: int | None = None) -> list[Event]:
        lo = bisect.bisect_left(self._log_blocks, from_block)
        hi = len(self._logs) if to_block is None else bisect.bisect_right(self._log_blocks, to_block)
        addresses = {c.address for c in contracts}
        return [e for e in self._logs[lo:hi] if e.address in addresses]

    def block_number(self) -> int:
        return self.env.evm.patch.block_number

    def mine(self, blocks: int = 1) -> None:
        if blocks < 0:
            raise ChainError("cannot mine a negative number of blocks")
        self.env.time_travel(blocks=blocks)
        self._hash_ancestors()

    def _hash_ancestors(self) -> None:
        """What BLOCKHASH reads: the hashes of the 256 blocks before the current one."""
        n = self.block_number()
        self.env.evm.patch.prev_hashes = [block_hash(b) for b in range(n - 1, max(n - 257, -1), -1)]

    def fund(self, address: str, wei: int) -> None:
        self.env.set_balance(address, wei)
