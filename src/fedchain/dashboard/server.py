"""The dashboard's web server: a JSON API over ``view.build`` and the static page.

A background thread rebuilds the view whenever the history changes (a saved
simulation's event log is rewritten, a live chain mines a block) and swaps it in
whole, so every request reads one consistent view and a poll costs no chain call.
A refresh that fails (the RPC does not answer, the deployment is for another chain)
keeps the last good view and says why in ``errors``.

Standard library only (``http.server``): one local user, a few requests a second.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.dashboard.view import Lineages, build
from fedchain.errors import FedchainError
from fedchain.storage.store import BlobStore

if TYPE_CHECKING:
    from fedchain.chain.deploy import Deployment

STATIC = {"/": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
POLL_S = 0.25  # how often the history is checked for change: well within one block


class SimHistory:
    """A ``fedchain simulate --out`` folder, finished or still running: its saved event log
    (``fedchain audit``'s ``EventFile``) and the simulation's own per-round accuracy."""

    def __init__(self, folder: Path, store: BlobStore):
        self.folder, self.store = Path(folder), store
        self.label = f"simulation {self.folder}"

    def stamp(self) -> Any:
        """Changes whenever the saved history does."""
        files = (self.folder / "chain" / "events.jsonl", self.folder / "report.json")
        return tuple((f.stat().st_mtime_ns, f.stat().st_size) if f.exists() else None for f in files)

    def read(self) -> dict:
        from fedchain.protocol.audit import EventFile

        src = EventFile(self.folder / "chain")  # a fresh reader: the file may have grown
        events = src.events()
        tasks = {int(k): v for k, v in src.info.get("tasks", {}).items()}
        return {
            "events": events,
            "block": max((e.block for e in events), default=src.info.get("block", 0)),
            "tasks_info": tasks,
            "evaluations": self._evaluations(src.info.get("task_id")),
            "chain_id": src.chain_id,
            "fedchain": src.address,
        }

    def _evaluations(self, task_id: int | None) -> dict:
        try:
            report = json.loads((self.folder / "report.json").read_text())
        except (OSError, ValueError):
            return {}
        source = "report.json (the simulation's own evaluation on its test set)"
        rounds = {r["round"]: {"accuracy": r["accuracy"], "source": source} for r in report.get("rounds", [])}
        return {task_id if task_id is not None else report.get("task_id"): rounds}


class LiveHistory:
    """A live chain over JSON-RPC: the deployment's contracts, their events from the
    deployment block on (``ContractEvents``), the task records and stakes (contract state,
    through ``fedchain status``'s ``collect``), connected again after any failure."""

    def __init__(self, rpc: str | None, deployment: Path, store: BlobStore):
        from fedchain.chain.deploy import read_deployment_file

        self.info = read_deployment_file(deployment)
        url = rpc or self.info.get("rpc")
        if not url:
            raise FedchainError(f"no RPC URL: pass --rpc (the deployment file {deployment} has none)")
        self.url: str = url
        self.store = store
        self.dep: Deployment | None = None
        self.label = f"chain at {self.url}, deployment {deployment}"

    def _connect(self):
        from fedchain.chain.deploy import load_deployment
        from fedchain.chain.rpc import RpcChain
        from fedchain.errors import ChainError

        if self.dep is None:
            chain = RpcChain(self.url, timeout=5.0)
            try:
                self.dep = load_deployment(chain, self.info)
            except ChainError as e:
                raise ChainError(f"{self.url}: {e}") from None
        return self.dep

    def stamp(self) -> Any:
        try:
            return self._connect().fedchain.chain.block_number()
        except Exception:
            self.dep = None  # connect again next time (the chain may come back)
            raise

    def read(self) -> dict:
        from fedchain.cli.status import collect
        from fedchain.protocol.audit import ContractEvents

        dep = self._connect()
        fc = dep.fedchain
        events = ContractEvents(fc, dep.block).events()
        ids = [e.args["task_id"] for e in events if e.name == "TaskCreated"]
        tasks, evaluations, stakes = {}, {}, {}
        for t in ids:
            tasks[t] = fc.call("tasks", t)
            report = collect(dep, t)  # contract state: stakes, pending payouts; the sponsor's evaluations
            for n in report["nodes"]:
                stakes[n["address"]] = {"stake": n["stake"], "role": n["role"], "pending": n["payout_pending"]}
            evaluations[t] = {
                r["round"]: {k: r[k] for k in ("accuracy", "loss") if k in r} | {"source": "the sponsor, on chain"}
                for r in report["rounds"]
                if r.get("accuracy") is not None  # None, or no key at all: no evaluation published
            }
        return {
            "events": events,
            "block": fc.chain.block_number(),
            "tasks_info": tasks,
            "evaluations": evaluations,
            "stakes": stakes,
            "chain_id": fc.chain.chain_id,
            "fedchain": fc.address,
        }


class Dashboard:
    """The current view of one history, rebuilt in the background when it changes."""

    def __init__(self, history: SimHistory | LiveHistory):
        self.history = history
        self.lineages = Lineages(history.store)
        self.view: dict = {"block": None, "tasks": [], "nodes": []}
        self.meta: dict = {"source": history.label, "version": 0, "errors": [], "chain_id": None, "fedchain": None}
        self._stamp: Any = object()
        self._stop = threading.Event()

    def refresh(self) -> None:
        """Rebuild if the history changed; on failure keep the last view and say why."""
        try:
            stamp = self.history.stamp()
            if stamp == self._stamp:
                return
            got = self.history.read()
            view = build(
                got["events"], self.lineages, got["block"], got["tasks_info"], got["evaluations"], got.get("stakes")
            )
        except Exception as e:  # noqa: BLE001 (anything: the page says it, the thread lives on)
            why = str(e) if isinstance(e, FedchainError | OSError) else f"{type(e).__name__}: {e}"
            if self.meta["errors"] != [why]:
                self.meta = {**self.meta, "errors": [why], "version": self.meta["version"] + 1}
            return
        self.view, self._stamp = view, stamp
        self.meta = {
            **self.meta,
            "errors": [],
            "chain_id": got["chain_id"],
            "fedchain": got["fedchain"],
            "version": self.meta["version"] + 1,
        }

    def run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.refresh()

    def start(self) -> Dashboard:
        self.refresh()
        threading.Thread(target=self.run, name="dashboard-refresh", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    # -- the API: plain data for each route

    def status(self) -> dict:
        return {**self.meta, "block": self.view["block"]}

    def tasks(self) -> list[dict]:
        return [{k: v for k, v in t.items() if k not in ("rounds", "lineage")} for t in self.view["tasks"]]

    def task(self, task_id: int) -> dict | None:
        return next((t for t in self.view["tasks"] if t["id"] == task_id), None)

    def nodes(self) -> list[dict]:
        return self.view["nodes"]

    def node(self, addr: str) -> dict | None:
        return next((n for n in self.view["nodes"] if n["address"].lower() == addr.lower()), None)

    def route(self, path: str) -> Any:
        """The JSON for an API path, or None for an unknown one."""
        parts = [p for p in path.split("/") if p][1:]  # after "api"
        routes: dict[tuple, Callable[[], Any]] = {
            ("status",): self.status,
            ("tasks",): self.tasks,
            ("nodes",): self.nodes,
        }
        if tuple(parts) in routes:
            return routes[tuple(parts)]()
        if len(parts) >= 2 and parts[0] == "tasks" and parts[1].isdigit():
            t = self.task(int(parts[1]))
            if t is None:
                return None
            sub = parts[2:]
            if not sub:
                return {k: v for k, v in t.items() if k not in ("rounds", "lineage")}
            if sub == ["rounds"]:
                return t["rounds"]
            if sub == ["lineage"]:
                return t["lineage"]
            return None
        if len(parts) == 2 and parts[0] == "nodes":
            return self.node(parts[1])
        return None


def serve(dashboard: Dashboard, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (0: a free port); call ``serve_forever`` on it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path.startswith("/api/"):
                data = dashboard.route(path)
                if data is None:
                    self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}', "application/json")
                else:
                    self._send(HTTPStatus.OK, json.dumps(data).encode(), "application/json")
            elif path in STATIC:
                name = STATIC[path]
                body = resources.files("fedchain.dashboard").joinpath("static", name).read_bytes()
                self._send(HTTPStatus.OK, body, TYPES[Path(name).suffix])
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def _send(self, code: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one user, polling: no access log

    return ThreadingHTTPServer((host, port), Handler)
