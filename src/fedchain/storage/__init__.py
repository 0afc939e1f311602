"""Content-addressed storage: CIDs, the safetensors tensor codec, blob stores, Merkle trees."""

from fedchain.storage.cid import check, cid_from_digest, cid_of, digest_of
from fedchain.storage.codec import decode_tensors, encode_tensors
from fedchain.storage.merkle import (
    all_proofs,
    merkle_layers,
    merkle_proof,
    merkle_root,
    proof_from_layers,
    score_leaf,
    verify_proof,
)
from fedchain.storage.store import BlobStore, LocalBlobStore, MultiStore

__all__ = [
    "BlobStore",
    "LocalBlobStore",
    "MultiStore",
    "all_proofs",
    "check",
    "cid_from_digest",
    "cid_of",
    "decode_tensors",
    "digest_of",
    "encode_tensors",
    "merkle_layers",
    "merkle_proof",
    "merkle_root",
    "proof_from_layers",
    "score_leaf",
    "verify_proof",
]
