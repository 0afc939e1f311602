"""The JSON-RPC backend: web3.py against anvil locally or any EVM chain remotely.

Transactions are signed locally (keys never leave the process), nonces are
tracked per sender and resynchronised from the node after any failure, gas is
estimated (which also surfaces a revert's reason before anything is sent), and
receipts are awaited with a timeout; a transaction not mined in time is
replaced (same nonce, higher fees), so at most one of its versions can land.
An unreachable endpoint raises ``ChainUnavailable``, a revert ``Reverted``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, Hash32, HexStr
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import LogReceipt, RPCEndpoint, TxParams, TxReceipt

from fedchain.chain.abi import Event, revert_reason
from fedchain.chain.interface import Artifact, Chain, Contract, Receipt
from fedchain.errors import ChainError, ChainUnavailable, Reverted

GAS_MARGIN = 1.25
FEE_BUMP = 1.25  # a replacement must pay at least 10% more; 25% clears every client's rule
SEND_ATTEMPTS = 3  # the first transaction and two replacements


def _reason(err: ContractLogicError) -> str:
    data = err.data
    if isinstance(data, str) and data.startswith("0x"):
        return revert_reason(bytes.fromhex(data[2:]))
    msg = str(err.message or err)
    return msg.removeprefix("execution reverted: ").removeprefix("execution reverted") or "no reason given"


def _checksummed(address: str) -> ChecksumAddress:
    """``address`` as web3's typed API wants it: our addresses are already checksummed
    (web3 refuses any other at run time), so this only tells mypy so."""
    return cast(ChecksumAddress, address)


def _rpc_message(err: Web3RPCError) -> str:
    rpc = getattr(err, "rpc_response", None) or {}
    return str((rpc.get("error") or {}).get("message") or err).lower()


class RpcChain(Chain):
    """A chain reached over HTTP JSON-RPC.

    Parameters
    ----------
    url : str
        The node's HTTP JSON-RPC endpoint.
    timeout : float, default 60
        Seconds per HTTP request.
    receipt_timeout : float, optional
        Seconds to wait for a transaction to be mined before replacing it
        (default: ``timeout``).
    """

    def __init__(self, url: str, timeout: float = 60.0, receipt_timeout: float | None = None):
        self.url = url
        self._known: dict[str, Artifact] = {}  # lower-case address -> ABI, to decode every log of a receipt
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
        self.timeout = timeout
        self.receipt_timeout = timeout if receipt_timeout is None else receipt_timeout
        try:
            with self._reachable():
                self.chain_id = self.w3.eth.chain_id
        except ChainUnavailable as e:
            raise ChainUnavailable(f"cannot reach an EVM node at {url}: {e}; is it running?") from None
        except Exception as e:  # a web server that is not an EVM node, a bad URL
            raise ChainError(f"{url} is not an EVM JSON-RPC endpoint: {e}") from e
        self._nonces: dict[str, int] = {}

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn connection failures into ``ChainUnavailable`` (transient: try again later)."""
        try:
            yield
        except (requests.exceptions.RequestException, OSError) as e:
            raise ChainUnavailable(f"EVM node at {self.url} unreachable ({type(e).__name__})") from e

    # -- transactions

    # web3's typed API takes TypedDicts: the dicts built here hold exactly a TxParams' keys.

    def _send(self, tx: dict, sender: LocalAccount, label: str) -> TxReceipt:
        with self._reachable():
            tx = {k: v for k, v in tx.items() if v is not None}
            tx.update(chainId=self.chain_id, **{"from": sender.address})
            if "gas" not in tx:
                try:
                    tx["gas"] = int(self.w3.eth.estimate_gas(cast(TxParams, tx)) * GAS_MARGIN)
                except ContractLogicError as e:
                    raise Reverted(_reason(e), label) from None
            tx.pop("from")
            base = self.w3.eth.get_block("latest")["baseFeePerGas"]
            tip, cap = 10**9, 2 * base + 10**9
            try:
                receipt = self._mine(tx, sender, label, tip, cap)
            except BaseException:
                self._nonces.pop(sender.address, None)  # resync from the node next time
                raise
            if receipt["status"] != 1:
                raise Reverted(self._replay_reason(tx, sender, receipt["blockNumber"]), label)
        return receipt

    def _mine(self, tx: dict, sender: LocalAccount, label: str, tip: int, cap: int) -> TxReceipt:
        """Send ``tx`` and wait for it; replace it with higher fees if it is not mined in time."""
        nonce = self._next_nonce(sender.address)
        hashes: list[bytes] = []
        resynced = False
        while len(hashes) < SEND_ATTEMPTS:
            signed = sender.sign_transaction({**tx, "nonce": nonce, "maxPriorityFeePerGas": tip, "maxFeePerGas": cap})
            try:
                self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Web3RPCError as e:
                msg = _rpc_message(e)
                if "already" in msg and ("known" in msg or "imported" in msg):
                    pass  # the node has this very transaction: wait for it
                elif "nonce too low" in msg:
                    mined = self._receipt(hashes)
                    if mined is not None:
                        return mined  # an earlier version landed meanwhile
                    if not hashes and not resynced:  # our count was stale and nothing was sent: recount
                        nonce, resynced = self._resync(sender.address), True
                        self._nonces[sender.address] = nonce + 1
                        continue
                    raise ChainError(
                        f"{label}: nonce {nonce} was used by another transaction "
                        "(is this account used by a second process?)"
                    ) from None
                else:
                    raise ChainError(f"{label}: the node refused the transaction: {msg}") from None
            hashes.append(bytes(signed.hash))
            receipt = self._wait(hashes, self.receipt_timeout)
            if receipt is not None:
                return receipt
            tip, cap = int(tip * FEE_BUMP) + 1, int(cap * FEE_BUMP) + 1
        raise ChainError(
            f"{label}: not mined after {SEND_ATTEMPTS} attempts of {self.receipt_timeout:g}s "
            f"(last hash 0x{hashes[-1].hex() if hashes else '-'})"
        )

    def transact_batch(
        self, contract: Contract, calls: list[tuple[str, tuple]], *, sender: LocalAccount
    ) -> list[Receipt]:
        """Send several calls from one sender back to back (consecutive nonces), then
        wait for them all: on a chain with a block time they share a block or two
        instead of taking one each. For setup scripts (minting to many accounts)."""
        with self._reachable():
            txs = []
            for fn, args in calls:
                tx: dict[str, Any] = {
                    "to": contract.address,
                    "from": sender.address,
                    "chainId": self.chain_id,
                    "data": "0x" + contract.artifact.codec.encode_call(fn, args).hex(),
                }
                try:
                    tx["gas"] = int(self.w3.eth.estimate_gas(cast(TxParams, tx)) * GAS_MARGIN)
                except ContractLogicError as e:
                    raise Reverted(_reason(e), fn) from None
                tx.pop("from")
                txs.append(tx)
            base = self.w3.eth.get_block("latest")["baseFeePerGas"]
            hashes = []
            try:
                for tx in txs:
                    signed = sender.sign_transaction(
                        {
                            **tx,
                            "nonce": self._next_nonce(sender.address),
                            "maxPriorityFeePerGas": 10**9,
                            "maxFeePerGas": 2 * base + 10**9,
                        }
                    )
                    self.w3.eth.send_raw_transaction(signed.raw_transaction)
                    hashes.append(bytes(signed.hash))
                receipts = [self._wait([h], self.receipt_timeout) for h in hashes]
            except BaseException:
                self._nonces.pop(sender.address, None)
                raise
        out = []
        for (fn, _), r in zip(calls, receipts):
            if r is None:
                self._nonces.pop(sender.address, None)
                raise ChainError(f"{fn}: not mined within {self.receipt_timeout:.0f}s")
            if r["status"] != 1:
                raise Reverted("reverted in a batch", fn)
            out.append(Receipt(r["gasUsed"], r["blockNumber"], self._receipt_events(contract, r["logs"])))
        return out

    def _receipt(self, hashes: list[bytes]) -> TxReceipt | None:
        for h in hashes:
            try:
                return self.w3.eth.get_transaction_receipt(Hash32(h))
            except TransactionNotFound:
                continue
        return None

    def _wait(self, hashes: list[bytes], timeout: float) -> TxReceipt | None:
        deadline = time.monotonic() + timeout
        while True:
            receipt = self._receipt(hashes)
            if receipt is not None or time.monotonic() > deadline:
                return receipt
            time.sleep(0.05)

    def _replay_reason(self, tx: dict, sender: LocalAccount, block: int) -> str:
        call = {k: tx[k] for k in ("to", "data") if k in tx}
        call["from"] = sender.address
        try:
            self.w3.eth.call(cast(TxParams, call), block - 1)
        except ContractLogicError as e:
            return _reason(e)
        return "reverted (out of gas?)"

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._resync(address)
        n = self._nonces[address]
        self._nonces[address] = n + 1
        return n

    def _resync(self, address: str) -> int:
        self._nonces[address] = self.w3.eth.get_transaction_count(_checksummed(address), "pending")
        return self._nonces[address]

    def settle(self, address: str, timeout: float = 30.0) -> bool:
        """Wait until every transaction ``address`` sent is mined (after a restart: so
        the chain shows what we did before deciding what to do). False on timeout."""
        deadline = time.monotonic() + timeout
        with self._reachable():
            sent = _checksummed(address)
            while self.w3.eth.get_transaction_count(sent, "pending") > self.w3.eth.get_transaction_count(sent):
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)
        self._nonces.pop(address, None)
        return True

    def transfer(self, to: str, wei: int, sender: LocalAccount) -> TxReceipt:
        """Send native currency (gas money) from ``sender`` to ``to``."""
        return self._send({"to": to, "value": wei, "gas": 21_000}, sender, "transfer")

    def balance(self, address: str) -> int:
        with self._reachable():
            return self.w3.eth.get_balance(_checksummed(address))

    def code_at(self, address: str) -> bytes:
        with self._reachable():
            return bytes(self.w3.eth.get_code(_checksummed(address)))

    def deploy(self, art: Artifact, *args: Any, sender: LocalAccount) -> Contract:
        data = art.bytecode + art.codec.encode_constructor(args)
        receipt = self._send({"data": "0x" + data.hex()}, sender, f"deploy {art.name}")
        if receipt["contractAddress"] is None:
            raise ChainError(f"deploy {art.name}: the receipt names no contract address")
        return self.at(art, receipt["contractAddress"])

    def at(self, art: Artifact, address: str) -> Contract:
        self._known[address.lower()] = art
        return Contract(self, art, address)

    def _receipt_events(self, contract: Contract, logs: list) -> list[Event]:
        """Every log of a receipt that a known contract emitted (a call may reach several)."""
        self._known.setdefault(contract.address.lower(), contract.artifact)
        out = []
        for log in logs:
            art = self._known.get(log["address"].lower())
            if art is not None:
                ev = art.codec.decode_log(
                    [bytes(t) for t in log["topics"]],
                    bytes(log["data"]),
                    log["blockNumber"],
                    log["address"],
                    log["logIndex"],
                )
                if ev is not None:
                    out.append(ev)
        return out

    def transact(
        self, contract: Contract, fn: str, args: tuple, *, sender: LocalAccount, gas: int | None = None
    ) -> Receipt:
        data = contract.artifact.codec.encode_call(fn, args)
        tx = {"to": contract.address, "data": "0x" + data.hex(), "gas": gas}
        r = self._send(tx, sender, fn)
        return Receipt(r["gasUsed"], r["blockNumber"], self._receipt_events(contract, r["logs"]))

    def call(self, contract: Contract, fn: str, args: tuple) -> Any:
        data = contract.artifact.codec.encode_call(fn, args)
        try:
            with self._reachable():
                out = self.w3.eth.call({"to": _checksummed(contract.address), "data": HexStr("0x" + data.hex())})
        except ContractLogicError as e:
            raise Reverted(_reason(e), fn) from None
        return contract.artifact.codec.decode_output(fn, bytes(out))

    # -- reading

    def _decode(self, contract: Contract, log: LogReceipt) -> Event | None:
        if log["address"].lower() != contract.address.lower():
            return None
        return contract.artifact.codec.decode_log(
            [bytes(t) for t in log["topics"]], bytes(log["data"]), log["blockNumber"], log["address"], log["logIndex"]
        )

    def events(self, contract: Contract, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        with self._reachable():
            logs = self.w3.eth.get_logs(
                {
                    "address": _checksummed(contract.address),
                    "fromBlock": from_block,
                    "toBlock": "latest" if to_block is None else to_block,
                }
            )
        return [e for e in (self._decode(contract, log) for log in logs) if e is not None]

    def events_of(self, contracts: list[Contract], from_block: int = 0, to_block: int | None = None) -> list[Event]:
        by_address = {c.address.lower(): c for c in contracts}
        with self._reachable():
            logs = self.w3.eth.get_logs(
                {
                    "address": [_checksummed(c.address) for c in contracts],
                    "fromBlock": from_block,
                    "toBlock": "latest" if to_block is None else to_block,
                }
            )
        found = (
            self._decode(by_address[log["address"].lower()], log)
            for log in logs
            if log["address"].lower() in by_address
        )
        return sorted((e for e in found if e is not None), key=lambda e: (e.block, e.log_index))

    def block_number(self) -> int:
        with self._reachable():
            return self.w3.eth.block_number

    def mine(self, blocks: int = 1) -> None:
        if blocks > 0:
            with self._reachable():
                self.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(blocks)])

    def fund(self, address: str, wei: int) -> None:
        with self._reachable():
            self.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [address, hex(wei)])

    def wait_for_block(self, block: int, poll: float = 0.2) -> None:
        """Block until the chain reaches ``block`` (for nodes on a live chain)."""
        while self.block_number() < block:
            time.sleep(poll)
