"""The same Flower clients under Flower's own simulation and under ``fedchain simulate --flower-client``.

For each client of tests/flower (a NumPyClient behind a client_fn, and a Message-API
ClientApp), both sides train the same partitions (the client's own, by partition-id) from
the same initial model (the client's ``new_net``), with the same local settings and seeds
(the client seeds each fit from partition-id and server round), every node in every round,
FedAvg weighted by example count:

- Flower: ``flwr.simulation.run_simulation`` (the Ray backend, ``flwr[simulation]``), with
  Flower's own strategies: ``flwr.server.strategy.FedAvg`` for the client_fn (legacy API),
  ``flwr.serverapp.strategy.FedAvg`` for the ClientApp (Message API). Its accuracy is Flower's
  federated evaluation, fraction_evaluate=1.0, example-weighted.
- fedchain: the on-chain network (the embedded EVM, validators aggregating in fixed point,
  votes, finalize, rewards), accuracy from the same clients' evaluate, example-weighted.

The bar: final accuracies within 0.5 points. Run from the repository root:

    .venv/bin/python benchmarks/flower/run.py [--trainers 10] [--rounds 10]

Writes benchmarks/flower/results.json. Wall times include Ray's start (Flower) and the
chain's deployment (fedchain), each in its own subprocess; the machine is shared, so they
are indications, not measurements of either framework.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = {
    "numpy_client": ("tests.flower.numpy_client_app:client_fn", None),
    "message_client_app": ("tests.flower.message_client_app:app", "tests.flower.numpy_client_app:new_net"),
}


def flower_side(api: str, trainers: int, rounds: int, epochs: int, lr: float, batch_size: int) -> list[float]:
    """Run Flower's simulation in this process; the federated accuracy after each round."""
    import torch
    from flwr.app import ArrayRecord, ConfigRecord, Context
    from flwr.clientapp import ClientApp
    from flwr.common import Metrics, ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server import strategy as legacy
    from flwr.serverapp import Grid
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation
    from tests.flower import message_client_app, numpy_client_app

    torch.set_num_threads(1)  # as fedchain's simulation does
    accuracies: list[float] = []
    config = {"local-epochs": epochs, "lr": lr, "batch-size": batch_size}
    if api == "numpy_client":

        def weighted_accuracy(metrics: list[tuple[int, Metrics]]) -> Metrics:
            acc = sum(n * float(m["accuracy"]) for n, m in metrics) / sum(n for n, _ in metrics)
            accuracies.append(acc)
            return {"accuracy": acc}

        def server_fn(context: Context) -> ServerAppComponents:
            strategy = legacy.FedAvg(
                fraction_fit=1.0,
                fraction_evaluate=1.0,
                min_fit_clients=trainers,
                min_evaluate_clients=trainers,
                min_available_clients=trainers,
                initial_parameters=ndarrays_to_parameters(numpy_client_app.get_weights(numpy_client_app.new_net())),
                on_fit_config_fn=lambda server_round: {"server-round": server_round, **config},
                evaluate_metrics_aggregation_fn=weighted_accuracy,
            )
            return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

        server_app = ServerApp(server_fn=server_fn)
        client_app = ClientApp(client_fn=numpy_client_app.client_fn)
    else:
        server_app = ServerApp()

        @server_app.main()
        def main(grid: Grid, context: Context) -> None:
            strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_available_nodes=trainers)
            result = strategy.start(
                grid=grid,
                initial_arrays=ArrayRecord(numpy_client_app.new_net().state_dict()),
                train_config=ConfigRecord(config),
                num_rounds=rounds,
            )
            accuracies.extend(float(result.evaluate_metrics_clientapp[r]["eval_acc"]) for r in range(1, rounds + 1))

        client_app = message_client_app.app
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=trainers,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    if len(accuracies) != rounds:
        raise RuntimeError(f"Flower's simulation reported {len(accuracies)} evaluations, not {rounds}")
    return accuracies


def fedchain_side(api: str, trainers: int, rounds: int, epochs: int, lr: float, batch_size: int) -> dict:
    spec, initial = CLIENTS[api]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [
            str(ROOT / ".venv" / "bin" / "fedchain"),
            "simulate",
            "--flower-client",
            spec,
            *(["--flower-initial", initial] if initial else []),
            *("--trainers", str(trainers), "--validators", "4", "--rounds", str(rounds)),
            *("--epochs", str(epochs), "--lr", str(lr), "--batch-size", str(batch_size), "--out", str(out)),
        ]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        report = json.loads((out / "report.json").read_text())
    return {
        "accuracy_per_round": [r["accuracy"] for r in report["rounds"]],
        "final_accuracy": report["final_accuracy"],
        "rounds_finalized": report["rounds_finalized"],
        "seconds_per_round_median": report["seconds_per_round"],
        "conservation_gap_wei": report["conservation_gap_wei"],
    }


def timed_subprocess(args: list[str]) -> tuple[dict, float]:
    """Run one side in a fresh process (Ray and the chain each start from nothing); its JSON and wall time."""
    start = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, *args], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1]), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainers", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--side", choices=["flower", "fedchain"], help=argparse.SUPPRESS)  # one side, as a subprocess
    ap.add_argument("--api", choices=list(CLIENTS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    settings = (a.trainers, a.rounds, a.epochs, a.lr, a.batch_size)
    if a.side == "flower":
        print(json.dumps({"accuracy_per_round": flower_side(a.api, *settings)}))
        return
    if a.side == "fedchain":
        print(json.dumps(fedchain_side(a.api, *settings)))
        return

    common = ["--trainers", str(a.trainers), "--rounds", str(a.rounds), "--epochs", str(a.epochs)]
    common += ["--lr", str(a.lr), "--batch-size", str(a.batch_size)]
    results: dict = {
        "settings": {"trainers": a.trainers, "rounds": a.rounds, "local_epochs": a.epochs, "lr": a.lr},
        "bar_points": 0.5,
        "flower": "flwr 1.42.0, flwr.simulation.run_simulation, Ray backend, 1 CPU per client",
        "load_average": os.getloadavg(),
        "clients": {},
    }
    for api in CLIENTS:
        flwr_side, flwr_s = timed_subprocess([*common, "--side", "flower", "--api", api])
        chain_side, chain_s = timed_subprocess([*common, "--side", "fedchain", "--api", api])
        f, c = flwr_side["accuracy_per_round"][-1], chain_side["final_accuracy"]
        row = {
            "client": CLIENTS[api][0],
            "flower_final_accuracy": f,
            "fedchain_final_accuracy": c,
            "difference_points": round(100 * (c - f), 4) + 0.0,  # + 0.0: no "-0.0"
            "largest_round_difference_points": max(
                round(abs(100 * (x - y)), 4)
                for x, y in zip(chain_side["accuracy_per_round"], flwr_side["accuracy_per_round"])
            ),
            "within_bar": abs(100 * (c - f)) <= 0.5,
            "flower_accuracy_per_round": flwr_side["accuracy_per_round"],
            "fedchain": chain_side,
            "flower_wall_seconds": round(flwr_s, 1),
            "fedchain_wall_seconds": round(chain_s, 1),
        }
        results["clients"][api] = row
        print(
            f"{api}: Flower {f:.4f} ({flwr_s:.0f} s), fedchain {c:.4f} ({chain_s:.0f} s), "
            f"difference {row['difference_points']:+.2f} points"
        )
    (Path(__file__).parent / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    main()
