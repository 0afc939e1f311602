"""The sponsor role: publish the recipe and the initial model, create and fund a task.

The initial model blob carries the recipe in its metadata, so a node that knows
only the chain finds everything: the task's initial model CID is in its
``TaskCreated`` event, and the recipe it carries is checked against the task's
on-chain ``recipe_hash`` (``task_recipe``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

import numpy as np
from eth_account.signers.local import LocalAccount

from fedchain.chain.abi import Event
from fedchain.chain.fedchain import Fedchain
from fedchain.chain.interface import Contract
from fedchain.errors import CodecError, FedchainError
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate import registry
from fedchain.learning.models import lora
from fedchain.learning.train import flatten, get_params, param_shapes, unflatten
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import Lineage
from fedchain.storage.cid import cid_from_digest, digest_of
from fedchain.storage.codec import decode_tensors, encode_tensors
from fedchain.storage.store import BlobStore


def publish_model(
    store: BlobStore, params: dict[str, np.ndarray], recipe: Recipe, lineage: Lineage
) -> tuple[bytes, str]:
    """Store a model blob exactly representable in fixed point; return (root, cid)."""
    q = fp.to_fixed(flatten(params))
    exact = unflatten(fp.from_fixed(q), params)
    cid = store.put(encode_tensors(exact, {"fedchain": lineage.to_json()}))
    return fp.vector_root(q, recipe.chunk_size), cid


def create_task(
    fedchain: Fedchain,
    token: Contract,
    sponsor: LocalAccount,
    store: BlobStore,
    recipe: Recipe,
    initial: dict[str, np.ndarray],
    *,
    rounds: int,
    pool: int,
    trainers_per_round: int,
    validators_per_round: int,
    min_reveals: int = 1,
    commit_blocks: int = 5,
    reveal_blocks: int = 5,
    validate_blocks: int = 5,
    challenge_blocks: int = 5,
    validator_fee_bps: int = 1_000,
    max_commits: int | None = None,
) -> int:
    """Publish recipe and model blobs, escrow ``pool`` and open round 0; returns the task id.

    ``max_commits`` caps a round's commitments; by default the most at which the task's rule
    can still be challenged on chain (its registry entry's ``max_commits``, review I-5)."""
    store.put(recipe.to_bytes())
    lineage = Lineage(-1, None, recipe=recipe.to_bytes().decode(), base=recipe.base_model or None)
    root, cid = publish_model(store, initial, recipe, lineage)
    token.tx("approve", fedchain.vault.address, pool, sender=sponsor)
    r = fedchain.tx(
        "create_task",
        {
            "recipe_hash": recipe.hash,
            "model_root": root,
            "model_cid": digest_of(cid),
            "num_rounds": rounds,
            "trainers_per_round": trainers_per_round,
            "validators_per_round": validators_per_round,
            "min_reveals": min_reveals,
            "commit_blocks": commit_blocks,
            "reveal_blocks": reveal_blocks,
            "validate_blocks": validate_blocks,
            "challenge_blocks": challenge_blocks,
            "validator_fee_bps": validator_fee_bps,
            "pool": pool,
            "max_commits": registry.get(recipe.rule).max_commits if max_commits is None else max_commits,
            "max_rounds_per_trainer": recipe.max_dp_rounds,  # a DP task's epsilon cap, as rounds
        },
        sender=sponsor,
    )
    return r.event("TaskCreated").args["task_id"]


class EventLog(Protocol):
    """What lists a deployment's events: the ``Fedchain`` facade, or an auditor's ``EventSource``."""

    def events(self) -> list[Event]: ...


def task_recipe(fedchain: EventLog, store: BlobStore, task_id: int) -> Recipe:
    """The recipe of ``task_id``, read from its initial model blob and checked against the chain."""
    created = [e for e in fedchain.events() if e.name == "TaskCreated" and e.args["task_id"] == task_id]
    if not created:
        raise FedchainError(f"no task {task_id} on this contract")
    a = created[0].args
    blob = store.get(cid_from_digest(a["model_cid"]))
    try:
        text = Lineage.from_blob(blob).recipe
    except CodecError:  # no lineage, or a malformed one
        text = None
    if not isinstance(text, str):
        raise FedchainError(f"task {task_id}: its initial model carries no recipe")
    data = text.encode()
    try:
        recipe = Recipe.from_bytes(data)
    except (ValueError, TypeError) as e:
        raise FedchainError(f"task {task_id}: its initial model carries a malformed recipe: {e}") from None
    if recipe.to_bytes() != data or recipe.hash != a["recipe_hash"]:
        raise FedchainError(f"task {task_id}: the recipe in its initial model does not match the recipe hash on chain")
    return recipe


def load_base(store: BlobStore, recipe: Recipe) -> None:
    """Fetch the base model a LoRA task fine-tunes (``recipe.base_model``), checked against its
    CID by the store, decode it as the base architecture's tensors and register it for
    ``Recipe.build``. Nothing to do for other tasks, or for a base already loaded."""
    if not recipe.lora_rank or recipe.base_model in lora.loaded():
        return
    try:
        blob = store.get(recipe.base_model)
        params = decode_tensors(blob, param_shapes(recipe.template_base()))
    except (CodecError, FedchainError, OSError, ValueError) as e:
        raise FedchainError(f"the task's base model {recipe.base_model} cannot be loaded: {e}") from None
    lora.register_base(recipe.base_model, params)


def base_blob(path: Path, template: dict[str, np.ndarray]) -> bytes:
    """The blob a sponsor publishes as a task's base model: the model file at ``path`` (a
    safetensors file of the model's tensors, as ``fedchain model get`` writes), checked to
    be the task's architecture (``template``: names and shapes) and re-encoded canonically,
    so that the same tensors always give the same base CID."""
    try:
        params = decode_tensors(Path(path).read_bytes(), param_shapes(template))
    except OSError as e:
        raise FedchainError(f"base model {path}: cannot read it ({e.strerror or e})") from None
    except CodecError as e:
        raise FedchainError(f"base model {path} is not this task's model: {e}") from None
    return encode_tensors(params, {"fedchain.base": "1"})


def fine_tune(
    store: BlobStore,
    base: str | Path,
    recipe: Recipe,
    initial: dict[str, np.ndarray],
    rank: int = 0,
    targets: tuple[str, ...] = (),
    full: tuple[str, ...] = (),
    seed: int = 0,
) -> tuple[Recipe, dict[str, np.ndarray]]:
    """The recipe and initial model of a task that fine-tunes ``base``: a model file (published
    here, re-encoded by ``base_blob``) or the CID of a model blob ``store`` can fetch (an earlier
    task's model). With ``rank`` the task trains LoRA adapters on ``targets`` (and ``full`` in
    full) and starts from fresh adapters; without, every weight, starting from the base."""
    template = recipe.template()
    if Path(base).is_file():
        cid = store.put(base_blob(Path(base), template))
    else:
        cid = str(base)
        try:
            decode_tensors(store.get(cid), param_shapes(template))  # the store checks the CID
        except (CodecError, FedchainError, ValueError) as e:
            raise FedchainError(
                f"base model {cid}: neither a model file nor a model blob the peers serve: {e}"
            ) from None
    try:
        tuned = dataclasses.replace(recipe, base_model=cid, lora_rank=rank, lora_targets=targets, lora_full=full)
    except ValueError as e:
        raise FedchainError(f"base model {cid}: {e}") from None
    if not rank:
        return tuned, decode_tensors(store.get(cid), param_shapes(template))
    load_base(store, tuned)
    try:
        return tuned, get_params(tuned.build(seed=seed))
    except ValueError as e:  # adapters on modules the model does not have
        raise FedchainError(f"base model {cid}: {e}") from None
