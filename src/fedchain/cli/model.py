"""``fedchain model get`` and ``fedchain model eval``: take a task's model off the network.

The model a round finalized is named on chain by its CID (the ``RoundFinalized``
event; the last one is also the task record's ``model_cid``), so anyone can take it
without an account: the events say which blob, the blob store returns bytes that
hash to that CID, and the codec parses them as named float32 tensors of the
recipe's shapes (never pickle). Histories and blobs are read as ``fedchain audit``
reads them: a live chain and HTTP peers, or a saved simulation (``--sim``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from fedchain.cli._common import ModelsOpt, RpcOpt, errors, fail

if TYPE_CHECKING:
    from fedchain.protocol.recipe import Recipe  # imports torch: only when a command runs

app = typer.Typer(
    help="A task's model: write it to a safetensors file, or evaluate it on your data.", no_args_is_help=True
)

TaskOpt = Annotated[int | None, typer.Option(help="The task (default: the saved simulation's task, else the newest).")]
RoundOpt = Annotated[
    int | None, typer.Option("--round", help="The model round R finalized (default: the newest finalized model).")
]
SimOpt = Annotated[
    Path | None,
    typer.Option(help="A finished `fedchain simulate --out` folder instead of a live network (SIM/chain, SIM/blobs)."),
]
DeploymentOpt = Annotated[
    Path | None,
    typer.Option(
        "--deployment",
        "-d",
        envvar="FEDCHAIN_DEPLOYMENT",
        help="Deployment file written by `fedchain deploy` (default: deployment.json; ignored with --sim).",
    ),
]
BlobsOpt = Annotated[
    list[Path], typer.Option("--blobs", help="Local blob folder (e.g. sponsor/blobs), repeatable; tried before peers.")
]
PeerOpt = Annotated[
    list[str], typer.Option("--peer", help="Blob server URL of a participant (repeatable); tried after --blobs.")
]
PeersFileOpt = Annotated[
    Path | None, typer.Option(help="Peers file, one URL a line (default: peers.txt next to the deployment file).")
]


@dataclass(frozen=True)
class TakenModel:
    """A task's model as the chain names it: which round (None: the initial model), its CID,
    the recipe it was trained under, its tensors, and whether the task has finished."""

    task_id: int
    round_id: int | None
    cid: str
    recipe: Recipe
    tensors: dict[str, np.ndarray]
    finished: bool

    @property
    def name(self) -> str:
        where = "initial model" if self.round_id is None else f"round {self.round_id}"
        return f"task {self.task_id}, {where}"


@app.command()
def get(
    out: Annotated[Path, typer.Option("--out", "-o", help="The safetensors file to write.")],
    task: TaskOpt = None,
    round_id: RoundOpt = None,
    sim: SimOpt = None,
    deployment: DeploymentOpt = None,
    rpc: RpcOpt = None,
    blobs: BlobsOpt = [],
    peer: PeerOpt = [],
    peers_file: PeersFileOpt = None,
    models: ModelsOpt = [],
) -> None:
    """Write a task's model (the newest finalized, or round R's) as a plain safetensors file.

    The tensors are exactly those of the model blob (checked against the CID on
    chain); the file's metadata names the task, the round, the CID and the
    recipe's model and dataset. Needs no account.
    """
    from fedchain.cli import checks
    from fedchain.storage.codec import encode_tensors

    for spec in models:
        checks.model(spec)
    with errors():
        m = take(task, round_id, sim, deployment, rpc, blobs, peer, peers_file)
    r = m.recipe
    meta = {
        "fedchain.task_id": str(m.task_id),
        "fedchain.round": "initial" if m.round_id is None else str(m.round_id),
        "fedchain.model_cid": m.cid,
        "fedchain.model": r.model,
        "fedchain.dataset": r.dataset,
        "fedchain.input_shape": ",".join(map(str, r.input_shape)),
        "fedchain.num_classes": str(r.num_classes),
    }
    data = encode_tensors(m.tensors, meta)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as e:
        fail(f"--out {out}: cannot write it ({e.strerror or e})", 1)
    _note_running(m, round_id)
    typer.echo(f"{m.name}: model {m.cid} ({r.model} on {r.dataset}) written to {out}")


@app.command("eval")
def eval_(
    data: Annotated[
        Path, typer.Option(help="An .npz with arrays x and y (what `fedchain data split` writes), e.g. data/test.npz.")
    ],
    task: TaskOpt = None,
    round_id: RoundOpt = None,
    sim: SimOpt = None,
    deployment: DeploymentOpt = None,
    rpc: RpcOpt = None,
    blobs: BlobsOpt = [],
    peer: PeerOpt = [],
    peers_file: PeersFileOpt = None,
    models: ModelsOpt = [],
) -> None:
    """Evaluate a task's model (the newest finalized, or round R's) on your data.

    Builds the recipe's architecture, loads the model's tensors into it and
    prints its accuracy and mean cross-entropy loss on the examples in --data.
    """
    from fedchain.cli import checks
    from fedchain.learning.train import evaluate_with_loss

    x, y = checks.npz(data, "--data")
    for spec in models:
        checks.model(spec)
    with errors():
        m = take(task, round_id, sim, deployment, rpc, blobs, peer, peers_file)
    r = m.recipe
    if r.flower is not None:
        fail(f"task {m.task_id} trains the Flower client {r.flower}: its own evaluate scores it (see README)", 2)
    checks.data_fits(x, y, r.input_shape, r.num_classes, "--data", data)
    net = r.build()
    correct, loss = evaluate_with_loss(net, m.tensors, x, y)
    accuracy = correct / len(y)
    _note_running(m, round_id)
    typer.echo(
        f"{m.name}: model {m.cid} on {data}: accuracy {accuracy:.4f} ({round(accuracy * len(y))} of {len(y)} "
        f"examples), loss {loss:.4f}"
    )


def take(task, round_id, sim, deployment, rpc, blobs, peer, peers_file) -> TakenModel:
    """The model the options name, its blob fetched and checked against its CID.

    The history and the blob store are ``fedchain audit``'s (``_source``, ``_store``)."""
    from fedchain.cli.audit import _newest, _source, _store
    from fedchain.errors import FedchainError
    from fedchain.learning.train import param_shapes
    from fedchain.protocol.sponsor import load_base, task_recipe
    from fedchain.storage.cid import cid_from_digest
    from fedchain.storage.codec import decode_tensors

    if sim is not None:
        deployment = None  # a saved simulation is its own history (even with $FEDCHAIN_DEPLOYMENT set)
    elif deployment is None:
        deployment = Path("deployment.json")
    source, default_task, default_blobs = _source(sim, None, rpc, deployment, None, None)
    store = _store(blobs or default_blobs, peer, peers_file, deployment)
    task_id = task if task is not None else default_task if default_task is not None else _newest(source)
    recipe = task_recipe(source, store, task_id)  # "no task N" if it does not exist
    events = _task_events(source.events(), task_id)
    picked, digest = _pick(events, task_id, round_id)
    try:
        recipe.check_model_source()  # an entry-point model is built from the source the task pins, or not at all
        template = recipe.template()
    except ValueError as e:  # a recipe naming a model this version does not have, or not named here
        raise FedchainError(f"task {task_id}: {e}") from None
    cid = cid_from_digest(digest)
    tensors = decode_tensors(store.get(cid), param_shapes(template))  # the store checks the bytes' CID
    load_base(store, recipe)  # a LoRA task's model is its base with these adapters
    finished = any(e.name == "TaskFinished" for e in events)
    return TakenModel(task_id, picked, cid, recipe, tensors, finished)


