"""The ``fedchain`` command: one module per subcommand."""

import typer

from fedchain.cli import simulate

app = typer.Typer(
    help="fedchain: federated learning without a trusted coordinator.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("simulate")(simulate.simulate)


@app.callback()
def _root() -> None:
    """fedchain: federated learning without a trusted coordinator.

    Trainers keep their data; smart contracts and staked validators replace the
    central server. Start with `fedchain simulate`.
    """


def main() -> None:
    app()
