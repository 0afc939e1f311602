"""`fedchain --help` and every subcommand's help read at 80 columns: no line wider, and the
command list gives each command one whole line (no sentence cut off with "...")."""

from __future__ import annotations

from typer.testing import CliRunner

from fedchain.cli import COMMANDS, app


def help_of(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    return r.output


def test_every_help_fits_80_columns():
    texts = {"fedchain": help_of()}
    for name in COMMANDS:
        texts[name] = help_of(name)
        subs = [
            line.split()[0]
            for line in texts[name].split("Commands:")[-1].splitlines()[1:]
            if "Commands:" in texts[name] and line.strip()
        ]
        for sub in subs:
            texts[f"{name} {sub}"] = help_of(name, sub)
    for which, text in texts.items():
        wide = [line for line in text.splitlines() if len(line) > 80]
        assert not wide, f"`fedchain {which} --help` has lines over 80 columns: {wide}"
        assert "╭" not in text, f"`fedchain {which} --help` draws boxes"
    listing = texts["fedchain"].split("Commands:")[1]
    assert "..." not in listing, listing
    assert all(name in listing for name in COMMANDS)
    assert len(texts) > len(COMMANDS) + 5  # the subcommands of chain, task, node, data, account, bench too
