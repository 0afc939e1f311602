"""Option values checked before a command prints, writes, announces or sends anything.

Each check raises ``typer.BadParameter`` naming the flag, so click prints one line
(``Invalid value for '--dataset': ...``) and exits 2: no traceback, and advice in flag
terms rather than in the names of the functions underneath.
"""

from __future__ import annotations

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
    from fedchain.learning.models import MODELS

    return one_of(flag, value, sorted(MODELS))


def model_fits(model: str, dataset: str, flag: str = "--model") -> None:
    """The model can take the dataset's inputs (a CNN needs images: not mnist1d's vectors)."""
    from fedchain.learning.data import load_dataset
    from fedchain.learning.models import build_model

    data = load_dataset(dataset)
    try:
        build_model(model, tuple(data.input_shape), data.num_classes, seed=0)
    except ValueError as e:
        raise typer.BadParameter(f"{model} cannot take {dataset}'s inputs: {e}", param_hint=flag) from None


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
    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such file", param_hint=flag)
    not_npz = typer.BadParameter(
        f"{path} is not an .npz of numeric arrays x and y (write one with numpy.savez, or `fedchain data split`)",
        param_hint=flag,
    )
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        # numpy's own message suggests allow_pickle=True: not advice for data from anywhere
        raise not_npz from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise typer.BadParameter(f"{path} holds a single array, not arrays x and y (use numpy.savez)", param_hint=flag)
    with f:
        if "x" not in f or "y" not in f:
            raise typer.BadParameter(f"{path} has arrays {sorted(f.files)}, not x and y", param_hint=flag)
        try:
            x, y = f["x"], f["y"]
        except ValueError:  # an object array: it would need unpickling
            raise not_npz from None
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)) or y.ndim != 1:
        raise typer.BadParameter(f"{path}: x must be numbers and y one integer label an example", param_hint=flag)
    if len(x) != len(y) or len(y) == 0:
        raise typer.BadParameter(f"{path} needs one label per example: x has {len(x)}, y has {len(y)}", param_hint=flag)
    return np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


def data_fits(x: np.ndarray, y: np.ndarray, input_shape, num_classes: int, flag: str, path: Path) -> None:
    """Examples of the task's input shape and labels among its classes."""
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise typer.BadParameter(
            f"{path} has examples of shape {tuple(x.shape[1:])}; the task's model takes {tuple(input_shape)}",
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
