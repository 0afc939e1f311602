"""Every deployed contract stays at or under 75% of EIP-170 (18,432 of 24,576 bytes), so
each keeps room for fixes (benchmarks/sizes.py prints the figures)."""

from __future__ import annotations

import pytest

from fedchain.chain.deploy import deploy
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import account_from_seed

TARGET = 24_576 * 3 // 4
CONTRACTS = [
    "fedchain",
    "vault",
    "rewards",
    "tasks",
    "challenges",
    "model_judge",
    "score_judge",
    "table_judge",
    "krum",
    "slashing",
    "availability",
    "reports",
    "endpoints",
    "secagg",
    "secagg_judge",
    "token",
]


@pytest.fixture(scope="module")
def sizes() -> dict[str, int]:
    chain = EmbeddedChain()
    owner = account_from_seed("sizes")
    chain.fund(owner.address, 10**20)
    dep = deploy(chain, owner)
    return {name: len(chain.env.get_code(c.address)) for name, c in dep.contracts().items() if c is not None}


def test_every_contract_of_the_deployment_is_measured(sizes):
    assert sorted(sizes) == sorted(CONTRACTS)


@pytest.mark.parametrize("name", CONTRACTS)
def test_deployed_code_is_at_most_75_percent_of_eip170(sizes, name):
    assert 0 < sizes[name] <= TARGET, f"{name}: {sizes[name]:,} bytes deployed, target {TARGET:,}"
