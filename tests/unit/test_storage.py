"""Unit tests for fedchain.storage: CIDs, blob stores, the tensor codec, Merkle trees."""

import hashlib
import os

import numpy as np
import pytest
import safetensors.numpy
from eth_hash.auto import keccak
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedchain.errors import BlobCorrupt, BlobNotFound, CodecError, StorageError
from fedchain.storage.cid import check, cid_from_digest, cid_of, digest_of
from fedchain.storage.codec import decode_tensors, encode_tensors
from fedchain.storage.merkle import (
    all_proofs,
    merkle_layers,
    merkle_proof,
    merkle_root,
    score_leaf,
    verify_proof,
)
from fedchain.storage.store import BlobStore, LocalBlobStore, MultiStore

EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


# ---------------------------------------------------------------- cid


def test_cid_of_empty_is_ipfs_vector():
    assert cid_of(b"") == EMPTY_CID
    assert digest_of(EMPTY_CID) == hashlib.sha256(b"").digest()


@given(st.binary(max_size=4096))
def test_cid_digest_round_trip(data):
    cid = cid_of(data)
    assert cid.startswith("bafkrei")
    digest = digest_of(cid)
    assert digest == hashlib.sha256(data).digest()
    assert cid_from_digest(digest) == cid


@given(st.binary(min_size=32, max_size=32))
def test_digest_cid_round_trip(digest):
    assert digest_of(cid_from_digest(digest)) == digest


@pytest.mark.parametrize(
    "bad, words",
    [
        ("", "malformed CID"),
        ("not a cid", "malformed CID"),
        (EMPTY_CID[:-1], "malformed CID"),
        # CIDv0 of an empty dag-pb node: right hash, wrong version and codec
        ("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", "need v1, codec raw"),
        # same digest as EMPTY_CID under codec dag-pb (bafybei) and dag-cbor (bafyrei)
        ("bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "codec dag-pb"),
        ("bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "codec dag-cbor"),
    ],
)
def test_digest_of_rejects_bad_cid(bad, words):
    with pytest.raises(StorageError, match=words):
        digest_of(bad)


@pytest.mark.parametrize("digest", [b"", bytes(31), bytes(33)])
def test_cid_from_digest_needs_32_bytes(digest):
    with pytest.raises(StorageError, match="32 bytes"):
        cid_from_digest(digest)


def test_check_returns_data_or_names_cid():
    assert check(EMPTY_CID, b"") == b""
    with pytest.raises(BlobCorrupt, match=EMPTY_CID):
        check(EMPTY_CID, b"x")


# ---------------------------------------------------------------- store


def test_local_store_put_get_has(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    assert isinstance(store, BlobStore)
    cid = cid_of(b"hello")
    assert not store.has(cid)
    assert store.put(b"hello") == cid
    assert store.has(cid)
    assert store.get(cid) == b"hello"
    assert (tmp_path / "blobs" / cid).read_bytes() == b"hello"


def test_local_store_put_existing_is_noop(tmp_path):
    store = LocalBlobStore(tmp_path)
    cid = store.put(b"same")
    before = os.stat(tmp_path / cid)
    assert store.put(b"same") == cid
    after = os.stat(tmp_path / cid)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir()) == [cid]  # no temp files left


def test_local_store_tampered_file_is_corrupt(tmp_path):
    store = LocalBlobStore(tmp_path)
    cid = store.put(b"model weights")
    (tmp_path / cid).write_bytes(b"model weightz")
    with pytest.raises(BlobCorrupt, match=cid):
        store.get(cid)
    # storing the real bytes again repairs the copy
    assert store.put(b"model weights") == cid
    assert store.get(cid) == b"model weights"


def test_local_store_missing_blob(tmp_path):
    store = LocalBlobStore(tmp_path)
    with pytest.raises(BlobNotFound, match=EMPTY_CID):
        store.get(EMPTY_CID)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "bafkrei", ""])
def test_local_store_rejects_malformed_cid(tmp_path, bad):
    store = LocalBlobStore(tmp_path)
    with pytest.raises(StorageError, match="malformed CID"):
        store.get(bad)


