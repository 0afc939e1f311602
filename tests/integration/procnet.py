"""A fedchain network of real OS processes on 127.0.0.1, for the integration tests.

``ProcessNetwork`` starts anvil (through ``fedchain chain up``), deploys, writes
trainer data, and starts nodes and a sponsor as separate ``fedchain`` processes,
each logging to its own file in the test's folder. The test process watches the
chain through its own ``RpcChain`` and kills processes by PID (SIGKILL for
crashes). Teardown stops every process it started, by PID, and then checks that
no private key or password appears in any file the network wrote.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedchain.chain.anvil import free_port
from fedchain.chain.deploy import load_deployment, read_deployment_file
from fedchain.chain.keys import dev_account
from fedchain.chain.rpc import RpcChain
from fedchain.errors import ChainUnavailable

BLOCK_TIME = 0.5
DEV_ACCOUNTS = 12  # deployer, sponsor, up to 10 nodes
PASSWORD = "pw-" + secrets.token_hex(8)
FEDCHAIN = [sys.executable, "-m", "fedchain"]


class ProcessNetwork:
    def __init__(self, root: Path):
        self.root = root
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = root / "chain-state.json"
        self.chain: RpcChain | None = None
        self.dep = None
        self.task_id: int | None = None
        self.data: dict = {}
        self.secrets: set[str] = {PASSWORD}
        for i in range(DEV_ACCOUNTS):
            key = dev_account(i).key.hex().removeprefix("0x")
            self.secrets |= {key, key.upper()}
        self._env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
            "FEDCHAIN_KEYSTORE": str(root / "keystore"),
        }
        self._env.pop("FEDCHAIN_PASSWORD", None)

    # -- processes

    def start(
        self, name: str, *args: str, password: bool = False, cwd: Path | None = None, env: dict | None = None
    ) -> subprocess.Popen:
        """Start ``fedchain ARGS`` in the network folder (or ``cwd``, with ``env`` added to
        the environment: another machine's), output to ``<name>.log`` in the network folder."""
        assert name not in self.procs or self.procs[name].poll() is not None, f"{name} is running"
        env = {**self._env, **(env or {}), **({"FEDCHAIN_PASSWORD": PASSWORD} if password else {})}
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [*FEDCHAIN, *args],
            cwd=cwd or self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def run(self, *args: str, password: bool = False, timeout: float = 120, input: str | None = None) -> str:
        """Run ``fedchain ARGS`` to completion; its output (also saved in cli.log)."""
        env = dict(self._env, FEDCHAIN_PASSWORD=PASSWORD) if password else self._env
        out = subprocess.run(
            [*FEDCHAIN, *args], cwd=self.root, env=env, input=input, capture_output=True, text=True, timeout=timeout
        )
        with open(self.root / "cli.log", "a") as f:
            f.write(f"$ fedchain {' '.join(args)}\n{out.stdout}{out.stderr}\n")
        assert out.returncode == 0, f"fedchain {' '.join(args)} exited {out.returncode}:\n{out.stdout}{out.stderr}"
        return out.stdout

    def wait_exit(self, name: str, timeout: float = 120) -> str:
        """Wait for a process started with ``start`` to exit 0; its output."""
        proc = self.procs[name]
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still running after {timeout:.0f}s:\n{self.log(name)[-3000:]}")
        assert rc == 0, f"{name} exited {rc}:\n{self.log(name)[-3000:]}"
        return self.log(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            proc.wait(timeout=30)

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, n: int = 15) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-n:])
            for p in sorted(self.root.glob("*.log"))
        )

    # -- the chain

    def chain_up(self) -> None:
        """``fedchain chain up`` (it becomes anvil: one PID), state saved on SIGTERM."""
        self.start(
            "chain",
            "chain",
            "up",
            "--port",
            str(self.port),
            "--block-time",
            str(BLOCK_TIME),
            "--state",
            str(self.state),
            "--accounts",
            str(DEV_ACCOUNTS),
        )
        self.wait_for(lambda: self._reachable() or not self.alive("chain"), 60, "the chain to answer")
        assert self.alive("chain"), self.log("chain")

    def _reachable(self) -> bool:
        try:
            self.chain = RpcChain(self.url, timeout=10, receipt_timeout=20)
            return True
        except ChainUnavailable:
            return False

    def deploy(self, cli: bool = True) -> None:
        """Deploy and mint test tokens to the dev accounts; writes deployment.json. Tasks
        here may have a one-block challenge window (a local chain that nobody censors:
        the tests stay fast)."""
        if cli:
            self.run(
                "deploy",
                "--rpc",
                self.url,
                "--dev-account",
                "0",
                "--dev-accounts",
                str(DEV_ACCOUNTS),
                "--min-challenge-blocks",
                "1",
            )
        else:
            from fedchain.chain.deploy import ProtocolParams, deploy

            owner = dev_account(0)
            dep = deploy(self.chain, owner, ProtocolParams(min_challenge_blocks=1))
            dep.save(self.root / "deployment.json", rpc=self.url, deployer=owner.address)
            self.chain.transact_batch(
                dep.token,
                [("mint", (dev_account(i).address, 10_000 * 10**18)) for i in range(1, DEV_ACCOUNTS)],
                sender=owner,
            )
        self.dep = load_deployment(self.chain, read_deployment_file(self.root / "deployment.json"))

    def write_data(self, trainers: int, seed: int = 0) -> None:
        """IID partitions of digits: data/trainer-<i>.npz and data/test.npz (as `fedchain data split`)."""
        from fedchain.learning.data import load_dataset, partition

        d = load_dataset("digits", seed=seed)
        (self.root / "data").mkdir(exist_ok=True)
        for i, idx in enumerate(partition("iid", d.y_train, trainers, seed=seed)):
            np.savez(self.root / "data" / f"trainer-{i}.npz", x=d.x_train[idx], y=d.y_train[idx])
        np.savez(self.root / "data" / "test.npz", x=d.x_test, y=d.y_test)

    # -- nodes

    def trainer(self, i: int, dev: int, *extra: str) -> subprocess.Popen:
        self.data[f"trainer-{i}"] = dev_account(dev).address
        return self.start(
            f"trainer-{i}",
            "node",
            "run",
            "--role",
            "trainer",
            "--dev-account",
            str(dev),
            "--data",
            f"data/trainer-{i}.npz",
            "--home",
            f"trainer-{i}",
            "--name",
            f"trainer-{i}",
            *extra,
        )

    def validator(self, j: int, dev: int, *extra: str) -> subprocess.Popen:
        self.data[f"validator-{j}"] = dev_account(dev).address
        return self.start(
            f"validator-{j}",
            "node",
            "run",
            "--role",
            "validator",
            "--dev-account",
            str(dev),
            "--home",
            f"validator-{j}",
            "--name",
            f"validator-{j}",
            *extra,
        )

    def address(self, name: str) -> str:
        return self.data[name]

    def wait_staked(self, names: list[str], timeout: float = 150) -> None:
        fc = self.dep.fedchain

        def staked() -> bool:
            for n in names:
                assert self.alive(n), f"{n} exited:\n{self.log(n)[-3000:]}"
            return all(fc.call("stakes", self.address(n))["active"] > 0 for n in names)

        self.wait_for(staked, timeout, f"{len(names)} nodes to stake")

    def create_task(
        self, *args: str, signer: tuple[str, ...] = ("--dev-account", "1"), password: bool = False, timeout: float = 90
    ) -> int:
        """Start the sponsor (it stays up serving the initial model); the new task's id."""
        self.start("sponsor", "task", "create", *signer, "--home", "sponsor", *args, password=password)
        fc = self.dep.fedchain
        self.wait_for(lambda: fc.call("next_task_id") > 1 or not self.alive("sponsor"), timeout, "the task")
        assert self.alive("sponsor") or "task 1" in self.log("sponsor"), self.log("sponsor")
        self.task_id = fc.call("next_task_id") - 1
        return self.task_id

    # -- watching

    def events(self, name: str | None = None) -> list:
        evs = self.dep.fedchain.events(self.dep.block)
        return [e for e in evs if name is None or e.name == name]

    def outcome(self, round_id: int):
        for e in self.events():
            if e.name in ("RoundFinalized", "RoundFailed") and e.args["round_id"] == round_id:
                return e
        return None

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except ChainUnavailable:
                value = None
            if value:
                return value
            time.sleep(every)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.tails()}")

    def wait_event(self, name: str, timeout: float, what: str, **match):
        def found():
            return next((e for e in self.events(name) if all(e.args.get(k) == v for k, v in match.items())), None)

        return self.wait_for(found, timeout, what)

    def wait_finished(self, timeout: float) -> None:
        self.wait_for(
            lambda: self.dep.fedchain.call("tasks", self.task_id)["finished"], timeout, f"task {self.task_id} to finish"
        )

    # -- secrets

    def add_secret_keys(self) -> None:
        """Add the keys of the accounts in every keystore folder (decrypted here) to the secrets to look for."""
        from fedchain.chain.keys import list_keys, unlock

        for folder in self.root.rglob("keystore"):
            for k in list_keys(folder):
                key = unlock(k, PASSWORD).key.hex().removeprefix("0x")
                self.secrets |= {key, key.upper()}

    def assert_no_secrets(self) -> None:
        """No private key (hex, any case) and no password in any file the network wrote."""
        self.add_secret_keys()
        leaks = []
        for path in self.root.rglob("*"):
            if not path.is_file() or path.suffix == ".npz" or "blobs" in path.parts:
                continue
            text = path.read_bytes().decode("latin-1")
            leaks += [f"{path.name}: {s[:6]}…" for s in self.secrets if s in text]
        assert not leaks, f"secrets found in output: {leaks}"


def status_json(net: ProcessNetwork) -> dict:
    return json.loads(net.run("status", "--json"))


def accuracy(net: ProcessNetwork, model_cid: bytes) -> float:
    """Test accuracy of a model blob (read from the sponsor's or any node's blob folder)."""
    from fedchain.learning.models import build_model
    from fedchain.learning.train import evaluate, get_params
    from fedchain.storage.cid import cid_from_digest
    from fedchain.storage.codec import decode_tensors

    cid = cid_from_digest(model_cid)
    path = next(net.root.glob(f"*/blobs/{cid}"))
    test = np.load(net.root / "data" / "test.npz")
    model = build_model("mlp", (1, 8, 8), 10)
    params = decode_tensors(path.read_bytes(), {k: v.shape for k, v in get_params(model).items()})
    return evaluate(model, params, test["x"], test["y"])
