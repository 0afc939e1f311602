"""fedchain: federated learning without a trusted coordinator.

Smart contracts on an EVM chain replace the central server of ordinary federated
learning; staked, independent nodes train, validate and check each other.
"""

__version__ = "0.1.0"
