"""``fedchain simulate``: a whole network in one process on the embedded chain."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedchain.cli._common import (
    BaseModelOpt,
    DpClipOpt,
    DpDeltaOpt,
    DpEpsilonOpt,
    DpNoiseOpt,
    DpOpt,
    DpSamplingRateOpt,
    DpStepsOpt,
    LoraFullOpt,
    LoraRankOpt,
    LoraTargetsOpt,
    dp_recipe,
    names,
    parse_rule_params,
)
from fedchain.cli.checks import SCORE_HELP
from fedchain.sim.adversaries import ADVERSARIES
from fedchain.sim.attacks import ATTACKS
from fedchain.sim.attacks.trainer import byzantine_count
from fedchain.sim.network import SimConfig as D  # the defaults live in one place

TOKEN = 10**18
INTERRUPTED = 130  # exit code after Ctrl-C: the shells' 128 + SIGINT


def _parse_adversaries(spec: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in spec:
        name, _, n = item.partition(":")
        if name not in ADVERSARIES:
            raise typer.BadParameter(
                f"unknown misbehaviour {name!r}; choose from {', '.join(ADVERSARIES)}", param_hint="--misbehave"
            )
        if n and not n.isdigit():
            raise typer.BadParameter(f"{item!r}: COUNT must be a whole number", param_hint="--misbehave")
        out[name] = out.get(name, 0) + int(n or 1)
    return out


def simulate(
    trainers: Annotated[int, typer.Option(help="Trainers, each with its own data partition.")] = D.trainers,
    validators: Annotated[int, typer.Option(help="Validators: they check, aggregate and vote.")] = D.validators,
    rounds: Annotated[int, typer.Option(help="Training rounds.")] = D.rounds,
    dataset: Annotated[str, typer.Option(help="digits | mnist | mnist1d (no downloads).")] = D.dataset,
    partition: Annotated[str, typer.Option(help="iid | dirichlet | pathological.")] = D.partition,
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration (smaller = less IID).")] = D.alpha,
    model: Annotated[
        str,
        typer.Option(
            help="logreg | mlp | cnn, or any PyTorch model as an entry point package.module:factory "
            "(installed or in the current folder; factory(input_shape, num_classes) returns an nn.Module)."
        ),
    ] = D.model,
    epochs: Annotated[int, typer.Option(help="Local epochs per round.")] = D.epochs,
    lr: Annotated[float, typer.Option(help="Local SGD learning rate.")] = D.lr,
    momentum: Annotated[float, typer.Option(help="Local SGD momentum.")] = D.momentum,
    batch_size: Annotated[int, typer.Option(help="Local batch size.")] = D.batch_size,
    seed: Annotated[int, typer.Option(help="Seed for data split, partitions, model and training.")] = D.seed,
    out: Annotated[Path, typer.Option(help="Output folder: report.json, accuracy.png, blobs/, journals/.")] = D.out,
    misbehave: Annotated[
        list[str],
        typer.Option(help=f"Misbehaving trainers as NAME[:COUNT], repeatable; NAME in {', '.join(ADVERSARIES)}."),
    ] = [],
    attack: Annotated[
        str | None,
        typer.Option(help=f"An attack run by the last --byzantine share of the trainers: {', '.join(ATTACKS)}."),
    ] = D.attack,
    byzantine: Annotated[float, typer.Option(help="Share of the trainers that run --attack, in [0, 1].")] = 0.2,
    rule: Annotated[str, typer.Option(help="Aggregation rule of the task (fedchain.learning.aggregate).")] = D.rule,
    rule_params: Annotated[
        str,
        typer.Option(
            help='The rule\'s parameters as a JSON object, e.g. \'{"num_malicious_nodes": 6, "clip": true}\'.'
        ),
    ] = "{}",
    score: Annotated[str | None, typer.Option(help=SCORE_HELP, show_default=False)] = None,
    colluders: Annotated[
        int, typer.Option(help="Validators (the first N) that collude: they vote for a sabotaged model.")
    ] = D.colluders,
    collusion: Annotated[
        str,
        typer.Option(
            help="What the colluders corrupt: model | score (one trainer takes all) | total (inflated) | "
            "distance-sum | distance-leaf (a Krum task's distance table) | withhold-model | withhold-table "
            "(publish nothing of it: the availability game)."
        ),
    ] = D.collusion,
    watchers: Annotated[
        int,
        typer.Option(
            help="Watchers: no stake, no data; they recompute every round and challenge a wrong result on chain."
        ),
    ] = D.watchers,
    flower_client: Annotated[
        str | None,
        typer.Option(
            help="Every trainer a Flower client, unchanged: MODULE:ATTR of a client_fn(context) or a ClientApp "
            "(installed or in the current folder). It loads its own data by partition-id and brings its own "
            "model; --dataset, --partition and --model go unused. Needs fedchain[flower]."
        ),
    ] = D.flower_client,
    flower_initial: Annotated[
        str | None,
        typer.Option(
            help="With a Message-API ClientApp: MODULE:ATTR of its initial model (a torch module class, or a "
            "callable returning a module, an ArrayRecord or a list of arrays), what a ServerApp passes as "
            "initial_arrays. A client_fn's initial model is its own get_parameters."
        ),
    ] = D.flower_initial,
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
    max_epsilon: Annotated[
        float | None, typer.Option(help="With --dp: each trainer sits out a round that would take it past this.")
    ] = None,
    secagg: Annotated[
        bool,
        typer.Option(
            help="Secure aggregation: trainers mask their updates; validators unmask only the sum (FedAvg only)."
        ),
    ] = False,
    secagg_dropouts: Annotated[
        int, typer.Option(help="With --secagg: trainers (the last N) that vanish after sending their masked update.")
    ] = 0,
    secagg_quitters: Annotated[
        int, typer.Option(help="With --secagg: trainers (before the dropouts) that vanish after sharing their keys.")
    ] = 0,
    baselines: Annotated[bool, typer.Option(help="Also train centralized and plain-FedAvg baselines.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what every node does.")] = False,
) -> None:
    """Run a decentralized federated-learning network in one process.

    Every trainer and validator is a separate node talking only through an
    in-process EVM chain (the fedchain contracts) and a content-addressed blob
    store. Prints accuracy and gas per round, rewards and slashes per node,
    and compares against a centralized model and plain FedAvg (no chain).
    """
    from fedchain.cli import checks
    from fedchain.learning.aggregate import registry
    from fedchain.sim.adversaries.colluder import COLLUDERS

    checks.dataset(dataset)
    checks.model(model)
    checks.model_fits(model, dataset)
    checks.partition(partition)
    score = checks.score(score, model, flower_client is not None, lora_rank > 0, secagg)
    checks.one_of("--collusion", collusion, COLLUDERS)
    if attack is not None:
        checks.one_of("--attack", attack, ATTACKS)
        if ATTACKS[attack].public:
            raise typer.BadParameter(
                f"{attack} reads earlier rounds, which only `fedchain bench robustness` gives an attacker so far",
                param_hint="--attack",
            )
    checks.share("--byzantine", byzantine)
    for flag, value, low in (
        ("--validators", validators, 1),
        ("--rounds", rounds, 1),
        ("--epochs", epochs, 1),
        ("--batch-size", batch_size, 1),
        ("--lr", lr, 0),
        ("--watchers", watchers, 0),
        ("--colluders", colluders, 0),
    ):
        checks.at_least(flag, value, low)
    checks.new_folder(out, "--out")
    rule_params_ = parse_rule_params(rule, rule_params)
    if flower_client is None:
        checks.model_scores(model, rule, score)
    targets, full = names(lora_targets), names(lora_full)
    base = Path(base_model) if base_model is not None else None  # a file: the simulation has no peers
    checks.fine_tuning(model, dataset, base, lora_rank, targets, full, score=score, rule=rule)
    dp_fields = dp_recipe(dp, dp_epsilon, dp_noise, dp_clip, dp_delta, dp_sampling_rate, dp_steps, rounds)
    if dp_fields and (flower_client is not None or lora_rank and dp == "example"):
        raise typer.BadParameter("DP is for fedchain's own trainers: not with Flower clients, nor DP-SGD with LoRA")
    adversaries = _parse_adversaries(misbehave)
    _check_secagg(secagg, secagg_dropouts, secagg_quitters, trainers, rule, rule_params_, score, flower_client)
    if flower_client is None:
        checks.trainers_fit(dataset, trainers, partition, seed, alpha)
        if flower_initial is not None:
            raise typer.BadParameter("only with --flower-client", param_hint="--flower-initial")
    else:
        _check_flower(flower_client, flower_initial, trainers, score, adversaries, attack)

    console = Console()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    cfg = D(
        trainers=trainers,
        validators=validators,
        rounds=rounds,
        dataset=dataset,
        partition=partition,
        alpha=alpha,
        model=model,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        batch_size=batch_size,
        seed=seed,
        out=out,
        adversaries=adversaries,
        attack=attack,
        byzantine=byzantine if attack else 0.0,
        rule=rule,
        rule_params=rule_params_,
        score=score,
        colluders=colluders,
        collusion=collusion,
        watchers=watchers,
        flower_client=flower_client,
        flower_initial=flower_initial,
        base_model=base,
        lora_rank=lora_rank,
        lora_targets=targets,
        lora_full=full,
        dp=dp_fields,
        max_epsilon=max_epsilon,
        secagg=secagg,
        secagg_dropouts=secagg_dropouts,
        secagg_quitters=secagg_quitters,
    )
    console.print(
        f"[bold]fedchain simulate[/]: {trainers} trainers, {validators} validators, {rounds} rounds, "
        + (
            f"Flower client {flower_client} (its own data and model)"
            if flower_client
            else f"{dataset} ({partition}, alpha={alpha}), model {model}"
        )
        + f", {epochs} local epochs, seed {seed}"
        + (f", rule {rule} {rule_params}" if rule != D.rule else "")
        + f", {score} score"
        + (f"; attack {attack} by {byzantine_count(cfg)} trainers (omniscient)" if attack else "")
    )
    console.print(
        "Each round: selected trainers agree keys and share seeds on the board, train locally, commit a hash "
        "of their masked update, reveal it; validators unmask only the sum (exact fixed-point FedAvg), vote; "
        "2/3 of the committee's seats finalizes."
        + (
            f" {secagg_quitters} trainers quit after sharing, {secagg_dropouts} after masking."
            if secagg_quitters or secagg_dropouts
            else ""
        )
        if secagg
        else "Each round: selected trainers train locally, commit a hash, reveal it; validators check every "
        f"update, aggregate with exact fixed-point {registry.get(rule).title}, vote; "
        "2/3 of the committee's seats finalizes."
    )
    stop = threading.Event()

    def on_sigint(_signum, _frame) -> None:
        # Only a flag: the run stops at its next clean point. Printing here could re-enter a
        # rich print the signal interrupted (and repeat its line).
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts at once
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        report = _run(console, cfg, baselines, stop)
    except KeyboardInterrupt:
        console.print(f"[red]aborted[/] (second Ctrl-C): {out} may be incomplete")
        raise typer.Exit(INTERRUPTED) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    if report.get("interrupted"):
        console.print(interrupted_line(report))
        raise typer.Exit(INTERRUPTED)
    print_report(console, report)


def _check_secagg(
    on: bool, dropouts: int, quitters: int, trainers: int, rule: str, params: dict, score: str, flower: str | None
) -> None:
    """--secagg fits the run: plain FedAvg, the default score, fedchain's own trainers, and at
    most the trainers a round survives losing (a third: fedchain.learning.secagg)."""
    from fedchain.cli import checks
    from fedchain.learning.aggregate import registry

    checks.at_least("--secagg-dropouts", dropouts, 0)
    checks.at_least("--secagg-quitters", quitters, 0)
    if not on:
        if dropouts or quitters:
            raise typer.BadParameter("only with --secagg", param_hint="--secagg-dropouts/--secagg-quitters")
        return
    if not registry.get(rule).masked_sum or params or score != "cosine" or flower is not None:
        raise typer.BadParameter(
            "secure aggregation sums the updates without seeing any: only --rule fedavg without parameters, "
            "--score cosine, and fedchain's own trainers (robust rules and scores need the single updates)",
            param_hint="--secagg",
        )
    if dropouts + quitters > trainers:
        raise typer.BadParameter(f"{dropouts + quitters} faulty trainers of {trainers}", param_hint="--secagg-dropouts")


def _check_flower(
    spec: str, initial: str | None, trainers: int, score: str, adversaries: dict, attack: str | None
) -> None:
    """--flower-client loads (flwr installed, MODULE:ATTR a client_fn or a ClientApp) and fits the run."""
    from fedchain.cli import checks

    checks.at_least("--trainers", trainers, 1)
    if adversaries or attack:
        raise typer.BadParameter(
            "Flower clients are honest trainers: no --misbehave or --attack", param_hint="--flower-client"
        )
    if score != "cosine":
        raise typer.BadParameter(
            f"the {score} score runs fedchain's own models on the root set: use --score cosine",
            param_hint="--flower-client",
        )
    checks.flower_client(spec, initial)


def _run(console: Console, cfg: D, baselines: bool, stop: threading.Event) -> dict:
    """The run under a progress bar, a line per round."""
    from fedchain.sim.simulate import run

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        job = bar.add_task("round 1", total=cfg.rounds)

        def on_round(row: dict) -> None:
            state = (
                "finalized"
                if row["finalized"]
                else "reverted by a watcher's challenge"
                if row.get("challenged")
                else "failed"
            )
            bar.console.print(
                f"round {row['round'] + 1:>3}: {state}, accuracy {row['accuracy']:.3f}, "
                f"gas {row['gas_used']:,}, {row['seconds']:.2f} s"
            )
            bar.update(job, advance=1, description=f"round {row['round'] + 2}")

        return run(cfg, on_round=on_round, baselines=baselines, stop=stop.is_set)


def interrupted_line(report: dict) -> str:
    """Where an interrupted run stopped, what it saved, and how to check it."""
    at, out = report["stopped_at"], escape(report["config"]["out"])
    where = (
        f"in round {at['round'] + 1} of {report['rounds_planned']} ({at['phase']} phase, block {at['block']})"
        if at["round"] is not None
        else f"in the {at['phase']}, after the last round"
    )
    return (
        f"[yellow]interrupted[/] {where}: {report['rounds_finished']} rounds finished; the chain history, "
        f"the blobs and a partial report are in {out}; `fedchain audit --sim {out}` verifies them"
    )


def print_report(console: Console, report: dict) -> None:
    nodes = Table(title="Nodes: rewards are claimed from the finalized scores; slashes only for provable faults")
    nodes.add_column("node", no_wrap=True)
    for col in ("role", "address", "rewards (FED)", "slashed (FED)", "gas used"):
        nodes.add_column(col, justify="right" if "(" in col or col == "gas used" else "left")
    for n in report["nodes"]:
        nodes.add_row(
            n["name"],
            n["role"],
            n["address"][:10] + "…",
            f"{n['rewards'] / TOKEN:.3f}",
            f"{n['slashed'] / TOKEN:.3f}",
            f"{n['gas_used']:,}",
        )
    console.print(nodes)
    if "privacy" in report:
        p = report["privacy"]
        dp = Table(title=f"Privacy: {p['mechanism']}-level DP, each trainer's epsilon at delta {p['delta']:g}")
        for col in ("trainer", "rounds", "epsilon"):
            dp.add_column(col, justify="left" if col == "trainer" else "right")
        for t in p["trainers"]:
            dp.add_row(t["name"], str(t["rounds"]), f"{t['epsilon']:.3f}")
        console.print(dp)
    summary = Table(title="Result", show_header=False)
    summary.add_row("fedchain final accuracy", f"{report['final_accuracy']:.4f}")
    if "centralized_accuracy" in report:
        p = report["plain_fedavg_settings"]
        summary.add_row(
            "centralized baseline (same model, all data)",
            f"{report['centralized_accuracy']:.4f} (lr {report['centralized_lr']:g}, "
            f"{report['centralized_epochs']} epochs: chosen on a validation split)",
        )
        summary.add_row(
            "plain FedAvg (same partitions, no chain)",
            f"{report['plain_fedavg_accuracy']:.4f} (the task's lr {p['lr']:g}, "
            f"{p['local_epochs']} local epochs, {p['rounds']} rounds)",
        )
        ratio = report["seconds_per_round"] / report["plain_fedavg_seconds_per_round"]
        summary.add_row(
            "seconds per round (median): fedchain / plain FedAvg",
            f"{report['seconds_per_round']:.3f} / {report['plain_fedavg_seconds_per_round']:.3f} = {ratio:.2f}x",
        )
    summary.add_row("rounds finalized", f"{report['rounds_finalized']} of {len(report['rounds'])}")
    summary.add_row("final model root", report["aggregate_root"])
    summary.add_row("token conservation gap (wei)", str(report["conservation_gap_wei"]))
    out = Path(report["config"]["out"])
    summary.add_row("written", f"{out / 'report.json'}, {out / 'accuracy.png'}")
    console.print(summary)
