"""Flower clients as fedchain trainers, unchanged: a ``client_fn`` or a ``ClientApp``.

``load("MODULE:ATTR")`` imports the user's own module (installed by the user: code from the
network is never run) and wraps what it names the way Flower's simulation does: a
``client_fn(context)`` (a NumPyClient or Client, the legacy API) becomes
``ClientApp(client_fn=...)``; a ``ClientApp`` is taken as it is. Each trainer then holds a
``FlowerClient``: its own ``Context`` (node_config ``partition-id`` and ``num-partitions``,
the run config, a state that lasts the run) and three calls, each one Flower message sent to
the app, as Flower's server sends them:

- ``fit(arrays, server_round)``: a "train" message; the reply's arrays, example count, metrics.
- ``evaluate(arrays)``: an "evaluate" message; loss, example count, metrics.
- ``get_initial_parameters()``: a "get_parameters" message (legacy clients only; a
  Message-API ClientApp has no such handler, so its initial arrays come from ``initial``,
  what a Flower ServerApp passes as ``initial_arrays``).

The training settings travel under the names Flower's examples use (``CONFIG_KEYS``). The
client loads its own data by partition-id, Flower's way: fedchain gives it none. Flower's
arrays cross into fedchain as named float32 tensors ``p000``, ``p001``, ... in the client's
order (``fedchain.protocol.recipe.param_names``); a Message-API app's own ArrayRecord keys
are kept here to send its arrays back under them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedchain.errors import FedchainError
from fedchain.learning.models import source
from fedchain.learning.models.source import source_files, source_hash  # noqa: F401  (fedchain.flower's names)

# `pip install fedchain[flower]` itself cannot resolve: flwr 1.42.0 caps typer and rich below
# fedchain's pins (docs/decisions.md), so the extra is installed from its exact pins
INSTALL = "the fedchain[flower] extra: ./scripts/setup.sh, or pip install --no-deps -r requirements-flower.txt"
# recipe setting -> the config key Flower's examples read (the run config's
# [tool.flwr.app.config] and the strategy's train config use these names)
CONFIG_KEYS = {"epochs": "local-epochs", "lr": "lr", "batch_size": "batch-size"}
ROUND_KEY = "server-round"  # what Flower's Message-API strategies add to every train config
ROUNDS_KEY = "num-server-rounds"
ACCURACY_KEYS = ("accuracy", "eval_acc", "acc")  # the evaluate metric read as accuracy, first found
WEIGHT_KEY = "num-examples"  # a Message-API reply's example count (Flower's FedAvg weighs by it)


class FlowerError(FedchainError):
    """A Flower client cannot be loaded or did not answer as Flower's protocol says."""


def require_flwr() -> None:
    try:
        import flwr  # noqa: F401
    except ImportError as e:
        raise FlowerError(f"flwr is not installed; install {INSTALL}") from e


