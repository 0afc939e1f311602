"""``fedchain data split``: partition a built-in dataset into per-trainer .npz files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Data for trainers: each trainer keeps its own .npz (arrays x and y).", no_args_is_help=True)


@app.command()
def split(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for trainer-<i>.npz and test.npz.")] = Path("data"),
    dataset: Annotated[str, typer.Option(help="digits | mnist | mnist1d (no downloads).")] = "digits",
    trainers: Annotated[int, typer.Option(help="Partitions, one per trainer.")] = 5,
    partition: Annotated[str, typer.Option(help="iid | dirichlet | pathological.")] = "iid",
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration (smaller = less IID).")] = 0.5,
    classes_per_partition: Annotated[int, typer.Option(help="Classes per trainer (pathological).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split and the partition.")] = 0,
) -> None:
    """Split a dataset's training part across trainers; keep the held-out part as test.npz.

    For trying fedchain on one machine: in real use every trainer brings its
    own data in the same format (x: float32 with the task's input shape,
    y: integer labels).
    """
    import numpy as np

    from fedchain.cli import checks
    from fedchain.learning.data import load_dataset
    from fedchain.learning.data import partition as make_partitions

    checks.dataset(dataset)
    checks.partition(partition)
    checks.at_least("--classes-per-partition", classes_per_partition, 1)
    checks.new_folder(out, "--out")
    checks.trainers_fit(dataset, trainers, partition, seed, alpha, classes_per_partition)
    data = load_dataset(dataset, seed=seed)
    parts = make_partitions(
        partition, data.y_train, trainers, seed=seed, alpha=alpha, num_classes_per_partition=classes_per_partition
    )
    out.mkdir(parents=True, exist_ok=True)
    for i, idx in enumerate(parts):
        np.savez(out / f"trainer-{i}.npz", x=data.x_train[idx], y=data.y_train[idx])
        typer.echo(f"{out / f'trainer-{i}.npz'}: {len(idx)} examples, {len(np.unique(data.y_train[idx]))} classes")
    np.savez(out / "test.npz", x=data.x_test, y=data.y_test)
    typer.echo(f"{out / 'test.npz'}: {len(data.y_test)} held-out examples (for evaluating models)")
