"""``fedchain audit``: replay a task's events and blobs and verify every round."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import EXIT, ModelsOpt, PeerOpt, PeersFileOpt, RpcOpt, errors, fail

AUDIT_FAILED = 40  # exit code: the history differs from its recomputation (cf. EXIT in _common)


def audit(
    task: Annotated[
        int | None, typer.Option(help="Task to audit (default: the saved simulation's task, else the newest).")
    ] = None,
    sim: Annotated[
        Path | None,
        typer.Option(help="A `fedchain simulate` output folder: events from SIM/chain, blobs from SIM/blobs."),
    ] = None,
    events: Annotated[
        Path | None, typer.Option(help="A saved event log (events.jsonl, with its deployment.json beside it).")
    ] = None,
    rpc: RpcOpt = None,
    deployment: Annotated[
        Path | None,
        typer.Option("--deployment", "-d", help="Deployment file: contract address, chain id, first block, RPC URL."),
    ] = None,
    fedchain: Annotated[
        str | None, typer.Option("--fedchain", help="fedchain contract address (instead of a deployment file).")
    ] = None,
    from_block: Annotated[
        int | None, typer.Option(help="First block to read events from (default: the deployment's block, else 0).")
    ] = None,
    blobs: Annotated[
        list[Path], typer.Option("--blobs", help="Local blob folder, repeatable; tried before HTTP peers.")
    ] = [],
    peer: PeerOpt = [],
    peers_file: PeersFileOpt = None,
    models: ModelsOpt = [],
) -> None:
    """Verify a task's whole history from the chain's events and the blobs.

    For every round: each reveal opens its commitment; each update blob hashes
    to its CID and its fixed-point vector to its root; the rejected set, the new
    model, its CID, the scores root and the total score are recomputed with the
    validators' own code from the previous finalized model; a 2/3 quorum voted
    for that result; every reward claimed is the right share. Prints the model's
    lineage, then a summary. Exits 40 at the first mismatch, naming the round,
    the node and the quantity. Needs no account.
    """
    from rich.console import Console

    from fedchain.cli import checks
    from fedchain.protocol.audit import AuditError, Auditor

    if sim is not None:
        checks.sim_folder(sim)
    checks.url(rpc, "--rpc")
    for url in peer:
        checks.url(url, "--peer")
    for spec in models:
        checks.model(spec)

    console = Console(width=None if sys.stdout.isatty() else 160)
    with errors():
        source, default_task, default_blobs = _source(sim, events, rpc, deployment, fedchain, from_block)
        store = _store(blobs or default_blobs, peer, peers_file, deployment)
        task_id = task if task is not None else default_task if default_task is not None else _newest(source)
        auditor = Auditor(source, store, task_id)
        start = time.perf_counter()
        try:
            with console.status(f"auditing task {task_id}…") as status:
                report = auditor.run(
                    on_round=lambda v: status.update(f"auditing task {task_id}: round {v.round_id} {v.status}")
                )
        except AuditError as e:
            render(console, auditor.report)
            fail(f"audit failed: {e}", AUDIT_FAILED)
    render(console, report)
    for note in report.notes:
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"[green]ok[/]: task {task_id}: {report.summary()} in {time.perf_counter() - start:.1f} s")


def _source(sim, events, rpc, deployment, fedchain, from_block):
    """(event source, the task it was saved for, default blob folders)."""
    from fedchain.chain.deploy import read_deployment_file
    from fedchain.protocol.audit import ContractEvents, EventFile

    if sim is not None and events is not None:
        fail("choose one history: --sim DIR or --events FILE (or a chain: --rpc with --deployment or --fedchain)", 2)
    info = read_deployment_file(deployment) if deployment is not None else {}
    if sim is not None or events is not None or (rpc is None and "events" in info):
        # a saved history; a saved simulation's deployment file names its event log
        src = EventFile(sim / "chain" if sim is not None else events or deployment.parent / info["events"])
        return src, src.info.get("task_id"), [sim / "blobs"] if sim is not None else []
    from fedchain.chain.fedchain import Fedchain
    from fedchain.chain.interface import artifact
    from fedchain.chain.rpc import RpcChain

    address, url = fedchain or info.get("fedchain"), rpc or info.get("rpc")
    if address is None or url is None:
        fail(
            "no history to audit: pass --sim DIR, --events FILE, or --rpc URL with --deployment FILE "
            "or --fedchain ADDRESS",
            2,
        )
    chain = RpcChain(url, timeout=30.0)
    if info and chain.chain_id != info["chain_id"]:
        fail(
            f"the chain at {url} has id {chain.chain_id}, the deployment is for chain {info['chain_id']}", EXIT["chain"]
        )
    first = from_block if from_block is not None else info.get("block", 0)
    board = chain.at(artifact("secagg"), info["secagg"]) if info.get("secagg") else None
    return ContractEvents(Fedchain.at(chain, address), first, board), None, []


def _store(folders: list[Path], peer: list[str], peers_file: Path | None, deployment: Path | None):
    """Local folders first, then HTTP peers (given, or in the peers file)."""
    from fedchain.storage.store import BlobStore, LocalBlobStore, MultiStore

    stores: list[BlobStore] = []
    for folder in folders:
        if not folder.is_dir():
            fail(f"no blob folder at {folder}", EXIT["storage"])
        stores.append(LocalBlobStore(folder))
    file = peers_file or (deployment.resolve().parent / "peers.txt" if deployment is not None else None)
    if peer or (file is not None and file.exists()):
        from fedchain.storage.http import HttpBlobStore, Peers

        stores.append(HttpBlobStore(Peers(peer, file)))
    if not stores:
        fail("no blobs to read: pass --blobs DIR and/or --peer URL", 2)
    return stores[0] if len(stores) == 1 else MultiStore(stores)


def _newest(source) -> int:
    created = [e.args["task_id"] for e in source.events() if e.name == "TaskCreated"]
    if not created:
        fail(f"no task in the event log of {source.address}", 1)
    return max(created)


def render(console, report) -> None:
    """The model's lineage: one row per round, from the initial model on."""
    from rich.table import Table

    from fedchain.cli.status import short

    table = Table(title=f"Task {report.task_id}: model lineage (initial model {short(report.initial_cid)})")
    for col in ("round", "outcome", "parent", "model", "contributors (score)", "rejected", "voted for it", "claims"):
        table.add_column(col, overflow="fold")
    for v in report.versions:
        contributors = "\n".join(f"{short(a)} {s:,}" for a, s in v.scores if a not in v.rejected)
        rejected = "\n".join(f"{short(a)}: {why}" for a, why in v.rejected.items())
        voters = "\n".join([short(a) for a in v.voters] + [f"{short(a)} (dissent)" for a in v.dissenters])
        table.add_row(
            str(v.round_id),
            v.status,
            short(v.parent_cid),
            short(v.model_cid or ""),
            contributors,
            rejected,
            voters,
            str(v.claims),
        )
    console.print(table)
    for v in report.versions:
        for note in v.notes:
            console.print(f"[yellow]round {v.round_id}[/]: {note}")
