"""``fedchain network up``: a whole local network in one command, each part its own process.

It runs what the README's step-by-step section runs by hand (``chain up``, ``deploy``,
``data split``, ``node run`` per node, ``task create``), each as a separate ``fedchain``
process with its log in ``DIR/logs``, then follows the task from the chain and prints each
round as it is decided. Ctrl-C (or SIGTERM) stops every process it started, by PID.

Dev accounts (anvil's public mnemonic): 0 deploys, 1 sponsors, then the validators, the
trainers and the watcher, in that order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli.checks import SCORE_HELP

app = typer.Typer(help="A local network: chain, contracts and nodes, one process each.", no_args_is_help=True)

FEDCHAIN = [sys.executable, "-m", "fedchain"]
REPORT_WAIT = 30.0  # seconds a finalized round waits for the sponsor's evaluation before it is printed anyway


class Processes:
    """The processes this command started: each in its own session (a Ctrl-C in the terminal
    reaches only ``network up``, which stops them in order), its output in ``logs/NAME.log``."""

    def __init__(self, root: Path):
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [*FEDCHAIN, *args],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        (self.root / "pids.txt").write_text("".join(f"{n} {p.pid}\n" for n, p in self.procs.items()))
        return proc

    def run(self, name: str, *args: str) -> None:
        """Start and wait for a setup step; its log's tail if it fails."""
        if self.start(name, *args).wait() != 0:
            raise NetworkError(f"`fedchain {' '.join(args)}` failed:\n{self.tail(name)}")

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() not in (None, 0)]

    def tail(self, name: str, lines: int = 8) -> str:
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the nodes, then to the chain (it saves its state on SIGTERM); SIGKILL
        to whatever is still running ten seconds after."""
        nodes = [p for n, p in self.procs.items() if n != "chain"]
        chain = [p for n, p in self.procs.items() if n == "chain"]
        for group in (nodes, chain):
            for p in group:
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10.0
            for p in group:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()


class NetworkError(Exception):
    pass


@app.command()
def up(
    trainers: Annotated[int, typer.Option(help="Trainers, each with its own part of the data.")] = 3,
    validators: Annotated[int, typer.Option(help="Validators.")] = 2,
    watcher: Annotated[bool, typer.Option(help="Also run a watcher (recomputes every round, challenges).")] = False,
    rounds: Annotated[int, typer.Option(help="Rounds of the task.")] = 3,
    dataset: Annotated[str, typer.Option(help="digits | mnist | mnist1d.")] = "digits",
    model: Annotated[
        str,
        typer.Option(help="logreg | mlp | cnn, or an entry point package.module:factory (every node is given it)."),
    ] = "mlp",
    partition: Annotated[str, typer.Option(help="iid | dirichlet | pathological.")] = "iid",
    rule: Annotated[str, typer.Option(help="Aggregation rule.")] = "fedavg",
    score: Annotated[str | None, typer.Option(help=SCORE_HELP, show_default=False)] = None,
    epochs: Annotated[int, typer.Option(help="Local epochs per round.")] = 2,
    lr: Annotated[float, typer.Option(help="Local SGD learning rate.")] = 0.1,
    folder: Annotated[
        Path, typer.Option("--dir", help="Folder for the deployment, data, logs/ and every node's home.")
    ] = Path("network"),
    port: Annotated[int, typer.Option(help="The chain's JSON-RPC port (0: a free one).")] = 0,
    block_time: Annotated[float, typer.Option(help="Seconds per block.")] = 0.5,
    phase_blocks: Annotated[int, typer.Option(help="Blocks for each of commit, reveal and validate.")] = 8,
    secagg: Annotated[
        bool,
        typer.Option(
            help="Secure aggregation: trainers mask their updates, validators unmask only the sum (FedAvg only; "
            "the commit phase is three times --phase-blocks: advertise, share, mask)."
        ),
    ] = False,
    exit_when_done: Annotated[
        bool, typer.Option(help="Stop everything when the task finishes (default: stay up until Ctrl-C).")
    ] = False,
) -> None:
    """Start a local network and run one task on it, every part its own process.

    The chain (anvil), the contracts, the data split, each validator, trainer and
    watcher, and the sponsor, which holds out the test split and evaluates each
    round's model. Prints every round as it is decided, with its accuracy. Logs,
    the deployment file and each node's folder are in --dir. Ctrl-C stops every
    process this command started.
    """
    from fedchain.chain.anvil import free_port
    from fedchain.cli import checks
    from fedchain.learning.aggregate import registry
    from fedchain.learning.models import is_entry_point

    checks.dataset(dataset)
    checks.model(model)
    checks.model_fits(model, dataset)
    score = checks.score(score, model, secagg=secagg)
    checks.model_scores(model, rule, score)
    checks.partition(partition)
    for flag, value, low in (
        ("--validators", validators, 1),
        ("--rounds", rounds, 1),
        ("--epochs", epochs, 1),
        ("--lr", lr, 0),
        ("--phase-blocks", phase_blocks, 2),
        ("--block-time", block_time, 0.1),
    ):
        checks.at_least(flag, value, low)
    checks.trainers_fit(dataset, trainers, partition, 0, 0.5)
    if secagg and not registry.get(rule).masked_sum:
        raise typer.BadParameter(
            "secure aggregation sums the updates unseen: only --rule fedavg", param_hint="--secagg"
        )
    checks.new_folder(folder, "--dir")
    if (folder / "deployment.json").exists():
        raise typer.BadParameter(f"{folder} holds an earlier network: choose another folder", param_hint="--dir")
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    accounts = 2 + validators + trainers + int(watcher)
    procs = Processes(folder.resolve())
    byo: tuple[str, ...] = ()
    if is_entry_point(model):  # every node builds it, imported from here (the processes run in --dir)
        byo = ("--model", model)
        procs.env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        typer.echo(f"starting a chain at {url} ({block_time:g} s blocks) ...")
        procs.start("chain", "chain", "up", "--port", str(port), "--block-time", str(block_time),
                    "--state", "chain-state.json", "--accounts", str(accounts))  # fmt: skip
        _wait_for_chain(url, procs, stop)
        procs.run("deploy", "deploy", "--rpc", url, "--dev-account", "0", "--dev-accounts", str(accounts),
                  "--min-challenge-blocks", "1")  # fmt: skip
        procs.run("data", "data", "split", "--dataset", dataset, "--trainers", str(trainers),
                  "--partition", partition, "--out", "data")  # fmt: skip
        dev = 2
        names = []
        for j in range(validators):
            names.append(_node(procs, f"validator-{j}", dev, "validator", *byo))
            dev += 1
        for i in range(trainers):
            names.append(_node(procs, f"trainer-{i}", dev, "trainer", "--data", f"data/trainer-{i}.npz", *byo))
            dev += 1
        if watcher:
            names.append(_node(procs, "watcher", dev, "watcher", *byo))
        typer.echo(f"started {', '.join(names)}")
        blocks = str(phase_blocks)
        commit = str(3 * phase_blocks if secagg else phase_blocks)
        procs.start("sponsor", "task", "create", "--dev-account", "1", "--home", "sponsor",
                    "--rounds", str(rounds), "--dataset", dataset, "--model", model, "--rule", rule,
                    "--epochs", str(epochs), "--lr", str(lr),
                    "--test", "data/test.npz", "--pool", "300",
                    "--trainers-per-round", str(trainers), "--validators-per-round", str(validators),
                    "--wait-for-trainers", str(trainers), "--wait-for-validators", str(validators),
                    "--commit-blocks", commit, "--reveal-blocks", blocks, "--validate-blocks", blocks,
                    "--challenge-blocks", "1", "--score", score, *(["--secagg"] if secagg else []))  # fmt: skip
        typer.echo("sponsor: creates the task once every node is staked")
        finished = _follow(folder / "deployment.json", procs, rounds, stop)
        if finished and not exit_when_done:
            typer.echo("the nodes keep serving their blobs: Ctrl-C stops the network")
            stop.wait()
    except NetworkError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    finally:
        typer.echo(f"stopping {len(procs.procs)} processes ...")
        procs.stop()
        typer.echo(
            f"stopped. In {folder}: logs/ (one per process), deployment.json, chain-state.json "
            f"(`fedchain chain up --state {folder / 'chain-state.json'}` resumes the chain), sponsor/history.json"
        )


def _node(procs: Processes, name: str, dev: int, role: str, *extra: str) -> str:
    procs.start(name, "node", "run", "--role", role, "--dev-account", str(dev), "--home", f"nodes/{name}",
                "--name", name, *extra)  # fmt: skip
    return name


def _wait_for_chain(url: str, procs: Processes, stop: threading.Event) -> None:
    from fedchain.chain.rpc import RpcChain
    from fedchain.errors import ChainUnavailable

    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        if procs.dead():
            raise NetworkError(f"the chain did not start:\n{procs.tail('chain')}")
        try:
            RpcChain(url)
            return
        except ChainUnavailable:
            stop.wait(0.3)
    if not stop.is_set():
        raise NetworkError(f"the chain at {url} did not answer in 60 s:\n{procs.tail('chain')}")


def _follow(deployment: Path, procs: Processes, rounds: int, stop: threading.Event) -> bool:
    """Print each round once decided (with the sponsor's accuracy); True once the task finished."""
    from fedchain.cli._common import connect
    from fedchain.cli.status import collect
    from fedchain.errors import ChainUnavailable

    _, dep, _ = connect(deployment, None)
    said: set[int] = set()
    seen: dict[int, float] = {}  # decided round -> when first seen (the sponsor's report follows)
    while not stop.is_set():
        if procs.dead():
            name = procs.dead()[0]
            raise NetworkError(f"{name} exited:\n{procs.tail(name)}")
        try:
            status = collect(dep, None)
        except ChainUnavailable:
            stop.wait(1.0)
            continue
        for r in status["rounds"]:
            if r["round"] in said or r["status"] not in ("finalized", "failed"):
                continue
            first = seen.setdefault(r["round"], time.monotonic())
            if r["status"] == "failed" or r.get("accuracy") is not None or time.monotonic() - first > REPORT_WAIT:
                said.add(r["round"])
                typer.echo(_round_line(r, rounds))
        task = status["task"]
        if task is not None and task["finished"] and len(said) >= len(status["rounds"]):
            typer.echo(f"task {task['id']} finished")
            return True
        stop.wait(1.0)
    return False


def _round_line(r: dict, rounds: int) -> str:
    line = f"round {r['round'] + 1} of {rounds}: {r['status']}"
    if r["status"] == "failed":
        return f"{line} ({r.get('reason', '?')})"
    if r.get("accuracy") is None:
        return f"{line} (no evaluation from the sponsor yet: see logs/sponsor.log)"
    return f"{line}, accuracy {r['accuracy']:.3f}, loss {r['loss']:.3f}, {r.get('rejected', 0)} updates rejected"
