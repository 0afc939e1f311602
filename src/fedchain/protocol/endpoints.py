"""Blob endpoints on chain (contracts/endpoints.vy): a node announces where it serves its
blobs, and every node's HTTP blob store finds the others' there, so nodes on different
machines need no shared file and no hand-written ``--peer`` list.

``announce`` sends the node's URL once (again only when it changed). ``ChainDirectory``
is the ``storage.http.Directory`` that ``Peers`` asks: it follows the endpoints
contract's ``Announced`` events and the core contracts' events, and so knows which
blob is whose (an update is its revealer's, a task's initial model its sponsor's, a
voted model its voters') and asks the author first. Only the endpoints of addresses
that take part (staked, sponsored a task, revealed or voted) are used: anyone can
announce, and an endpoint nobody vouches for with stake or a task could only send every
node's requests somewhere. Peers are untrusted either way: every byte is checked
against its CID.
"""

from __future__ import annotations

import logging
import threading
import time

from eth_account.signers.local import LocalAccount

from fedchain.chain.deploy import Deployment
from fedchain.chain.interface import Contract
from fedchain.errors import ChainError, FedchainError
from fedchain.storage.cid import cid_from_digest

log = logging.getLogger("fedchain.endpoints")

MAX_URL = 256  # bytes: the contract's String[256]


def check_url(url: str, flag: str = "--public-url") -> str:
    """``url`` without a trailing slash if the endpoints contract would take it, else a
    ``FedchainError`` naming ``flag``."""
    url = url.strip().rstrip("/")
    scheme = next((s for s in ("http://", "https://") if url.startswith(s)), "")
    if not scheme or url == scheme:
        raise FedchainError(
            f"{flag} {url!r}: must be a URL that starts with http:// or https://, e.g. http://10.0.0.5:8701"
        )
    if len(url.encode()) > MAX_URL:
        raise FedchainError(f"{flag} {url[:40]!r}...: at most {MAX_URL} bytes")
    return url


def announce(endpoints: Contract, account: LocalAccount, url: str, logger: logging.Logger = log) -> bool:
    """Announce ``url`` as ``account``'s blob endpoint; a transaction only if it changed
    (a restarted node sends nothing). True if it sent one."""
    url = check_url(url)
    if endpoints.call("endpoint", account.address) == url:
        logger.info("blob endpoint %s: already announced on chain", url)
        return False
    endpoints.tx("announce", url, sender=account)
    logger.info("blob endpoint %s: announced on chain (endpoints contract %s)", url, endpoints.address)
    return True


class ChainDirectory:
    """The endpoints announced on chain by the addresses that take part, and each blob's authors.

    Reads the new events of the endpoints contract and the core contracts in one
    ``get_logs`` query from the last block seen, at most once per ``every`` seconds,
    when asked; an unreachable chain leaves the cache as it is.

    Parameters
    ----------
    deployment : Deployment
        Must have an endpoints contract.
    every : float, default 1
        Least seconds between two reads of the chain.
    """

    def __init__(self, deployment: Deployment, every: float = 1.0):
        if deployment.endpoints is None:
            raise ValueError("this deployment has no endpoints contract")
        fc = deployment.fedchain
        self.chain = fc.chain
        self.contracts = [deployment.endpoints, fc.core, fc.vault, fc.tasks_contract]
        self.every = every
        self.cursor = deployment.block
        self.url_of: dict[str, str] = {}  # address -> its latest announced URL
        self.taking_part: set[str] = set()
        self.authors_of: dict[str, list[str]] = {}  # cid -> addresses, first author first
        self._next = 0.0
        self._lock = threading.Lock()

    def authors(self, cid: str) -> list[str]:
        self.refresh()
        return [self.url_of[a] for a in self.authors_of.get(cid, []) if a in self.url_of]

    def everyone(self) -> list[str]:
        self.refresh()
        return [url for a, url in self.url_of.items() if a in self.taking_part]

    def refresh(self) -> None:
        """Read the events since the last read (inclusive of its block: re-reading is harmless)."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + self.every
            try:
                head = self.chain.block_number()
                events = self.chain.events_of(self.contracts, self.cursor, head)
            except ChainError as e:
                log.debug("endpoints not refreshed: %s", e)
                return
            for ev in events:
                self._apply(ev.name, ev.args)
            self.cursor = head

    def _apply(self, name: str, a: dict) -> None:
        if name == "Announced":
            self.url_of.pop(a["node"], None)  # re-inserted last: the newest announcements come last
            self.url_of[a["node"]] = a["url"]
        elif name == "Staked":
            self.taking_part.add(a["node"])
        elif name == "TaskCreated":
            self._authored(a["model_cid"], a["sponsor"])
        elif name == "Revealed":
            self._authored(a["update_cid"], a["node"])
        elif name == "Voted":
            self._authored(a["model_cid"], a["validator"])

    def _authored(self, digest: bytes, address: str) -> None:
        self.taking_part.add(address)
        authors = self.authors_of.setdefault(cid_from_digest(digest), [])
        if address not in authors:
            authors.append(address)
