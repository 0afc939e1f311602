"""The sponsor role: publish the recipe and the initial model, create and fund a task."""

from __future__ import annotations

import json

import numpy as np
from eth_account.signers.local import LocalAccount

from fedchain.chain.interface import Contract
from fedchain.learning import fixedpoint as fp
from fedchain.learning.train import flatten, unflatten
from fedchain.protocol.recipe import Recipe
from fedchain.storage.cid import digest_of
from fedchain.storage.codec import encode_tensors
from fedchain.storage.store import BlobStore


def publish_model(store: BlobStore, params: dict[str, np.ndarray], recipe: Recipe, lineage: dict) -> tuple[bytes, str]:
    """Store a model blob exactly representable in fixed point; return (root, cid)."""
    q = fp.to_fixed(flatten(params))
    exact = unflatten(fp.from_fixed(q), params)
    cid = store.put(encode_tensors(exact, {"fedchain": json.dumps(lineage, sort_keys=True)}))
    return fp.vector_root(q, recipe.chunk_size), cid


def create_task(fedchain: Contract, token: Contract, sponsor: LocalAccount, store: BlobStore, recipe: Recipe,
                initial: dict[str, np.ndarray], *, rounds: int, pool: int, trainers_per_round: int,
                validators_per_round: int, min_reveals: int = 1, commit_blocks: int = 5, reveal_blocks: int = 5,
                validate_blocks: int = 5, challenge_blocks: int = 5, validator_fee_bps: int = 1_000) -> int:
    """Publish recipe and model blobs, escrow ``pool`` and open round 0; returns the task id."""
    store.put(recipe.to_bytes())
    root, cid = publish_model(store, initial, recipe, {"round": -1, "parent": None, "scores": [], "rejected": {}})
    token.tx("approve", fedchain.address, pool, sender=sponsor)
    r = fedchain.tx("create_task", {
        "recipe_hash": recipe.hash, "model_root": root, "model_cid": digest_of(cid), "num_rounds": rounds,
        "trainers_per_round": trainers_per_round, "validators_per_round": validators_per_round,
        "min_reveals": min_reveals, "commit_blocks": commit_blocks, "reveal_blocks": reveal_blocks,
        "validate_blocks": validate_blocks, "challenge_blocks": challenge_blocks,
        "validator_fee_bps": validator_fee_bps, "pool": pool,
    }, sender=sponsor)
    return r.event("TaskCreated").args["task_id"]
