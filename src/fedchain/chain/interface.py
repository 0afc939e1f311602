"""The one chain interface the rest of fedchain talks to.

Two backends run the same compiled contracts: ``EmbeddedChain`` (an in-process
EVM, the default: no server) and ``RpcChain`` (web3.py over JSON-RPC: anvil
locally, any EVM chain remotely). Both sign as local accounts, return the same
``Receipt`` and ``Event`` objects, and turn every revert into ``Reverted`` with
the contract's reason string.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedchain.chain.abi import Codec, Event

CONTRACTS_DIR = Path(__file__).parent / "contracts"


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: name, ABI and deployment bytecode."""

    name: str
    abi: list
    bytecode: bytes
    version: str = ""  # hash of the contract sources it was compiled from

    @functools.cached_property
    def codec(self) -> Codec:
        return Codec(self.abi)


@dataclass(frozen=True)
class Receipt:
    """What a mined transaction did: total gas (intrinsic included), its block, its events."""

    gas_used: int
    block: int
    events: list[Event] = field(default_factory=list)

    def event(self, name: str) -> Event:
        found = [e for e in self.events if e.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {name} event, found {len(found)}")
        return found[0]


def _cache_dir() -> Path:
    return Path(os.environ.get("FEDCHAIN_CACHE", Path.home() / ".cache" / "fedchain"))


@functools.cache
def artifact(name: str) -> Artifact:
    """Compile ``contracts/<name>.vy`` with the pinned vyper (cached by source hash).

    The cache key covers every ``.vy`` file in the folder, so editing a module
    recompiles its importers too.
    """
    sources = sorted(CONTRACTS_DIR.glob("*.vy"))
    key = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()[:16]
    cached = _cache_dir() / "artifacts" / f"{name}-{key}.json"
    if cached.exists():
        d = json.loads(cached.read_text())
        return Artifact(name, d["abi"], bytes.fromhex(d["bytecode"]), key)
    import boa
    from vyper.compiler.output import build_abi_output

    data = boa.load_partial(str(CONTRACTS_DIR / f"{name}.vy")).compiler_data
    art = Artifact(name, build_abi_output(data), bytes(data.bytecode), key)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps({"abi": art.abi, "bytecode": art.bytecode.hex()}))
    tmp.replace(cached)
    return art


def account_from_seed(seed: str) -> LocalAccount:
    """A deterministic test account (simulations only: never for real funds)."""
    from eth_utils import keccak

    return Account.from_key(keccak(text=f"fedchain-sim:{seed}"))


class Contract:
    """A deployed contract on one chain: ``tx`` sends, ``call`` reads."""

    def __init__(self, chain: Chain, art: Artifact, address: str):
        self.chain = chain
        self.artifact = art
        self.address = address

    def tx(self, fn: str, *args: Any, sender: LocalAccount, gas: int | None = None) -> Receipt:
        return self.chain.transact(self, fn, args, sender=sender, gas=gas)

    def call(self, fn: str, *args: Any) -> Any:
        return self.chain.call(self, fn, args)

    def events(self, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        return self.chain.events(self, from_block, to_block)

    def __repr__(self) -> str:
        return f"<{self.artifact.name} at {self.address}>"


class Chain(abc.ABC):
    """A chain that runs fedchain's contracts."""

    chain_id: int

    @abc.abstractmethod
    def deploy(self, art: Artifact, *args: Any, sender: LocalAccount) -> Contract: ...

    @abc.abstractmethod
    def transact(
        self, contract: Contract, fn: str, args: tuple, *, sender: LocalAccount, gas: int | None = None
    ) -> Receipt: ...

    @abc.abstractmethod
    def call(self, contract: Contract, fn: str, args: tuple) -> Any: ...

    @abc.abstractmethod
    def events(self, contract: Contract, from_block: int = 0, to_block: int | None = None) -> list[Event]: ...

    def events_of(self, contracts: list[Contract], from_block: int = 0, to_block: int | None = None) -> list[Event]:
        """The events of several contracts, in chain order (backends may do it in one query)."""
        found = [e for c in contracts for e in self.events(c, from_block, to_block)]
        return sorted(found, key=lambda e: (e.block, e.log_index))

    @abc.abstractmethod
    def block_number(self) -> int: ...

    @abc.abstractmethod
    def mine(self, blocks: int = 1) -> None: ...

    @abc.abstractmethod
    def fund(self, address: str, wei: int) -> None:
        """Give ``address`` native currency for gas (local chains only)."""

    def at(self, art: Artifact, address: str) -> Contract:
        return Contract(self, art, address)

    def mine_to(self, block: int) -> None:
        """Mine until the next transaction lands in ``block`` or later."""
        gap = block - self.block_number()
        if gap > 0:
            self.mine(gap)

    def close(self) -> None:  # noqa: B027 - an optional hook: a backend holding nothing has nothing to close
        pass
