"""chain/layout.py's codes are the contracts' constants, value for value."""

import re

import pytest

from fedchain.chain.interface import CONTRACTS_DIR
from fedchain.chain.layout import FailReason, Role, RoundStatus, SlashReason


def constants(*names: str) -> dict[str, int]:
    found = {}
    for name in names:
        text = (CONTRACTS_DIR / f"{name}.vy").read_text()
        found |= {k: int(v) for k, v in re.findall(r"^(\w+): constant\(uint8\) = (\d+)", text, re.M)}
    return found


@pytest.mark.parametrize("enum, prefix, contracts", [
    (RoundStatus, "", ("layout",)),
    (FailReason, "FAIL_", ("layout",)),
    (SlashReason, "SLASH_", ("layout",)),
    (Role, "ROLE_", ("staking",)),
])
def test_every_code_is_the_contracts(enum, prefix, contracts):
    on_chain = {k[len(prefix):]: v for k, v in constants(*contracts).items() if k.startswith(prefix)}
    if not prefix:
        on_chain = {k: on_chain[k] for k in enum.__members__}
    assert {m.name: m.value for m in enum} == on_chain


def test_every_reason_has_words():
    assert all(r.describe() for r in FailReason) and all(r.describe() for r in SlashReason)


def test_the_round_codes_are_defined_once():
    """Status, failure and slash codes and the record's masks live in layout.vy only:
    a contract that needs them imports it (the review found copies that had drifted)."""
    shared = re.compile(r"^(OPEN|FINALIZED|FAILED|FAIL_\w+|SLASH_\w+|INDEX_MASK|SAMPLES_MASK|SLASHED|U64): "
                        r"constant\(\w+\) = (?!layout\.|judging\.)", re.M)  # a local alias of layout's is fine
    copies = {p.name: shared.findall(p.read_text()) for p in CONTRACTS_DIR.glob("*.vy") if p.name != "layout.vy"}
    assert {name: found for name, found in copies.items() if found} == {}
