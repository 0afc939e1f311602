"""LoRA fine-tuning (fedchain.learning.models.lora): a task whose blobs hold adapters only,
on top of a base model named by its CID; and fine-tuning every weight from a base."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedchain.errors import FedchainError
from fedchain.learning.data import load_dataset
from fedchain.learning.models import build_model, lora
from fedchain.learning.train import TrainConfig, get_params, set_params, train_local
from fedchain.protocol.audit import Auditor, ContractEvents
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import Lineage
from fedchain.protocol.sponsor import base_blob, fine_tune, load_base
from fedchain.sim.network import SimConfig, build_network, play_round
from fedchain.sim.simulate import model_accuracy
from fedchain.storage.cid import cid_from_digest, cid_of
from fedchain.storage.codec import decode_tensors, encode_tensors
from fedchain.storage.store import LocalBlobStore

RECIPE = dict(model="mlp", base_model="bafkrei-test", lora_rank=2, lora_targets=("hidden",), lora_full=("out",))


def base_params(seed: int = 3) -> dict[str, np.ndarray]:
    return get_params(build_model("mlp", (1, 8, 8), 10, seed=seed))


def test_adapters_and_the_head_are_all_a_lora_model_holds():
    r = Recipe(**RECIPE)
    net = r.build(base=base_params())
    shapes = {k: v.shape for k, v in get_params(net).items()}
    assert shapes == {
        "hidden.lora_A.weight": (2, 64),
        "hidden.lora_B.weight": (64, 2),
        "hidden.base_layer.bias": (64,),  # the adapted layer's bias trains too
        "out.weight": (10, 64),  # trained in full (lora_full)
        "out.bias": (10,),
    }
    assert r.template().keys() == shapes.keys()
    # B starts at zero: before any training the model is its base, output for output
    x = torch.from_numpy(load_dataset("digits").x_test[:50])
    base = build_model("mlp", (1, 8, 8), 10)
    set_params(base, base_params())
    with torch.no_grad():
        assert torch.equal(net(x), base(x))


def test_training_moves_the_adapters_and_never_the_frozen_base():
    d = load_dataset("digits")
    net = Recipe(**RECIPE).build(base=base_params())
    frozen = net.peft.base_model.model.hidden.base_layer.weight.detach().clone()
    start = get_params(net)
    after = train_local(net, start, d.x_train[:200], d.y_train[:200], TrainConfig(lr=0.1), seed=0)
    assert all(not np.array_equal(after[k], start[k]) for k in after)
    assert torch.equal(net.peft.base_model.model.hidden.base_layer.weight, frozen)


def test_wrong_tensors_and_targets_are_refused():
    net = Recipe(**RECIPE).build(base=base_params())
    with pytest.raises(ValueError, match="do not fit"):
        net.load_state_dict({"hidden.lora_A.weight": torch.zeros(2, 64)})
    with pytest.raises(ValueError, match="not modules of the base model"):
        Recipe(**RECIPE | {"lora_targets": ("conv9",)}).build(base=base_params())
    with pytest.raises(ValueError, match="not loaded here"):
        Recipe(**RECIPE | {"base_model": "bafkrei-never-loaded"}).build()
    with pytest.raises(ValueError, match="lora_targets"):
        Recipe(model="mlp", base_model="bafkrei-x", lora_rank=2)
    with pytest.raises(ValueError, match="base_model"):
        Recipe(model="mlp", lora_rank=2, lora_targets=("hidden",))


def test_a_base_model_file_of_another_model_or_no_model_is_refused(tmp_path):
    template = Recipe(model="mlp").template()
    other = tmp_path / "cnn.safetensors"
    other.write_bytes(encode_tensors(get_params(build_model("cnn", (1, 8, 8), 10))))
    with pytest.raises(FedchainError, match="cnn.safetensors is not this task's model"):
        base_blob(other, template)
    with pytest.raises(FedchainError, match="cannot read it"):
        base_blob(tmp_path / "missing.safetensors", template)
    # a node whose store holds no such base, or a blob that is not the base's tensors, says so
    store = LocalBlobStore(tmp_path / "blobs")
    cid = store.put(encode_tensors({"w": np.zeros(3, np.float32)}))
    with pytest.raises(FedchainError, match="base model .* cannot be loaded"):
        load_base(store, Recipe(**RECIPE | {"base_model": cid}))


@pytest.mark.slow
def test_a_lora_task_fine_tunes_an_earlier_tasks_model_on_chain(tmp_path):
    common = dict(trainers=4, validators=2, model="mlp", epochs=2, lr=0.05, momentum=0.9, seed=2)
    first = build_network(SimConfig(rounds=2, out=tmp_path / "a", **common))
    for _ in range(2):
        assert play_round(first).finalized
    base_file = tmp_path / "base.safetensors"
    final = first.validators[0].current_model(first.task_id)
    base_file.write_bytes(encode_tensors(final.params))

    cfg = SimConfig(
        rounds=3,
        out=tmp_path / "b",
        base_model=base_file,
        lora_rank=2,
        lora_targets=("hidden",),
        lora_full=("out",),
        **common | {"lr": 0.1},  # the same seed: the same test split
    )
    net = build_network(cfg)
    r, v = net.recipe, net.validators[0]
    assert r.base_model == cid_of(base_blob(base_file, Recipe().template()))  # the CID of those tensors
    assert r.base_model in lora.loaded()
    # the initial model is the base: same accuracy, adapters that change nothing yet
    assert model_accuracy(net) == model_accuracy(first)
    created = [e for e in net.deployment.fedchain.events() if e.name == "TaskCreated"][0].args
    initial_blob = net.store.get(cid_from_digest(created["model_cid"]))
    assert Lineage.from_blob(initial_blob).base == r.base_model  # the lineage names its base
    start = model_accuracy(net)
    for _ in range(cfg.rounds):
        assert play_round(net).finalized
    assert model_accuracy(net) > start
    # every update blob holds adapters and the head only, smaller than the full model's
    full_bytes = len(encode_tensors(final.params))
    for reveals in v.task(net.task_id).reveals.values():
        for e in reveals:
            blob = net.store.get(e.cid)
            assert decode_tensors(blob).keys() == r.template().keys()
            assert len(blob) < 0.25 * full_bytes
    report = Auditor(ContractEvents(net.deployment.fedchain, net.deployment.block), net.store, net.task_id).run()
    assert [ver.status for ver in report.versions] == ["finalized"] * cfg.rounds


def test_fine_tuning_every_weight_starts_from_the_base(tmp_path):
    base_file = tmp_path / "base.safetensors"
    params = base_params(seed=7)
    base_file.write_bytes(encode_tensors(params))
    net = build_network(SimConfig(trainers=3, validators=2, rounds=1, model="mlp", base_model=base_file, out=tmp_path))
    assert net.recipe.base_model and not net.recipe.lora_rank
    got = net.validators[0].current_model(net.task_id).params
    assert all(np.abs(got[k] - params[k]).max() <= 2**-16 for k in params)  # the base, in fixed point


@pytest.mark.parametrize("change", [{"score": "validation"}, {"score": "innovation"}, {"rule": "fltrust"}])
def test_a_lora_task_refuses_what_runs_the_exact_forward_pass(change):
    with pytest.raises(ValueError, match="exact integer forward pass"):
        Recipe(**RECIPE | change)


def test_a_base_named_by_cid_is_an_earlier_models_blob_as_it_is(tmp_path):
    # an earlier task's model blob, lineage and all: its CID is the base, its bytes unchanged
    store = LocalBlobStore(tmp_path / "blobs")
    params = base_params(seed=5)
    cid = store.put(encode_tensors(params, {"fedchain": Lineage(3, "bafkrei-parent").to_json()}))
    plain = Recipe(model="mlp")
    tuned, initial = fine_tune(store, cid, plain, plain.template(), rank=2, targets=("hidden",), seed=1)
    assert tuned.base_model == cid and cid in lora.loaded()
    assert initial.keys() == tuned.template().keys()
    whole, start = fine_tune(store, cid, plain, plain.template())
    assert not whole.lora_rank and all(np.array_equal(start[k], params[k]) for k in params)
    with pytest.raises(FedchainError, match="neither a model file nor a model blob"):
        fine_tune(store, "bafkreinotthere", plain, plain.template())
    with pytest.raises(FedchainError, match="not modules of the base model"):
        fine_tune(store, cid, plain, plain.template(), rank=2, targets=("conv1",))


def test_simulate_refuses_lora_options_that_cannot_make_a_task(tmp_path):
    from typer.testing import CliRunner

    from fedchain.cli import app

    base = tmp_path / "base.safetensors"
    base.write_bytes(encode_tensors(base_params()))
    cases = [
        (["--lora-rank", "2", "--lora-targets", "hidden"], "--lora-rank", "give --base-model too"),
        (["--base-model", str(base), "--model", "cnn"], "--base-model", "is not this task's model"),
        (["--base-model", str(base), "--lora-rank", "2", "--lora-targets", "fc"], "--lora-targets", "not modules"),
        (["--base-model", str(base), "--lora-full", "out"], "--lora-rank", "need --lora-rank"),
        (["--base-model", str(tmp_path / "nope")], "--base-model", "cannot read it"),
    ]
    for args, flag, message in cases:
        r = CliRunner().invoke(app, ["simulate", "--model", "mlp", "--out", str(tmp_path / "out"), *args])
        assert r.exit_code == 2, (args, r.output)
        text = " ".join(r.output.split())
        assert flag in text and message in text and "Traceback" not in text, (args, text)
