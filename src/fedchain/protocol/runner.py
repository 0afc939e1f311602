"""A node as a long-running process against a live chain.

``NodeRunner`` is what ``fedchain node run`` drives: on start it waits for its
own in-flight transactions to be mined, stakes if asked to, picks the task,
reads the task's recipe from the chain and the blobs, and resumes from its
write-ahead journal; then it polls, stepping its role (``Trainer`` or
``Validator``) and logging what it saw on chain (``Narrator``), until the task
is finished and its rewards are withdrawn. A chain that goes away is waited
for; errors are logged with their reason and the loop goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from fedchain.chain import commitments
from fedchain.chain.deploy import ROLE_TRAINER, ROLE_VALIDATOR, Deployment
from fedchain.chain.layout import FailReason, SlashReason, describe
from fedchain.errors import ChainError, ChainUnavailable, FedchainError, Reverted, StorageError
from fedchain.protocol.endpoints import announce
from fedchain.protocol.node import Node, RoundView, TaskLog
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import Vote
from fedchain.protocol.sponsor import task_recipe
from fedchain.storage.store import BlobStore

ROLE_WATCHER = 0  # no stake: a watcher only observes and challenges
ROLE_NAMES = {ROLE_TRAINER: "trainer", ROLE_VALIDATOR: "validator", ROLE_WATCHER: "watcher"}
TOKEN = 10**18


def tokens(wei: int) -> str:
    return f"{wei / TOKEN:,.4f}".rstrip("0").rstrip(".")


class Quiet:
    """A logger front that says the same thing at most once per ``every`` seconds."""

    def __init__(self, log: logging.Logger, every: float = 15.0):
        self.log, self.every = log, every
        self._last: dict[str, float] = {}

    def __call__(self, level: int, msg: str, *args) -> None:
        text = msg % args if args else msg
        now = time.monotonic()
        if now - self._last.get(text, -1e9) >= self.every:
            self._last[text] = now
            self.log.log(level, "%s", text)


SLASH_ADVICE = {
    SlashReason.MISSING_REVEAL: "keep the node running through the reveal phase; restarted with the same --home, "
    "it reveals from its journal",
    SlashReason.EQUIVOCATION: "never run two nodes with one account",
    SlashReason.REJECTED: "the update failed the validators' checks (the rejection is logged above); check --data "
    "and the recipe",
    SlashReason.WRONG_VOTE: "this validator voted for a result the round proved wrong; run the release every "
    "validator runs",
    SlashReason.ABSENT: "a validator that joins a committee must vote: keep it running through the vote phase",
    SlashReason.WITHHELD: "keep serving blobs (--listen, --public-url reachable by others) until the round's "
    "challenge window ends",
}


class Narrator:
    """Logs what a node sees on chain: rounds opening, phase changes with what
    happened in the last phase, round outcomes, the task finishing."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self._phase: dict[int, str] = {}
        self._outcomes: set[int] = set()
        self._finished = False
        self._slashes = 0  # of the node's own slashes, how many were told

    def report(self, tl: TaskLog, block: int) -> None:
        for r in sorted(tl.rounds):
            v = tl.rounds[r]
            if r not in self._phase:
                self._phase[r] = ""
                if r not in tl.outcome:
                    self.log.info(
                        "task %d round %d opened at block %d: commit until block %d, reveal until %d, "
                        "vote until %d, finalize after %d",
                        tl.task_id,
                        r,
                        v.opened,
                        v.commit_end,
                        v.reveal_end,
                        v.validate_end,
                        v.challenge_end,
                    )
            if r in tl.outcome:
                self._outcome(tl, r)
                continue
            phase = v.phase(block)
            if phase != self._phase[r]:
                self._phase[r] = phase
                self._phase_changed(tl, v, phase, block)
        for e in tl.slashed[self._slashes :]:
            why = SlashReason(e.args["reason"])
            self.log.warning(
                "slashed %s tokens of stake at block %d for %s (reported by %s): %s",
                tokens(e.args["amount"]),
                e.block,
                why.describe(),
                e.args["reporter"],
                SLASH_ADVICE[why],
            )
        self._slashes = len(tl.slashed)
        if tl.finished and not self._finished:
            self._finished = True
            self.log.info("task %d finished", tl.task_id)

    def _phase_changed(self, tl: TaskLog, v: RoundView, phase: str, block: int) -> None:
        r = v.round_id
        seen = {
            "commit": "",
            "reveal": f": {len(tl.commits.get(r, []))} commitments",
            "vote": f": {len(tl.reveals.get(r, []))} updates revealed (at least {tl.config['min_reveals']} needed)",
            "challenge": f": {len(tl.votes.get(r, []))} votes",
            "finalize": f": {len(tl.votes.get(r, []))} votes",
        }[phase]
        if phase != "commit":
            self.log.info("round %d: %s phase from block %d%s", r, phase, block, seen)

    def _outcome(self, tl: TaskLog, r: int) -> None:
        if r in self._outcomes:
            return
        self._outcomes.add(r)
        e = tl.outcome[r]
        if e.name == "RoundFinalized":
            a, vote = e.args, Vote.from_event(e)
            self.log.info(
                "round %d finalized at block %d: model %s, total score %d, %d rejected, "
                "%s tokens for trainers, %s for validators",
                r,
                e.block,
                vote.cid,
                vote.total_score,
                bin(vote.rejected).count("1"),
                tokens(a["trainer_budget"]),
                tokens(a["validator_budget"]),
            )
        else:
            self.log.info(
                "round %d failed at block %d: %s; the next round starts from the last finalized model",
                r,
                e.block,
                describe(FailReason, e.args["reason"]),
            )


