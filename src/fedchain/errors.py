"""One root exception, one subclass per domain. Messages say what to do next."""


class FedchainError(Exception):
    """Root of every error fedchain raises on purpose."""


class ChainError(FedchainError):
    """Talking to the chain failed (connection, deployment, missing contract)."""


class ChainUnavailable(ChainError):
    """The chain's RPC endpoint cannot be reached (down, restarting, network cut).

    Transient by nature: a long-running node waits and tries again.
    """


class Reverted(ChainError):
    """A transaction or call reverted; ``reason`` is the contract's revert string.

    Both backends (embedded and JSON-RPC) raise this same type, so callers match on
    ``reason`` (e.g. ``"rounds: not selected"``) and never on backend exceptions.
    """

    def __init__(self, reason: str, fn: str = ""):
        self.reason = reason
        self.fn = fn
        super().__init__(f"{fn + ': ' if fn else ''}reverted: {reason}")


class StorageError(FedchainError):
    """A blob could not be stored or read."""


class BlobNotFound(StorageError):
    """No backend holds the blob with this CID."""


class BlobCorrupt(StorageError):
    """Bytes did not hash to the CID they were fetched under."""


class CodecError(StorageError):
    """A blob is not a valid tensor file, or its tensors fail a check."""


class LineageError(CodecError):
    """A model blob's lineage (its ``fedchain`` metadata) is missing or malformed."""


class LearningError(FedchainError):
    """Training, aggregation or fixed-point conversion failed."""
