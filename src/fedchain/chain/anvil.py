"""Start and stop a local anvil (the pinned npm package) on 127.0.0.1."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import time
from pathlib import Path

from fedchain.errors import ChainError

ANVIL_REL = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def anvil_binary() -> Path:
    """``$FEDCHAIN_ANVIL``, or node_modules in the repository (run ./scripts/setup.sh)."""
    env = os.environ.get("FEDCHAIN_ANVIL")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in [Path.cwd(), *here.parents]:
        if (parent / ANVIL_REL).exists():
            return parent / ANVIL_REL
    raise ChainError("anvil not found: run ./scripts/setup.sh (npm install) or set FEDCHAIN_ANVIL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_command(
    port: int,
    state: Path | None = None,
    block_time: float | None = None,
    accounts: int = 10,
    state_interval: float | None = None,
    host: str = "127.0.0.1",
) -> list[str]:
    """The anvil command line fedchain uses: the dev mnemonic, chain id 31337, and
    ``--silent`` (anvil would otherwise print its accounts' private keys)."""
    args = [
        str(anvil_binary()),
        "--host",
        host,
        "--port",
        str(port),
        "--silent",
        "--mnemonic",
        DEV_MNEMONIC,
        "--chain-id",
        "31337",
        "--accounts",
        str(accounts),
    ]
    if state is not None:
        args += ["--state", str(state)]  # load if present, dump on exit
        if state_interval:
            args += ["--state-interval", str(state_interval)]
    if block_time:
        args += ["--block-time", str(block_time)]
    return args


class Anvil:
    """An anvil process: ``url`` while running; ``stop`` kills it by PID."""

    def __init__(
        self,
        port: int | None = None,
        state: Path | None = None,
        block_time: float | None = None,
        log: Path | None = None,
        accounts: int = 10,
        state_interval: float | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = anvil_command(self.port, state, block_time, accounts, state_interval)
        out = open(log, "ab") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)  # never leave an anvil behind when this process ends
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChainError(f"anvil exited with code {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ChainError(f"anvil did not start on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """SIGTERM (anvil dumps --state on it), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