def ensure_stake(dep: Deployment, account: LocalAccount, role: int, amount: int, log: logging.Logger) -> None:
    """Bring the account's active stake for ``role`` up to ``amount`` (idempotent: a
    restarted node finds its stake on chain and sends nothing)."""
    fc, token = dep.fedchain, dep.token
    s = fc.call("stakes", account.address)
    if s["role"] not in (0, role):
        raise FedchainError(
            f"{account.address} is staked as a {ROLE_NAMES.get(s['role'], s['role'])}, "
            f"not a {ROLE_NAMES[role]}: use another account"
        )
    need = amount - s["active"]
    if need <= 0:
        log.info("stake: %s tokens active as %s", tokens(s["active"]), ROLE_NAMES[role])
        return
    balance = token.call("balanceOf", account.address)
    if balance < need:
        raise FedchainError(
            f"{account.address} holds {tokens(balance)} tokens but needs {tokens(need)} more to stake "
            f"{tokens(amount)}: ask the token's owner to fund it (`fedchain fund`)"
        )
    if token.call("allowance", account.address, fc.vault.address) < need:
        token.tx("approve", fc.vault.address, need, sender=account)
    fc.tx("stake", role, need, sender=account)
    log.info(
        "stake: staked %s tokens as %s (active stake now %s); it counts from the next round opened",
        tokens(need),
        ROLE_NAMES[role],
        tokens(amount),
    )


