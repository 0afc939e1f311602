"""``fedchain data split``: partition a built-in dataset into per-trainer .npz, .csv or ImageFolder data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Data for trainers: each keeps its own .npz (arrays x and y), .csv or ImageFolder.", no_args_is_help=True
)


@app.command()
def split(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for trainer-<i>.npz (.csv, or folder trainer-<i>/) and test.npz."),
    ] = Path("data"),
    dataset: Annotated[str, typer.Option(help="digits | mnist | mnist1d (no downloads).")] = "digits",
    trainers: Annotated[int, typer.Option(help="Partitions, one per trainer.")] = 5,
    partition: Annotated[str, typer.Option(help="iid | dirichlet | pathological.")] = "iid",
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration (smaller = less IID).")] = 0.5,
    classes_per_partition: Annotated[int, typer.Option(help="Classes per trainer (pathological).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split and the partition.")] = 0,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Each trainer's file: npz (arrays x, y); csv (a header, a label column, then the features "
            "row-major); imagefolder (digits and mnist only: trainer-<i>/<class>/<n>.png, 8-bit grey PNGs of "
            "value x 255). ImageFolder pixels are read back as value/255, a little off the npz values: "
            "if a task's trainers use imagefolder, all of them should. test.npz is always an .npz.",
        ),
    ] = "npz",
) -> None:
    """Split a dataset's training part across trainers; keep the held-out part as test.npz.

    For trying fedchain on one machine: in real use every trainer brings its
    own data in one of the formats `node run --data` reads (an .npz of x:
    float32 with the task's input shape and y: integer labels, a .csv, or an
    ImageFolder).
    """
    import numpy as np

    from fedchain.cli import checks
    from fedchain.learning.data import load_dataset
    from fedchain.learning.data import partition as make_partitions

    checks.dataset(dataset)
    checks.partition(partition)
    checks.one_of("--format", fmt, ("npz", "csv", "imagefolder"))
    checks.at_least("--classes-per-partition", classes_per_partition, 1)
    checks.new_folder(out, "--out")
    checks.trainers_fit(dataset, trainers, partition, seed, alpha, classes_per_partition)
    data = load_dataset(dataset, seed=seed)
    if fmt == "imagefolder":
        if len(data.input_shape) != 3:
            raise typer.BadParameter(f"{dataset}'s examples are not images: use digits or mnist", param_hint="--format")
        taken = [out / f"trainer-{i}" for i in range(trainers) if (out / f"trainer-{i}").exists()]
        if taken:  # writing into it would mix these images with the ones there
            raise typer.BadParameter(f"{taken[0]} exists: remove it, or write to another --out", param_hint="--out")
    parts = make_partitions(
        partition, data.y_train, trainers, seed=seed, alpha=alpha, num_classes_per_partition=classes_per_partition
    )
    out.mkdir(parents=True, exist_ok=True)
    for i, idx in enumerate(parts):
        x, y = data.x_train[idx], data.y_train[idx]
        path = out / (f"trainer-{i}" if fmt == "imagefolder" else f"trainer-{i}.{fmt}")
        if fmt == "npz":
            np.savez(path, x=x, y=y)
        elif fmt == "csv":
            write_csv(path, x, y)
        else:
            write_image_folder(path, x, y, data.num_classes)
        typer.echo(f"{path}: {len(idx)} examples, {len(np.unique(y))} classes")
    np.savez(out / "test.npz", x=data.x_test, y=data.y_test)
    typer.echo(f"{out / 'test.npz'}: {len(data.y_test)} held-out examples (for evaluating models)")


def write_csv(path: Path, x, y) -> None:
    """A header (label, x0, x1, ...), then one example a row: its label, its features row-major.
    Nine significant digits give every float32 back exactly."""
    import numpy as np

    features = x.reshape(len(x), -1)
    header = ",".join(["label", *(f"x{j}" for j in range(features.shape[1]))])
    rows = np.column_stack([y, features])
    np.savetxt(path, rows, fmt=["%d"] + ["%.9g"] * features.shape[1], delimiter=",", header=header, comments="")


def write_image_folder(root: Path, x, y, num_classes: int) -> None:
    """One folder per class (every class, so that class i stays the i-th by sorted name even where
    this trainer has none of it) of 8-bit greyscale PNGs: round(value x 255), values in [0, 1]."""
    import numpy as np
    from PIL import Image

    width = len(str(num_classes - 1))
    digits = len(str(len(y)))
    pixels = np.rint(np.clip(x[:, 0], 0.0, 1.0) * 255).astype(np.uint8)
    for k in range(num_classes):
        (root / f"{k:0{width}d}").mkdir(parents=True)
    for n, (image, k) in enumerate(zip(pixels, y)):
        Image.fromarray(image).save(root / f"{int(k):0{width}d}" / f"{n:0{digits}d}.png")
