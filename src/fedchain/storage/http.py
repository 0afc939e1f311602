"""Blobs between machines over HTTP, at the IPFS trustless-gateway path ``GET /ipfs/<cid>``.

``BlobServer`` serves the blobs a local store holds (raw bytes, nothing else);
``HttpBlobStore`` reads from a list of peers and checks every byte against the
CID before handing it on, so peers need no trust: a peer that sends corrupt
bytes is logged with the CID and the reason, and the next peer is tried.
Because the path and the ``application/vnd.ipld.raw`` response are the
trustless gateway's, any IPFS gateway that holds a blob can be a peer too.

Peers come from three places: URLs given directly, a peers file (one URL a
line) that nodes on one machine append their own URL to, and a ``Directory`` of
endpoints learned elsewhere (``fedchain.protocol.endpoints`` reads the ones
announced on chain, and knows which blob is whose, so a blob's author is asked
first). A peer that does not answer (connection refused, timed out) is not
tried again for a while (``Backoff``): a node that went away costs one failed
request, not one per blob.
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

from fedchain.errors import BlobCorrupt, BlobNotFound, StorageError
from fedchain.storage.cid import check, cid_from_digest, digest_of
from fedchain.storage.store import BlobStore

log = logging.getLogger("fedchain.storage.http")

RAW = "application/vnd.ipld.raw"
MAX_BLOB_BYTES = 256 * 1024 * 1024  # the codec's cap: nothing larger is worth reading


# ---------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may sit idle: a silent client does not hold a thread for ever

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if not path.startswith("/ipfs/"):
            return self._reply(404, b"not found: only /ipfs/<cid> is served\n", body)
        raw_cid = path[len("/ipfs/") :].strip("/")
        try:
            cid = cid_from_digest(digest_of(raw_cid))
        except StorageError as e:
            return self._reply(400, f"{e}\n".encode(), body)
        store = self.server.store
        if not store.has(cid):
            return self._reply(404, f"blob {cid} not held here\n".encode(), body)
        try:
            data = store.get(cid)
        except (BlobNotFound, BlobCorrupt) as e:  # deleted or damaged on disk meanwhile
            log.warning("not serving %s: %s", cid, e)
            return self._reply(404, f"blob {cid} not available here\n".encode(), body)
        data = self.server.transform(cid, data)
        self._reply(200, data, body, content_type=RAW, etag=f'"{cid}.raw"')

    def _reply(
        self,
        code: int,
        data: bytes,
        body: bool,
        content_type: str = "text/plain; charset=utf-8",
        etag: str | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        if etag:
            self.send_header("Etag", etag)
            self.send_header("Cache-Control", "public, max-age=29030400, immutable")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stopping must not wait for a client that keeps its connection open
    store: BlobStore
    transform: Callable[[str, bytes], bytes]


class BlobServer:
    """Serve the blobs ``store`` holds at ``GET /ipfs/<cid>`` from a background thread.

    Parameters
    ----------
    store : BlobStore
        What to serve; only CIDs for which ``store.has`` is true are served
        (a local store, never one that would fetch from peers in turn).
    host, port : str, int
        Where to listen; port 0 picks a free port (see ``url``).
    transform : callable, optional
        ``(cid, bytes) -> bytes`` applied to every response. For fault
        injection in tests (a peer that serves corrupt bytes); readers catch it.
    """

    def __init__(
        self,
        store: BlobStore,
        host: str = "127.0.0.1",
        port: int = 0,
        transform: Callable[[str, bytes], bytes] | None = None,
    ):
        self._httpd = _Server((host, port), _Handler)
        self._httpd.store = store
        self._httpd.transform = transform or (lambda cid, data: data)
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"blob-server:{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> BlobServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> BlobServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- peers


class Directory(Protocol):
    """Endpoints learned outside the configuration (e.g. announced on chain)."""

    def authors(self, cid: str) -> list[str]:
        """The endpoints of whoever wrote ``cid`` (best asked first)."""
        ...

    def everyone(self) -> list[str]:
        """Every endpoint worth asking for a blob whose author is unknown."""
        ...


class Backoff:
    """Peers that did not answer, skipped for a while.

    A peer that refuses the connection or times out is skipped for ``base``
    seconds, twice as long after each further failure in a row, at most
    ``cap``; any answer (a 404 too) clears it. Without this, a node that went
    away (a stale line in the peers file, a stopped machine) would cost every
    lookup a failed request, up to a full timeout each.
    """

    def __init__(self, base: float = 5.0, cap: float = 300.0):
        self.base, self.cap = base, cap
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def dead(self, url: str) -> bool:
        return time.monotonic() < self._until.get(url, 0.0)

    def failed(self, url: str, reason: str) -> None:
        n = self._failures.get(url, 0) + 1
        delay = min(self.cap, self.base * 2 ** (n - 1))
        self._failures[url] = n
        self._until[url] = time.monotonic() + delay
        log.warning("peer %s unreachable (%s): not tried again for %g s", url, reason, delay)

    def answered(self, url: str) -> None:
        if self._failures.pop(url, None) is not None:
            self._until.pop(url, None)
            log.info("peer %s answers again", url)


class Peers:
    """The blob servers a node knows: a blob's authors (from ``directory``), URLs from
    configuration, a peers file, then everyone else ``directory`` knows; less any
    that ``backoff`` says are down.

    The file is read again on every lookup, so nodes that start later are found;
    ``announce`` appends a URL with one ``O_APPEND`` write (atomic for a short
    line on a local file system), so nodes on one machine can share the file.

    Parameters
    ----------
    urls : iterable of str
        Peer base URLs, e.g. ``http://10.0.0.5:8701``; tried in order, after the blob's authors.
    file : Path, optional
        A peers file, one URL a line (``#`` starts a comment).
    exclude : iterable of str
        URLs never to use (this node's own server).
    directory : Directory, optional
        Endpoints announced elsewhere (on chain).
    backoff : Backoff, optional
        Which peers are skipped for now (default: a fresh ``Backoff()``).
    """

    def __init__(
        self,
        urls: Iterable[str] = (),
        file: Path | None = None,
        exclude: Iterable[str] = (),
        directory: Directory | None = None,
        backoff: Backoff | None = None,
    ):
        self.urls = [_normal(u) for u in urls]
        self.file = Path(file) if file else None
        self.exclude = {_normal(u) for u in exclude}
        self.directory = directory
        self.backoff = backoff or Backoff()

    def __call__(self, cid: str | None = None) -> list[str]:
        """The peers to ask for ``cid`` (any blob if None), best first."""
        directory = self.directory
        found = _known(directory.authors(cid)) if directory is not None and cid else []
        found += self.urls
        if self.file is not None and self.file.exists():
            for line in self.file.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    found.append(_normal(line))
        if directory is not None:
            found += _known(directory.everyone())
        return [u for u in dict.fromkeys(found) if u not in self.exclude and not self.backoff.dead(u)]

    def announce(self, url: str) -> None:
        """Add ``url`` to the peers file (once)."""
        if self.file is None:
            raise StorageError("no peers file to announce to")
        url = _normal(url)
        self.exclude.add(url)
        if self.file.exists() and url in self.file.read_text().split():
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (url + "\n").encode())
        finally:
            os.close(fd)


def _normal(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise StorageError(f"peer URL {url!r} must start with http:// or https://")
    return url


def _known(urls: list[str]) -> list[str]:
    """A directory's URLs, normalised; a malformed one (nobody here typed it) is skipped."""
    good = []
    for url in urls:
        try:
            good.append(_normal(url))
        except StorageError as e:
            log.debug("skipping a directory's peer: %s", e)
    return good


# ---------------------------------------------------------------- client


class HttpBlobStore:
    """Read blobs from HTTP peers, verifying every byte against the CID.

    Parameters
    ----------
    peers : Peers or list of str
        Where to look, in order.
    cache : BlobStore, optional
        Verified blobs are saved here (the node's local store), so a node
        serves what it fetched and never fetches a blob twice.
    timeout : float, default 10
        Seconds per HTTP request.
    """

    def __init__(self, peers: Peers | list[str], cache: BlobStore | None = None, timeout: float = 10.0):
        self.peers = peers if isinstance(peers, Peers) else Peers(peers)
        self.cache = cache
        self.timeout = timeout

    def put(self, data: bytes) -> str:
        """Peers are read-only: store into the local store instead."""
        raise StorageError("HTTP peers are read-only: put blobs into the local store")

    def get(self, cid: str) -> bytes:
        """Return the blob from the first peer whose bytes hash to ``cid``.

        Raises
        ------
        BlobNotFound
            If no peer returned intact bytes; the message names the CID and,
            for each peer, why not (not held, unreachable, corrupt).
        """
        cid = cid_from_digest(digest_of(cid))  # malformed CIDs fail here, before any request
        failures = []
        for url in self.peers(cid):
            try:
                data = self._fetch(url, cid)
            except BlobNotFound:
                failures.append(f"{url}: not held")
                continue
            except StorageError as e:
                failures.append(f"{url}: {e}")
                continue
            try:
                check(cid, data)
            except BlobCorrupt:
                log.warning("rejected blob %s from peer %s: its %d bytes do not hash to the CID", cid, url, len(data))
                failures.append(f"{url}: corrupt (bytes do not hash to the CID)")
                continue
            if self.cache is not None:
                self.cache.put(data)
            return data
        raise BlobNotFound(
            f"blob {cid} not found intact at any peer (" + ("; ".join(failures) if failures else "no peers known") + ")"
        )

    def has(self, cid: str) -> bool:
        """Whether some peer says it holds ``cid`` (a HEAD request; bytes are checked on ``get``)."""
        cid = cid_from_digest(digest_of(cid))
        for url in self.peers(cid):
            try:
                with self._open(url, cid, "HEAD"):
                    return True
            except (BlobNotFound, StorageError):
                continue
        return False

    def _open(self, url: str, cid: str, method: str = "GET"):
        req = urllib.request.Request(f"{url}/ipfs/{cid}", method=method, headers={"Accept": RAW})
        backoff = self.peers.backoff
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            e.close()
            backoff.answered(url)
            if e.code in (404, 410):
                raise BlobNotFound(f"{url} does not hold {cid}") from None
            raise StorageError(f"HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = str(getattr(e, "reason", e))
            backoff.failed(url, reason)
            raise StorageError(f"unreachable ({reason})") from None
        backoff.answered(url)
        return resp

    def _fetch(self, url: str, cid: str) -> bytes:
        with self._open(url, cid) as resp:
            declared = resp.headers.get("Content-Length")
            if declared is not None and int(declared) > MAX_BLOB_BYTES:
                raise StorageError(f"refused: {declared} bytes is over the {MAX_BLOB_BYTES}-byte limit")
            try:
                data = resp.read(MAX_BLOB_BYTES + 1)
            except OSError as e:  # timed out or cut off mid-blob: as good as down
                self.peers.backoff.failed(url, f"read failed: {e!r}")
                raise StorageError(f"read failed ({e!r})") from None
            except (ValueError, http.client.HTTPException) as e:
                raise StorageError(f"read failed ({e!r})") from None
        if len(data) > MAX_BLOB_BYTES:
            raise StorageError(f"refused: more than {MAX_BLOB_BYTES} bytes")
        return data
