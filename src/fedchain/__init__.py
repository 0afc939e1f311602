"""fedchain: federated learning without a trusted coordinator.

Smart contracts on an EVM chain replace the central server of ordinary federated
learning; staked, independent nodes train, validate and check each other.
"""

import os as _os

# keccak through pysha3's C code is ~6x faster than pycryptodome's wrapper; it
# dominates the embedded EVM's storage access and our Merkle trees. Must be set
# before eth_hash is first imported.
_os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

__version__ = "0.1.0"
