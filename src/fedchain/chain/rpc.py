"""The JSON-RPC backend: web3.py against anvil locally or any EVM chain remotely.

Transactions are signed locally (keys never leave the process), nonces are
tracked per sender, gas is estimated (which also surfaces a revert's reason
before anything is sent), and receipts are awaited with a timeout.
"""

from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted

from fedchain.chain.abi import Event, revert_reason
from fedchain.chain.interface import Artifact, Chain, Contract, Receipt
from fedchain.errors import ChainError, Reverted

GAS_MARGIN = 1.25


def _reason(err: ContractLogicError) -> str:
    data = err.data
    if isinstance(data, str) and data.startswith("0x"):
        return revert_reason(bytes.fromhex(data[2:]))
    msg = str(err.message or err)
    return msg.removeprefix("execution reverted: ").removeprefix("execution reverted")  or "no reason given"


class RpcChain(Chain):
    """A chain reached over HTTP JSON-RPC."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
        self.timeout = timeout
        try:
            self.chain_id = self.w3.eth.chain_id
        except Exception as e:  # connection refused, bad URL, not an EVM node
            raise ChainError(f"cannot reach an EVM node at {url}: {e}") from e
        self._nonces: dict[str, int] = {}

    # -- transactions

    def _send(self, tx: dict, sender: LocalAccount, label: str) -> dict:
        tx = {k: v for k, v in tx.items() if v is not None}
        tx.update(chainId=self.chain_id, **{"from": sender.address})
        if "gas" not in tx:
            try:
                tx["gas"] = int(self.w3.eth.estimate_gas(tx) * GAS_MARGIN)
            except ContractLogicError as e:
                raise Reverted(_reason(e), label) from None
        base = self.w3.eth.get_block("latest")["baseFeePerGas"]
        tx["maxPriorityFeePerGas"] = 10**9
        tx["maxFeePerGas"] = 2 * base + 10**9
        tx["nonce"] = self._next_nonce(sender.address)
        tx.pop("from")
        signed = sender.sign_transaction(tx)
        try:
            h = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception:
            self._nonces.pop(sender.address, None)  # resync from the node next time
            raise
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(h, timeout=self.timeout, poll_latency=0.05)
        except TimeExhausted as e:
            self._nonces.pop(sender.address, None)
            raise ChainError(f"{label}: no receipt for {h.to_0x_hex()} after {self.timeout}s") from e
        if receipt["status"] != 1:
            raise Reverted(self._replay_reason(tx, sender, receipt["blockNumber"]), label)
        return receipt

    def _replay_reason(self, tx: dict, sender: LocalAccount, block: int) -> str:
        call = {k: tx[k] for k in ("to", "data") if k in tx}
        call["from"] = sender.address
        try:
            self.w3.eth.call(call, block - 1)
        except ContractLogicError as e:
            return _reason(e)
        return "reverted (out of gas?)"

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self.w3.eth.get_transaction_count(address, "pending")
        n = self._nonces[address]
        self._nonces[address] = n + 1
        return n

    def deploy(self, art: Artifact, *args: Any, sender: LocalAccount) -> Contract:
        data = art.bytecode + art.codec.encode_constructor(args)
        receipt = self._send({"data": "0x" + data.hex()}, sender, f"deploy {art.name}")
        return Contract(self, art, receipt["contractAddress"])

    def transact(self, contract: Contract, fn: str, args: tuple, *, sender: LocalAccount, gas: int | None = None) -> Receipt:
        data = contract.artifact.codec.encode_call(fn, args)
        tx = {"to": contract.address, "data": "0x" + data.hex(), "gas": gas}
        r = self._send(tx, sender, fn)
        events = [e for e in (self._decode(contract, log) for log in r["logs"]) if e is not None]
        return Receipt(r["gasUsed"], r["blockNumber"], events)

    def call(self, contract: Contract, fn: str, args: tuple) -> Any:
        data = contract.artifact.codec.encode_call(fn, args)
        try:
            out = self.w3.eth.call({"to": contract.address, "data": "0x" + data.hex()})
        except ContractLogicError as e:
            raise Reverted(_reason(e), fn) from None
        return contract.artifact.codec.decode_output(fn, bytes(out))

    # -- reading

    def _decode(self, contract: Contract, log: dict) -> Event | None:
        if log["address"].lower() != contract.address.lower():
            return None
        return contract.artifact.codec.decode_log(
            [bytes(t) for t in log["topics"]], bytes(log["data"]), log["blockNumber"], log["address"], log["logIndex"]
        )

    def events(self, contract: Contract, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        logs = self.w3.eth.get_logs({
            "address": contract.address,
            "fromBlock": from_block,
            "toBlock": "latest" if to_block is None else to_block,
        })
        return [e for e in (self._decode(contract, log) for log in logs) if e is not None]

    def block_number(self) -> int:
        return self.w3.eth.block_number

    def mine(self, blocks: int = 1) -> None:
        if blocks > 0:
            self.w3.provider.make_request("anvil_mine", [hex(blocks)])

    def fund(self, address: str, wei: int) -> None:
        self.w3.provider.make_request("anvil_setBalance", [address, hex(wei)])

    def wait_for_block(self, block: int, poll: float = 0.2) -> None:
        """Block until the chain reaches ``block`` (for nodes on a live chain)."""
        while self.block_number() < block:
            time.sleep(poll)