class NodeRunner:
    """One node's life against a live chain.

    Parameters
    ----------
    deployment : Deployment
        The contracts, on an ``RpcChain``.
    account : LocalAccount
        The node's key (kept in memory only).
    role : int
        ``ROLE_TRAINER`` or ``ROLE_VALIDATOR``.
    store : BlobStore
        Local store first, then HTTP peers (``MultiStore``).
    make_node : callable
        ``(recipe) -> Node``: builds the role for a task's recipe.
    stake : int
        Active stake to hold (wei); 0 to leave the stake as it is.
    task_id : int, optional
        Follow this task; by default the newest task, then the next ones.
    exit_when_done : bool
        Return once the task is finished and rewards are withdrawn.
    endpoint : str, optional
        This node's blob server URL, announced on chain at start (``protocol.endpoints``).
    """

    def __init__(
        self,
        deployment: Deployment,
        account: LocalAccount,
        role: int,
        store: BlobStore,
        make_node: Callable[[Recipe], Node],
        *,
        stake: int = 0,
        task_id: int | None = None,
        poll: float = 0.2,
        exit_when_done: bool = False,
        endpoint: str | None = None,
        log: logging.Logger | None = None,
    ):
        self.dep = deployment
        self.fc = deployment.fedchain
        self.chain = self.fc.chain
        self.account = account
        self.role = role
        self.store = store
        self.make_node = make_node
        self.stake = stake
        self.task_id = task_id
        self.poll = poll
        self.exit_when_done = exit_when_done
        self.endpoint = endpoint
        self.log = log or logging.getLogger(f"fedchain.{ROLE_NAMES[role]}")
        self.quiet = Quiet(self.log)
        self._down_since: float | None = None
        self._last_task: int | None = None
        self._last_bug = ""

    # -- the loop

    def run(self, stop: threading.Event) -> None:
        self.log.info(
            "%s %s on chain %d, contract %s",
            ROLE_NAMES[self.role],
            self.account.address,
            self.chain.chain_id,
            self.fc.address,
        )
        self._retry(stop, self._settle)
        if self.endpoint is not None:
            self._retry(stop, self._announce)
        if self.stake:
            self._retry(stop, lambda: ensure_stake(self.dep, self.account, self.role, self.stake, self.log))
        while not stop.is_set():
            task_id = self._retry(stop, lambda: self._pick_task(stop))
            if task_id is None:
                return
            self._run_task(task_id, stop)
            if self.exit_when_done:
                return
            if self.task_id is not None:
                self.log.info("serving blobs until stopped")
                stop.wait()

    def _run_task(self, task_id: int, stop: threading.Event) -> None:
        recipe = self._retry(stop, lambda: task_recipe(self.fc, self.store, task_id))
        if recipe is None:
            return
        self.log.info(
            "task %d: model %s on %s, rule %s, %d local epochs",
            task_id,
            recipe.model,
            recipe.dataset,
            recipe.rule,
            recipe.epochs,
        )
        node = self.make_node(recipe)
        self._retry(stop, lambda: node.resume(task_id))
        kind = "commit" if self.role == ROLE_TRAINER else "vote"
        journalled = [e["round"] for e in node.journal.entries(kind, task_id)]
        if journalled:
            self.log.info(
                "resumed from the journal: %ss for rounds %s of task %d (re-sent only if the chain "
                "lacks them, never changed)",
                kind,
                journalled,
                task_id,
            )
        narrator = Narrator(self.log)
        announced: set[int] = set()
        while not stop.is_set():
            done = self._attempt(lambda: self._tick(node, task_id, narrator, announced))
            if done:
                self.log.info(
                    "task %d: done; %s tokens of rewards claimed this run, gas used %d",
                    task_id,
                    tokens(getattr(node, "rewards", 0)),
                    node.gas_used,
                )
                return
            stop.wait(self.poll)

    def _tick(self, node: Node, task_id: int, narrator: Narrator, announced: set[int]) -> bool:
        tl = node.task(task_id)  # first say what is on chain, then act on it
        narrator.report(tl, self.chain.block_number())
        if tl.rounds and not tl.finished:
            v = tl.current
            if v.round_id not in announced and v.round_id not in tl.outcome and self.role != ROLE_WATCHER:
                if self._selection(node, tl, v):
                    announced.add(v.round_id)
        node.step(task_id)
        if tl.finished and node.outstanding_claims(task_id) == 0:
            node.withdraw()
            return True
        return False

    def _selection(self, node: Node, tl: TaskLog, v: RoundView) -> bool:
        """Say whether this node is selected for the round, and why not; False while the
        round's seed cannot be read yet (in its opening block)."""
        weight = node.weight(self.role, v)
        if weight == 0:
            self.log.info(
                "round %d: not eligible (stake below the minimum, staked as another role, or added "
                "at or after the round opened at block %d)",
                v.round_id,
                v.opened,
            )
            return True
        total = v.trainer_total if self.role == ROLE_TRAINER else v.validator_total
        k = tl.config["trainers_per_round" if self.role == ROLE_TRAINER else "validators_per_round"]
        seed = node.round_seed(v)
        if seed is None:
            return False
        chosen = commitments.is_selected(seed, node.address, weight, total, k)
        self.log.info(
            "round %d: %s by sortition (stake %s of %s, expected committee %d)",
            v.round_id,
            "selected" if chosen else "not selected",
            tokens(weight),
            tokens(total),
            k,
        )
        return True

    # -- startup

    def _settle(self) -> None:
        settle = getattr(self.chain, "settle", None)
        if settle is not None and not settle(self.account.address):
            raise ChainError("transactions sent before the restart are still pending")

    def _announce(self) -> None:
        """Put this node's blob URL on chain, where nodes on other machines look for it."""
        if self.dep.endpoints is None:
            self.log.warning(
                "this deployment has no endpoints contract: other machines find this node only "
                "through their --peer options or peers files"
            )
            return
        announce(self.dep.endpoints, self.account, self.endpoint or "", self.log)

    def _pick_task(self, stop: threading.Event) -> int | None:
        """The task to follow: ``task_id``, or the newest unfinished one (waiting for one to appear)."""
        waiting = False
        while not stop.is_set():
            nxt = self.fc.call("next_task_id")
            if self.task_id is not None:
                if self.task_id < nxt:
                    return self.task_id
            else:
                newest = nxt - 1
                if newest >= 1 and newest != self._last_task:
                    self._last_task = newest
                    return newest
            if not waiting:
                self.log.info("waiting for %s to be created", f"task {self.task_id}" if self.task_id else "a new task")
                waiting = True
            stop.wait(max(self.poll, 1.0))
        return None

    # -- errors

    def _retry(self, stop: threading.Event, fn: Callable):
        """Call ``fn`` until it succeeds or the node is stopped (then None)."""
        while not stop.is_set():
            ok, value = self._attempt_value(fn)
            if ok:
                return value
            stop.wait(1.0)
        return None

    def _attempt(self, fn: Callable[[], bool]) -> bool:
        ok, value = self._attempt_value(fn)
        return bool(ok and value)

    def _attempt_value(self, fn: Callable) -> tuple[bool, object]:
        try:
            value = fn()
        except ChainUnavailable as e:
            if self._down_since is None:
                self._down_since = time.monotonic()
                self.log.warning("chain unreachable (%s): waiting for it to come back", e)
            time.sleep(min(2.0, 0.2 + (time.monotonic() - self._down_since) / 10))
            return False, None
        except Reverted as e:
            self.quiet(logging.WARNING, "transaction refused: %s", e)
            return False, None
        except StorageError as e:
            self.quiet(logging.WARNING, "blob not available yet: %s", e)
            return False, None
        except FedchainError as e:
            self.quiet(logging.ERROR, "%s: %s", type(e).__name__, e)
            return False, None
        except Exception as e:  # a bug: say so (the traceback once), keep the node alive
            if repr(e) != self._last_bug:
                self._last_bug = repr(e)
                self.log.exception("unexpected error; continuing")
            else:
                self.quiet(logging.ERROR, "unexpected error again: %r", e)
            time.sleep(1.0)
            return False, None
        if self._down_since is not None:
            self.log.info("chain reachable again after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
        return True, value
