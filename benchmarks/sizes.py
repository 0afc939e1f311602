"""Deployed code size of every contract, against EIP-170.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/sizes.py

Deploys with ``fedchain.chain.deploy.deploy`` on the embedded chain and measures
the code at each address (the runtime with its immutables filled in, which is what
EIP-170 limits). The target is 75% of the limit, so that every contract keeps room
for fixes; tests/unit/test_sizes.py holds every contract to it.
"""

from __future__ import annotations

from fedchain.chain.deploy import deploy
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import account_from_seed

LIMIT = 24_576  # EIP-170: the most code an address may hold
TARGET = LIMIT * 3 // 4  # 18,432


def deployed_sizes() -> dict[str, int]:
    """Each contract of a fresh deployment, by its name in the deployment file: its code length."""
    chain = EmbeddedChain()
    owner = account_from_seed("sizes")
    chain.fund(owner.address, 10**20)
    dep = deploy(chain, owner)
    return {name: len(chain.env.get_code(c.address)) for name, c in dep.contracts().items() if c is not None}


def main() -> None:
    sizes = deployed_sizes()
    print(f"{'contract':<14} {'deployed':>9} {'of 24,576':>10} {'spare to 18,432':>16} {'spare to 24,576':>16}")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        flag = "" if size <= TARGET else "  over the target"
        print(f"{name:<14} {size:>9,} {size / LIMIT:>10.0%} {TARGET - size:>16,} {LIMIT - size:>16,}{flag}")
    print(f"limit {LIMIT:,} bytes (EIP-170), target {TARGET:,} (75%)")


if __name__ == "__main__":
    main()
