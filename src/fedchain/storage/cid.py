"""Content identifiers: CIDv1, codec raw, sha2-256, base32 (``bafkrei...``).

The same bytes get the same name here as on IPFS. The chain stores only the 32-byte
sha256 digest of a blob; :func:`cid_from_digest` rebuilds the CID off-chain, and
:func:`digest_of` is its exact inverse.
"""

import base64
import binascii
import hashlib

from multiformats import CID

from fedchain.errors import BlobCorrupt, StorageError

DIGEST_SIZE = 32
_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])  # CIDv1, raw, sha2-256, 32 bytes
_CID_LEN = 59  # "b" + base32 of 36 bytes, unpadded


def cid_of(data: bytes) -> str:
    """Return the CIDv1 (raw, sha2-256, base32) of ``data``.

    Parameters
    ----------
    data : bytes
        The blob's bytes.

    Returns
    -------
    str
        The CID, e.g. ``"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"``
        for ``b""``.
    """
    return cid_from_digest(hashlib.sha256(data).digest())


def cid_from_digest(digest: bytes) -> str:
    """Rebuild the CID from the 32-byte sha256 digest stored on chain.

    Parameters
    ----------
    digest : bytes
        Exactly 32 bytes.

    Returns
    -------
    str
        The base32 CIDv1 (raw, sha2-256) naming the blob with that digest.

    Raises
    ------
    StorageError
        If ``digest`` is not 32 bytes.
    """
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != DIGEST_SIZE:
        got = len(digest) if isinstance(digest, (bytes, bytearray)) else type(digest).__name__
        raise StorageError(f"sha256 digest must be {DIGEST_SIZE} bytes, got {got}")
    # The fixed layout (version 1, codec raw 0x55, sha2-256 0x12, length 0x20) in
    # base32 needs no parser; multiformats' own encoder is ~1000x slower and
    # agrees bit for bit (tests/unit/test_storage.py compares them).
    return "b" + base64.b32encode(_PREFIX + bytes(digest)).decode().lower().rstrip("=")


def digest_of(cid: str) -> bytes:
    """Return the 32-byte sha256 digest inside a CID.

    Parameters
    ----------
    cid : str
        A CIDv1 with codec raw and hash sha2-256, in any multibase.

    Returns
    -------
    bytes
        The 32-byte digest, as the chain stores it.

    Raises
    ------
    StorageError
        If ``cid`` cannot be parsed, or is not a v1 raw sha2-256 CID.
    """
    if isinstance(cid, str) and len(cid) == _CID_LEN and cid.startswith("bafkrei"):
        try:
            body = cid[1:].upper()
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except (ValueError, binascii.Error):
            raw = b""
        if raw[:4] == _PREFIX and len(raw) == 4 + DIGEST_SIZE:
            return raw[4:]
    try:
        parsed = CID.decode(cid)
    except Exception as exc:  # multiformats raises several unrelated types
        raise StorageError(f"malformed CID {cid!r}: {exc}") from exc
    if parsed.version != 1 or parsed.codec.name != "raw" or parsed.hashfun.name != "sha2-256":
        raise StorageError(
            f"unsupported CID {cid!r}: need v1, codec raw, hash sha2-256; got "
            f"v{parsed.version}, codec {parsed.codec.name}, hash {parsed.hashfun.name}"
        )
    digest = parsed.raw_digest
    if len(digest) != DIGEST_SIZE:
        raise StorageError(f"malformed CID {cid!r}: digest is {len(digest)} bytes, not 32")
    return bytes(digest)


def check(cid: str, data: bytes) -> bytes:
    """Return ``data`` if it hashes to ``cid``; otherwise raise.

    Parameters
    ----------
    cid : str
        The name the bytes were fetched under.
    data : bytes
        The bytes fetched.

    Returns
    -------
    bytes
        ``data`` unchanged.

    Raises
    ------
    BlobCorrupt
        If the sha256 of ``data`` differs from the digest in ``cid``.
    StorageError
        If ``cid`` is malformed.
    """
    if hashlib.sha256(data).digest() != digest_of(cid):
        raise BlobCorrupt(f"blob {cid} is corrupt: its bytes do not hash to its CID")
    return data