def test_multistore_skips_corrupt_copy(tmp_path):
    first, second = LocalBlobStore(tmp_path / "a"), LocalBlobStore(tmp_path / "b")
    cid = first.put(b"update")
    second.put(b"update")
    (tmp_path / "a" / cid).write_bytes(b"forged")
    multi = MultiStore([first, second])
    assert multi.has(cid)
    assert multi.get(cid) == b"update"


def test_multistore_none_valid_names_cid(tmp_path):
    first, second = LocalBlobStore(tmp_path / "a"), LocalBlobStore(tmp_path / "b")
    cid = first.put(b"update")
    (tmp_path / "a" / cid).write_bytes(b"forged")
    multi = MultiStore([first, second])
    with pytest.raises(BlobNotFound, match=cid) as info:
        multi.get(cid)
    assert "BlobCorrupt" in str(info.value) and "BlobNotFound" in str(info.value)


def test_multistore_writes_to_first(tmp_path):
    first, second = LocalBlobStore(tmp_path / "a"), LocalBlobStore(tmp_path / "b")
    multi = MultiStore([first, second])
    cid = multi.put(b"new")
    assert first.has(cid) and not second.has(cid)
    with pytest.raises(ValueError):
        MultiStore([])


# ---------------------------------------------------------------- codec

finite_f32 = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
    elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), finite_f32, max_size=4))
def test_codec_round_trip_bit_exact(tensors):
    data = encode_tensors(tensors)
    out = decode_tensors(data, {k: v.shape for k, v in tensors.items()})
    assert out.keys() == tensors.keys()
    for name, array in tensors.items():
        assert out[name].dtype == np.float32
        assert out[name].tobytes() == array.tobytes()  # bit-exact, -0.0 included
    assert encode_tensors(dict(reversed(list(tensors.items())))) == data


def test_codec_encodes_non_contiguous_input():
    array = np.arange(12, dtype=np.float32).reshape(3, 4).T
    out = decode_tensors(encode_tensors({"w": array}))
    assert np.array_equal(out["w"], array)


def test_codec_encode_rejects_float64():
    with pytest.raises(CodecError, match="tensor w has dtype float64"):
        encode_tensors({"w": np.zeros(3)})


@pytest.mark.parametrize("data", [b"", b"garbage", b"\xff" * 64])
def test_decode_garbage(data):
    with pytest.raises(CodecError, match="malformed tensor file"):
        decode_tensors(data)


def test_decode_truncated():
    data = encode_tensors({"w": np.ones(8, np.float32)})
    with pytest.raises(CodecError, match="malformed tensor file"):
        decode_tensors(data[:-4])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_decode_rejects_non_finite(bad):
    array = np.ones(4, np.float32)
    array[2] = bad
    data = safetensors.numpy.save({"w": array})
    with pytest.raises(CodecError, match="tensor w has NaN/Inf"):
        decode_tensors(data)


def test_decode_rejects_float64():
    data = safetensors.numpy.save({"w": np.ones(4, np.float64)})
    with pytest.raises(CodecError, match="tensor w has dtype float64"):
        decode_tensors(data)


def test_decode_rejects_wrong_shape():
    data = encode_tensors({"w": np.ones((2, 3), np.float32)})
    with pytest.raises(CodecError, match=r"tensor w has shape \(2, 3\), expected \(3, 2\)"):
        decode_tensors(data, {"w": (3, 2)})


def test_decode_rejects_missing_and_extra_names():
    data = encode_tensors({"w": np.ones(2, np.float32), "b": np.ones(1, np.float32)})
    with pytest.raises(CodecError, match=r"missing \['v'\], unexpected \['b'\]"):
        decode_tensors(data, {"w": (2,), "v": (1,)})
    with pytest.raises(CodecError, match=r"missing \[\], unexpected \['b'\]"):
        decode_tensors(data, {"w": (2,)})


def test_decode_rejects_oversize_before_parsing():
    data = encode_tensors({"w": np.ones(100, np.float32)})
    with pytest.raises(CodecError, match="over the limit of 64"):
        decode_tensors(data, max_bytes=64)
    with pytest.raises(CodecError, match="over the limit"):
        decode_tensors(b"x" * 65, max_bytes=64)  # garbage too, but size is checked first