def _import(spec: str, what: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise FlowerError(f"{spec!r} is not MODULE:ATTR ({what})")
    try:
        mod = source.import_module(module)  # installed, or in the user's project folder
    except Exception as e:  # ImportError, or the module failing as it runs
        raise FlowerError(f"cannot import {module!r} ({what}): {type(e).__name__}: {e}") from e
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise FlowerError(f"module {module!r} has no attribute {attr!r} ({what})")
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class FlowerEntry:
    """A loaded ``MODULE:ATTR``: the ClientApp to send messages to, and how it was written."""

    spec: str
    app: Any  # flwr.clientapp.ClientApp
    legacy: bool  # from a client_fn (NumPyClient/Client): it answers get_parameters
    initial: Callable[[], Any] | None = None  # the Message-API app's initial arrays
    initial_spec: str | None = None  # MODULE:ATTR of ``initial``

    @property
    def specs(self) -> list[str]:
        """The entry points whose modules' source a task pins."""
        return [self.spec] + ([self.initial_spec] if self.initial_spec else [])

    @property
    def source_hash(self) -> str:
        """sha256 of the source files of the modules this entry point names (``source_hash``)."""
        return source_hash(self.specs)

    @property
    def model(self) -> str:
        """The recipe's model field: the entry point every node runs."""
        return f"flower:{self.spec}"


def load(spec: str, initial: str | None = None) -> FlowerEntry:
    """Load ``MODULE:ATTR`` (a ``client_fn(context)`` or a ``ClientApp``) and, for a
    Message-API ClientApp, ``initial`` (``MODULE:ATTR`` of a torch module class or a
    zero-argument callable returning a module, an ArrayRecord or a list of arrays)."""
    require_flwr()
    from flwr.clientapp import ClientApp

    obj = _import(spec, "a client_fn or a ClientApp")
    if isinstance(obj, ClientApp):
        # a ClientApp(client_fn=...) keeps its legacy handler in ``_call``; one built with
        # @app.train() has none (flwr 1.42, clientapp/client_app.py)
        entry = FlowerEntry(spec, obj, legacy=getattr(obj, "_call", None) is not None)
    elif callable(obj) and not inspect.isclass(obj) and len(inspect.signature(obj).parameters) == 1:
        entry = FlowerEntry(spec, ClientApp(client_fn=obj), legacy=True)
    else:
        raise FlowerError(f"{spec} is a {type(obj).__name__}: neither a client_fn(context) nor a flwr ClientApp")
    if initial is not None:
        init = _import(initial, "the initial model")
        if not callable(init):
            raise FlowerError(f"{initial} is a {type(init).__name__}, not callable")
        entry = FlowerEntry(entry.spec, entry.app, entry.legacy, init, initial)
    elif not entry.legacy:
        raise FlowerError(
            f"{spec} is a Message-API ClientApp, which cannot hand out initial parameters: name what your "
            "ServerApp passes as initial_arrays (e.g. your torch module class) with --flower-initial MODULE:ATTR"
        )
    return entry


def check_source(pinned: str, entry: FlowerEntry) -> None:
    """Refuse a task whose recipe pins other client code than the one installed here."""
    try:
        source.check_source(pinned, entry.specs)
    except source.ModelError as e:
        raise FlowerError(str(e)) from None


def run_config(rounds: int | None, epochs: int, lr: float, batch_size: int) -> dict[str, Any]:
    """The run config a Flower client reads from ``context.run_config`` (``num-server-rounds``
    left out where the rounds are not known: a node joining a task knows only its recipe)."""
    config = {CONFIG_KEYS["epochs"]: epochs, CONFIG_KEYS["lr"]: lr, CONFIG_KEYS["batch_size"]: batch_size}
    return config if rounds is None else {ROUNDS_KEY: rounds, **config}


def _as_arrays(value: Any) -> tuple[list[str] | None, list[np.ndarray]]:
    """(keys, arrays) of what an ``initial`` callable returned."""
    from flwr.app import ArrayRecord

    if hasattr(value, "state_dict"):
        value = ArrayRecord(value.state_dict())
    if isinstance(value, ArrayRecord):
        return list(value.keys()), value.to_numpy_ndarrays()
    if isinstance(value, Sequence) and all(isinstance(a, np.ndarray) for a in value):
        return None, list(value)
    raise FlowerError(f"the initial model is a {type(value).__name__}: not a module, an ArrayRecord or arrays")


@dataclass
class FlowerClient:
    """One trainer's Flower client: the app, and the Context Flower's simulation would give it."""

    entry: FlowerEntry
    partition_id: int
    num_partitions: int
    config: dict[str, Any] = field(default_factory=dict)  # run_config(...)
    keys: list[str] | None = None  # a Message-API app's ArrayRecord keys, in order
    context: Any = field(init=False)

    def __post_init__(self) -> None:
        from flwr.app import Context, RecordDict

        self.context = Context(
            run_id=0,
            node_id=self.partition_id + 1,
            node_config={"partition-id": self.partition_id, "num-partitions": self.num_partitions},
            state=RecordDict(),
            run_config=dict(self.config),
        )

    def _send(self, content: Any, message_type: str, server_round: int) -> Any:
        from flwr.app import DEFAULT_TTL, Message, Metadata
        from flwr.common.constant import SUPERLINK_NODE_ID

        # the metadata a SuperLink gives an instruction message, written out: Message's own
        # constructor reads it from the process's TaskIdentity, which only a Flower runtime sets
        metadata = Metadata(
            run_id=self.context.run_id,
            message_id=f"{message_type}-{server_round}-{self.partition_id}",
            src_node_id=SUPERLINK_NODE_ID,
            dst_node_id=self.context.node_id,
            reply_to_message_id="",
            group_id=str(server_round),
            created_at=time.time(),
            ttl=DEFAULT_TTL,
            message_type=message_type,
        )
        msg = Message(content=content, metadata=metadata)  # type: ignore[call-overload]  # flwr: "internal use"
        reply = self.entry.app(msg, self.context)
        if reply.has_error():
            raise FlowerError(
                f"{self.entry.spec} (partition {self.partition_id}) replied an error: {reply.error.reason}"
            )
        return reply.content

    def train_config(self, server_round: int) -> dict[str, Any]:
        """The config of one train message: the recipe's settings and the server round (1, 2, ...)."""
        run = self.config
        return {ROUND_KEY: server_round, **{k: run[k] for k in CONFIG_KEYS.values() if k in run}}

    def get_initial_parameters(self) -> list[np.ndarray]:
        if self.entry.initial is not None:
            keys, arrays = _as_arrays(self.entry.initial())
            self.keys = keys
            return [np.asarray(a, dtype=np.float32) for a in arrays]
        from flwr.common import GetParametersIns, parameters_to_ndarrays
        from flwr.common.constant import MessageTypeLegacy
        from flwr.compat.common import recorddict_compat as compat

        content = self._send(
            compat.getparametersins_to_recorddict(GetParametersIns(config={})), MessageTypeLegacy.GET_PARAMETERS, 0
        )
        res = compat.recorddict_to_getparametersres(content, keep_input=False)
        return [np.asarray(a, dtype=np.float32) for a in parameters_to_ndarrays(res.parameters)]

    def _records(self, arrays: list[np.ndarray], config: dict[str, Any]) -> Any:
        from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

        keys = self.keys or [str(i) for i in range(len(arrays))]
        record = ArrayRecord(array_dict={k: Array(np.asarray(a)) for k, a in zip(keys, arrays)})
        return RecordDict({"arrays": record, "config": ConfigRecord(config)})

    def fit(self, arrays: list[np.ndarray], server_round: int) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        """Train from ``arrays``: (the client's new arrays, its example count, its metrics)."""
        config = self.train_config(server_round)
        if self.entry.legacy:
            from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays
            from flwr.compat.common import recorddict_compat as compat

            ins = compat.fitins_to_recorddict(FitIns(ndarrays_to_parameters(arrays), config), keep_input=True)
            res = compat.recorddict_to_fitres(self._send(ins, "train", server_round), keep_input=False)
            return parameters_to_ndarrays(res.parameters), int(res.num_examples), dict(res.metrics)
        content = self._send(self._records(arrays, config), "train", server_round)
        if len(content.array_records) != 1 or len(content.metric_records) != 1:
            raise FlowerError(f"{self.entry.spec}: a train reply holds one ArrayRecord and one MetricRecord")
        record = next(iter(content.array_records.values()))
        metrics = dict(next(iter(content.metric_records.values())))
        if WEIGHT_KEY not in metrics:
            raise FlowerError(f"{self.entry.spec}: the train reply's MetricRecord has no {WEIGHT_KEY!r}")
        return record.to_numpy_ndarrays(), int(metrics[WEIGHT_KEY]), metrics

    def evaluate(self, arrays: list[np.ndarray]) -> tuple[float, int, dict[str, Any]]:
        """Evaluate ``arrays`` on the client's own data: (loss, example count, metrics)."""
        config: dict[str, Any] = {}
        server_round = 0
        if self.entry.legacy:
            from flwr.common import EvaluateIns, ndarrays_to_parameters
            from flwr.compat.common import recorddict_compat as compat

            ins = compat.evaluateins_to_recorddict(EvaluateIns(ndarrays_to_parameters(arrays), config), keep_input=True)
            res = compat.recorddict_to_evaluateres(self._send(ins, "evaluate", server_round))
            return float(res.loss), int(res.num_examples), dict(res.metrics)
        content = self._send(self._records(arrays, config), "evaluate", server_round)
        if len(content.metric_records) != 1:
            raise FlowerError(f"{self.entry.spec}: an evaluate reply holds one MetricRecord")
        metrics = dict(next(iter(content.metric_records.values())))
        loss = next((metrics[k] for k in ("eval_loss", "loss") if k in metrics), float("nan"))
        return float(loss), int(metrics.get(WEIGHT_KEY, 0)), metrics


def initial_model(client: FlowerClient, seed: int) -> dict[str, np.ndarray]:
    """A task's initial model: the client's own parameters (the sponsor runs the same client
    code), drawn under ``seed`` so that a client that initializes at random is reproducible,
    as named tensors ``p000``, ``p001``, ..."""
    import torch

    from fedchain.protocol.recipe import param_names

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        arrays = client.get_initial_parameters()
    return dict(zip(param_names(len(arrays)), arrays))


def recipe_model(entry: FlowerEntry, initial: dict[str, np.ndarray]) -> dict[str, Any]:
    """The recipe fields that describe a Flower client's model: its entry point and shapes."""
    return dict(
        model=entry.model,
        model_source=entry.source_hash,
        dataset="flower",  # each client loads its own partition
        input_shape=(),
        num_classes=0,
        param_shapes=tuple(a.shape for a in initial.values()),
    )


def accuracy_of(metrics: dict[str, Any]) -> float:
    for k in ACCURACY_KEYS:
        if k in metrics:
            return float(metrics[k])
    raise FlowerError(f"the client's evaluate metrics name no accuracy (one of {', '.join(ACCURACY_KEYS)})")


def federated_accuracy(clients: list[FlowerClient], arrays: list[np.ndarray]) -> float:
    """Every client's evaluate on ``arrays``, weighted by its example count: Flower's federated
    evaluation with every node sampled (fraction_evaluate=1.0) and example-weighted metrics."""
    results = [c.evaluate(arrays) for c in clients]
    total = sum(n for _, n, _ in results)
    if total == 0:
        raise FlowerError("the clients evaluated on no examples")
    return sum(n * accuracy_of(m) for _, n, m in results) / total
