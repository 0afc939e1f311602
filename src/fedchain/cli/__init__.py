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
    "model": ("fedchain.cli.model", "app"),
    "bench": ("fedchain.cli.bench", "app"),
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
        return cmd


app = typer.Typer(
    cls=_LazyGroup,
    help="fedchain: federated learning without a trusted coordinator.",
    no_args_is_help=True,
    add_completion=False,
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
    app()
