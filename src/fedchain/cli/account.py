"""``fedchain account new|import|list``: encrypted keystore files (Web3 Secret Storage v3)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import KeystoreOpt, errors, fail, password

app = typer.Typer(
    help="Accounts in an encrypted keystore (the same v3 files geth and foundry use). Passwords come from "
    "$FEDCHAIN_PASSWORD or a hidden prompt; keys are never printed.",
    no_args_is_help=True,
)

LightOpt = Annotated[
    bool,
    typer.Option(
        "--light-kdf",
        help="Cheaper encryption (scrypt n=4096, like geth --lightkdf): faster to unlock, weaker "
        "against guessing. For test networks.",
    ),
]


def _folder(keystore: Path | None) -> Path:
    from fedchain.chain.keys import default_keystore

    return keystore or default_keystore()


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="A name to refer to the account by (--account NAME).")],
    keystore: KeystoreOpt = None,
    light_kdf: LightOpt = False,
) -> None:
    """Create a new random account, encrypted with a password."""
    from fedchain.chain.keys import new_key

    with errors():
        key = new_key(_folder(keystore), name, password("New password", confirm=True), light=light_kdf)
    typer.echo(f"created {key.name}: {key.address}")
    typer.echo(f"  file {key.path} (back it up; without the password it cannot be opened)")


@app.command("import")
def import_(
    name: Annotated[str, typer.Argument(help="A name to refer to the account by (--account NAME).")],
    key_file: Annotated[
        Path | None,
        typer.Option(help="Read the hex private key from this file instead of a hidden prompt ('-' reads stdin)."),
    ] = None,
    keystore: KeystoreOpt = None,
    light_kdf: LightOpt = False,
) -> None:
    """Import an existing private key into the keystore, encrypted with a password."""
    from fedchain.chain.keys import import_key

    if key_file is None:
        if not sys.stdin.isatty():
            fail("no key: pass --key-file FILE (or '-' for stdin), or run in a terminal to be prompted", 2)
        secret = typer.prompt("Private key (hex)", hide_input=True)
    elif str(key_file) == "-":
        secret = sys.stdin.readline()
    else:
        secret = key_file.read_text()
    with errors():
        key = import_key(_folder(keystore), name, secret, password("New password", confirm=True), light=light_kdf)
    del secret
    typer.echo(f"imported {key.name}: {key.address}")
    typer.echo(f"  file {key.path}")


@app.command("list")
def list_(keystore: KeystoreOpt = None) -> None:
    """List the keystore's accounts: name, address, file (no password needed)."""
    from fedchain.chain.keys import list_keys

    folder = _folder(keystore)
    keys = list_keys(folder)
    if not keys:
        typer.echo(f"no accounts in {folder}: create one with `fedchain account new NAME`")
        return
    width = max(len(k.name) for k in keys)
    for k in keys:
        typer.echo(f"{k.name:<{width}}  {k.address}  {k.path}")
