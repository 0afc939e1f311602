"""The main job: a decentralized federated-learning run on the embedded chain,
next to the two baselines it must be judged against, trained in the same run:

- centralized: the same model trained on all training data, its learning rate and
  epochs (at most as many as a trainer runs in total, rounds x local epochs) chosen
  on a validation split of the training data (``fedchain.learning.baseline``);
- plain FedAvg: the same partitions, the task's local training settings and seeds,
  float averaging in memory, no chain, no blobs, no validators.

Writes ``report.json``, ``accuracy.png`` and ``chain/`` (the event log ``fedchain audit``
replays) to the output folder; blobs go to ``blobs/`` as the nodes write them. A run
stopped early (``stop``: Ctrl-C in ``fedchain simulate``) writes the same for the rounds
it finished, its report marked ``"interrupted": true``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from fedchain.flower import federated_accuracy
from fedchain.learning.aggregate.fedavg import fedavg_float
from fedchain.learning.baseline import centralized_baseline
from fedchain.learning.train import evaluate, flatten, train_local, unflatten
from fedchain.protocol import budget
from fedchain.protocol.audit import save_chain
from fedchain.protocol.recipe import param_names
from fedchain.sim.network import (
    Network,
    RoundOutcome,
    SimConfig,
    Stop,
    Stopped,
    build_network,
    play_round,
    settle,
)


def model_accuracy(net: Network) -> float:
    """The current global model's test accuracy; with Flower clients, their own evaluate on their
    own partitions, weighted by example count (``fedchain.flower.federated_accuracy``)."""
    node = net.validators[0]
    model = node.current_model(net.task_id)
    r = net.recipe
    if net.flower_clients:
        return federated_accuracy(net.flower_clients, [model.params[k] for k in param_names(len(r.param_shapes))])
    return evaluate(r.build(), model.params, net.data.x_test, net.data.y_test)


def plain_fedavg(net: Network, rounds: int | None = None, stop: Stop = None) -> tuple[float, list[float]]:
    """FedAvg with no chain on the same partitions and seeds: (accuracy, seconds of each round).

    Only honest trainers take part: the baseline is what the network would
    learn if nobody misbehaved. Raises ``Stopped`` between two rounds once ``stop()`` is True.
    """
    rounds = net.cfg.rounds if rounds is None else rounds
    stepper = PlainFedAvg(net)
    seconds = []
    for _ in range(rounds):
        if stop is not None and stop():
            raise Stopped(None, "baselines", net.chain.block_number())
        seconds.append(stepper.round())
    return stepper.accuracy(), seconds


class PlainFedAvg:
    """Plain FedAvg one round at a time (so a benchmark can interleave it with chain rounds)."""

    def __init__(self, net: Network):
        r = net.recipe
        self.net, self.model, self.tc = net, r.build(), r.train_config()
        self.params, self.rnd = net.initial_params, 0
        self.honest = [t for t in net.trainers if type(t).__name__ == "Trainer"]

    def round(self) -> float:
        """Train and average one round; return its seconds."""
        start = time.perf_counter()
        flat = flatten(self.params)
        updates = [
            flatten(train_local(self.model, self.params, t.x, t.y, self.tc, seed=t.train_seed(self.rnd))) - flat
            for t in self.honest
        ]
        avg = fedavg_float(flat, updates, [len(t.y) for t in self.honest]).astype(np.float32)
        self.params, self.rnd = unflatten(avg, self.params), self.rnd + 1
        return time.perf_counter() - start

    def accuracy(self) -> float:
        d = self.net.data
        return evaluate(self.model, self.params, d.x_test, d.y_test)


def plain_fedavg_settings(net: Network) -> dict:
    """What plain FedAvg trains with: the task's own recipe, untuned (it is the same
    protocol without the chain, so any other setting would not measure the chain)."""
    tc = net.recipe.train_config()
    return {
        "chosen": "the task's settings",
        "rounds": net.cfg.rounds,
        "local_epochs": tc.epochs,
        "lr": tc.lr,
        "momentum": tc.momentum,
        "batch_size": tc.batch_size,
    }


def centralized(net: Network, stop: Stop = None) -> dict:
    """The centralized baseline's report fields: its test accuracy, the lr and epochs
    chosen on a validation split of the training data, and the trials that chose them.
    Raises ``Stopped`` between two epochs once ``stop()`` is True."""
    cfg, r, d = net.cfg, net.recipe, net.data

    def between_epochs() -> None:
        if stop is not None and stop():
            raise Stopped(None, "baselines", net.chain.block_number())

    model = r.build()
    c = centralized_baseline(
        model,
        net.initial_params,
        d.x_train,
        d.y_train,
        r.train_config(),
        seed=cfg.seed,
        max_epochs=cfg.rounds * r.epochs,
        between_epochs=between_epochs,
    )
    return {
        "centralized_accuracy": evaluate(model, c.params, d.x_test, d.y_test),
        "centralized_lr": c.lr,
        "centralized_epochs": c.epochs,
        "centralized_selection": {
            "how": f"best validation accuracy on a stratified {c.validation_fraction:.0%} split of the "
            f"training data, early stopping with patience {c.patience}, at most {c.max_epochs} epochs; "
            "then retrained on all the training data",
            "validation_fraction": c.validation_fraction,
            "lr_grid": [t.lr for t in c.trials],
            "max_epochs": c.max_epochs,
            "patience": c.patience,
            "trials": [asdict(t) for t in c.trials],
        },
    }


def run(
    cfg: SimConfig, on_round: Callable[[dict], None] | None = None, baselines: bool = True, stop: Stop = None
) -> dict:
    """Run the simulation; return the report (also written to ``cfg.out``).

    ``stop`` is asked between node steps: once it returns True the run stops there
    and saves what it did (the report says ``"interrupted": true``, where it stopped,
    and covers the rounds that finished)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    net = build_network(cfg)
    baselines = baselines and not net.flower_clients  # their model is the client's: benchmarks/flower compares
    initial_accuracy = model_accuracy(net)
    rounds: list[dict] = []
    stopped: Stopped | None = None
    try:
        for _ in range(cfg.rounds):
            rounds.append(round_row(net, play_round(net, stop)))
            save_chain(net.deployment, out / "chain", net.task_id)  # so far: `fedchain dashboard --sim` follows it
            if on_round:
                on_round(rounds[-1])
    except Stopped as e:
        stopped = e
    if stopped is None:
        settle(net)  # claims and withdrawals: more steps, which a stopped run does not take
    save_chain(net.deployment, out / "chain", net.task_id)  # the event log an audit replays
    report = summary(net, cfg, initial_accuracy, rounds)
    if net.flower_clients:
        report["accuracy_source"] = "federated: every Flower client's evaluate, weighted by its examples"
    if baselines and stopped is None:
        try:
            report["plain_fedavg_accuracy"], seconds = plain_fedavg(net, stop=stop)
            report["plain_fedavg_seconds_per_round"] = float(np.median(seconds))
            report["plain_fedavg_settings"] = plain_fedavg_settings(net)
            report.update(centralized(net, stop))
        except Stopped as e:
            stopped = e
    if stopped is not None:
        report.update(
            interrupted=True,
            rounds_finished=len(rounds),
            rounds_planned=cfg.rounds,
            stopped_at={"round": stopped.round_id, "phase": stopped.phase, "block": stopped.block},
        )
    (out / "report.json").write_text(json.dumps(report, indent=2))
    plot(report, out / "accuracy.png")
    return report


