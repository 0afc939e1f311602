"""``fedchain task create``: the sponsor's command."""

from __future__ import annotations

import logging
import signal
import threading
import time
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
    PeerOpt,
    PeersFileOpt,
    PublicUrlOpt,
    RpcOpt,
    connect,
    errors,
    fmt_tokens,
    open_store,
    parse_rule_params,
    parse_tokens,
    resolve_account,
    setup_logging,
)

app = typer.Typer(help="Tasks: what the network trains, for how long, for what reward.", no_args_is_help=True)


@app.command()
def create(
    rounds: Annotated[int, typer.Option(help="Training rounds.")] = 3,
    pool: Annotated[str, typer.Option(help="Reward pool in tokens, escrowed now, paid out round by round.")] = "1000",
    model: Annotated[str, typer.Option(help="logreg | mlp | cnn.")] = "mlp",
    dataset: Annotated[
        str,
        typer.Option(
            help="digits | mnist | mnist1d: fixes the input shape and classes "
            "(trainers bring their own data of that kind)."
        ),
    ] = "digits",
    rule: Annotated[str, typer.Option(help="Aggregation rule validators apply.")] = "fedavg",
    rule_params: Annotated[
        str,
        typer.Option(
            help="The rule's parameters as a JSON object, e.g. '{\"num_malicious_nodes\": 1}' "
            "(see fedchain.learning.aggregate)."
        ),
    ] = "{}",
    epochs: Annotated[int, typer.Option(help="Local epochs per round.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Local batch size.")] = 32,
    lr: Annotated[float, typer.Option(help="Local SGD learning rate.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the initial model's weights.")] = 0,
    trainers_per_round: Annotated[int, typer.Option(help="Expected trainers selected per round (sortition).")] = 5,
    validators_per_round: Annotated[int, typer.Option(help="Expected validator committee size.")] = 3,
    min_reveals: Annotated[int, typer.Option(help="Fewest revealed updates for a round to go on.")] = 1,
    commit_blocks: Annotated[int, typer.Option(help="Blocks to train and commit.")] = 10,
    reveal_blocks: Annotated[int, typer.Option(help="Blocks to reveal.")] = 10,
    validate_blocks: Annotated[int, typer.Option(help="Blocks for validators to check, aggregate and vote.")] = 10,
    challenge_blocks: Annotated[int, typer.Option(help="Blocks of challenge window before finalizing.")] = 5,
    fee_bps: Annotated[int, typer.Option(help="Validators' share of each round's budget, in basis points.")] = 1000,
    wait_for_trainers: Annotated[
        int,
        typer.Option(
            help="Create the task only once this many trainers are staked (stake counts from the next round "
            "opened, so nodes that stake later miss round 0)."
        ),
    ] = 0,
    wait_for_validators: Annotated[int, typer.Option(help="Likewise for validators.")] = 0,
    home: Annotated[
        Path, typer.Option(help="Sponsor's folder: blobs/ (recipe, initial and final model), sponsor.log.")
    ] = Path("sponsor"),
    wait: Annotated[
        bool,
        typer.Option(
            help="Stay up: serve the initial model, log each round, and when the task finishes fetch the final "
            "model and reclaim what is left of the pool."
        ),
    ] = True,
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
) -> None:
    """Create and fund a task, then serve its initial model until it finishes.

    Publishes the recipe (inside the initial model's metadata, checked against
    the recipe hash on chain) and the initial model, escrows the pool and opens
    round 0. Nodes must be staked before a round opens to be selected in it:
    start them first (`fedchain node run`). Prints the task id.
    """
    from fedchain.cli import checks
    from fedchain.learning.data import load_dataset
    from fedchain.learning.models import build_model
    from fedchain.learning.train import get_params
    from fedchain.protocol.endpoints import announce as announce_endpoint
    from fedchain.protocol.recipe import Recipe
    from fedchain.protocol.sponsor import create_task

    checks.dataset(dataset)
    checks.model(model)
    for flag, value, low in (
        ("--rounds", rounds, 1),
        ("--epochs", epochs, 1),
        ("--batch-size", batch_size, 1),
        ("--lr", lr, 0),
        ("--trainers-per-round", trainers_per_round, 1),
        ("--validators-per-round", validators_per_round, 1),
        ("--min-reveals", min_reveals, 1),
    ):
        checks.at_least(flag, value, low)
    params = parse_rule_params(rule, rule_params)
    wei = parse_tokens(pool, "--pool")
    checks.url(rpc, "--rpc")
    setup_logging(home / "sponsor.log")
    log = logging.getLogger("fedchain.sponsor")
    with errors():
        sponsor = resolve_account(account, dev_account, keystore)
        chain, dep, _ = connect(deployment, rpc)
        store, server, url = open_store(
            home, deployment, listen if wait else "off", public_url, peer, peers_file, announce and wait, log, dep
        )
        if url is not None and dep.endpoints is not None:  # before the task: trainers fetch its model from here
            announce_endpoint(dep.endpoints, sponsor, url, log)
        data = load_dataset(dataset, seed=seed)
        recipe = Recipe(
            model=model,
            dataset=dataset,
            input_shape=tuple(data.input_shape),
            num_classes=data.num_classes,
            rule=rule,
            rule_params=params,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
        )
        initial = get_params(build_model(model, tuple(data.input_shape), data.num_classes, seed=seed))
        if wait_for_trainers or wait_for_validators:
            if not wait_for_stakers(dep, wait_for_trainers, wait_for_validators, log):
                raise typer.Exit(1)
        have = dep.token.call("balanceOf", sponsor.address)
        if have < wei:
            typer.secho(
                f"error: {sponsor.address} holds {fmt_tokens(have)} tokens, the pool needs {fmt_tokens(wei)}",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(1)
        task_id = create_task(
            dep.fedchain,
            dep.token,
            sponsor,
            store,
            recipe,
            initial,
            rounds=rounds,
            pool=wei,
            trainers_per_round=trainers_per_round,
            validators_per_round=validators_per_round,
            min_reveals=min_reveals,
            commit_blocks=commit_blocks,
            reveal_blocks=reveal_blocks,
            validate_blocks=validate_blocks,
            challenge_blocks=challenge_blocks,
            validator_fee_bps=fee_bps,
        )
        log.info(
            "created task %d: %d rounds of %s on %s, pool %s tokens, recipe hash 0x%s",
            task_id,
            rounds,
            model,
            dataset,
            fmt_tokens(wei),
            recipe.hash.hex(),
        )
        typer.echo(f"task {task_id}")
        if not wait:
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            follow(dep, sponsor, store, task_id, stop, log)
        finally:
            if server is not None:
                server.stop()


def follow(dep, sponsor, store, task_id: int, stop: threading.Event, log: logging.Logger) -> None:
    """Log the task's rounds until it finishes; then keep the final model and reclaim the rest of the pool."""
    from fedchain.errors import ChainUnavailable, StorageError
    from fedchain.protocol.node import TaskLog
    from fedchain.protocol.runner import Narrator
    from fedchain.storage.cid import cid_from_digest

    fc = dep.fedchain
    tl, watcher, down = None, Narrator(log), False
    while not stop.is_set():
        try:
            tl = (tl or TaskLog(fc, task_id)).poll()
            watcher.report(tl, fc.chain.block_number())
            if down:
                log.info("chain reachable again")
                down = False
            if tl.finished:
                break
        except ChainUnavailable as e:
            if not down:
                log.warning("chain unreachable (%s): waiting", e)
                down = True
        stop.wait(0.5)
    if tl is None or not tl.finished:
        return
    final = fc.call("tasks", task_id)
    cid = cid_from_digest(final["model_cid"])
    try:
        store.get(cid)
        log.info("final model %s saved in %s", cid, store.stores[0].root)
    except StorageError as e:
        log.warning("final model %s not fetched: %s", cid, e)
    left = final["pool"]
    if left:
        fc.tx("reclaim", task_id, sender=sponsor)
        log.info("reclaimed %s tokens left in the pool", fmt_tokens(left))


def wait_for_stakers(dep, trainers: int, validators: int, log: logging.Logger) -> bool:
    """Block until enough nodes hold at least the minimum stake in each role (False if interrupted)."""
    fc = dep.fedchain
    minimum = fc.call("min_stake")
    said = None
    try:
        while True:
            nodes = {e.args["node"] for e in fc.events(dep.block) if e.name == "Staked"}
            have = {1: 0, 2: 0}
            for n in nodes:
                s = fc.call("stakes", n)
                if s["active"] >= minimum and s["role"] in have:
                    have[s["role"]] += 1
            if have[1] >= trainers and have[2] >= validators:
                log.info("%d trainers and %d validators are staked", have[1], have[2])
                return True
            if said != have:
                log.info(
                    "waiting for stakers before creating the task: %d of %d trainers, %d of %d validators",
                    have[1],
                    trainers,
                    have[2],
                    validators,
                )
                said = have
            time.sleep(1.0)
    except KeyboardInterrupt:
        return False
