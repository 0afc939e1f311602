"""Any PyTorch model, named by an entry point ``package.module:factory`` that each participant
installs: built under the built-ins' seed, checked, pinned by the sha256 of its source, and built
only where its own operator named it (``fedchain.learning.models.source``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fedchain.cli import app
from fedchain.learning.models import ModelError, build_model, source
from fedchain.learning.train import get_params
from fedchain.protocol.recipe import Recipe

TINY = "tests.byo.tiny_net:make"
BAD = "tests.byo.bad_nets"
BYO = Path(__file__).resolve().parents[1] / "byo"


@pytest.fixture(autouse=True)
def named(monkeypatch):
    """Each test starts with no entry point named (``source.allow`` is process-wide)."""
    monkeypatch.setattr(source, "NAMED", set())
    return source.NAMED


def squeeze(text: str) -> str:  # rich wraps the error panel: compare without its borders and whitespace
    return "".join(text.replace("│", "").split())


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_an_entry_point_builds_seeded_like_the_built_ins_and_leaves_the_global_rng_alone():
    source.allow(TINY)
    rng = torch.get_rng_state()
    a, b = (get_params(build_model(TINY, (1, 8, 8), 10, seed=3)) for _ in range(2))
    c = get_params(build_model(TINY, (1, 8, 8), 10, seed=4))
    assert same(a, b) and not same(a, c)
    assert torch.equal(torch.get_rng_state(), rng)
    assert {k: v.shape for k, v in a.items()}["4.weight"] == (10, 24)
    assert build_model("mlp", (1, 8, 8), 10) is not None  # the built-ins as before


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tests.byo.no_such_net:make", "no module 'tests.byo.no_such_net' is installed here"),
        ("tests.byo.tiny_net:nope", "has no attribute 'nope'"),
        (f"{BAD}:NOT_CALLABLE", "is not callable (it is of type int)"),
        (f"{BAD}:raises", "raised RuntimeError: no GPU here"),
        (f"{BAD}:not_a_module", "returned a dict, not a torch.nn.Module"),
        (f"{BAD}:counts_batches", "2.num_batches_tracked (torch.int64)"),
        (f"{BAD}:no_tensors", "has no parameters or buffers"),
        ("tests.byo.tiny_net:make:again", "is neither a built-in model nor an entry point"),
        ("tests.byo.tiny net:make", "is neither a built-in model nor an entry point"),
    ],
)
def test_a_bad_entry_point_is_a_value_error_saying_what_is_wrong(spec, message):
    source.allow(spec)
    with pytest.raises(ValueError) as e:
        build_model(spec, (1, 8, 8), 10)
    assert isinstance(e.value, ModelError) and message in str(e.value), str(e.value)


def test_a_module_failing_as_it_imports_is_named(tmp_path, monkeypatch):
    (tmp_path / "broken_net.py").write_text("import torch\nraise ImportError('needs CUDA 13')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source.allow("broken_net:make")
    with pytest.raises(ModelError, match="cannot import 'broken_net'.*needs CUDA 13"):
        build_model("broken_net:make", (1, 8, 8), 10)


def test_only_an_entry_point_this_process_was_told_to_build_is_imported():
    """A recipe from the network that names an installed callable (subprocess.call would run its
    input_shape) is refused before anything is imported or called."""
    recipe = Recipe(model="subprocess:call", input_shape=(1, 8, 8), model_source=source.source_hash(["subprocess:x"]))
    recipe.check_model_source()  # the pin alone would pass: the stdlib is the same everywhere
    with pytest.raises(ModelError, match=r"not named by this machine's operator.*--model subprocess:call"):
        recipe.template()


def test_the_source_hash_changes_with_the_file_and_a_changed_copy_is_refused(tmp_path, monkeypatch):
    spec = "tiny_net:make"
    monkeypatch.syspath_prepend(str(BYO))
    monkeypatch.delitem(sys.modules, "tiny_net", raising=False)
    source.allow(spec)
    pinned = source.source_hash([spec])
    assert len(pinned) == 64 and source.model_source(spec) == pinned and source.model_source("mlp") == ""
    recipe = Recipe(model=spec, model_source=pinned)
    recipe.check_model_source()  # the same code: accepted
    assert {k: v.shape for k, v in recipe.template().items()}["1.weight"] == (24, 64)
    # another machine's copy, one comment different: hashed before it is imported
    (tmp_path / "tiny_net.py").write_text((BYO / "tiny_net.py").read_text() + "# edited\n")
    monkeypatch.delitem(sys.modules, "tiny_net", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    theirs = source.source_hash([spec])
    assert theirs != pinned and "tiny_net" not in sys.modules
    with pytest.raises(ModelError) as e:
        recipe.check_model_source()
    assert f"pins {spec}'s source at sha256 {pinned}" in str(e.value) and f"hashes to {theirs}" in str(e.value)


def test_an_entry_point_recipe_pins_its_source_and_built_in_recipes_keep_their_bytes():
    with pytest.raises(ValueError, match="needs model_source"):
        Recipe(model=TINY)
    r = Recipe(model=TINY, model_source="ab" * 32)
    assert Recipe.from_bytes(r.to_bytes()) == r and r.entry_point == TINY and r.flower is None
    assert b"model_source" not in Recipe().to_bytes() and Recipe().entry_point is None
    flower = Recipe(model="flower:m:client_fn", dataset="flower", input_shape=(), num_classes=0, param_shapes=[(2,)])
    assert flower.entry_point is None  # a Flower task's model is the client's, not an entry point


@pytest.mark.parametrize(
    "args, message",
    [
        (["simulate", "--model", "tests.byo.no_such_net:make"], "no module 'tests.byo.no_such_net'"),
        (["simulate", "--model", f"{BAD}:raises"], "raised RuntimeError"),
        (["simulate", "--model", TINY, "--score", "validation"], "use --score cosine"),
        (["simulate", "--model", TINY, "--rule", "fltrust"], "choose another --rule"),
        (["task", "create", "--model", f"{BAD}:counts_batches"], "num_batches_tracked"),
        (["node", "run", "--role", "validator", "--model", f"{BAD}:nope"], "has no attribute 'nope'"),
    ],
)
def test_the_commands_check_an_entry_point_before_running(args, message, tmp_path):
    r = CliRunner().invoke(app, [*args, "--out" if args[0] == "simulate" else "--deployment", str(tmp_path / "x")])
    assert r.exit_code == 2, r.output
    assert squeeze("Invalid value for --model") in squeeze(r.output), r.output
    assert squeeze(message) in squeeze(r.output), r.output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``fedchain simulate --model tests.byo.tiny_net:make``: 4 trainers, 3 rounds on digits."""
    out = tmp_path_factory.mktemp("byo") / "run"
    args = ["--trainers", "4", "--validators", "3", "--rounds", "3", "--epochs", "1", "--no-baselines"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(source, "NAMED", set())
        r = CliRunner().invoke(app, ["simulate", "--model", TINY, *args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads((out / "report.json").read_text()), out


@pytest.mark.slow
def test_a_simulation_trains_the_entry_point_model_and_it_learns(run):
    report, _ = run
    assert report["rounds_finalized"] == 3 and report["conservation_gap_wei"] == 0
    accuracies = [report["initial_accuracy"], *(r["accuracy"] for r in report["rounds"])]
    assert accuracies[0] < 0.3 and accuracies[-1] > 0.8 and accuracies[-1] > accuracies[1], accuracies


@pytest.mark.slow
def test_the_simulation_audits_with_the_model_named_and_not_without(run):
    _, out = run
    r = CliRunner().invoke(app, ["audit", "--sim", str(out)])
    assert r.exit_code == 1 and squeeze(f"--model {TINY}") in squeeze(r.output), r.output
    r = CliRunner().invoke(app, ["audit", "--sim", str(out), "--model", TINY])
    assert r.exit_code == 0, r.output
    assert squeeze("verified 3 rounds (3 finalized)") in squeeze(r.output), r.output
    model = out.parent / "model.safetensors"
    r = CliRunner().invoke(app, ["model", "get", "--sim", str(out), "--model", TINY, "--out", str(model)])
    assert r.exit_code == 0 and model.exists(), r.output
    np.savez(out.parent / "data.npz", x=np.zeros((2, 1, 8, 8), np.float32), y=np.zeros(2, np.int64))
    r = CliRunner().invoke(
        app, ["model", "eval", "--sim", str(out), "--model", TINY, "--data", str(out.parent / "data.npz")]
    )
    assert r.exit_code == 0 and "accuracy" in r.output, r.output
