"""The ``fedchain`` command: one module per subcommand, imported only when it runs
(so ``fedchain status`` does not pay for torch)."""

import importlib

import typer
from typer import _click as click  # typer vendors click: its Context and Command, not the click package's
from typer.core import TyperGroup

# name -> (module, attribute): a typer.Typer (a command group) or a command function.
COMMANDS = {
    "simulate": ("fedchain.cli.simulate", "simulate"),
    "chain": ("fedchain.cli.chain", "app"),
    "deploy": ("fedchain.cli.deploy", "deploy"),
    "fund": ("fedchain.cli.fund", "fund"),
    "unstake": ("fedchain.cli.stake", "unstake"),
    "withdraw": ("fedchain.cli.stake", "withdraw"),
    "account": ("fedchain.cli.account", "app"),
    "data": ("fedchain.cli.data", "app"),
    "task": ("fedchain.cli.task", "app"),
    "node": ("fedchain.cli.node", "app"),
    "status": ("fedchain.cli.status", "status"),
    "audit": ("fedchain.cli.audit", "audit"),
    "privacy": ("fedchain.cli.privacy", "privacy"),
    "model": ("fedchain.cli.model", "app"),
    "dashboard": ("fedchain.cli.dashboard", "dashboard"),
    "network": ("fedchain.cli.network", "app"),
    "bench": ("fedchain.cli.bench", "app"),
}

# One line each in `fedchain --help`, which has 66 columns for it at a width of 80.
SHORT = {
    "simulate": "Run a whole network in one process, on an embedded chain.",
    "chain": "A local EVM chain for development (anvil).",
    "deploy": "Deploy the fedchain contracts and a test token.",
    "fund": "Mint test tokens and send gas money (the deployer).",
    "unstake": "Move stake into the unbonding queue.",
    "withdraw": "Take out unbonded stake and credited payouts.",
    "account": "Accounts in an encrypted keystore (geth/foundry v3 files).",
    "data": "Split a dataset into one .npz per trainer.",
    "task": "Create a task: what the network trains, for what reward.",
    "node": "Run a trainer, a validator or a watcher.",
    "status": "A task's rounds and every node's stake, rewards, slashes.",
    "audit": "Verify a task's whole history from the chain and the blobs.",
    "privacy": "Each trainer's epsilon in a DP task, from the chain.",
    "model": "Take a task's model: a safetensors file, or its accuracy.",
    "dashboard": "A web page showing tasks live, from the chain and blobs alone.",
    "network": "A whole local network in one command, one process a node.",
    "bench": "Benchmarks (results under benchmarks/).",
}


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        obj = getattr(importlib.import_module(module), attr)
        cmd: click.Command
        if isinstance(obj, typer.Typer):
            cmd = typer.main.get_group(obj)  # a group even when it has one command (`chain up`)
        else:
            single = typer.Typer(add_completion=False)
            single.command(name)(obj)
            cmd = typer.main.get_command(single)
        cmd.name = name
        cmd.short_help = SHORT.get(name)
        return _plain(cmd)


def _plain(cmd: click.Command) -> click.Command:
    """Click's plain help and errors instead of rich's boxes: at 80 columns rich gives the
    option names a third of the width and wraps every help text into a narrow column."""
    cmd.rich_markup_mode = None  # type: ignore[attr-defined]
    for sub in getattr(cmd, "commands", {}).values():
        _plain(sub)
    return cmd


app = typer.Typer(
    cls=_LazyGroup,
    help="fedchain: federated learning without a trusted coordinator.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """fedchain: federated learning without a trusted coordinator.

    Trainers keep their data; smart contracts and staked validators replace the
    central server. Try `fedchain simulate` (one process, embedded chain), or run
    a real network: `fedchain chain up`, `fedchain deploy`, `fedchain task create`,
    `fedchain node run`, `fedchain status` (see the README).
    """


def main() -> None:
    """The ``fedchain`` command. Errors a command expects are one line already; anything
    else is a bug, said in one line too (``FEDCHAIN_DEBUG=1`` shows its traceback)."""
    import os
    import sys

    try:
        app()
    except Exception as e:
        if os.environ.get("FEDCHAIN_DEBUG"):
            raise
        print(
            f"error: unexpected {type(e).__name__}: {e} (a bug in fedchain; FEDCHAIN_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        sys.exit(1)
