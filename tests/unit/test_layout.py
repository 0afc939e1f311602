"""chain/layout.py's codes are the contracts' constants, value for value."""

import os
import re

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.chain.interface import CONTRACTS_DIR
from fedchain.chain.layout import SLASHED, FailReason, Record, Role, RoundStatus, Schedule, SlashReason

# layout.vy's internal pack/unpack functions, exposed to be called on the embedded chain
HARNESS = """
# pragma version 0.4.3
import layout

@external
@pure
def record(index: uint256, samples: uint256, seats: uint256) -> uint256:
    return layout._record(index, samples, seats)

@external
@pure
def unrecord(rec: uint256) -> (uint256, uint256):
    return layout._samples(rec), layout._seats(rec)

@external
@pure
def schedule(opened: uint256, commit_end: uint256, reveal_end: uint256, validate_end: uint256) -> uint256:
    return layout._schedule(opened, commit_end, reveal_end, validate_end)

@external
@pure
def unschedule(s: uint256) -> (uint256, uint256, uint256, uint256):
    return layout._opened(s), layout._commit_end(s), layout._reveal_end(s), layout._validate_end(s)
"""


def constants(*names: str) -> dict[str, int]:
    found = {}
    for name in names:
        text = (CONTRACTS_DIR / f"{name}.vy").read_text()
        found |= {k: int(v) for k, v in re.findall(r"^(\w+): constant\(uint8\) = (\d+)", text, re.M)}
    return found


@pytest.mark.parametrize(
    "enum, prefix, contracts",
    [
        (RoundStatus, "", ("layout",)),
        (FailReason, "FAIL_", ("layout",)),
        (SlashReason, "SLASH_", ("layout",)),
        (Role, "ROLE_", ("staking",)),
    ],
)
def test_every_code_is_the_contracts(enum, prefix, contracts):
    on_chain = {k[len(prefix) :]: v for k, v in constants(*contracts).items() if k.startswith(prefix)}
    if not prefix:
        on_chain = {k: on_chain[k] for k in enum.__members__}
    assert {m.name: m.value for m in enum} == on_chain


def test_every_reason_has_words():
    assert all(r.describe() for r in FailReason) and all(r.describe() for r in SlashReason)


def test_the_round_codes_are_defined_once():
    """Status, failure and slash codes and the record's masks live in layout.vy only:
    a contract that needs them imports it (the review found copies that had drifted)."""
    shared = re.compile(
        r"^(OPEN|FINALIZED|FAILED|FAIL_\w+|SLASH_\w+|INDEX_MASK|SAMPLES_MASK|SLASHED|U64): "
        r"constant\(\w+\) = (?!layout\.|judging\.)",
        re.M,
    )  # a local alias of layout's is fine
    copies = {p.name: shared.findall(p.read_text()) for p in CONTRACTS_DIR.glob("*.vy") if p.name != "layout.vy"}
    assert {name: found for name, found in copies.items() if found} == {}


@pytest.fixture(scope="module")
def harness():
    cwd = os.getcwd()
    os.chdir(CONTRACTS_DIR)  # where the compiler finds `import layout`
    try:
        return boa.loads(HARNESS)
    finally:
        os.chdir(cwd)


u64 = st.integers(0, 2**64 - 1)


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, 2**32 - 2), samples=st.integers(0, 2**128 - 1), seats=u64, slashed=st.booleans())
def test_a_record_packs_as_the_contract_packs_it(harness, index, samples, seats, slashed):
    rec = Record(index, samples, seats)
    assert rec.pack() == harness.record(index, samples, seats)
    flagged = harness.record(index, samples, seats) | (SLASHED if slashed else 0)
    assert Record.unpack(flagged) == Record(index, samples, seats, slashed)
    assert harness.unrecord(flagged) == (samples, seats)  # the flag leaves the fields alone


def test_an_empty_record_is_not_revealed():
    assert Record.unpack(0) == Record(None) and not Record(None).revealed and Record(None).pack() == 0
    assert Record.unpack(SLASHED) == Record(None, slashed=True)  # slashed without a reveal (missing reveal)


@settings(max_examples=40, deadline=None)
@given(u64, u64, u64, u64)
def test_a_schedule_packs_as_the_contract_packs_it(harness, opened, commit_end, reveal_end, validate_end):
    s = Schedule(opened, commit_end, reveal_end, validate_end)
    assert s.pack() == harness.schedule(opened, commit_end, reveal_end, validate_end)
    assert Schedule.unpack(s.pack()) == s
    assert harness.unschedule(s.pack()) == s.astuple()
