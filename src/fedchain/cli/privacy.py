"""``fedchain privacy``: every trainer's epsilon in a DP task, recomputed from the chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import PeerOpt, PeersFileOpt, RpcOpt, errors, fail


def privacy(
    task: Annotated[
        int | None, typer.Option(help="The task (default: the saved simulation's, else the newest).")
    ] = None,
    sim: Annotated[
        Path | None, typer.Option(help="A `fedchain simulate --out` folder instead of a live network.")
    ] = None,
    deployment: Annotated[
        Path | None, typer.Option("--deployment", "-d", help="Deployment file (default: deployment.json).")
    ] = None,
    rpc: RpcOpt = None,
    blobs: Annotated[list[Path], typer.Option("--blobs", help="Local blob folder, repeatable.")] = [],
    peer: PeerOpt = [],
    peers_file: PeersFileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print each trainer's epsilon in a differentially private task.

    The recipe (checked against its hash on chain) fixes the mechanism and its parameters; the
    chain's Committed events say in which rounds each trainer released an update. From those
    two alone, with dp-accounting's RDP accountant, anyone gets the same figures. Needs no
    account.
    """
    from rich.console import Console
    from rich.table import Table

    from fedchain.cli.audit import _newest, _source, _store
    from fedchain.protocol import budget
    from fedchain.protocol.sponsor import task_recipe

    with errors():
        if sim is None and deployment is None:
            deployment = Path("deployment.json")
        source, default_task, default_blobs = _source(sim, None, rpc, None if sim else deployment, None, None)
        store = _store(blobs or default_blobs, peer, peers_file, None if sim else deployment)
        task_id = task if task is not None else default_task if default_task is not None else _newest(source)
        recipe = task_recipe(source, store, task_id)
        if recipe.dp_spec is None:
            fail(f"task {task_id} is not differentially private: its updates are public as they are", 1)
        out = {"task": task_id} | budget.report(recipe, source.events(), task_id)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    cap = out["max_rounds_per_trainer"]
    limit = f", capped at {recipe.dp_max_epsilon:g} ({cap} rounds a trainer)" if cap else ""
    title = f"task {task_id}: {recipe.dp}-level DP, noise {recipe.dp_noise:.4g}, clip {recipe.dp_clip:g}{limit}"
    table = Table(title=title)
    table.add_column("trainer", no_wrap=True)
    table.add_column("rounds", justify="right")
    table.add_column(f"epsilon (delta {recipe.dp_delta:g})", justify="right")
    for t in out["trainers"]:
        table.add_row(t["address"], str(t["rounds"]), f"{t['epsilon']:.4f}")
    Console().print(table)
