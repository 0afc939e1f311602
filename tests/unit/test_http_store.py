"""Blobs over HTTP: the server serves only what its store holds at /ipfs/<cid>;
the client checks every byte against the CID, logs and skips a corrupt peer,
caches what it fetched, and stops asking a peer that does not answer for a while."""

from __future__ import annotations

import logging
import socket
import time
import urllib.error
import urllib.request

import pytest

from fedchain.errors import BlobNotFound, StorageError
from fedchain.storage.cid import cid_of
from fedchain.storage.http import RAW, Backoff, BlobServer, HttpBlobStore, Peers
from fedchain.storage.store import LocalBlobStore, MultiStore

BLOB = b"an update blob" * 100


@pytest.fixture
def served(tmp_path):
    store = LocalBlobStore(tmp_path / "served")
    cid = store.put(BLOB)
    with BlobServer(store) as server:
        yield server, cid


def get(url: str, method: str = "GET"):
    return urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5)


def test_server_returns_raw_bytes_at_the_gateway_path(served):
    server, cid = served
    with get(f"{server.url}/ipfs/{cid}") as resp:
        assert resp.status == 200 and resp.read() == BLOB
        assert resp.headers["Content-Type"] == RAW and resp.headers["Etag"] == f'"{cid}.raw"'
    with get(f"{server.url}/ipfs/{cid}?format=raw", "HEAD") as resp:
        assert resp.status == 200 and resp.read() == b""


@pytest.mark.parametrize(
    "path, code",
    [
        ("/ipfs/" + cid_of(b"not held"), 404),
        ("/ipfs/not-a-cid", 400),
        ("/ipfs/../../etc/passwd", 400),
        ("/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", 400),  # dag-pb, not raw
        ("/blobs/x", 404),
    ],
)
def test_server_refuses_what_it_does_not_hold_or_cannot_parse(served, path, code):
    server, _ = served
    with pytest.raises(urllib.error.HTTPError) as err:
        get(server.url + path)
    assert err.value.code == code


def test_client_verifies_and_caches(served, tmp_path):
    server, cid = served
    cache = LocalBlobStore(tmp_path / "mine")
    client = HttpBlobStore([server.url], cache=cache)
    assert client.has(cid) and not client.has(cid_of(b"other"))
    assert client.get(cid) == BLOB
    assert cache.get(cid) == BLOB  # saved after verification


def test_corrupt_peer_is_logged_and_skipped(tmp_path, caplog):
    honest = LocalBlobStore(tmp_path / "honest")
    cid = honest.put(BLOB)
    flip = lambda c, data: bytes([data[0] ^ 1]) + data[1:]  # noqa: E731
    with BlobServer(honest, transform=flip) as bad, BlobServer(honest) as good:
        cache = LocalBlobStore(tmp_path / "mine")
        with caplog.at_level(logging.WARNING, logger="fedchain.storage.http"):
            assert HttpBlobStore([bad.url, good.url], cache=cache).get(cid) == BLOB
        assert f"rejected blob {cid} from peer {bad.url}" in caplog.text
        with pytest.raises(BlobNotFound) as err:
            HttpBlobStore([bad.url]).get(cid)
        assert cid in str(err.value) and "corrupt" in str(err.value)


def test_unreachable_and_missing_peers_name_the_cid(tmp_path):
    cid = cid_of(b"nobody has it")
    with BlobServer(LocalBlobStore(tmp_path / "empty")) as empty:
        with pytest.raises(BlobNotFound) as err:
            HttpBlobStore(["http://127.0.0.1:9", empty.url], timeout=2).get(cid)
    msg = str(err.value)
    assert cid in msg and "unreachable" in msg and "not held" in msg
    with pytest.raises(BlobNotFound, match="no peers known"):
        HttpBlobStore([]).get(cid)
    with pytest.raises(StorageError):
        HttpBlobStore([empty.url]).get("not-a-cid")
    with pytest.raises(StorageError):
        HttpBlobStore([empty.url]).put(b"x")


def test_multistore_reads_local_first_then_peers(served, tmp_path):
    server, cid = served
    local = LocalBlobStore(tmp_path / "mine")
    store = MultiStore([local, HttpBlobStore([server.url], cache=local)])
    assert not local.has(cid)
    assert store.get(cid) == BLOB and local.has(cid)
    assert store.put(b"mine") == cid_of(b"mine") and local.has(cid_of(b"mine"))


def test_peers_file_is_shared_and_reread(tmp_path):
    path = tmp_path / "peers.txt"
    a, b = Peers(file=path), Peers(["http://10.0.0.1:1/"], file=path)
    a.announce("http://127.0.0.1:1000")
    a.announce("http://127.0.0.1:1000")  # once
    b.announce("http://127.0.0.1:2000")
    assert path.read_text().split() == ["http://127.0.0.1:1000", "http://127.0.0.1:2000"]
    assert a() == ["http://127.0.0.1:2000"]  # never itself
    assert b() == ["http://10.0.0.1:1", "http://127.0.0.1:1000"]
    path.write_text(path.read_text() + "# a comment\nhttp://127.0.0.1:3000  # late joiner\n")
    assert a()[-1] == "http://127.0.0.1:3000"
    with pytest.raises(StorageError):
        Peers(["ftp://x"])


def test_a_peer_that_went_away_is_skipped_until_its_backoff_ends(tmp_path, caplog):
    holder = LocalBlobStore(tmp_path / "holder")
    cid = holder.put(BLOB)
    gone = BlobServer(LocalBlobStore(tmp_path / "gone")).start()
    gone.stop()  # its port now refuses connections
    with BlobServer(holder) as good, caplog.at_level(logging.INFO, logger="fedchain.storage.http"):
        peers = Peers([gone.url, good.url], backoff=Backoff(base=0.5, cap=1.0))
        store = HttpBlobStore(peers, timeout=2)
        assert store.get(cid) == BLOB
        assert f"peer {gone.url} unreachable" in caplog.text and "not tried again for 0.5 s" in caplog.text
        assert peers(cid) == [good.url]
        caplog.clear()
        assert store.get(cid) == BLOB and store.has(cid)
        assert "unreachable" not in caplog.text  # not tried at all

        time.sleep(0.55)  # the backoff is over: tried again, refused again, now skipped twice as long
        assert peers(cid) == [gone.url, good.url]
        assert store.get(cid) == BLOB and "not tried again for 1 s" in caplog.text
        assert peers(cid) == [good.url]

        with BlobServer(LocalBlobStore(tmp_path / "gone"), port=gone.port):  # back, without the blob
            time.sleep(1.05)
            caplog.clear()
            assert store.get(cid) == BLOB  # its 404 is an answer: it counts as up again
            assert f"peer {gone.url} answers again" in caplog.text
            assert peers(cid) == [gone.url, good.url]


def test_a_peer_that_accepts_and_never_answers_costs_one_timeout(tmp_path):
    holder = LocalBlobStore(tmp_path / "holder")
    cid = holder.put(BLOB)
    with socket.socket() as silent, BlobServer(holder) as good:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes connections; nobody ever reads or replies
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = HttpBlobStore(Peers([hung, good.url]), timeout=0.5)
        started = time.monotonic()
        assert store.get(cid) == BLOB
        assert time.monotonic() - started >= 0.5
        started = time.monotonic()
        assert store.get(cid) == BLOB and store.get(cid) == BLOB
        assert time.monotonic() - started < 0.4  # the hung peer is skipped
