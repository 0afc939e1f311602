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
    BaseModelOpt,
    DeploymentOpt,
    DevAccountOpt,
    DpClipOpt,
    DpDeltaOpt,
    DpEpsilonOpt,
    DpNoiseOpt,
    DpOpt,
    DpSamplingRateOpt,
    DpStepsOpt,
    KeystoreOpt,
    ListenOpt,
    LoraFullOpt,
    LoraRankOpt,
    LoraTargetsOpt,
    PeerOpt,
    PeersFileOpt,
    PublicUrlOpt,
    RpcOpt,
    connect,
    dp_recipe,
    errors,
    fail,
    fmt_tokens,
    names,
    open_store,
    parse_rule_params,
    parse_tokens,
    resolve_account,
    setup_logging,
)
from fedchain.cli.checks import SCORE_HELP

# seconds the sponsor waits, after the task finished, for its last models to be evaluated and reported
EVALUATION_GRACE = 60.0

app = typer.Typer(help="Tasks: what the network trains, for how long, for what reward.", no_args_is_help=True)


@app.command()
def create(
    rounds: Annotated[int, typer.Option(help="Training rounds.")] = 3,
    pool: Annotated[str, typer.Option(help="Reward pool in tokens, escrowed now, paid out round by round.")] = "1000",
    model: Annotated[
        str,
        typer.Option(
            help="logreg | mlp | cnn, or any PyTorch model as an entry point package.module:factory that every "
            "node installs (the recipe pins the sha256 of its source; nodes run it with --model)."
        ),
    ] = "mlp",
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
    flower_client: Annotated[
        str | None,
        typer.Option(
            help="Trainers run this Flower client: MODULE:ATTR of a client_fn(context) or a ClientApp. The "
            "initial model is its own parameters (run here, as partition 0 of 1); --model and --dataset go "
            "unused. Needs fedchain[flower]."
        ),
    ] = None,
    flower_initial: Annotated[
        str | None,
        typer.Option(help="With a Message-API ClientApp: MODULE:ATTR of its initial model (see simulate)."),
    ] = None,
    base_model: BaseModelOpt = None,
    lora_rank: LoraRankOpt = 0,
    lora_targets: LoraTargetsOpt = "",
    lora_full: LoraFullOpt = "",
    dp: DpOpt = None,
    dp_epsilon: DpEpsilonOpt = None,
    dp_noise: DpNoiseOpt = None,
    dp_clip: DpClipOpt = 1.0,
    dp_delta: DpDeltaOpt = 1e-5,
    dp_sampling_rate: DpSamplingRateOpt = 0.05,
    dp_steps: DpStepsOpt = 10,
    score: Annotated[str | None, typer.Option(help=SCORE_HELP, show_default=False)] = None,
    secagg: Annotated[
        bool,
        typer.Option(
            help="Secure aggregation: trainers mask their updates and validators unmask only the sum "
            "(plain FedAvg only; the deployment needs its secagg board)."
        ),
    ] = False,
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
    test: Annotated[
        Path | None,
        typer.Option(
            "--test",
            help="Held-out test data (.npz with x and y, as `fedchain data` writes test.npz): each finalized "
            "round's model is evaluated on it and its accuracy and loss published on chain.",
        ),
    ] = None,
    home: Annotated[
        Path,
        typer.Option(help="Sponsor's folder: blobs/ (recipe, initial and final model), sponsor.log, history.json."),
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
    start them first (`fedchain node run`). Prints the task id. With --test it
    evaluates every finalized model on that data and publishes the figures on
    chain (`fedchain status` shows them); at the end it writes the task's
    History (per round accuracy, loss, updates accepted and rejected, payment).
    """
    from fedchain.cli import checks
    from fedchain.learning.data import load_dataset
    from fedchain.learning.models import build_model
    from fedchain.learning.models.source import model_source
    from fedchain.learning.train import get_params
    from fedchain.protocol.endpoints import announce as announce_endpoint
    from fedchain.protocol.evaluation import SponsorEvaluation
    from fedchain.protocol.recipe import Recipe
    from fedchain.protocol.sponsor import create_task, fine_tune

    checks.dataset(dataset)
    checks.model(model)
    checks.model_fits(model, dataset)
    entry = checks.flower_client(flower_client, flower_initial) if flower_client is not None else None
    if entry is not None and test is not None:
        fail("--test evaluates fedchain's own models: a Flower client's are evaluated by its own evaluate", 2)
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
    score = checks.score(score, model, entry is not None, lora_rank > 0, secagg)
    if entry is None:
        checks.model_scores(model, rule, score)
    targets, full = names(lora_targets), names(lora_full)
    if base_model is not None and entry is not None:
        fail("--base-model fine-tunes fedchain's own models: a Flower client brings its own", 2)
    base_file = Path(base_model) if base_model is not None and Path(base_model).exists() else None
    if base_model is None or base_file is not None:  # a CID is checked once the peers can serve it
        checks.fine_tuning(model, dataset, base_file, lora_rank, targets, full, score=score, rule=rule)
    dp_fields = dp_recipe(dp, dp_epsilon, dp_noise, dp_clip, dp_delta, dp_sampling_rate, dp_steps, rounds)
    if dp_fields and entry is not None:
        fail("--dp is for fedchain's own trainers: a Flower client trains with its own code", 2)
    wei = parse_tokens(pool, "--pool")
    checks.url(rpc, "--rpc")
    if test is not None and not wait:
        fail("--test needs the sponsor to stay up and evaluate each round: drop --no-wait", 2)
    data = load_dataset(dataset, seed=seed)
    if entry is not None:
        from fedchain import flower

        client = flower.FlowerClient(entry, 0, 1, flower.run_config(rounds, epochs, lr, batch_size))
        with errors():  # the client's own code runs here: its failure is one line, not a traceback
            initial = flower.initial_model(client, seed)
        described = flower.recipe_model(entry, initial)
    else:
        initial = get_params(build_model(model, tuple(data.input_shape), data.num_classes, seed=seed))
        described = dict(
            model=model,
            model_source=model_source(model),  # an entry point's: every node checks its own copy against it
            dataset=dataset,
            input_shape=tuple(data.input_shape),
            num_classes=data.num_classes,
        )
    try:
        recipe = Recipe(
            **described,
            rule=rule,
            rule_params=params,
            score=score,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            secagg=secagg,
            **dp_fields,
        )
    except ValueError as e:  # a combination the recipe refuses (secure aggregation with a robust rule)
        fail(str(e), 2)
    held_out = load_test_set(test, recipe) if test is not None else None
    setup_logging(home / "sponsor.log")
    log = logging.getLogger("fedchain.sponsor")
    with errors():
        sponsor = resolve_account(account, dev_account, keystore)
        chain, dep, _ = connect(deployment, rpc)
        if secagg and dep.secagg is None:
            fail("--secagg needs the deployment's secagg board: redeploy with this version (`fedchain deploy`)", 2)
        store, server, url = open_store(
            home, deployment, listen if wait else "off", public_url, peer, peers_file, announce and wait, log, dep
        )
        if base_model is not None:  # published here: every node fetches it by its CID
            recipe, initial = fine_tune(store, base_model, recipe, initial, lora_rank, targets, full, seed)
        if url is not None and dep.endpoints is not None:  # before the task: trainers fetch its model from here
            announce_endpoint(dep.endpoints, sponsor, url, log)
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
        evaluation = SponsorEvaluation(task_id, recipe, store, sponsor, dep.reports, held_out, log)
        if held_out is not None and dep.reports is None:
            log.warning("this deployment has no reports contract: accuracy and loss stay in this log and history.json")
        try:
            follow(dep, sponsor, store, task_id, stop, log, evaluation, home)
        finally:
            if server is not None:
                server.stop()


def follow(
    dep, sponsor, store, task_id: int, stop: threading.Event, log: logging.Logger, evaluation, home: Path
) -> None:
    """Log the task's rounds (evaluating each finalized model) until it finishes; then write
    the History, keep the final model and reclaim the rest of the pool."""
    from fedchain.errors import ChainUnavailable, StorageError
    from fedchain.protocol.node import TaskLog
    from fedchain.protocol.runner import Narrator
    from fedchain.storage.cid import cid_from_digest

    fc = dep.fedchain
    tl, watcher, down, finished_at = None, Narrator(log), False, None
    while not stop.is_set():
        try:
            tl = (tl or TaskLog(fc, task_id)).poll()
            watcher.report(tl, fc.chain.block_number())
            evaluation.update(tl)
            if down:
                log.info("chain reachable again")
                down = False
            if tl.finished:
                finished_at = finished_at or time.monotonic()
                if evaluation.done() or time.monotonic() - finished_at > EVALUATION_GRACE:
                    break
        except ChainUnavailable as e:
            if not down:
                log.warning("chain unreachable (%s): waiting", e)
                down = True
        stop.wait(0.5)
    if tl is None or not tl.finished:
        return
    write_history(evaluation, home, log)
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


def load_test_set(path: Path, recipe):
    """``--test``: the held-out data, checked against the task's model before anything is sent."""
    import hashlib

    from fedchain.cli import checks
    from fedchain.protocol.evaluation import HeldOut

    x, y = checks.npz(path, "--test")
    checks.data_fits(x, y, recipe.input_shape, recipe.num_classes, "--test", path)
    return HeldOut(x, y, hashlib.sha256(path.read_bytes()).hexdigest())


def write_history(evaluation, home: Path, log: logging.Logger) -> None:
    """The task's History: a table in the log, all of it in ``home/history.json``."""
    import json

    from fedchain.protocol.evaluation import history_table

    history = evaluation.history()
    for line in history_table(history):
        log.info("%s", line)
    path = home / "history.json"
    path.write_text(json.dumps(history, indent=2) + "\n")
    log.info("history written to %s", path)


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
