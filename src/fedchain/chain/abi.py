"""ABI encoding and decoding shared by both backends.

Both backends hand this module raw bytes (calldata, return data, log topics and
data) so that a call or an event decodes identically whether it ran in the
embedded EVM or on a JSON-RPC node.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

import eth_abi
from eth_typing import ABIEvent, ABIFunction
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, to_checksum_address

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


def _type(param: dict) -> str:
    t = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


@functools.lru_cache(maxsize=4096)
def checksum(address: str | bytes) -> str:
    """EIP-55 checksummed ``address`` (hex, or the 20 raw bytes a log names), memoised:
    a round decodes the same few dozen addresses hundreds of times, and each checksum
    costs a keccak."""
    return to_checksum_address(address)


def _normalise(value: Any, param: dict) -> Any:
    """Checksum addresses, turn tuples into dicts keyed by component name."""
    t = param["type"]
    if t == "address":
        return checksum(value)
    if t == "tuple":
        return {c["name"]: _normalise(v, c) for v, c in zip(value, param["components"])}
    if t.endswith("[]") and t.startswith("tuple"):
        inner = dict(param, type=t[:-2])
        return [_normalise(v, inner) for v in value]
    return value


@dataclass(frozen=True)
class Event:
    """One decoded log: ``args`` is keyed by the event's field names."""

    name: str
    args: dict
    block: int
    address: str
    log_index: int = 0


class Codec:
    """Encode calls and decode results and logs for one contract ABI.

    Selectors, type strings and event layouts are worked out once here: every
    transaction and call of a simulation goes through this class."""

    def __init__(self, abi: list[dict]):
        self.abi = abi
        self.functions = {f["name"]: f for f in abi if f["type"] == "function"}
        # the compiler's ABI entries, plain dicts with the keys eth_typing's TypedDicts name
        self._selectors = {
            name: function_abi_to_4byte_selector(cast(ABIFunction, f)) for name, f in self.functions.items()
        }
        self._inputs = {name: [_type(i) for i in f["inputs"]] for name, f in self.functions.items()}
        self._outputs = {name: [_type(o) for o in f["outputs"]] for name, f in self.functions.items()}
        self.events = {event_abi_to_log_topic(cast(ABIEvent, e)): e for e in abi if e["type"] == "event"}
        # topic -> (indexed params with their types, unindexed params, their types)
        self._layouts = {
            topic: (
                [(i, _type(i)) for i in e["inputs"] if i["indexed"]],
                [i for i in e["inputs"] if not i["indexed"]],
                [_type(i) for i in e["inputs"] if not i["indexed"]],
            )
            for topic, e in self.events.items()
        }
        self.constructor = next((f for f in abi if f["type"] == "constructor"), None)

    def encode_call(self, fn: str, args: tuple) -> bytes:
        f = self.functions.get(fn)
        if f is None:
            raise AttributeError(f"contract has no function {fn!r}")
        types = self._inputs[fn]
        if len(args) != len(types):
            raise TypeError(f"{fn} takes {len(types)} arguments, got {len(args)}")
        return self._selectors[fn] + eth_abi.encode(types, [_to_abi(a, i) for a, i in zip(args, f["inputs"])])

    def encode_constructor(self, args: tuple) -> bytes:
        if self.constructor is None:
            return b""
        types = [_type(i) for i in self.constructor["inputs"]]
        return eth_abi.encode(types, [_to_abi(a, i) for a, i in zip(args, self.constructor["inputs"])])

    def decode_output(self, fn: str, data: bytes) -> Any:
        outputs = self.functions[fn]["outputs"]
        values = [_normalise(v, o) for v, o in zip(eth_abi.decode(self._outputs[fn], data), outputs)]
        return values[0] if len(values) == 1 else tuple(values)

    def decode_log(
        self, topics: list[bytes], data: bytes, block: int, address: str, log_index: int = 0
    ) -> Event | None:
        if not topics or topics[0] not in self.events:
            return None
        e = self.events[topics[0]]
        indexed, plain, plain_types = self._layouts[topics[0]]
        args = {}
        for (param, t), topic in zip(indexed, topics[1:]):
            args[param["name"]] = _normalise(eth_abi.decode([t], topic)[0], param)
        for param, value in zip(plain, eth_abi.decode(plain_types, data)):
            args[param["name"]] = _normalise(value, param)
        return Event(e["name"], args, block, checksum(address), log_index)


def _to_abi(value: Any, param: dict) -> Any:
    """A struct may be passed as a dict keyed by field name; it becomes a tuple."""
    if param["type"] == "tuple" and isinstance(value, dict):
        missing = [c["name"] for c in param["components"] if c["name"] not in value]
        if missing:
            raise TypeError(f"struct {param['name']} lacks fields {missing}")
        return tuple(_to_abi(value[c["name"]], c) for c in param["components"])
    return value


def revert_reason(data: bytes | None) -> str:
    """The string of an ``Error(string)`` revert, or a description of the raw data."""
    if not data:
        return "no reason given"
    if data[:4] == ERROR_SELECTOR:
        try:
            return eth_abi.decode(["string"], data[4:])[0]
        except Exception:  # malformed revert data: report it raw
            pass
    return "0x" + data.hex()


def intrinsic_gas(data: bytes, create: bool = False) -> int:
    """Gas a transaction pays before execution (Shanghai rules, no access list)."""
    zeros = data.count(0)
    gas = 21_000 + 4 * zeros + 16 * (len(data) - zeros)
    if create:
        gas += 32_000 + 2 * ((len(data) + 31) // 32)
    return gas
