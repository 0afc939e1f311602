"""``fedchain chain up``: a local EVM chain (the pinned anvil) for development and tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import errors

app = typer.Typer(help="A local EVM chain for development: anvil, pinned by ./scripts/setup.sh.", no_args_is_help=True)


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port of the JSON-RPC endpoint.")] = 8545,
    host: Annotated[
        str,
        typer.Option(
            help="Interface to listen on; 0.0.0.0 lets other machines in (the dev keys are public: a LAN only)."
        ),
    ] = "127.0.0.1",
    block_time: Annotated[
        float,
        typer.Option(
            help="Seconds per block. Phases are counted in blocks, so blocks must come even when nobody "
            "transacts; 0 mines only on transactions."
        ),
    ] = 1.0,
    state: Annotated[
        Path | None,
        typer.Option(help="State file: loaded at start if it exists, saved when the chain stops (Ctrl-C or SIGTERM)."),
    ] = None,
    save_every: Annotated[
        float,
        typer.Option(help="Also save the state every N seconds (with --state), so a crash loses at most that much."),
    ] = 0.0,
    accounts: Annotated[int, typer.Option(help="Funded development accounts to create.")] = 10,
) -> None:
    """Start anvil in the foreground and print its RPC URL and dev accounts.

    The dev accounts come from anvil's public test mnemonic and each holds
    10,000 ETH for gas: use them with `--dev-account N` on a local chain only.
    Their private keys are not printed (anyone can derive them; nobody should
    paste them). Stop with Ctrl-C; with --state the chain is saved and the next
    `fedchain chain up --state FILE` continues from it, blocks and all.
    """
    from fedchain.chain.anvil import anvil_command
    from fedchain.chain.keys import dev_account

    with errors():
        args = anvil_command(port, state, block_time or None, accounts, save_every or None, host)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    loaded = state is not None and state.exists()
    typer.echo(f"anvil: JSON-RPC at http://{shown}:{port}  (chain id 31337)")
    typer.echo(f"  blocks: {f'every {block_time:g} s' if block_time else 'on each transaction'}")
    if state is not None:
        typer.echo(
            f"  state: {'loaded from' if loaded else 'new, saved to'} {state.resolve()}; saved there on exit"
            + (f" and every {save_every:g} s" if save_every else "")
        )
    typer.echo("  dev accounts (10,000 ETH each; use --dev-account N; local chains only):")
    for i in range(accounts):
        typer.echo(f"    {i}: {dev_account(i).address}")
    if loaded:
        typer.echo("Next: the contracts and tasks of that state are back; restart the nodes (Ctrl-C stops the chain)")
    else:
        typer.echo(f"Next: fedchain deploy --rpc http://{shown}:{port} --dev-account 0    (Ctrl-C stops the chain)")
    # Become anvil: one process to stop (by PID, or Ctrl-C), and anvil itself
    # saves --state when it gets SIGINT or SIGTERM.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(args[0], args)
