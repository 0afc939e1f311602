"""A headless Chromium driven over the DevTools protocol: what the dashboard's tests and
its benchmark load the page with (a real browser, no driver to download).

It runs the system's ``chromium`` (Debian's package; ``./scripts/setup.sh`` installs it)
with a throw-away profile and talks to its page over the DevTools WebSocket with the
``websockets`` package web3 already depends on. Only what the tests need: navigate,
evaluate JavaScript, wait for a condition, take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from fedchain.errors import FedchainError


def find_chromium() -> str | None:
    """The system Chromium's path, or None if it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, width: int = 1280, height: int = 900, executable: str | None = None):
        exe = executable or find_chromium()
        if exe is None:
            raise FedchainError("no chromium on this machine: apt-get install chromium (./scripts/setup.sh does)")
        self.profile = Path(tempfile.mkdtemp(prefix="fedchain-chromium-"))
        args = [
            exe,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        self._stack = contextlib.ExitStack()  # the WebSocket, closed with the browser
        try:
            self.ws = self._connect()
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout: float = 30.0):
        from websockets.sync.client import connect

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise FedchainError(f"chromium did not start (exit status {self.proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        return self._stack.enter_context(connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10))

    def call(self, method: str, **params: Any) -> dict:
        """Send one DevTools command and return its result (events in between are dropped)."""
        n = next(self._ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == n:
                if "error" in msg:
                    raise FedchainError(f"{method}: {msg['error'].get('message')}")
                return msg["result"]

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise FedchainError(f"{expression}: {r['exceptionDetails'].get('text')} {r.get('result', {})}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll until ``expression`` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.eval(expression)
            except FedchainError:  # the page is still loading: its functions are not defined yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never satisfied {expression!r} in {timeout} s")
            time.sleep(0.05)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={**size, "x": 0, "y": 0, "scale": 1})
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        return Path(path)

    def close(self) -> None:
        self._stack.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
