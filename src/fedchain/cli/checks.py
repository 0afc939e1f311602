"""Option values checked before a command prints, writes, announces or sends anything.

Each check raises ``typer.BadParameter`` naming the flag, so click prints one line
(``Invalid value for '--dataset': ...``) and exits 2: no traceback, and advice in flag
terms rather than in the names of the functions underneath.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import typer


def one_of(flag: str, value: str, choices) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of: {', '.join(choices)}", param_hint=flag)
    return value


def dataset(value: str, flag: str = "--dataset") -> str:
    from fedchain.learning.data import DATASETS

    return one_of(flag, value, DATASETS)


def model(value: str, flag: str = "--model") -> str:
    """A built-in model, or an entry point ``package.module:factory`` installed here (or in the
    current folder) that names a callable. Naming an entry point on this command line is what
    lets this process build it (``source.allow``): a recipe alone never does."""
    from fedchain.learning.models import MODELS, source

    if not source.is_entry_point(value):
        return one_of(flag, value, sorted(MODELS))
    source.allow(value)
    try:
        source.load_factory(value)
    except source.ModelError as e:
        raise typer.BadParameter(str(e), param_hint=flag) from None
    return value


def model_fits(model: str, dataset: str, flag: str = "--model") -> None:
    """The model can take the dataset's inputs (a CNN needs images: not mnist1d's vectors)."""
    from fedchain.learning.data import load_dataset
    from fedchain.learning.models import ModelError, build_model

    data = load_dataset(dataset)
    try:
        build_model(model, tuple(data.input_shape), data.num_classes, seed=0)
    except ModelError as e:  # an entry point's: its message names the call that failed
        raise typer.BadParameter(str(e), param_hint=flag) from None
    except ValueError as e:
        raise typer.BadParameter(f"{model} cannot take {dataset}'s inputs: {e}", param_hint=flag) from None


def fine_tuning(
    model: str,
    dataset: str,
    base_model: Path | None,
    rank: int,
    targets: tuple[str, ...],
    full: tuple[str, ...],
    score: str = "cosine",
    rule: str = "fedavg",
) -> None:
    """--base-model is a model file of --model on --dataset's inputs, and the LoRA options make a
    task: adapters on modules the model has (``Recipe``'s own checks, so the task cannot fail later)."""
    from fedchain.errors import FedchainError
    from fedchain.learning.data import load_dataset
    from fedchain.protocol.recipe import Recipe
    from fedchain.protocol.sponsor import base_blob
    from fedchain.storage.cid import cid_of
    from fedchain.storage.codec import decode_tensors

    at_least("--lora-rank", rank, 0)
    if base_model is None:
        if rank or targets or full:
            raise typer.BadParameter("LoRA fine-tunes a base model: give --base-model too", param_hint="--lora-rank")
        return
    data = load_dataset(dataset)
    try:
        plain = Recipe(
            model=model, input_shape=tuple(data.input_shape), num_classes=data.num_classes, score=score, rule=rule
        )
        blob = base_blob(base_model, plain.template())
    except (FedchainError, ValueError) as e:  # ValueError: an entry-point model (fine-tuned as a built-in only)
        raise typer.BadParameter(str(e), param_hint="--base-model") from None
    if not rank:
        if targets or full:
            raise typer.BadParameter("--lora-targets and --lora-full need --lora-rank", param_hint="--lora-rank")
        return
    try:
        r = dataclasses.replace(plain, base_model=cid_of(blob), lora_rank=rank, lora_targets=targets, lora_full=full)
        r.build(base=decode_tensors(blob))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--lora-targets") from None


def model_scores(model: str, rule: str, score: str = "cosine", flag: str = "--model") -> None:
    """An entry-point model is scored by cosine: root-set scores and rules (FLTrust, Zeno) run the
    built-in models' exact integer forward pass, which no other model has."""
    from fedchain.learning.aggregate import registry
    from fedchain.learning.models import is_entry_point

    if not is_entry_point(model):
        return
    if score != "cosine":
        raise typer.BadParameter(
            f"the {score} score runs the built-in models' exact forward pass on the root set, which {model} "
            "has none of: use --score cosine",
            param_hint=flag,
        )
    r = registry.RULES.get(rule)
    if r is not None and (r.needs_root_set or r.needs_root_scores):
        raise typer.BadParameter(
            f"{rule} trains or scores on the validators' root set with the built-in models' exact forward pass, "
            f"which {model} has none of: choose another --rule",
            param_hint=flag,
        )


SCORE_HELP = (
    "Contribution score: innovation (the default where the task can run it: per class of the validators' "
    "root set, the gain of the update and of what it adds to the last rounds' public updates; a free-rider "
    "that sends public information earns next to nothing) | cosine (agreement with the aggregate, checked "
    "on chain; the default for Flower clients, entry-point models, LoRA and --secagg) | validation (gain on "
    "the root set)."
)


def score(value: str | None, model: str, flower: bool = False, lora: bool = False, secagg: bool = False) -> str:
    """The task's contribution score: ``value`` if given (checked), otherwise the default,
    ``DEFAULT_SCORE`` (innovation) where the task can run it and cosine where it cannot: the
    root-set scores run the built-in models' exact forward pass (not an entry point's, a
    Flower client's or LoRA layers), and under secure aggregation no single update is seen."""
    from fedchain.learning.models import is_entry_point
    from fedchain.protocol.recipe import DEFAULT_SCORE
    from fedchain.protocol.root_set import SCORES

    if value is not None:
        return one_of("--score", value, SCORES)
    return "cosine" if flower or lora or secagg or is_entry_point(model) else DEFAULT_SCORE


def partition(value: str, flag: str = "--partition") -> str:
    from fedchain.learning.data import PARTITIONERS

    return one_of(flag, value, PARTITIONERS)


def at_least(flag: str, value: float, low: float) -> None:
    if value < low:
        raise typer.BadParameter(f"{value} is below {low}", param_hint=flag)


def share(flag: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise typer.BadParameter(f"{value} is not a share in [0, 1]", param_hint=flag)


def trainers_fit(name: str, trainers: int, how: str, seed: int, alpha: float, classes_per_partition: int = 2) -> None:
    """The partition the simulation will draw exists: every trainer gets enough examples."""
    from fedchain.learning.data import load_dataset
    from fedchain.learning.data import partition as draw

    at_least("--trainers", trainers, 1)
    labels = load_dataset(name, seed=seed).y_train
    n = len(labels)
    try:
        draw(how, labels, trainers, seed=seed, alpha=alpha, num_classes_per_partition=classes_per_partition)
    except ValueError:
        most = n // 10 if how == "dirichlet" else n
        others = {"digits": "--dataset mnist", "mnist": "--dataset mnist1d", "mnist1d": "fewer trainers"}
        fixes = [f"use at most {most:,} trainers"]
        if how != "iid":
            fixes.append("--partition iid")
        if how == "dirichlet":
            fixes.append("a larger --alpha")
        fixes.append(others[name])
        raise typer.BadParameter(
            f"{name} has {n:,} training examples and {trainers:,} trainers cannot each get enough of them "
            f"({how} partition): {', '.join(fixes[:-1])}, or {fixes[-1]}",
            param_hint="--trainers",
        ) from None


def url(value: str | None, flag: str) -> str | None:
    """An http(s) URL with a host (``localhost:8545`` alone would be read as a scheme)."""
    from urllib.parse import urlparse

    if value is None:
        return None
    u = urlparse(value)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise typer.BadParameter(f"{value!r} is not an http(s) URL: write it as http://{value}", param_hint=flag)
    return value


def new_folder(path: Path, flag: str) -> None:
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file, not a folder", param_hint=flag)


def sim_folder(path: Path, flag: str = "--sim") -> None:
    """A folder written by ``fedchain simulate --out``: its event log and blobs."""
    if not path.is_dir():
        raise typer.BadParameter(f"{path} is not a folder", param_hint=flag)
    if not (path / "chain").is_dir() or not (path / "blobs").is_dir():
        raise typer.BadParameter(
            f"{path} is not a simulation's output (no chain/ and blobs/ in it): pass the folder that "
            "`fedchain simulate --out` wrote",
            param_hint=flag,
        )


def npz(path: Path, flag: str) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from an .npz with arrays x and y; never unpickles anything."""
    from fedchain.learning.local_data import read_npz

    return _read(read_npz, flag, path)


def local_data(
    path: Path, label_column: str | None, flag: str, input_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from a trainer's .npz, .csv or ImageFolder (``learning.local_data``),
    a .csv's rows shaped and images read as ``input_shape`` (the task's) says."""
    from fedchain.learning.local_data import data_format, load_local_data

    fmt = data_format(path)
    if label_column is not None and fmt != "csv":
        what = "an ImageFolder" if fmt == "imagefolder" else "an .npz"
        raise typer.BadParameter(
            f"only a .csv has a label column, and {flag} {path} is {what}", param_hint="--label-column"
        )
    return _read(load_local_data, flag, path, label_column or "label", input_shape)


def _read(reader, flag: str, *args):
    from fedchain.learning.local_data import LocalDataError

    try:
        return reader(*args)
    except LocalDataError as e:
        raise typer.BadParameter(str(e), param_hint="--label-column" if e.option == "label_column" else flag) from None


def data_fits(x: np.ndarray, y: np.ndarray, input_shape, num_classes: int, flag: str, path: Path) -> None:
    """Examples of the task's input shape, labels among its classes, and an ImageFolder's
    class folders one for each of them."""
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise typer.BadParameter(
            f"{path} has examples of shape {tuple(x.shape[1:])}; the task's model takes {tuple(input_shape)}",
            param_hint=flag,
        )
    if path.is_dir():  # an ImageFolder: a missing class folder would shift every label after it
        from fedchain.learning.local_data import class_names

        names = class_names(path)
        if len(names) != num_classes:
            raise typer.BadParameter(
                f"{path} has {len(names)} class folders ({', '.join(names)}); the task has {num_classes} classes: "
                f"one folder for each (class i is the i-th by sorted name; a class without images keeps its folder)",
                param_hint=flag,
            )
    if y.min() < 0 or y.max() >= num_classes:
        raise typer.BadParameter(
            f"{path} has labels {int(y.min())}..{int(y.max())}; the task has classes 0..{num_classes - 1}",
            param_hint=flag,
        )


def flower_client(spec: str, initial: str | None, flag: str = "--flower-client"):
    """The loaded Flower entry point (``fedchain.flower.load``): flwr installed, MODULE:ATTR a
    client_fn or a ClientApp, and for a Message-API ClientApp its --flower-initial."""
    from fedchain.flower import FlowerError, load

    try:
        return load(spec, initial)
    except FlowerError as e:
        raise typer.BadParameter(str(e), param_hint="--flower-initial" if "initial model" in str(e) else flag) from None
