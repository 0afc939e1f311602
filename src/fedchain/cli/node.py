"""``fedchain node run``: a trainer or validator as a long-running process."""

from __future__ import annotations

import functools
import logging
import signal
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import (
    AccountOpt,
    AnnounceOpt,
    DeploymentOpt,
    DevAccountOpt,
    KeystoreOpt,
    ListenOpt,
    ModelsOpt,
    PeerOpt,
    PeersFileOpt,
    PublicUrlOpt,
    RpcOpt,
    connect,
    errors,
    fail,
    open_store,
    parse_tokens,
    resolve_account,
    setup_logging,
)

app = typer.Typer(help="Run a node: a trainer (your data stays here), a validator or a watcher.", no_args_is_help=True)


class Role(StrEnum):
    trainer = "trainer"
    validator = "validator"
    watcher = "watcher"


@app.command()
def run(
    role: Annotated[
        Role,
        typer.Option(
            help="trainer: trains on --data when selected; validator: checks, "
            "aggregates and votes; watcher: recomputes every round and "
            "challenges a wrong result on chain (no stake, no data; holds "
            "tokens for the challenge bond)."
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            help="Trainer's private data, by its path: an .npz with arrays x (one example per row) and y (int "
            "labels); a .csv with a header, a label column and numeric features (reshaped, row-major, to the "
            "task's input shape); or a folder of images per class (ImageFolder: DIR/<class>/<image>.png, .jpg, "
            ".bmp; class i is the i-th folder by sorted name; pixels read as value/255). Never leaves this "
            "machine (see `fedchain data split --format`)."
        ),
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="With a .csv --data: the column of labels (default: label).")
    ] = None,
    flower_client: Annotated[
        str | None,
        typer.Option(
            help="A trainer that is a Flower client, unchanged: MODULE:ATTR of a client_fn(context) or a "
            "ClientApp, the one the task's recipe names (its sponsor ran the same code). It loads its own "
            "data by --partition-id: no --data. Needs fedchain[flower]."
        ),
    ] = None,
    flower_initial: Annotated[
        str | None, typer.Option(help="With a Message-API ClientApp: MODULE:ATTR of its initial model (see simulate).")
    ] = None,
    partition_id: Annotated[int, typer.Option(help="With --flower-client: the client's partition-id.")] = 0,
    num_partitions: Annotated[int, typer.Option(help="With --flower-client: num-partitions.")] = 1,
    models: ModelsOpt = [],
    home: Annotated[
        Path | None,
        typer.Option(
            help="Node folder: blobs/, journal.jsonl (the write-ahead journal: keep it to resume after a crash), "
            "node.log (default: ~/.fedchain/nodes/<address>)."
        ),
    ] = None,
    stake: Annotated[
        str,
        typer.Option(
            help="Tokens to keep staked; staked on start if the account has less. 0: leave the stake as it is."
        ),
    ] = "200",
    task: Annotated[int | None, typer.Option(help="Follow this task; default: the newest, then each new one.")] = None,
    name: Annotated[str | None, typer.Option(help="Name in the logs (default: ROLE-<address prefix>).")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between looks at the chain.")] = 0.2,
    exit_when_done: Annotated[
        bool,
        typer.Option(help="Exit once the task is finished and rewards are withdrawn (default: keep serving blobs)."),
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Trainer's local training seed (default: from the address).")] = None,
    max_epsilon: Annotated[
        float | None,
        typer.Option(help="Trainer in a DP task: sit out any round that would take this trainer's epsilon past it."),
    ] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for training.")] = 1,
    listen: ListenOpt = "127.0.0.1:0",
    public_url: PublicUrlOpt = None,
    peer: PeerOpt = [],
    peers_file: PeersFileOpt = None,
    announce: AnnounceOpt = True,
    deployment: DeploymentOpt = Path("deployment.json"),
    rpc: RpcOpt = None,
    account: AccountOpt = None,
    dev_account: DevAccountOpt = None,
    keystore: KeystoreOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs too.")] = False,
) -> None:
    """Run a node until stopped (Ctrl-C or SIGTERM).

    On start it waits for transactions it sent before a crash, stakes if
    needed, finds the task and its recipe on chain, and resumes from its
    journal (a commitment it made is revealed, never replaced; a vote is never
    changed). Then it follows the chain and logs what it sees and what it does.
    It serves the blobs it holds (its updates, models it fetched) to its peers
    and checks every blob it fetches against its CID.
    """
    from fedchain.chain.deploy import ROLE_TRAINER, ROLE_VALIDATOR
    from fedchain.cli import checks
    from fedchain.protocol.journal import Journal
    from fedchain.protocol.runner import ROLE_WATCHER, NodeRunner
    from fedchain.protocol.trainer import Trainer
    from fedchain.protocol.validator import Validator
    from fedchain.protocol.watcher import Watcher

    entry = None
    if flower_client is not None:
        if role is not Role.trainer or data is not None:
            fail("--flower-client is a trainer's, instead of --data", 2)
        entry = checks.flower_client(flower_client, flower_initial)
        checks.at_least("--num-partitions", num_partitions, 1)
        if not 0 <= partition_id < num_partitions:
            raise typer.BadParameter(f"{partition_id} is not in [0, {num_partitions})", param_hint="--partition-id")
    elif role is Role.trainer and data is None:
        fail("a trainer needs --data PATH (.npz, .csv or ImageFolder), or --flower-client MODULE:ATTR", 2)
    for spec in models:
        checks.model(spec)  # importable here; and what lets this process build it
    checks.url(rpc, "--rpc")
    checks.url(public_url, "--public-url")
    for url in peer:
        checks.url(url, "--peer")
    stake_wei = 0 if role is Role.watcher else parse_tokens(stake, "--stake")
    if data is not None:
        # the file's own faults now, before any connection; its fit to a task (a .csv's rows and
        # images shaped as the recipe says) once the recipe is known, in fits
        read = functools.cache(functools.partial(checks.local_data, data, label_column, "--data"))
        x, y = read(None)
    elif label_column is not None:
        raise typer.BadParameter(
            "it names a column of a .csv --data, and there is no --data", param_hint="--label-column"
        )
    with errors():
        acct = resolve_account(account, dev_account, keystore)
        name = name or f"{role.value}-{acct.address[2:8].lower()}"
        home = home or Path.home() / ".fedchain" / "nodes" / acct.address
        home.mkdir(parents=True, exist_ok=True)
        setup_logging(home / "node.log", verbose)
        log = logging.getLogger(f"fedchain.{name}")
        dep = _connect_patiently(deployment, rpc, log)

        def fits(recipe) -> None:
            spec = recipe.entry_point
            if spec is not None:  # every role builds it: only one this node names, only the pinned source
                from fedchain.learning.models import ModelError

                if spec not in models:
                    fail(f"the task trains the model {spec}: install it and run with --model {spec}", 2)
                try:
                    recipe.check_model_source()
                except ModelError as e:
                    fail(str(e), 2)
            if role is not Role.trainer:
                return
            if entry is not None:
                if recipe.flower != flower_client:
                    fail(f"the task trains {recipe.model}, not the Flower client flower:{flower_client}", 2)
                if recipe.model_source:
                    from fedchain.flower import FlowerError, check_source

                    try:
                        check_source(recipe.model_source, entry)
                    except FlowerError as e:
                        fail(str(e), 2)
                return
            assert data is not None  # a trainer's --data was required above
            if recipe.flower is not None:
                fail(f"the task trains the Flower client {recipe.flower}: run it with --flower-client", 2)
            x, y = read(recipe.input_shape)
            checks.data_fits(x, y, recipe.input_shape, recipe.num_classes, "--data", data)

        # before anything is served, announced or staked (a store that serves nothing): every role
        # builds an entry-point task's model, and a trainer trains on its --data
        quiet_store = open_store(home, deployment, "off", None, peer, peers_file, False, log, dep)[0]
        _check_data_first(dep, quiet_store, task, fits, log)
        if role is Role.trainer and entry is not None:
            # the client trains with torch too: its first call's cost (~2-4 s) is paid now, not in round 0
            import numpy as np

            warm = (np.zeros((8, 1, 8, 8), np.float32), np.arange(8) % 2)
            threading.Thread(target=_warm_up, args=(*warm, threads), name="warm-up", daemon=True).start()
        elif role is Role.trainer:
            log.info("data: %d examples of shape %s from %s (kept here)", len(y), tuple(x.shape[1:]), data)
            # torch's first training call costs ~2 s: pay it now, beside startup, not in the first commit phase
            threading.Thread(target=_warm_up, args=(x, y, threads), name="warm-up", daemon=True).start()
        store, server, url = open_store(home, deployment, listen, public_url, peer, peers_file, announce, log, dep)
        journal = Journal(home / "journal.jsonl")
        common = dict(fedchain=dep.fedchain, account=acct, store=store, journal=journal)

        def make_node(recipe):
            node = _make_node(recipe)
            node.board = dep.secagg  # a secure-aggregation task's board (None in older deployment files)
            return node

        def _make_node(recipe):
            fits(recipe)
            if recipe.secagg and dep.secagg is None:
                fail("the task uses secure aggregation and this deployment file names no secagg board", 2)
            if role is Role.validator:
                return Validator(name, recipe=recipe, **common)
            if role is Role.watcher:
                if dep.challenges is None:
                    fail("this deployment has no challenge contract: a watcher cannot challenge", 2)
                return Watcher(name, recipe=recipe, challenges=dep.challenges, token=dep.token, **common)
            if entry is not None:
                return _flower_trainer(name, recipe, entry, partition_id, num_partitions, threads, common)
            s = seed if seed is not None else int(acct.address[2:10], 16)
            x, y = read(recipe.input_shape)  # as fits read it
            return Trainer(name, recipe=recipe, x=x, y=y, seed=s, max_epsilon=max_epsilon, **common)

        role_id = {Role.trainer: ROLE_TRAINER, Role.validator: ROLE_VALIDATOR, Role.watcher: ROLE_WATCHER}[role]
        runner = NodeRunner(
            dep,
            acct,
            role_id,
            store,
            make_node,
            stake=stake_wei,
            task_id=task,
            poll=poll,
            exit_when_done=exit_when_done,
            endpoint=None if role is Role.watcher else url,  # nobody needs a watcher's blobs
            log=log,
        )
        stop = threading.Event()

        def on_signal(signum, _frame):
            log.info("stopping (%s)", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        try:
            runner.run(stop)
        finally:
            if server is not None:
                server.stop()


def _flower_trainer(name, recipe, entry, partition_id: int, num_partitions: int, threads: int, common: dict):
    """A trainer whose training is the Flower client's fit, with the Context Flower would give it."""
    import torch

    from fedchain import flower
    from fedchain.protocol.flower_trainer import FlowerTrainer

    torch.set_num_threads(threads)
    config = flower.run_config(None, recipe.epochs, recipe.lr, recipe.batch_size)
    client = flower.FlowerClient(entry, partition_id, num_partitions, config)
    if entry.initial is not None:  # a Message-API app: learn its ArrayRecord keys, check its shapes
        with errors():
            shapes = tuple(a.shape for a in flower.initial_model(client, 0).values())
        if shapes != recipe.param_shapes:
            fail(f"{entry.spec}'s model is shaped {shapes}, the task's {recipe.param_shapes}", 2)
    return FlowerTrainer(name, recipe=recipe, client=client, **common)


def _connect_patiently(deployment: Path, rpc: str | None, log: logging.Logger):
    """The deployment on a chain that may still be starting (or restarting): wait for it."""
    import time

    from fedchain.errors import ChainUnavailable

    said = False
    while True:
        try:
            return connect(deployment, rpc)[1]
        except ChainUnavailable as e:
            if not said:
                log.warning("%s; waiting for the chain (Ctrl-C to give up)", e)
                said = True
            time.sleep(2.0)


def _warm_up(x, y, threads: int) -> None:
    """Pay torch's first-call cost (~2 s) now, not inside the first commit phase."""
    import torch

    from fedchain.learning.models import build_model
    from fedchain.learning.train import TrainConfig, get_params, train_local

    torch.set_num_threads(threads)
    model = build_model("logreg", tuple(x.shape[1:]), int(y.max()) + 1)
    train_local(model, get_params(model), x[:8], y[:8], TrainConfig(epochs=1, batch_size=8), seed=0)


def _check_data_first(dep, store, task: int | None, check, log: logging.Logger) -> None:
    """Check the task this node will serve (``--task``, else the newest) against it (``fits``:
    its entry-point model, a trainer's --data) before anything is staked; with no task yet,
    ``make_node`` checks it when one appears."""
    from fedchain.errors import FedchainError
    from fedchain.protocol.sponsor import task_recipe

    newest = dep.fedchain.call("next_task_id") - 1
    task_id = task if task is not None else newest
    if not 1 <= task_id <= newest:
        return
    try:
        recipe = task_recipe(dep.fedchain, store, task_id)
    except FedchainError as e:
        log.warning("task %d's recipe not fetched yet (%s): it is checked against this node once it is", task_id, e)
        return
    if recipe is not None:
        check(recipe)