def round_row(net: Network, o: RoundOutcome) -> dict:
    """One round of the report."""
    return {
        "round": o.round_id,
        "finalized": o.finalized,
        "accuracy": model_accuracy(net),
        "gas_used": o.gas_used,
        "seconds": o.seconds,
        "challenged": any(r == o.round_id and ok for w in net.watchers for _, r, ok in w.challenged),
    }


def summary(net: Network, cfg: SimConfig, initial_accuracy: float, rounds: list[dict]) -> dict:
    """The report without the baselines: the chain's side of the run."""
    fc, t = net.deployment.fedchain, net.task_id
    task = fc.call("tasks", t)
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "task_id": t,
        "chain": "embedded",
        "initial_accuracy": initial_accuracy,
        "final_accuracy": rounds[-1]["accuracy"] if rounds else initial_accuracy,
        "aggregate_root": "0x" + task["model_root"].hex(),
        "rounds_finalized": sum(r["finalized"] for r in rounds),
        # medians: the first round also pays the process's one-time imports (the first
        # optimizer step imports torch._dynamo, ~1 s) and plain FedAvg runs after it
        "seconds_per_round": float(np.median([r["seconds"] for r in rounds])) if rounds else 0.0,
        "rounds": rounds,
        "nodes": node_rows(net),
        "conservation_gap_wei": net.conservation_gap(),
    } | privacy_rows(net)


def privacy_rows(net: Network) -> dict:
    """A DP task's "privacy": each trainer's rounds and epsilon, recomputed from the chain's
    events (``fedchain.protocol.budget``, what ``fedchain privacy`` prints); {} without DP."""
    r = net.recipe
    if r.dp_spec is None:
        return {}
    names: dict[str, str] = {str(t.address): t.name for t in net.trainers}
    privacy = budget.report(r, net.deployment.fedchain.events(), net.task_id)
    for row in privacy["trainers"]:
        row["name"] = names.get(row["address"], row["address"])
    return {"privacy": privacy}


def node_rows(net: Network) -> list[dict]:
    """Rewards claimed and stake slashed per node, from the chain's events."""
    slashed: dict[str, int] = {}
    for e in net.deployment.fedchain.events():
        if e.name == "Slashed":
            slashed[e.args["node"]] = slashed.get(e.args["node"], 0) + e.args["amount"]
    return [
        {
            "name": n.name,
            "address": n.address,
            "role": n.role,
            "rewards": n.rewards,
            "slashed": slashed.get(n.address, 0),
            "gas_used": n.gas_used,
        }
        for n in net.nodes
    ]


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["round"] + 1 for r in report["rounds"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        [0, *xs],
        [report["initial_accuracy"], *[r["accuracy"] for r in report["rounds"]]],
        marker="o",
        label="fedchain (on chain)",
    )
    if "centralized_accuracy" in report:
        ax.axhline(report["centralized_accuracy"], color="gray", ls="--", label="centralized")
        ax.axhline(report["plain_fedavg_accuracy"], color="tab:orange", ls=":", label="plain FedAvg (no chain)")
    c = report["config"]
    ax.set(
        xlabel="round",
        ylabel="test accuracy",
        ylim=(0, 1),
        title=f"{c['dataset']}, {c['trainers']} trainers, {c['partition']} (alpha={c['alpha']})",
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
