"""Blob store backends: the ``BlobStore`` protocol, a local directory, and a fallback chain.

Every read is checked against its CID, so a backend never has to be trusted. A missing
blob raises :class:`BlobNotFound` and a tampered one :class:`BlobCorrupt`, each naming
the CID.
"""

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from fedchain.errors import BlobCorrupt, BlobNotFound, StorageError
from fedchain.storage.cid import check, cid_from_digest, cid_of, digest_of


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed storage: bytes in, CID out, and back."""

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its CID."""
        ...

    def get(self, cid: str) -> bytes:
        """Return the verified bytes named ``cid``."""
        ...

    def has(self, cid: str) -> bool:
        """Return whether this store holds a copy named ``cid``."""
        ...


class LocalBlobStore:
    """Blobs as files in one directory, each named by its CID.

    Parameters
    ----------
    root : Path
        The directory; created if missing.
    durable : bool
        fsync each blob before it is renamed into place (default). The one-process
        simulation turns it off: a crash there loses every node at once.
    """

    def __init__(self, root: Path, durable: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.durable = durable

    def _path(self, cid: str) -> Path:
        # Re-encode from the digest: rejects malformed CIDs (so no path tricks) and
        # gives one file name per blob whatever multibase the caller used.
        return self.root / cid_from_digest(digest_of(cid))

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically and return its CID.

        Storing bytes already held intact is a no-op; a corrupt copy is replaced.

        Parameters
        ----------
        data : bytes
            The blob.

        Returns
        -------
        str
            The blob's CID.
        """
        data = bytes(data)
        cid = cid_of(data)
        path = self.root / cid
        if path.is_file() and hashlib.sha256(path.read_bytes()).digest() == digest_of(cid):
            return cid
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return cid

    def get(self, cid: str) -> bytes:
        """Return the bytes named ``cid``, verified against it.

        Parameters
        ----------
        cid : str
            The blob's CID.

        Returns
        -------
        bytes
            The blob.

        Raises
        ------
        BlobNotFound
            If no file holds the blob.
        BlobCorrupt
            If the file's bytes do not hash to ``cid`` (it was altered on disk).
        """
        path = self._path(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {cid} not found in {self.root}") from None
        try:
            return check(cid, data)
        except BlobCorrupt:
            raise BlobCorrupt(
                f"blob {cid} in {self.root} is corrupt: the file does not hash to its CID; "
                "delete it and fetch the blob again"
            ) from None

    def has(self, cid: str) -> bool:
        """Return whether a file named ``cid`` exists (its content is checked on ``get``)."""
        return self._path(cid).is_file()


class MultiStore:
    """Several stores tried in order: reads from the first valid copy, writes to the first.

    Parameters
    ----------
    stores : list of BlobStore
        At least one store; the first receives every ``put``.
    """

    def __init__(self, stores: list[BlobStore]):
        if not stores:
            raise ValueError("MultiStore needs at least one store")
        self.stores = list(stores)

    def put(self, data: bytes) -> str:
        """Store ``data`` in the first store and return its CID."""
        return self.stores[0].put(data)

    def get(self, cid: str) -> bytes:
        """Return the first copy of ``cid`` that verifies, skipping missing and corrupt ones.

        Raises
        ------
        BlobNotFound
            If no store holds a valid copy; the message names the CID and why each
            store failed.
        """
        failures = []
        for store in self.stores:
            try:
                return check(cid, store.get(cid))
            except (BlobNotFound, BlobCorrupt) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
        raise BlobNotFound(
            f"blob {cid} not found intact in any of {len(self.stores)} stores (" + "; ".join(failures) + ")"
        )

    def has(self, cid: str) -> bool:
        """Return whether any store holds a copy named ``cid``."""
        return any(store.has(cid) for store in self.stores)


class Replicating:
    """A view of a node's store that keeps a copy of every blob it fetches, so that the node
    serves it on (secure aggregation: a round's share bundles and masked updates stay
    available after their senders drop out, as long as one node that fetched them is up)."""

    def __init__(self, store: BlobStore):
        self.store = store
        self.held: set[str] = set()

    def get(self, cid: str) -> bytes:
        data = self.store.get(cid)
        if cid not in self.held:
            self.store.put(data)
            self.held.add(cid)
        return data

    def put(self, data: bytes) -> str:
        return self.store.put(data)

    def has(self, cid: str) -> bool:
        return self.store.has(cid)

    def prefetch(self, cids: Iterable[str]) -> None:
        """Fetch and keep what can be fetched now (the rest is tried again when needed)."""
        for cid in cids:
            if cid not in self.held:
                try:
                    self.get(cid)
                except StorageError:
                    pass
