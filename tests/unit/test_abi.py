"""Unit tests for fedchain.chain.abi: call encoding, output decoding, revert reasons, gas."""

import eth_abi
import pytest
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from fedchain.chain.abi import ERROR_SELECTOR, Codec, intrinsic_gas, revert_reason

ALICE = "0x" + "ab" * 20
BOB = to_checksum_address("0x" + "0f" * 20)

# a hand-written ABI in the shape Vyper emits: one struct argument, a two-value return
# and a struct return
ABI = [
    {
        "type": "function",
        "name": "submit",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "task", "type": "uint256"},
            {
                "name": "entry",
                "type": "tuple",
                "components": [
                    {"name": "root", "type": "bytes32"},
                    {"name": "owner", "type": "address"},
                    {"name": "samples", "type": "uint64"},
                ],
            },
        ],
        "outputs": [{"name": "", "type": "uint256"}, {"name": "", "type": "address"}],
    },
    {
        "type": "function",
        "name": "entry",
        "stateMutability": "view",
        "inputs": [{"name": "i", "type": "uint256"}],
        "outputs": [
            {
                "name": "",
                "type": "tuple",
                "components": [
                    {"name": "root", "type": "bytes32"},
                    {"name": "owner", "type": "address"},
                    {"name": "samples", "type": "uint64"},
                ],
            }
        ],
    },
    {
        "type": "function",
        "name": "count",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]


@pytest.fixture
def codec() -> Codec:
    return Codec(ABI)


# ---------------------------------------------------------------- calls and outputs


def test_encode_call_takes_a_struct_as_a_dict(codec):
    entry = {"root": b"\x11" * 32, "owner": ALICE, "samples": 7}
    data = codec.encode_call("submit", (5, entry))
    assert data[:4] == keccak(text="submit(uint256,(bytes32,address,uint64))")[:4]
    task, decoded = eth_abi.decode(["uint256", "(bytes32,address,uint64)"], data[4:])
    assert task == 5
    assert decoded == (b"\x11" * 32, ALICE.lower(), 7)  # eth_abi decodes addresses in lower case
    # a struct given as a tuple in field order encodes the same
    assert codec.encode_call("submit", (5, (b"\x11" * 32, ALICE, 7))) == data


@given(st.integers(0, 2**256 - 1), st.binary(min_size=20, max_size=20))
def test_decode_output_round_trip(value, raw_address):
    codec = Codec(ABI)
    address = to_checksum_address(raw_address)
    ret = eth_abi.encode(["uint256", "address"], [value, address])
    assert codec.decode_output("submit", ret) == (value, address)


def test_decode_output_checksums_addresses_and_unwraps_single_values(codec):
    ret = eth_abi.encode(["uint256", "address"], [1, ALICE.lower()])
    n, who = codec.decode_output("submit", ret)
    assert who == to_checksum_address(ALICE)
    assert codec.decode_output("count", eth_abi.encode(["uint256"], [42])) == 42


def test_decode_output_turns_a_struct_into_a_dict(codec):
    ret = eth_abi.encode(["(bytes32,address,uint64)"], [(b"\x22" * 32, BOB, 9)])
    assert codec.decode_output("entry", ret) == {"root": b"\x22" * 32, "owner": BOB, "samples": 9}


def test_struct_dict_missing_a_field_is_a_type_error(codec):
    with pytest.raises(TypeError, match="samples"):
        codec.encode_call("submit", (5, {"root": b"\x11" * 32, "owner": ALICE}))


@pytest.mark.parametrize("args", [(), (5,), (5, {"root": b"\0" * 32, "owner": ALICE, "samples": 1}, 6)])
def test_wrong_argument_count_is_a_type_error(codec, args):
    with pytest.raises(TypeError, match="submit takes 2 arguments"):
        codec.encode_call("submit", args)


def test_unknown_function_is_an_attribute_error(codec):
    with pytest.raises(AttributeError, match="no function 'nope'"):
        codec.encode_call("nope", ())


# ---------------------------------------------------------------- revert reasons


@pytest.mark.parametrize("reason", ["staking: amount below minimum", "", "rounds: not selected ✓"])
def test_revert_reason_decodes_error_string(reason):
    assert revert_reason(ERROR_SELECTOR + eth_abi.encode(["string"], [reason])) == reason


def test_error_selector_is_error_string():
    assert ERROR_SELECTOR == keccak(text="Error(string)")[:4]


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("4e487b71") + eth_abi.encode(["uint256"], [0x11]),  # Panic(uint256)
        b"\xde\xad\xbe\xef",
        ERROR_SELECTOR + b"\x00\x01",  # Error(string) selector with a malformed payload
        b"\x01",
    ],
)
def test_revert_reason_falls_back_to_hex(data):
    assert revert_reason(data) == "0x" + data.hex()


@pytest.mark.parametrize("data", [None, b""])
def test_revert_reason_without_data(data):
    assert revert_reason(data) == "no reason given"


# ---------------------------------------------------------------- gas


@given(st.binary(max_size=300))
def test_intrinsic_gas_counts_zero_and_non_zero_bytes(data):
    zeros = sum(1 for b in data if b == 0)
    assert intrinsic_gas(data) == 21_000 + 4 * zeros + 16 * (len(data) - zeros)


def test_intrinsic_gas_examples():
    assert intrinsic_gas(b"") == 21_000
    assert intrinsic_gas(b"\0\0\x01") == 21_000 + 4 + 4 + 16
    # contract creation adds 32000 and 2 gas per 32-byte word of initcode (EIP-3860)
    assert intrinsic_gas(b"\x01" * 33, create=True) == 21_000 + 16 * 33 + 32_000 + 2 * 2
    assert intrinsic_gas(b"", create=True) == 53_000