# ---------------------------------------------------------------- merkle

Z = bytes(32)


def h(left, right):
    return keccak(left + right)


def leaves_of(n):
    return [keccak(bytes([i])) for i in range(n)]


def test_merkle_root_reference():
    a, b, c, d, e = leaves_of(5)
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == h(a, b)
    assert merkle_root([a, b, c]) == h(h(a, b), h(c, Z))
    assert merkle_root([a, b, c, d, e]) == h(h(h(a, b), h(c, d)), h(h(e, Z), h(Z, Z)))


def test_merkle_rejects_empty_and_bad_leaves():
    with pytest.raises(ValueError, match="at least one leaf"):
        merkle_root([])
    with pytest.raises(ValueError, match="leaf 1 must be 32 bytes"):
        merkle_root([Z, b"short"])


def test_merkle_proof_reference():
    a, b, c, d, e = leaves_of(5)
    assert merkle_proof([a], 0) == []
    assert merkle_proof([a, b, c, d, e], 4) == [Z, h(Z, Z), h(h(a, b), h(c, d))]
    assert merkle_proof([a, b, c], 1) == [a, h(c, Z)]
    with pytest.raises(IndexError):
        merkle_proof([a, b, c], 3)


@given(st.integers(1, 17), st.data())
def test_every_proof_verifies_and_tampering_fails(n, data):
    leaves = [keccak(data.draw(st.binary(max_size=8)) + bytes([i])) for i in range(n)]
    root = merkle_root(leaves)
    proofs = all_proofs(leaves)
    assert len(merkle_layers(leaves)[0]) == 1 << (n - 1).bit_length()
    for i, leaf in enumerate(leaves):
        proof = proofs[i]
        assert proof == merkle_proof(leaves, i)
        assert verify_proof(leaf, i, proof, root)
        assert not verify_proof(keccak(leaf), i, proof, root)
        assert not verify_proof(leaf, i + (1 << len(proof)), proof, root)  # high bits
        assert not verify_proof(leaf, -1, proof, root)
        if proof:
            assert not verify_proof(leaf, i ^ 1, proof, root)
            level = data.draw(st.integers(0, len(proof) - 1))
            forged = list(proof)
            forged[level] = keccak(forged[level])
            assert not verify_proof(leaf, i, forged, root)


def test_verify_proof_rejects_malformed_inputs():
    a, b = leaves_of(2)
    root = merkle_root([a, b])
    assert not verify_proof(a[:31], 0, [b], root)
    assert not verify_proof(a, 0, [b[:31]], root)
    assert not verify_proof(a, 0, [b], root[:31])


def test_score_leaf_is_double_keccak_of_abi_encoding():
    address = "0x" + "ab" * 20
    encoded = bytes(12) + bytes.fromhex("ab" * 20) + (123).to_bytes(32, "big")
    assert score_leaf(address, 123) == keccak(keccak(encoded))
    assert score_leaf(address.upper().replace("0X", "0x"), 123) == score_leaf(address, 123)
    assert score_leaf(address, 124) != score_leaf(address, 123)


@given(st.binary(min_size=20, max_size=20), st.integers(0, 2**256 - 1))
def test_score_leaf_equals_eth_abi_encoding(raw, score):
    from eth_abi import encode
    from eth_utils import to_checksum_address

    address = to_checksum_address(raw)
    assert score_leaf(address, score) == keccak(keccak(encode(["address", "uint256"], [address, score])))


@pytest.mark.parametrize(
    "address, score",
    [
        ("0x" + "ab" * 19, 1),  # 19 bytes
        ("ab" * 21, 1),  # no 0x
        ("0x" + "zz" * 20, 1),  # not hex
        (bytes(20), 1),  # not a string
        ("0x" + "ab" * 20, -1),
        ("0x" + "ab" * 20, 2**256),
        ("0x" + "ab" * 20, 1.0),
    ],
)
def test_score_leaf_rejects_bad_input(address, score):
    with pytest.raises(ValueError):
        score_leaf(address, score)