def _task_events(events: list, task_id: int) -> list:
    """The task's events from its ``TaskCreated`` on (a task id is known before the task
    exists: nothing logged under it earlier is its own; cf. ``TaskLog``)."""
    created = next(i for i, e in enumerate(events) if e.name == "TaskCreated" and e.args["task_id"] == task_id)
    return [e for e in events[created:] if e.args.get("task_id") == task_id]


def _pick(events: list, task_id: int, round_id: int | None) -> tuple[int | None, bytes]:
    """(round, model CID digest): round R's finalized model, or the newest (the initial model before any)."""
    from fedchain.chain.layout import FailReason, describe
    from fedchain.errors import FedchainError

    outcome = {e.args["round_id"]: e for e in events if e.name in ("RoundFinalized", "RoundFailed")}
    finalized = sorted(r for r, e in outcome.items() if e.name == "RoundFinalized")
    if round_id is None:
        if not finalized:
            return None, events[0].args["model_cid"]  # TaskCreated
        round_id = finalized[-1]
    rounds = events[0].args["num_rounds"]  # TaskCreated
    if not 0 <= round_id < rounds:
        raise FedchainError(f"task {task_id} has {rounds} rounds (0 to {rounds - 1}): there is no round {round_id}")
    e = outcome.get(round_id)
    if e is None:
        have = f"finalized so far: {', '.join(map(str, finalized))}" if finalized else "no round finalized yet"
        raise FedchainError(f"round {round_id} of task {task_id} is not finalized yet ({have})")
    if e.name == "RoundFailed":
        raise FedchainError(
            f"round {round_id} of task {task_id} failed ({describe(FailReason, e.args['reason'])}): "
            "it finalized no model; the task kept the one before"
        )
    return round_id, e.args["model_cid"]


def _note_running(m: TakenModel, asked: int | None) -> None:
    if asked is None and not m.finished:
        typer.secho(f"note: task {m.task_id} is still running; later rounds will finalize newer models", err=True)
