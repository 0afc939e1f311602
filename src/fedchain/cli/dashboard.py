"""``fedchain dashboard``: a local web page showing a task live, from the chain and the blobs alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import EXIT, PeerOpt, PeersFileOpt, RpcOpt, errors, fail


def dashboard(
    sim: Annotated[
        Path | None,
        typer.Option(help="A `fedchain simulate --out` folder, finished or running (SIM/chain, SIM/blobs)."),
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option(
            "--deployment",
            "-d",
            envvar="FEDCHAIN_DEPLOYMENT",
            help="Deployment file of a live network (default: deployment.json; ignored with --sim).",
        ),
    ] = None,
    rpc: RpcOpt = None,
    blobs: Annotated[
        list[Path], typer.Option("--blobs", help="Local blob folder, repeatable; tried before HTTP peers.")
    ] = [],
    peer: PeerOpt = [],
    peers_file: PeersFileOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8780,
) -> None:
    """Serve a web page with a network's tasks, rounds, nodes and model lineage.

    Everything on it comes from the chain's events and contract state and from
    blobs checked against their CIDs; it follows the chain (a new block shows
    within a second) and keeps nothing: a restart rebuilds it. The page's data
    is a JSON API: /api/status, /api/tasks, /api/tasks/ID, /api/tasks/ID/rounds,
    /api/tasks/ID/lineage, /api/nodes, /api/nodes/ADDRESS. Needs no account.
    """
    from fedchain.cli import checks
    from fedchain.cli.audit import _store
    from fedchain.dashboard.server import Dashboard, LiveHistory, SimHistory, serve

    checks.url(rpc, "--rpc")
    for url in peer:
        checks.url(url, "--peer")
    with errors():
        history: SimHistory | LiveHistory
        if sim is not None:
            checks.sim_folder(sim)
            history = SimHistory(sim, _store([*blobs, sim / "blobs"], peer, peers_file, None))
        else:
            deployment = deployment or Path("deployment.json")
            history = LiveHistory(rpc, deployment, _store(blobs, peer, peers_file, deployment))
    board = Dashboard(history).start()
    try:
        server = serve(board, host, port)
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e} (pick another with --port)", EXIT["error"])
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"dashboard of the {history.label}: open http://{shown}:{server.server_address[1]}/ (Ctrl-C stops)")
    for why in board.meta["errors"]:
        typer.secho(f"note: {why} (the page shows it too, and retries)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
        server.server_close()
