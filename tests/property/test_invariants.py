"""Stateful property test of the fedchain contracts: a hypothesis state machine
drives random sequences of every user action against a fresh EmbeddedChain
(fedchain, its slashing, challenges and availability contracts) and keeps a
ghost model (stakes, balances, pools, rounds, seats, votes, claims, payouts,
slashes, burned stake, forfeited bonds and availability requests).

Every action's outcome is predicted by the ghost model first: it must succeed,
or revert with exactly the reason the model names. After every step:

- token conservation to the wei: fedchain's balance == stakes + unbonding +
  pools + owed (unclaimed budgets plus payouts) + burned slashes, the challenges
  contract's balance == its forfeited bonds, the availability game's == its
  held bonds (those of its open requests), every total
  as the ghost model has it, and the ghost model equals the contract's state;
- no double claim: a successful claim is immediately retried and must revert,
  and what a round paid never exceeds its trainer or validator budget; no
  double slash either: a successful report is sent again by someone else and
  must revert with "slashing: already slashed";
- honest nodes are never slashed: no ``Slashed`` event names them and their
  stake changes only by their own stake/unbond/withdraw calls. An honest
  trainer reveals what it committed as soon as its reveal phase opens; an
  honest validator that joined a committee votes the correct result as soon as
  the vote phase opens (every rule that mines blocks stops there on the way);
- no stake leaves before its faults can be punished (SECURITY-REVIEW M-2):
  stake that backed a role in a round (a commitment, a committee seat) is
  released only after every fault it could be slashed for in that round
  (missing reveal, rejected update, absent member, wrong vote) has been
  provable for at least the deployment's slash grace; each fault's first
  provable block is the one the slashing contract's revert strings are
  checked against (a rejected update's is the end of the challenge window:
  ``slash_rejected_before_finalize``, no ``finalize`` needed); and where the
  watcher is vigilant, no withdrawal takes stake whose fault is not slashed yet.
  An availability request defers a round's end (its finalize, its rejected set,
  its revert) by up to ``answer_blocks`` past the window: what it defers must
  stay provable for the slash grace less ``answer_blocks``.

Dishonest nodes commit without revealing, commit updates the validators reject,
join a committee and stay silent, equivocate, or collude on a wrong result (a
scores tree with a phantom leaf, or a total that its leaves do not sum to:
both provable with ``challenge_total``; or a model they withhold, which only the
availability game reverts; tasks name rule 0 or Krum, whose models this machine
never recomputes, so the model root is never challenged). A watcher
challenges a provably wrong leading vote after the vote phase and reports every
slashable fault once per round; every other rule interleaves anywhere.

The availability game (availability.vy) runs on real trees: every model and
update is a fixed-point vector (one to five chunks; a Krum task's all of one
shape, its votes committing to the distance table of the updates they accept),
and answers are built by the protocol's own ``vector_node`` and ``table_node``.
Anyone requests nodes of the leading vote's model, of an accepted update or of
its table, in the window or not, refused for every reason the contract has
(the 64-request cap included); anyone answers, right or wrong (forged data,
malformed nodes, another opening, another function), and wrong answers revert;
honest nodes answer every request for data they hold in its last block (the
correct result's validators hold all of it, a trainer its update), so a round
they vote for is never reverted; colluders that hide their model answer
nothing, and the watcher, who requests the root of a model nobody published
(or spot-checks one node of another), settles past the deadline: the round is
reverted, the requester its challenger, its voters slashed. ``finalize`` and
``slash_rejected_before_finalize`` must refuse while a request is open. Random
rules alone rarely line up a whole round inside one example, so an
``honest_network`` rule plays the honest nodes' part of one to eight phases
(commit and join, watch the challenge window, finalize or advance, claim),
moving to the next phase each time; and a vigilant watcher (drawn once per
example) acts at every deadline as honest nodes do.

Effort comes from the environment:

- ``FEDCHAIN_HYPOTHESIS_PROFILE``: ``default`` (30 examples x 50 steps, about a
  minute on two cores) or ``ci`` (200 examples x 50 steps, several minutes);
- ``FEDCHAIN_MAX_EXAMPLES`` / ``FEDCHAIN_STEPS`` override either number.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np
from eth_abi import encode
from eth_utils import keccak
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conftest import (
    BALANCE,
    MAX_UINT,
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    STAKE,
    TOKEN,
    ZERO32,
    Result,
    Scores,
    deterministic,
    h32,
    make_net,
)
from fedchain.chain import commitments as cm
from fedchain.chain.deploy import ProtocolParams
from fedchain.chain.embedded import EmbeddedChain, block_hash
from fedchain.errors import Reverted
from fedchain.learning import fixedpoint as fp
from fedchain.protocol.availability import (
    KIND_MODEL,
    KIND_TABLE,
    KIND_UPDATE,
    NO_OPENING,
    request_id,
    table_node,
    vector_node,
)
from fedchain.protocol.challenge import commit
from fedchain.protocol.distances import DistanceTable, combined_scores_root

PROFILES = {"default": (30, 50), "ci": (200, 50)}  # (max_examples, stateful_step_count)
PROFILE = os.environ.get("FEDCHAIN_HYPOTHESIS_PROFILE", "default")
MAX_EXAMPLES = int(os.environ.get("FEDCHAIN_MAX_EXAMPLES", PROFILES[PROFILE][0]))
STEPS = int(os.environ.get("FEDCHAIN_STEPS", PROFILES[PROFILE][1]))

# A short unbonding delay, so that withdrawals happen: longer than every round a
# task may have (<= 16 blocks) plus a slash grace of 3 blocks (the generated
# rounds reach 17 blocks: create_task must refuse those); the availability
# game's answer time must be shorter than the grace. A least challenge window of
# 3 blocks, below the default, so that windows of 1 and 2 blocks are generated
# and refused too.
PARAMS = ProtocolParams(unbonding_delay=20, slash_grace=3, answer_blocks=2, min_challenge_blocks=3)
BPS = 10_000
MAX_COMMITS = 256  # commitments a round accepts
SLASHED = 2**253  # a record's slashed flag: one per address and round, whatever the fault
OPEN, FINALIZED, FAILED = 0, 1, 2
FAIL_TOO_FEW_REVEALS, FAIL_NO_QUORUM, FAIL_CHALLENGED = 1, 2, 3
NOBODY = "0x" + "00" * 20
TASK_FUNCTIONS = {
    "commit",
    "reveal",
    "join",
    "vote",
    "finalize",
    "advance",
    "claim",
    "claim_validator",
    "slash_missing_reveal",
    "slash_rejected",
    "slash_rejected_before_finalize",
    "slash_absent",
    "slash_wrong_vote",
    "reclaim",
    "challenge_total",
    "request",
}  # their first argument is a task id
# A task names rule 0 (its model is not recomputable on chain; its scores tree
# and total are: challenge_total) or Krum (rule 4: its votes also commit to a
# distance table, which the availability game can be asked for); the preimages
# of their recipe hashes:
RECIPE = (0, 0, 0, 0, keccak(b"recipe"))
KRUM = (4, 0, 1, 1, keccak(b"recipe"))
KRUM_SIZE = 3 * fp.CHUNK_SIZE - 5  # a Krum task's models and updates: one shape (a table of depth 2)


def recipe_hash(recipe: tuple) -> bytes:
    return keccak(encode(["uint256"] * 4 + ["bytes32"], list(recipe)))


NO_VOTE = Result(h32("model"), h32("model-cid"), Scores((), ()))  # a vote nobody cast
MAX_REQUESTS = 64  # availability requests a round takes
KIND_NAMES = {KIND_MODEL: "model", KIND_UPDATE: "update", KIND_TABLE: "table"}
MAX_LEVEL = 20  # the deepest node a request may name
CHUNK = fp.CHUNK_SIZE


@functools.cache
def vector(*name, size: int | None = None) -> np.ndarray:
    """The fixed-point vector (a model or an update) named by ``name``: ``size`` values,
    or one to five chunks, the last one partial, so chunk trees of depth 0 to 3 with
    padding leaves."""
    rng = np.random.default_rng(int.from_bytes(h32("vector", *name)[:8], "big"))
    size = size or CHUNK * int(rng.integers(1, 6)) - int(rng.integers(0, CHUNK))
    return rng.integers(-(2**20), 2**20, size)


@functools.cache
def vector_root(*name, size: int | None = None) -> bytes:
    return fp.vector_root(vector(*name, size=size), CHUNK)


def tree_depth(q: np.ndarray) -> int:
    return (len(fp.chunks(q, CHUNK)) - 1).bit_length()


picks = st.integers(0, 15)  # an index into whatever list the rule picks from
masks = st.integers(1, 255)  # a subset of the eight nodes


@dataclass(frozen=True)
class Vote(Result):
    """A vote: with ``extra``, one whose total score is not what its scores tree's leaves
    sum to; with ``table_root``, a Krum-rule vote's, whose scores root is keccak(scores
    tree root ++ distance table root)."""

    extra: int = 0
    table_root: bytes = b""

    @property
    def args(self) -> tuple:
        root, cid, scores_root, total, rejected = super().args
        if self.table_root:
            scores_root = combined_scores_root(scores_root, self.table_root)
        return root, cid, scores_root, total + self.extra, rejected


@dataclass
class GRequest:
    """An availability request: a node (level, position) of a tree the leading vote rests on."""

    requester: str
    tid: int
    r: int
    kind: int
    index: int
    level: int
    position: int
    deadline: int  # the last block an answer is due in
    leader: bytes
    correct: bool  # the leader is the round's correct result
    open: bool = True
    closed_at: int | None = None  # block of its answer or settle

    @property
    def resolved_by(self) -> int:
        """The block by which it no longer holds the round up: its answer, or the first
        block anyone may settle it (a watcher does, reverting the round)."""
        return min(self.closed_at or self.deadline + 1, self.deadline + 1)


@dataclass
class GStake:
    role: int = 0
    active: int = 0
    unbonding: int = 0
    release: int = 0
    since: int = 0


@dataclass
class GRound:
    opened: int
    commit_end: int
    reveal_end: int
    validate_end: int
    seed: bytes  # the contract's once drawn (from the opening block's hash)
    trainer_total: int
    validator_total: int
    drawn: bool = False  # the first commit or join stored the seed
    commits: dict = field(default_factory=dict)  # node -> Update
    reveals: list = field(default_factory=list)  # nodes in reveal order
    samples: dict = field(default_factory=dict)  # node -> samples
    bad: set = field(default_factory=set)  # revealers whose update the correct result rejects
    since: dict = field(default_factory=dict)  # node -> block of its commitment or join
    weights: dict = field(default_factory=dict)  # validator -> committee seats (basis points)
    votes: dict = field(default_factory=dict)  # validator -> vote hash
    tally: dict = field(default_factory=dict)  # vote hash -> seats
    equivocated: set = field(default_factory=set)
    slashed: set = field(default_factory=set)  # any penalty of the address in this round
    claimed: set = field(default_factory=set)
    vclaimed: set = field(default_factory=set)
    leader: bytes | None = None
    status: int = OPEN
    result: Result | None = None
    challenger: str | None = None
    closed_at: int | None = None  # block of its finalize, advance or revert
    reverted_from: int | None = None  # an unanswered request's: the first block it could be settled
    requests: list = field(default_factory=list)  # GRequest, in order
    trainer_budget: int = 0
    validator_budget: int = 0
    majority: int = 0
    paid_trainers: int = 0
    paid_validators: int = 0

    @property
    def committee_seats(self) -> int:
        return sum(self.weights.values())

    @property
    def open_requests(self) -> list:
        return [q for q in self.requests if q.open]

    @property
    def requests_end(self) -> int:
        """The last block a request holds the round up to (0: none ever made)."""
        return max((q.resolved_by for q in self.requests), default=0)


@dataclass
class GTask:
    sponsor: str
    cfg: dict
    pool: int
    recipe: tuple = RECIPE
    round: int = 0
    finished: bool = False
    rounds: list = field(default_factory=list)

    @property
    def size(self) -> int | None:
        """Its vectors' length: fixed for a Krum task (its distance table needs one shape)."""
        return KRUM_SIZE if self.recipe == KRUM else None


class FedchainMachine(RuleBasedStateMachine):
    """Random protocol traffic against one deployment, checked against a ghost model."""

    def __init__(self):
        super().__init__()
        self.net = make_net(deterministic(EmbeddedChain()), PARAMS, trainers=4, validators=3, outsiders=3)
        net = self.net
        self.fc, self.slashing, self.challenges, self.chain = net.fc, net.slashing, net.challenges, net.chain
        self.availability = net.availability
        assert self.fc.call("min_challenge_blocks") == PARAMS.min_challenge_blocks
        assert self.fc.call("slash_grace") == PARAMS.slash_grace
        assert self.challenges.call("bond") == PARAMS.challenge_bond
        self.sponsors = [net.owner, net.outsiders[0]]
        self.reporter = net.outsiders[1]  # the watcher: reports faults, challenges provably wrong results
        self.nodes = [*net.trainers, *net.validators, net.outsiders[2]]  # the last one starts unstaked
        # Unequal validator stakes (300, 100, 100): seats above one, and committees
        # whose seats fall short of the k/3 floor (a small validator alone when k >= 5).
        self.fc.tx("stake", ROLE_VALIDATOR, 2 * STAKE, sender=net.validators[0])
        self.chain.mine(1)
        self.accounts = [net.owner, *net.outsiders, *net.trainers, *net.validators]
        for a in self.accounts:  # anyone may challenge or request: every account can post a bond
            net.token.tx("approve", self.challenges.address, MAX_UINT, sender=a)
            net.token.tx("approve", self.availability.address, MAX_UINT, sender=a)
        self.stakes = {
            a.address: GStake(
                **dict(zip(["role", "active", "unbonding", "release", "since"], net.stake_of(a).values()))
            )
            for a in self.nodes
        }
        self.balances = {a.address: net.balance(a) for a in self.accounts}
        self.payouts = {a.address: 0 for a in self.accounts}
        self.unclaimed = 0
        self.burned = 0
        self.forfeited = 0
        self.requests: dict[bytes, GRequest] = {}  # request id -> request
        self.held = 0  # the bonds of open requests
        self.models: dict[bytes, tuple] = {}  # model root -> (name, size) of its vector (a model someone holds)
        self.tables: dict[tuple, DistanceTable] = {}  # (task, round, reveals) -> the correct result's table
        self.next_task_id = 1
        self.tasks: dict[int, GTask] = {}
        self.honest = {a.address for a in self.nodes}
        self.slashed_total = {a.address: 0 for a in self.nodes}
        self.pending: list[tuple[int, int, object]] = []  # honest commitments awaiting their reveal
        # committee members awaiting the vote phase, and what they will vote: the correct
        # result (None: honest) or a wrong one (colluders: "phantom", "inflated")
        self.pending_votes: list[tuple[int, int, object, str | None]] = []
        self.results: dict[bytes, Result] = {}  # vote hash -> the result it stands for
        self.watched: set[tuple[int, int, str]] = set()  # (task, round, duty) the watcher has done
        self.vigilant = False  # whether the watcher acts at every deadline (see a_watcher)
        self.flooding = False  # whether a flood is still to come (see a_watcher; one an example at most)
        self.watching = False  # inside the watcher's turn (it mines the block between commit and challenge)
        self.dirty_accounts: set[str] = set()  # touched since the last invariant check
        self.dirty_tasks: set[int] = set()

    # ------------------------------------------------------------ plumbing

    @property
    def block(self) -> int:
        return self.chain.block_number()

    def _send(self, expected: str | None, fn: str, *args, sender, to=None):
        """Send ``fn`` to ``to`` (default fedchain): it must succeed if ``expected`` is
        None, else revert with that reason."""
        try:
            r = (to or self.fc).tx(fn, *args, sender=sender)
        except Reverted as e:
            assert expected is not None, f"{fn}{args} reverted with {e.reason!r}, model expected success"
            assert e.reason == expected, f"{fn} reverted with {e.reason!r}, model expected {expected!r}"
            return None
        assert expected is None, f"{fn}{args} succeeded, model expected revert {expected!r}"
        self.dirty_accounts.add(sender.address)
        self.dirty_accounts.update(a for a in args if isinstance(a, str) and a.startswith("0x"))
        if fn in TASK_FUNCTIONS:
            self.dirty_tasks.add(args[0])
        for e in r.events:
            if e.name == "Slashed":
                assert e.args["node"] not in self.honest, f"honest node slashed: {e.args}"
        return r

    def _target(self, i: int, j: int, r: int, wanted) -> tuple[int, int, object]:
        """(task, round, node): the i-th of the nodes ``wanted(round)`` names across all
        rounds if there are that many, else an arbitrary (maybe absent) task and round."""
        triples = [(tid, k, a) for tid, t in self.tasks.items() for k, R in enumerate(t.rounds) for a in wanted(R)]
        if i < len(triples):
            tid, r, a = triples[i]
            return tid, r, self._node(a)
        tid = self._task(j)[0]
        return tid, r, self.nodes[i % len(self.nodes)]

    def _any_round(self, ready, every: bool = False) -> bool:
        """Whether a task's current round (or with ``every``, any round) satisfies ``ready``."""
        return any(ready(t, R) for t in self.tasks.values() for R in (t.rounds if every else t.rounds[-1:]))

    def _voting(self, t: GTask, R: GRound) -> bool:
        return R.reveal_end < self.block <= R.validate_end and R.status == OPEN

    def _masked(self, mask: int) -> list:
        return [n for k, n in enumerate(self.nodes) if mask >> k & 1]

    def _task(self, i: int, ready=None) -> tuple[int, GTask]:
        """The i-th task, newest first, among those whose current round satisfies
        ``ready(task, round)`` if any does (so that rules act where they can), else of all."""
        ids = sorted(self.tasks, reverse=True)
        if ready is not None:
            ids = [tid for tid in ids if ready(self.tasks[tid], self.tasks[tid].rounds[self.tasks[tid].round])] or ids
        tid = ids[i % len(ids)]
        return tid, self.tasks[tid]

    def _round(self, tid: int, r: int) -> GRound | None:
        t = self.tasks.get(tid)
        return t.rounds[r] if t and r < len(t.rounds) else None

    def _node(self, address: str):
        return next(n for n in self.nodes if n.address == address)

    def _weight(self, node: str, role: int, opened: int) -> int:
        s = self.stakes[node]
        if s.role != role or s.since >= opened or s.active < PARAMS.min_stake:
            return 0
        return s.active

    @staticmethod
    def _seats(weight: int, total: int, k: int) -> int:
        """The seats (basis points) a selected weight stands for: max(1, k * w / T)."""
        return max(BPS, k * weight * BPS // total)

    def _quorum(self, t: GTask, R: GRound, tally: int) -> bool:
        """2/3 of the committee's seats, and of at least k/3 seats."""
        return 3 * tally >= 2 * max(R.committee_seats, t.cfg["validators_per_round"] * BPS // 3)

    def _selected(self, tid: int, r: int, node: str, role: int) -> bool:
        t, R = self.tasks[tid], self.tasks[tid].rounds[r]
        k, total = (
            (t.cfg["trainers_per_round"], R.trainer_total)
            if role == ROLE_TRAINER
            else (t.cfg["validators_per_round"], R.validator_total)
        )
        twin = self._seed_error(R) is None and cm.is_selected(
            R.seed, node, self._weight(node, role, R.opened), total, k
        )
        assert self.fc.call("is_selected", tid, r, node, role) == twin
        return twin

    def _seed_error(self, R: GRound) -> str | None:
        """Why a commit or join cannot draw the round's seed now (M-4), if it cannot: it is
        the opening block's hash, readable from the next block for 256 blocks."""
        if R.drawn:
            return None
        if self.block <= R.opened:
            return "rounds: seed not drawn yet"
        return "rounds: seed expired" if self.block > R.opened + 256 else None

    def _drew(self, tid: int, r: int, R: GRound, receipt) -> None:
        drawn = [e.args for e in receipt.events if e.name == "SeedDrawn"]
        assert drawn == ([] if R.drawn else [{"task_id": tid, "round_id": r, "seed": R.seed}])
        R.drawn = True

    def _total_active(self, role: int) -> int:
        return sum(s.active for s in self.stakes.values() if s.role == role)

    def _open_round(self, tid: int, receipt) -> None:
        t = self.tasks[tid]
        ev = next(e for e in receipt.events if e.name == "RoundOpened").args
        b, c = receipt.block, t.cfg
        assert (ev["task_id"], ev["round_id"]) == (tid, t.round) and t.round == len(t.rounds)
        commit_end = b + c["commit_blocks"]
        reveal_end = commit_end + c["reveal_blocks"]
        validate_end = reveal_end + c["validate_blocks"]
        assert (ev["commit_end"], ev["reveal_end"], ev["validate_end"]) == (commit_end, reveal_end, validate_end)
        t.rounds.append(
            GRound(
                b,
                commit_end,
                reveal_end,
                validate_end,
                cm.round_seed(tid, t.round, block_hash(b)),
                self._total_active(ROLE_TRAINER),
                self._total_active(ROLE_VALIDATOR),
            )
        )

    def _next_round(self, tid: int, receipt) -> None:
        t = self.tasks[tid]
        t.rounds[t.round].closed_at = receipt.block
        if t.round + 1 >= t.cfg["num_rounds"]:
            t.finished = True
            return
        t.round += 1
        self._open_round(tid, receipt)

    def _window_end(self, t: GTask, R: GRound) -> int:
        return R.validate_end + t.cfg["challenge_blocks"]

    def _slash(self, node: str, amount: int, reporter: str | None) -> None:
        """Take up to ``amount`` (active stake first): the reporter's share to its
        payouts, the rest burned. Never to a pool (SECURITY-REVIEW M-5)."""
        s = self.stakes[node]
        taken = min(amount, s.active)
        s.active -= taken
        rest = min(amount - taken, s.unbonding)
        s.unbonding -= rest
        share = (taken + rest) * PARAMS.reporter_bps // BPS if reporter else 0
        if reporter:
            self.payouts[reporter] += share
        self.burned += taken + rest - share
        self.slashed_total[node] += taken + rest

    def _safety_penalty(self, node: str) -> int:
        s = self.stakes[node]
        return (s.active + s.unbonding) * PARAMS.safety_penalty_bps // BPS

    def _correct_result(self, tid: int, r: int, tag: str = "") -> Vote:
        """What honest validators vote: one leaf per reveal in reveal order, 0 for the
        updates they reject (and those only); in a Krum task, with the distance table of
        the updates it accepts."""
        t = self.tasks[tid]
        R = t.rounds[r]
        scores = Scores(
            tuple(R.reveals), tuple(0 if a in R.bad else (tid + r + int(a, 16)) % 3 for a in R.reveals)
        )  # 0 happens
        rejected = sum(1 << i for i, a in enumerate(R.reveals) if a in R.bad)
        root = vector_root("model", tid, r, tag, size=t.size)  # a real chunk tree: its holders can answer requests
        self.models[root] = (("model", tid, r, tag), t.size)
        table = self._table(tid, r).root if t.recipe == KRUM else b""
        return Vote(root, h32("model-cid", tid, r, tag), scores, rejected, table_root=table)

    def _table(self, tid: int, r: int) -> DistanceTable:
        """A Krum round's distance table over the updates the correct result accepts."""
        R = self.tasks[tid].rounds[r]
        key = (tid, r, len(R.reveals))
        if key not in self.tables:
            self.tables[key] = DistanceTable.of_round(
                [None if a in R.bad else vector("update", tid, r, a, size=KRUM_SIZE) for a in R.reveals],
                KRUM_SIZE,
                CHUNK,
            )
        return self.tables[key]

    def _wrong_result(self, tid: int, r: int, kind: str) -> Result:
        """A result colluders vote for: the correct one with a phantom leaf (one leaf more
        than the round's reveals) or with a total its leaves do not sum to, or (hidden) the
        correct scores with a model nobody holds a tree for: no challenge proves it wrong,
        only an unanswered availability request reverts it."""
        good = self._correct_result(tid, r, tag=kind)
        if kind == "hidden":  # a Krum vote's table too
            return Vote(
                h32("hidden model", tid, r),
                good.model_cid,
                good.scores,
                good.rejected,
                table_root=good.table_root and h32("hidden table", tid, r),
            )
        if kind == "phantom":
            s = good.scores
            return Vote(
                good.model_root,
                good.model_cid,
                Scores((*s.nodes, self.net.owner.address), (*s.scores, 1)),
                good.rejected,
                table_root=good.table_root,
            )
        return Vote(good.model_root, good.model_cid, good.scores, good.rejected, extra=1, table_root=good.table_root)

    @staticmethod
    def _provably_wrong(R: GRound, result: Result) -> bool:
        """What challenge_total proves: not one leaf per reveal, or leaves that do not sum to the total."""
        return len(result.scores.nodes) != len(R.reveals) or result.scores.total != result.args[3]

    def _exempt(self, t: GTask, R: GRound) -> bool:
        """A round whose silent members cannot be slashed: too few reveals (known once the
        reveal phase is over), or a challenger reverted it."""
        return R.challenger is not None or (self.block > R.reveal_end and len(R.reveals) < t.cfg["min_reveals"])

    def _reveal_pending(self) -> None:
        """Honest trainers reveal as soon as their reveal phase is open."""
        keep = []
        for tid, r, node in self.pending:
            R = self.tasks[tid].rounds[r]
            if R.commit_end < self.block <= R.reveal_end:
                upd = R.commits[node.address]
                self._send(None, "reveal", tid, r, upd.root, upd.cid, upd.samples, upd.salt, sender=node)
                R.samples[node.address] = upd.samples
                R.reveals.append(node.address)
            else:
                assert self.block <= R.commit_end, "an honest reveal was skipped"
                keep.append((tid, r, node))
        self.pending = keep

    def _vote_pending(self) -> None:
        """Honest committee members vote the correct result as soon as the vote phase is
        open; colluders vote theirs then too, in the order they joined."""
        keep = []
        for tid, r, node, plan in self.pending_votes:
            R = self.tasks[tid].rounds[r]
            if R.reveal_end < self.block <= R.validate_end:
                result = self._wrong_result(tid, r, plan) if plan else self._correct_result(tid, r)
                assert self._vote(tid, r, node, result, honest=plan is None), "a first vote was refused"
            else:
                assert self.block <= R.reveal_end, "a first vote was skipped"
                keep.append((tid, r, node, plan))
        self.pending_votes = keep

    # ------------------------------------------------------------ staking

    @rule(
        i=picks,
        role=st.sampled_from([ROLE_TRAINER, ROLE_VALIDATOR]),
        amount=st.sampled_from([0, 1, STAKE // 2, STAKE, 3 * STAKE]),
    )
    def stake(self, i, role, amount):
        node = self.nodes[i % len(self.nodes)]
        s = self.stakes[node.address]
        expected = (
            "staking: role mismatch"
            if s.role not in (0, role)
            else "staking: zero amount"
            if amount == 0
            else "staking: below minimum stake"
            if s.active + amount < PARAMS.min_stake
            else "erc20: transfer amount exceeds balance"
            if self.balances[node.address] < amount
            else None
        )
        r = self._send(expected, "stake", role, amount, sender=node)
        if r:
            s.role, s.active, s.since = role, s.active + amount, r.block
            self.balances[node.address] -= amount

    @rule(i=picks, how=st.sampled_from(["all", "half", "min", 0, 1]))
    def unbond(self, i, how):
        node = self.nodes[i % len(self.nodes)]
        s = self.stakes[node.address]
        amount = {"all": s.active, "half": s.active // 2, "min": PARAMS.min_stake}.get(how, how)
        remaining = s.active - amount
        expected = (
            "staking: zero amount"
            if amount == 0
            else "staking: amount exceeds active stake"
            if amount > s.active
            else "staking: below minimum stake"
            if 0 < remaining < PARAMS.min_stake
            else None
        )
        r = self._send(expected, "unbond", amount, sender=node)
        if r:
            s.active, s.unbonding, s.release = remaining, s.unbonding + amount, r.block + PARAMS.unbonding_delay

    @precondition(lambda self: any(s.unbonding for s in self.stakes.values()))
    @rule(i=picks)
    def withdraw(self, i):
        """A node withdraws, preferably one with stake unbonding; what it takes out must
        have outlived every fault it backed (see ``_check_release``), and with a
        vigilant watcher every such fault must have been slashed already."""
        unbonding = [n for n in self.nodes if self.stakes[n.address].unbonding] or self.nodes
        node = unbonding[i % len(unbonding)]
        s = self.stakes[node.address]
        expected = (
            "staking: nothing unbonding"
            if s.unbonding == 0
            else "staking: still unbonding"
            if self.block < s.release
            else None
        )
        if expected is None:
            self._check_release(node.address, s.release)
            if self.vigilant:  # then every fault the stake backed was slashed in time
                backed = s.release - PARAMS.unbonding_delay
                left = [f for f in self._pending_faults(node.address) if f[1] <= backed]
                assert not left, f"{node.address} withdraws stake that unslashed faults need: {left}"
        if self._send(expected, "withdraw", sender=node):
            self.balances[node.address] += s.unbonding
            s.unbonding = 0
            if s.active == 0:
                s.role = 0

    def _pending_faults(self, a: str) -> list[tuple[str, int, int, int]]:
        """(fault, block the node took its role in the round, the first block the slashing
        contract accepts its report, or the latest it may, the blocks it must stay
        provable before the stake's release) for every fault of ``a`` not yet slashed,
        and every one it may still commit: an unrevealed commitment, an update the
        leading vote rejects, a silent seat, a vote the window (or an availability
        request) may still prove wrong. A request defers a round's end by up to
        answer_blocks past its window, which the slash grace covers: what it defers
        stays provable for slash_grace - answer_blocks (availability.vy's design)."""
        out = []
        short = PARAMS.slash_grace - PARAMS.answer_blocks
        for t in self.tasks.values():
            for R in t.rounds:
                if a in R.slashed or a not in R.since:
                    continue
                since, window_end = R.since[a], self._window_end(t, R)
                if a in R.commits and a not in R.reveals:
                    out.append(("missing reveal", since, R.reveal_end + 1, PARAMS.slash_grace))
                elif a in R.commits and self._rejected(t, R, a):
                    end = max(window_end + 1, R.requests_end)
                    out.append(("rejected update", since, end, PARAMS.slash_grace if end == window_end + 1 else short))
                if a in R.weights and a in R.votes:
                    if R.challenger is not None and R.votes[a] == R.leader:
                        out.append(
                            ("wrong vote", since, R.closed_at, PARAMS.slash_grace)
                            if R.reverted_from is None
                            else ("wrong vote", since, R.reverted_from, short)
                        )
                    elif R.status == OPEN and (self.block <= window_end or R.open_requests):
                        end = max(window_end, R.requests_end)
                        out.append(("wrong vote", since, end, PARAMS.slash_grace if end == window_end else short))
                elif a in R.weights and a not in R.equivocated and not self._exempt(t, R):
                    out.append(("absent", since, R.validate_end + 1, PARAMS.slash_grace))
        return out

    def _rejected(self, t: GTask, R: GRound, a: str) -> bool:
        """Whether ``a``'s revealed update is, or may still be, slashable as rejected."""
        if R.status == OPEN and (self.block <= self._window_end(t, R) or R.open_requests):
            return a in R.bad  # every vote cast rejects exactly these
        if not self._rejected_final(t, R):
            return False  # failed, or will fail: no rejected set counts
        return bool((R.result or self.results[R.leader]).args[4] >> R.reveals.index(a) & 1)

    def _check_release(self, a: str, release: int) -> None:
        """Stake queued for release at ``release`` was still active when the node took a
        role in a round iff its last unbond came at or after that block; then every fault
        of that round must have been provable for the slash grace before ``release``, so
        that a watcher can slash it before any withdrawal (SECURITY-REVIEW M-2)."""
        unbonded_at = release - PARAMS.unbonding_delay
        for fault, since, provable, grace in self._pending_faults(a):
            if since <= unbonded_at:  # else the queue was unbonded before the role was taken: it backed nothing
                assert provable + grace <= release, (
                    f"{fault} of {a} provable at block {provable}, its stake released at {release}"
                )

    # ------------------------------------------------------------ tasks and blocks

    task_configs = dict(
        # kv up to 6: the quorum's floor of k/3 seats binds only where k/3 exceeds the
        # seats that joined (k >= 5 with a small validator alone, say)
        i=picks,
        rounds=st.integers(1, 3),
        kt=st.integers(1, 4),
        kv=st.integers(1, 6),
        min_reveals=st.integers(1, 2),
        phases=st.tuples(*[st.integers(1, 4)] * 3, st.sampled_from([1, 2, 3, 4, 5, 12])),  # 12: mostly too long
        fee=st.sampled_from([0, 1_000, 10_000]),
        pool=st.sampled_from([7, 10**18 + 3, 100 * TOKEN, 100 * TOKEN]),
        krum=st.booleans(),
    )

    @initialize(vigilant=st.booleans(), flooding=st.integers(0, 9))
    def a_watcher(self, vigilant, flooding):
        """A vigilant watcher challenges a provably wrong leading vote as soon as the vote
        phase is over and reports every fault in the block it becomes provable; the other
        acts only in ``honest_network`` steps, so that late reports, unchallenged wrong
        results and their finalization happen too. ``flooding`` (one example in ten)
        lets a round be flooded with the 64 requests it takes."""
        self.vigilant = vigilant
        self.flooding = flooding == 0

    @initialize(**task_configs)
    def first_task(self, phases, **cfg):
        """A task every example starts from: its challenge window is stretched to the
        least one allowed (and cut to keep the round plus the slash grace shorter than
        the unbonding delay)."""
        longest = PARAMS.unbonding_delay - PARAMS.slash_grace - 1 - sum(phases[:3])
        window = min(max(phases[3], PARAMS.min_challenge_blocks), longest)
        self.create_task(phases=(*phases[:3], window), **cfg)
        assert self.tasks

    @precondition(lambda self: sum(not t.finished for t in self.tasks.values()) < 2)
    @rule(**task_configs)
    def create_task(self, i, rounds, kt, kv, min_reveals, phases, fee, pool, krum):
        sponsor = self.sponsors[i % 2]
        recipe = KRUM if krum else RECIPE
        cfg = self.net.task_config(
            recipe_hash=recipe_hash(recipe),
            num_rounds=rounds,
            trainers_per_round=kt,
            validators_per_round=kv,
            min_reveals=min_reveals,
            commit_blocks=phases[0],
            reveal_blocks=phases[1],
            validate_blocks=phases[2],
            challenge_blocks=phases[3],
            validator_fee_bps=fee,
            pool=pool,
        )
        expected = (
            "tasks: challenge window too short"
            if phases[3] < PARAMS.min_challenge_blocks
            else "tasks: round + slash grace not shorter than unbonding delay"
            if sum(phases) + PARAMS.slash_grace >= PARAMS.unbonding_delay
            else "erc20: transfer amount exceeds balance"
            if self.balances[sponsor.address] < pool
            else None
        )
        r = self._send(expected, "create_task", cfg, sender=sponsor)
        if r:
            tid = r.event("TaskCreated").args["task_id"]
            assert tid == self.next_task_id
            self.next_task_id += 1
            self.tasks[tid] = GTask(sponsor.address, cfg, pool, recipe)
            self.dirty_tasks.add(tid)
            self.balances[sponsor.address] -= pool
            self._open_round(tid, r)

    @rule(n=st.integers(1, 3))
    def mine(self, n):
        self._mine_to(self.block + n)

    @rule(j=picks, deadline=st.integers(0, 5), offset=st.integers(-1, 1))
    def mine_to_deadline(self, j, deadline, offset):
        """Jump to one block around a deadline: the end of the commit, reveal or
        vote phase or of the challenge window of a task's current round, the
        next block where unbonding stake is released, or the first open request's
        answer deadline."""
        tid, t = self._task(j)
        R = t.rounds[t.round]
        releases = [s.release for s in self.stakes.values() if s.unbonding and s.release >= self.block]
        deadlines = [q.deadline for q in self.requests.values() if q.open]
        ends = [
            R.commit_end,
            R.reveal_end,
            R.validate_end,
            self._window_end(t, R),
            min(releases, default=self.block),
            min(deadlines, default=self.block),
        ]
        self._mine_to(ends[deadline] + offset)

    def _mine_to(self, target: int) -> None:
        """Mine forward to ``target``, stopping where honest trainers must reveal, honest
        committee members must vote and honest nodes must answer the requests for data they
        hold, and with a vigilant watcher at every deadline of every current round and
        every request."""
        if self.vigilant and not self.watching:
            self._keep_watch()
        while True:
            stops = {self.tasks[tid].rounds[r].commit_end + 1 for tid, r, _ in self.pending}
            stops |= {self.tasks[tid].rounds[r].reveal_end + 1 for tid, r, _, _ in self.pending_votes}
            stops |= {q.deadline for q in self.requests.values() if q.open and self._honest_holds(q)}
            if self.vigilant:
                stops |= {
                    end + 1
                    for t in self.tasks.values()
                    if not t.finished
                    for R in t.rounds[-1:]
                    for end in (R.reveal_end, R.validate_end, self._window_end(t, R))
                }
                stops |= {q.deadline + 1 for q in self.requests.values() if q.open}
            stop = min((s for s in stops if self.block < s <= target), default=target)
            self.chain.mine_to(stop)
            self._reveal_pending()
            self._vote_pending()
            self._answer_due()
            if self.vigilant and not self.watching:
                self._keep_watch()
            if stop >= target:
                return

    def _keep_watch(self) -> None:
        """The vigilant watcher: a challenge of every provably wrong leading vote whose vote
        phase is over (else a request for its model's root if nobody published it, or a spot
        check of one node), then every settlement and report that is due. It commits to a challenge and sends it
        a block later (challenges.vy's commit-reveal): the block between is mined without
        watching again."""
        self.watching = True
        try:
            self._watch_once()
        finally:
            self.watching = False

    def _watch_once(self) -> None:
        for tid, t in list(self.tasks.items()):
            R = t.rounds[t.round]
            leading = self.results.get(R.leader) if R.leader else None
            if (
                not t.finished
                and R.validate_end < self.block <= self._window_end(t, R)
                and leading
                and leading.scores.nodes
                and self._provably_wrong(R, leading)
            ):
                self._challenge(
                    tid, t.round, leading, list(leading.scores.nodes), list(leading.scores.scores), self.reporter
                )
            elif not t.finished and not self._request_hidden(tid, t) and self._requestable(t, R) and not R.requests:
                self._spot_check(tid, t, 1 + self.block * 37 % 255)
        self._watch(claims=False)

    # ------------------------------------------------------------ trainers

    def _commit(self, tid: int, node, kind: str) -> None:
        """``kind``: honest (reveals), withheld (never reveals) or bad (reveals an update
        the honest validators reject, say an unavailable blob)."""
        t = self.tasks[tid]
        r, R = t.round, t.rounds[t.round]
        expected = (
            "rounds: commit phase over"
            if self.block > R.commit_end
            else "rounds: already committed"
            if node.address in R.commits
            else "rounds: too many commitments"
            if len(R.commits) >= MAX_COMMITS
            else self._seed_error(R)
            or ("rounds: not selected" if not self._selected(tid, r, node.address, ROLE_TRAINER) else None)
        )
        upd = self.net.update_for(tid, r, node)  # its root: a real chunk tree's, which an answer opens
        upd = upd.__class__(
            vector_root("update", tid, r, node.address, size=t.size), upd.salt, upd.cid, 1 + int(node.address, 16) % 7
        )
        if expected is None and kind != "honest":
            self.honest.discard(node.address)  # before the tx: it is already a fault
        receipt = self._send(expected, "commit", tid, r, self.net.commitment(tid, r, node, upd), sender=node)
        if receipt:
            self._drew(tid, r, R, receipt)
            R.commits[node.address] = upd
            R.since[node.address] = receipt.block
            if kind != "withheld":
                self.pending.append((tid, r, node))
            if kind == "bad":
                R.bad.add(node.address)

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.commit_end))
    @rule(mask=masks, j=picks)
    def honest_commit(self, mask, j):
        """The trainers in ``mask`` commit; they will reveal as soon as they can."""
        tid, _ = self._task(j, lambda t, R: self.block <= R.commit_end)
        for node in self._masked(mask):
            self._commit(tid, node, "honest")

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.commit_end))
    @rule(i=picks, j=picks)
    def commit_without_reveal(self, i, j):
        tid, _ = self._task(j, lambda t, R: self.block <= R.commit_end)
        self._commit(tid, self.nodes[i % len(self.nodes)], "withheld")

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.commit_end))
    @rule(i=picks, j=picks)
    def commit_an_update_validators_reject(self, i, j):
        """A trainer commits and reveals an update honest validators reject: once the
        challenge window is over, slash_rejected(_before_finalize) applies."""
        tid, _ = self._task(j, lambda t, R: self.block <= R.commit_end)
        self._commit(tid, self.nodes[i % len(self.nodes)], "bad")

    @precondition(lambda self: self._any_round(lambda t, R: R.commit_end < self.block <= R.reveal_end))
    @rule(j=picks)
    def mismatched_reveal(self, j):
        """A withholding trainer tries to reveal something else: it must revert."""
        for tid, t in self.tasks.items():
            for r, R in enumerate(t.rounds):
                for node in self.nodes:
                    a = node.address
                    if (
                        a in R.commits
                        and a not in R.reveals
                        and a not in self.honest
                        and R.commit_end < self.block <= R.reveal_end
                    ):
                        upd = R.commits[a]
                        self._send(
                            "rounds: reveal does not match commitment",
                            "reveal",
                            tid,
                            r,
                            upd.root,
                            upd.cid,
                            upd.samples,
                            h32("wrong salt", j),
                            sender=node,
                        )
                        return

    # ------------------------------------------------------------ validators

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.reveal_end))
    @rule(mask=masks, j=picks)
    def join(self, mask, j):
        """The nodes in ``mask`` try to join the round's committee; those who do will
        vote the correct result as soon as they can."""
        tid, _ = self._task(j, lambda t, R: self.block <= R.reveal_end)
        for node in self._masked(mask):
            self._join(tid, node)

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.reveal_end))
    @rule(mask=masks, j=picks, plan=st.sampled_from(["silent", "phantom", "inflated", "hidden"]))
    def join_to_collude(self, mask, j, plan):
        """The validators in ``mask`` (a subset of those staked) try to join the round's
        committee meaning to stay silent (slash_absent applies once the vote phase is
        over) or to vote a wrong result as soon as the vote phase opens: a phantom leaf
        or an inflated total, which a challenge proves wrong, or a model they withhold
        (hidden), which only an availability request reverts."""
        tid, _ = self._task(j, lambda t, R: self.block <= R.reveal_end)
        validators = [n for n in self.nodes if self.stakes[n.address].role == ROLE_VALIDATOR]
        for k, node in enumerate(validators):
            if mask >> k & 1:
                self._join(tid, node, plan)

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.reveal_end))
    @rule(j=picks)
    def a_withholding_quorum(self, j):
        """Every staked validator tries to join the round's committee to vote a model it
        withholds: unless honest members outvote them, only an availability request (and its
        settle) reverts the round."""
        self.join_to_collude(255, j, "hidden")

    def _join(self, tid: int, node, plan: str | None = None) -> None:
        """``plan``: None (honest: votes the correct result), "silent" or a wrong result's kind."""
        t = self.tasks[tid]
        r, R, a = t.round, t.rounds[t.round], node.address
        expected = (
            "rounds: joining closed"
            if self.block > R.reveal_end
            else "rounds: already joined"
            if a in R.weights
            else self._seed_error(R)
            or ("rounds: not selected" if not self._selected(tid, r, a, ROLE_VALIDATOR) else None)
        )
        if expected is None and plan:
            self.honest.discard(a)  # before the tx: a seat taken in bad faith
        receipt = self._send(expected, "join", tid, r, sender=node)
        if receipt:
            self._drew(tid, r, R, receipt)
            seats = self._seats(
                self._weight(a, ROLE_VALIDATOR, R.opened), R.validator_total, t.cfg["validators_per_round"]
            )
            assert receipt.event("Joined").args["weight"] == seats
            R.weights[a], R.since[a] = seats, receipt.block
            if plan != "silent":
                self.pending_votes.append((tid, r, node, plan))

    def _vote(self, tid: int, r: int, node, result: Result, honest: bool = True):
        R = self._round(tid, r)
        t = self.tasks.get(tid)
        a, h = node.address, result.hash
        reveal_end, validate_end = (R.reveal_end, R.validate_end) if R else (0, 0)
        expected = (
            "rounds: vote phase not started"
            if self.block <= reveal_end
            else "rounds: vote phase over"
            if self.block > validate_end
            else "rounds: round closed"
            if R.status != OPEN
            else "rounds: not in committee"
            if R.weights.get(a, 0) == 0
            else "rounds: equivocated"
            if a in R.equivocated
            else "rounds: already voted"
            if R.votes.get(a) == h
            else None
        )
        first = R.votes.get(a) if R else None
        if expected is None and (first is not None or not honest):
            self.honest.discard(a)
        receipt = self._send(expected, "vote", tid, r, *result.args, sender=node)
        if not receipt:
            return None
        self.results[h] = result
        w = R.weights[a]
        if first is None:
            R.votes[a] = h
            R.tally[h] = R.tally.get(h, 0) + w
            leads = R.leader is None and self._quorum(t, R, R.tally[h])
            assert any(e.name == "QuorumReached" for e in receipt.events) == leads
            if leads:
                R.leader = h
                self._report_rejected_early(tid, r, result)
        else:
            R.equivocated.add(a)
            del R.votes[a]
            R.tally[first] -= w
            if R.leader == first and not self._quorum(t, R, R.tally[first]):
                R.leader = None
            self._slash(a, self._safety_penalty(a), None)
        return receipt

    @precondition(lambda self: self._any_round(lambda t, R: self._voting(t, R) and set(R.weights) - set(R.votes)))
    @rule(j=picks, back=st.booleans())
    def honest_vote(self, j, back):
        """Every validator (in the round's committee or not) votes the correct result."""
        tid, t = self._task(j, self._voting)
        r = max(t.round - back, 0)
        result = self._correct_result(tid, r)
        for node in self.nodes:
            if self.stakes[node.address].role == ROLE_VALIDATOR or node.address in t.rounds[r].weights:
                self._vote(tid, r, node, result)

    @precondition(lambda self: self._any_round(lambda t, R: self._voting(t, R) and R.weights))
    @rule(i=picks, j=picks)
    def equivocating_vote(self, i, j):
        tid, t = self._task(j, self._voting)
        R = t.rounds[t.round]
        members = sorted(R.weights)
        if not members:
            return
        node = self._node(members[i % len(members)])
        good, evil = self._correct_result(tid, t.round), self._correct_result(tid, t.round, tag="evil")
        first = evil if R.votes.get(node.address) != good.hash else None
        if first:
            self._vote(tid, t.round, node, first)
        self._vote(tid, t.round, node, good if first else evil)

    @precondition(lambda self: self._any_round(lambda t, R: self._voting(t, R) and set(R.weights) - set(R.votes)))
    @rule(mask=masks, j=picks, kind=st.sampled_from(["phantom", "inflated", "hidden"]))
    def collude_on_a_wrong_result(self, mask, j, kind):
        """The silent members in ``mask`` vote a result a challenge can prove wrong (or a
        request revert)."""
        tid, t = self._task(j, self._voting)
        r, R = t.round, t.rounds[t.round]
        wrong = self._wrong_result(tid, r, kind)
        for node in self._masked(mask):
            if node.address in R.weights and node.address not in R.votes:
                assert node.address not in self.honest, "an honest member has not voted in the vote phase"
                self._vote(tid, r, node, wrong, honest=False)

    # ------------------------------------------------------------ challenges

    @precondition(lambda self: self._any_round(lambda t, R: not t.finished and R.leader is not None))
    @rule(
        j=picks,
        who=picks,
        tamper=st.sampled_from(
            [
                None,
                None,
                None,
                "other vote",
                "table root",
                "no table root",
                "other rule",
                "no leaves",
                "one leaf short",
                "other round",
            ]
        ),
    )
    def challenge_the_leading_vote(self, j, who, tamper):
        """Anyone challenges the leading vote's scores tree with its own leaves (or, with
        ``tamper``, with arguments that must be refused)."""
        tid, t = self._task(j, lambda t, R: not t.finished and R.leader is not None)
        r = t.round
        R = t.rounds[r]
        result = self.results[R.leader] if R.leader else self._correct_result(tid, r)
        if tamper == "other vote":
            other = self._correct_result(tid, r)
            result = other if other.hash != result.hash else self._correct_result(tid, r, tag="other")
        nodes, scores = list(result.scores.nodes), list(result.scores.scores)
        if tamper == "no leaves":
            nodes, scores = [], []
        elif tamper == "one leaf short":
            nodes, scores = nodes[:-1], scores[:-1]
        table_root = {"table root": h32("table"), "no table root": ZERO32}.get(tamper)
        self._challenge(
            tid,
            r + (1 if tamper == "other round" else 0),
            result,
            nodes,
            scores,
            self.accounts[who % len(self.accounts)],
            table_root=table_root,
            recipe=(1, *RECIPE[1:]) if tamper == "other rule" else None,
        )

    def _challenge(
        self,
        tid: int,
        r: int,
        result: Result,
        nodes: list,
        scores: list,
        sender,
        table_root: bytes | None = None,
        recipe: tuple | None = None,
    ) -> None:
        """challenge_total; by default with the vote's own table root and the task's rule."""
        t = self.tasks[tid]
        recipe = recipe or t.recipe
        table_root = getattr(result, "table_root", b"") or ZERO32 if table_root is None else table_root
        # commit first, send a block later (challenges.vy's commit-reveal)
        call = (tid, r, result.args, recipe, nodes, scores, table_root)
        commit(self.challenges, sender, "challenge_total", call)
        self._mine_to(self.block + 1)
        R = self._round(tid, r)
        scores_root = Scores(tuple(nodes), tuple(scores)).root
        expected = (
            "challenges: not the task's rule"
            if recipe != t.recipe
            else "challenges: not the current round"
            if r != t.round or t.finished
            else "challenges: no quorum"
            if R.leader is None
            else "challenges: not the leading vote"
            if result.hash != R.leader
            else "challenges: window closed"
            if self.block > self._window_end(t, R)
            else "challenges: Krum rules need the table root"
            if t.recipe == KRUM and table_root == ZERO32
            else "challenges: table root only for Krum rules"
            if t.recipe != KRUM and table_root != ZERO32
            else "challenges: ragged inputs"
            if not nodes
            else "challenges: not the scores tree"
            if (combined_scores_root(scores_root, table_root) if t.recipe == KRUM else scores_root) != result.args[2]
            else "erc20: transfer amount exceeds balance"
            if self.balances[sender.address] < PARAMS.challenge_bond
            else None
        )
        receipt = self._send(expected, "challenge_total", *call, sender=sender, to=self.challenges)
        if not receipt:
            return
        wrong = len(nodes) != len(R.reveals) or sum(scores) != result.args[3]
        assert receipt.event("Challenged").args["success"] == wrong
        if wrong:  # reverted, the bond returned
            assert receipt.event("RoundFailed").args["reason"] == FAIL_CHALLENGED
            R.status, R.challenger = FAILED, sender.address
            self._next_round(tid, receipt)
        else:  # the bond forfeited: it stays in the challenges contract
            self.balances[sender.address] -= PARAMS.challenge_bond
            self.forfeited += PARAMS.challenge_bond

    # ------------------------------------------------------------ the availability game

    def _requestable(self, t: GTask, R: GRound) -> bool:
        """A leading vote after its vote phase, within its challenge window."""
        return R.status == OPEN and R.leader is not None and R.validate_end < self.block <= self._window_end(t, R)

    def _request(
        self,
        tid: int,
        r: int,
        vote: Result,
        kind: int,
        index: int,
        level: int,
        position: int,
        sender,
        recipe: tuple | None = None,
    ) -> bytes | None:
        """``availability.request`` (by default with the task's rule) with the reason the
        model expects, checked in the contract's order; on success the bond moves from
        ``sender`` to the game."""
        t, R = self.tasks.get(tid), self._round(tid, r)
        recipe = recipe or t.recipe
        rid = request_id(tid, r, kind, index, level, position)
        expected = (
            "availability: no leading vote"
            if R is None or R.status != OPEN or R.leader is None
            else "availability: not the leading vote"
            if vote.hash != R.leader
            else "availability: vote phase open"
            if self.block <= R.validate_end
            else "availability: window closed"
            if self.block > self._window_end(t, R)
            else "availability: bad node"
            if level > MAX_LEVEL or position >= 2**level
            else "availability: not an accepted update"
            if kind == KIND_UPDATE and not (index < len(R.reveals) and not vote.args[4] >> index & 1)
            else "availability: not the task's rule"
            if kind == KIND_TABLE and recipe != t.recipe
            else "availability: no distance table"
            if kind == KIND_TABLE and t.recipe != KRUM
            else "availability: unknown kind"
            if kind not in (KIND_MODEL, KIND_UPDATE, KIND_TABLE)
            else "availability: too many requests"
            if len(R.requests) >= MAX_REQUESTS
            else "availability: already requested"
            if rid in self.requests
            else "erc20: transfer amount exceeds balance"
            if self.balances[sender.address] < PARAMS.request_bond
            else None
        )
        event(f"request: {expected or 'made'}")
        receipt = self._send(
            expected,
            "request",
            tid,
            r,
            vote.args,
            recipe,
            kind,
            index,
            level,
            position,
            sender=sender,
            to=self.availability,
        )
        if not receipt:
            return None
        q = GRequest(
            sender.address,
            tid,
            r,
            kind,
            index,
            level,
            position,
            receipt.block + PARAMS.answer_blocks,
            R.leader,
            R.leader == self._correct_result(tid, r).hash,
        )
        ev = receipt.event("Requested").args
        assert (ev["request_id"], ev["requester"], ev["deadline"]) == (rid, sender.address, q.deadline)
        self.requests[rid] = q
        R.requests.append(q)
        self.balances[sender.address] -= PARAMS.request_bond
        self.held += PARAMS.request_bond
        return rid

    @precondition(lambda self: self._any_round(lambda t, R: R.leader is not None))
    @rule(
        j=picks,
        who=picks,
        kind=st.sampled_from([KIND_MODEL, KIND_UPDATE, KIND_TABLE]),
        which=picks,
        level=st.integers(0, 4),
        position=st.integers(0, 2**MAX_LEVEL - 1),
        tampers=st.lists(
            st.sampled_from(
                [None] * 4
                + [
                    "duplicate",
                    "other vote",
                    "deepest",
                    "bad level",
                    "bad position",
                    "rejected",
                    "table of another rule",
                    "unknown kind",
                    "last round",
                ]
            ),
            min_size=1,
            max_size=3,
        ),
    )
    def request(self, j, who, kind, which, level, position, tampers):
        """Anyone requests a node of the leading vote's model tree, of an accepted update's
        tree or (a Krum task's; a rule-0 vote has none) of its distance table, preferably
        where the contract allows it, once per tamper: each names one way to make a request
        the contract must refuse (``deepest``: a level-20 node, which it takes)."""
        for tamper in tampers:
            self._request_variant(j, who, kind, which, level, position, tamper)

    def _request_variant(self, j, who, kind, which, level, position, tamper) -> None:
        tid, t = self._task(j, self._requestable)
        r = t.round - 1 if tamper == "last round" and t.round else t.round
        R = t.rounds[r]
        vote = self.results[R.leader] if R.leader else NO_VOTE
        if tamper == "other vote":
            vote = self._correct_result(tid, r, tag="other")
        position %= 2**level
        level, position = {
            "deepest": (MAX_LEVEL, position),
            "bad level": (MAX_LEVEL + 1, 0),
            "bad position": (level, 2**level + position),
        }.get(tamper, (level, position))
        accepted = [i for i in range(len(R.reveals)) if not vote.args[4] >> i & 1]
        rejected = [i for i in range(len(R.reveals)) if vote.args[4] >> i & 1]
        index = accepted[which % len(accepted)] if kind == KIND_UPDATE and accepted else which % (len(R.reveals) + 1)
        if tamper == "rejected":
            kind, index = KIND_UPDATE, rejected[which % len(rejected)] if rejected else len(R.reveals)
        recipe = (RECIPE if t.recipe == KRUM else KRUM) if tamper == "table of another rule" else t.recipe
        if tamper == "table of another rule":
            kind = KIND_TABLE
        if kind in (KIND_MODEL, KIND_TABLE):
            index = 0
        if tamper == "unknown kind":
            kind = 4
        elif tamper == "duplicate" and R.requests:
            q = R.requests[which % len(R.requests)]
            kind, index, level, position = q.kind, q.index, q.level, q.position
        self._request(tid, r, vote, kind, index, level, position, self.accounts[who % len(self.accounts)], recipe)

    @precondition(lambda self: self.flooding and self._any_round(self._requestable))
    @rule(j=picks)
    def request_a_whole_level(self, j):
        """A flood of requests (see ``_flood``), where ``a_watcher`` drew one."""
        tid, t = self._task(j, self._requestable)
        if self._requestable(t, t.rounds[t.round]):
            self._flood(tid, t)

    def _flood(self, tid: int, t: GTask) -> None:
        """Requests of the model tree's level-6 nodes, from whoever can post the bond, until
        the round holds its 64; one more is refused. 128 transactions with the answers: in
        one example in ten only, and once in it: the cap is the same in every round, and a
        flood in every requestable round made the CI profile's run take up to 19 minutes on
        some draws (5 with one flood an example)."""
        self.flooding = False
        R = t.rounds[t.round]
        vote = self.results[R.leader]
        for position in range(2**6):
            if (
                len(R.requests) < MAX_REQUESTS
                and request_id(tid, t.round, KIND_MODEL, 0, 6, position) not in self.requests
            ):
                payer = next(a for a in self.accounts if self.balances[a.address] >= PARAMS.request_bond)
                assert self._request(tid, t.round, vote, KIND_MODEL, 0, 6, position, payer)
        self._request(tid, t.round, vote, KIND_MODEL, 0, 7, 0, self.reporter)

    def _data(self, q: GRequest) -> tuple:
        """(data, opening) the requested tree is built from, None if nobody holds it (a hidden
        model or table): the voted model's vector, the requested reveal's update and its
        opening, or the correct result's distance table."""
        vote = self.results[q.leader]
        if q.kind == KIND_TABLE:
            table = self._table(q.tid, q.r)
            return (table if table.root == vote.table_root else None), None
        if q.kind == KIND_MODEL:
            held = self.models.get(vote.model_root)
            return (vector(*held[0], size=held[1]) if held else None), NO_OPENING
        R = self._round(q.tid, q.r)
        a = R.reveals[q.index]
        return vector("update", q.tid, q.r, a, size=self.tasks[q.tid].size), (a, R.commits[a].root, R.commits[a].salt)

    def _honest_holds(self, q: GRequest) -> bool:
        """Whether honest nodes hold what ``q`` asks for: the correct result's validators hold
        its model, its table and the updates it accepts, an honest trainer its own update."""
        if q.correct:
            return True
        return q.kind == KIND_UPDATE and self._round(q.tid, q.r).reveals[q.index] in self.honest

    def _vector_answer(self, q: GRequest, real, opening: tuple, tamper: str | None) -> tuple[str | None, tuple]:
        """(tamper, answer's arguments) for a model or update request: the node built by the
        protocol's ``vector_node``, or the tampered one (a forgery of the real tree's shape,
        a malformed node, the node's parent, another reveal's opening, a wrong salt)."""
        shape = vector("unknown", q.tid, q.r) if real is None else real
        if tamper == "shallow" and not 1 <= q.level <= tree_depth(shape):
            tamper = "other data"
        # a forgery has the real tree's shape (same depth, same path lengths), other chunks
        q_vec = np.resize(vector("forged", q.tid, q.r), shape.size) if tamper == "other data" else shape
        up = int(tamper == "shallow")
        node = vector_node(q_vec, CHUNK, q.level - up, q.position >> up)
        if tamper == "malformed":
            inner, left, right, data, siblings = node
            node = (inner, left, right, bytes(256) if inner else (data or bytes(256))[:100], siblings)
            tamper = "malformed inner" if inner else "malformed leaf"
        if q.kind == KIND_UPDATE and tamper == "other reveal":
            opening = (self.reporter.address, *opening[1:])
        elif q.kind == KIND_UPDATE and tamper == "wrong salt":
            opening = (opening[0], opening[1], h32("wrong salt"))
        elif tamper in ("other reveal", "wrong salt"):
            tamper = None  # a model has no opening to get wrong
        return tamper, (node, opening)

    def _table_answer(self, q: GRequest, real: DistanceTable | None, tamper: str | None) -> tuple[str | None, tuple]:
        """(tamper, answer_table's arguments): the node built by the protocol's ``table_node``,
        or a forgery (the table of other updates, or of another scores tree where the round
        has no pair to get wrong)."""
        R = self._round(q.tid, q.r)
        scores_tree = self.results[q.leader].scores.root
        if tamper is not None and tamper != "other vote":
            tamper = "other data"
        table = real
        if tamper == "other data":
            table = DistanceTable.of_round(
                [None if a in R.bad else vector("forged", q.tid, q.r, a, size=KRUM_SIZE) for a in R.reveals],
                KRUM_SIZE,
                CHUNK,
            )
            if real is None or table.root == real.root:
                scores_tree = h32("forged scores")
        return tamper, (table_node(table, scores_tree, q.level, q.position),)

    def _answer(self, rid: bytes, sender, tamper: str | None = None) -> None:
        """An answer to the request ``rid``: the right node, or with ``tamper`` one the
        contract must refuse (another vote, another function, forged data, ...); nobody
        holds a hidden model or table, so whatever is sent for one is a forgery."""
        q = self.requests[rid]
        vote = self.results[q.leader]
        real, opening = self._data(q)
        if real is None and tamper not in ("other vote", "malformed", "wrong function"):
            tamper = "other data"
        if tamper == "other vote":
            vote = self._correct_result(q.tid, q.r, tag="other")
        if tamper == "wrong function":
            fn, args = (
                ("answer", (vector_node(vector("unknown"), CHUNK, 0, 0), NO_OPENING))
                if q.kind == KIND_TABLE
                else ("answer_table", ((ZERO32, False, ZERO32, ZERO32, [], [], []),))
            )
        elif q.kind == KIND_TABLE:
            fn, (tamper, args) = "answer_table", self._table_answer(q, real, tamper)
        else:
            fn, (tamper, args) = "answer", self._vector_answer(q, real, opening, tamper)
        expected = (
            "availability: no open request"
            if not q.open
            else "availability: not the request's vote"
            if tamper == "other vote"
            else "availability: a table request"
            if tamper == "wrong function" and q.kind == KIND_TABLE
            else "availability: not a table request"
            if tamper == "wrong function"
            else "availability: not that reveal"
            if tamper == "other reveal"
            else "availability: root does not match commitment"
            if tamper == "wrong salt"
            else "availability: bad node"
            if tamper == "malformed inner"
            else "availability: bad chunk length"
            if tamper == "malformed leaf"
            else "availability: not the requested node"
            if tamper == "shallow"
            else "availability: bad proof"
            if tamper == "other data"
            else None
        )
        event(f"answer: {expected or 'answered'} ({KIND_NAMES[q.kind]})")
        receipt = self._send(expected, fn, rid, vote.args, *args, sender=sender, to=self.availability)
        if receipt:
            node = args[0]
            if fn == "answer":
                ev = receipt.event("Answered").args
                assert (ev["answerer"], ev["inner"], ev["data"]) == (sender.address, node[0], node[3])
            else:
                ev = receipt.event("TableAnswered").args
                assert (ev["answerer"], ev["inner"], list(ev["sums"])) == (sender.address, node[1], node[4])
            q.open, q.closed_at = False, receipt.block
            self.balances[sender.address] += PARAMS.request_bond
            self.held -= PARAMS.request_bond
            self.dirty_tasks.add(q.tid)

    def _pick_request(self, i: int) -> bytes:
        """The i-th open request if any is open, else of all."""
        rids = [rid for rid, q in self.requests.items() if q.open] or list(self.requests)
        return rids[i % len(rids)]

    @precondition(lambda self: self.requests)
    @rule(
        i=picks,
        who=picks,
        tampers=st.lists(
            st.sampled_from(
                [
                    None,
                    "other vote",
                    "other data",
                    "malformed",
                    "shallow",
                    "other reveal",
                    "wrong salt",
                    "wrong function",
                ]
            ),
            min_size=1,
            max_size=2,
        ),
    )
    def answer(self, i, who, tampers):
        """Anyone answers a request: with the right node if it holds the data (a colluder its
        own model), or with a wrong one, which must revert; once per tamper."""
        for tamper in tampers:
            self._answer(self._pick_request(i), self.accounts[who % len(self.accounts)], tamper)
        if self.vigilant:
            self._keep_watch()  # an answer can make a rejected update slashable at once

    def _settle(self, rid: bytes, sender) -> None:
        """``availability.settle``: after the deadline an unanswered request reverts its round
        if still open (the requester its challenger, the voters slashable) and returns the
        bond to the requester."""
        q = self.requests.get(rid)
        expected = (
            "availability: no open request"
            if q is None or not q.open
            else "availability: answer not due yet"
            if self.block <= q.deadline
            else None
        )
        R = self._round(q.tid, q.r) if q else None
        reverted = expected is None and R.status == OPEN
        event(f"settle: {expected or ('reverted' if reverted else 'refunded')}")
        receipt = self._send(expected, "settle", rid, sender=sender, to=self.availability)
        if not receipt:
            return
        assert receipt.event("Unanswered").args["reverted"] == reverted
        q.open, q.closed_at = False, receipt.block
        self.balances[q.requester] += PARAMS.request_bond
        self.held -= PARAMS.request_bond
        self.dirty_accounts.add(q.requester)
        self.dirty_tasks.add(q.tid)
        if reverted:
            assert R.leader == q.leader and not self._honest_holds(q), "a request against honest data reverted"
            assert receipt.event("RoundFailed").args["reason"] == FAIL_CHALLENGED
            R.status, R.challenger, R.reverted_from = FAILED, q.requester, q.deadline + 1
            self._next_round(q.tid, receipt)

    @precondition(lambda self: self.requests)
    @rule(i=picks, who=picks, unknown=st.booleans())
    def settle(self, i, who, unknown):
        """Anyone settles a request (or one never made): refused before its deadline."""
        rid = h32("no such request") if unknown else self._pick_request(i)
        self._settle(rid, self.accounts[who % len(self.accounts)])
        if self.vigilant:
            self._keep_watch()

    def _finalize_waits(self, q: GRequest) -> None:
        """Past the window, a round with an open request cannot finalize."""
        t = self.tasks[q.tid]
        if q.open and not t.finished and t.round == q.r and self.block > self._window_end(t, t.rounds[q.r]):
            self._finalize(q.tid, wrong=False)
            event("finalize waits for a request")

    def _answer_due(self) -> None:
        """Honest nodes answer every request for data they hold in its last block."""
        for rid, q in list(self.requests.items()):
            if q.open and self._honest_holds(q):
                assert self.block <= q.deadline, f"an honest answer was skipped: {q}"
                if self.block == q.deadline:
                    self._finalize_waits(q)
                    R = self._round(q.tid, q.r)
                    holders = sorted(a for a, h in R.votes.items() if h == q.leader and a in self.honest)
                    if q.kind == KIND_UPDATE:
                        holders.append(R.reveals[q.index])  # its trainer (an honest one, if nobody else)
                    self._answer(rid, self._node(holders[0]) if holders else self.reporter)  # the watcher has it too

    def _settle_due(self) -> None:
        """The watcher settles every request past its deadline."""
        for rid, q in list(self.requests.items()):
            if q.open and self.block > q.deadline:
                self._finalize_waits(q)
                self._settle(rid, self.reporter)

    def _spot_check(self, tid: int, t: GTask, mask: int) -> None:
        """The watcher asks for one node (named by ``mask``) of the leading vote's model, of
        an update it accepts or of its table, as watchers sample what they could not fetch
        (or, where ``a_watcher`` drew a flood, for 64 nodes)."""
        if self.flooding:
            self._flood(tid, t)
            return
        R = t.rounds[t.round]
        vote = self.results[R.leader]
        accepted = [i for i in range(len(R.reveals)) if not vote.args[4] >> i & 1]
        kind = KIND_TABLE if mask & 8 and t.recipe == KRUM else KIND_UPDATE if mask & 2 and accepted else KIND_MODEL
        index = accepted[(mask >> 2) % len(accepted)] if kind == KIND_UPDATE else 0
        level = (mask >> 2) % 5
        self._request(tid, t.round, vote, kind, index, level, (mask >> 4) % 2**level, self.reporter)

    def _request_hidden(self, tid: int, t: GTask) -> bool:
        """The watcher requests the root of a leading model it cannot fetch (nobody
        published it), once; whether it did."""
        R = t.rounds[t.round]
        leading = self.results.get(R.leader) if R.leader else None
        if (
            not (self._requestable(t, R) and leading.model_root not in self.models)
            or request_id(tid, t.round, KIND_MODEL, 0, 0, 0) in self.requests
        ):
            return False
        return self._request(tid, t.round, leading, KIND_MODEL, 0, 0, 0, self.reporter) is not None

    # ------------------------------------------------------------ finalize and advance

    @precondition(lambda self: self._any_round(lambda t, R: not t.finished and R.leader is not None))
    @rule(j=picks, wrong=st.booleans(), early=st.booleans())
    def finalize(self, j, wrong, early):
        """Finalize a round with a leader: after its window, or (``early``) at any time."""
        tid, _ = self._task(j, (lambda t, R: not t.finished and R.leader is not None) if early else self._finalizable)
        self._finalize(tid, wrong)

    def _finalizable(self, t: GTask, R: GRound) -> bool:
        """A leader after the window (with enough reveals or not: finalize must refuse those)."""
        return not t.finished and R.leader is not None and self.block > self._window_end(t, R)

    def _finalize(self, tid: int, wrong: bool) -> None:
        t = self.tasks[tid]
        r, R = t.round, t.rounds[t.round]
        result = self.results.get(R.leader) or self._correct_result(tid, r)
        if wrong:
            result = self._correct_result(tid, r, tag="wrong")
        expected = (
            "rounds: task finished"
            if t.finished
            else "rounds: no quorum"
            if R.leader is None
            else "rounds: too few reveals"
            if len(R.reveals) < t.cfg["min_reveals"]
            else "rounds: challenge window open"
            if self.block <= self._window_end(t, R)
            else "rounds: availability request open"
            if R.open_requests
            else "rounds: result does not match quorum"
            if result.hash != R.leader
            else None
        )
        receipt = self._send(expected, "finalize", tid, *result.args, sender=self.reporter)
        if not receipt:
            return
        budget = t.pool // (t.cfg["num_rounds"] - r)
        vb = budget * t.cfg["validator_fee_bps"] // BPS
        tb = budget - vb if result.args[3] else 0
        t.pool -= vb + tb
        self.unclaimed += vb + tb
        R.status, R.result, R.trainer_budget, R.validator_budget = FINALIZED, result, tb, vb
        R.majority = R.tally[R.leader]
        ev = receipt.event("RoundFinalized").args
        assert (ev["trainer_budget"], ev["validator_budget"]) == (tb, vb)
        self._next_round(tid, receipt)

    @precondition(lambda self: self._any_round(self._failed))
    @rule(j=picks)
    def advance(self, j):
        tid, _ = self._task(j, self._failed)
        self._advance(tid)

    def _failed(self, t: GTask, R: GRound) -> bool:
        return not t.finished and (
            self.block > R.reveal_end
            and len(R.reveals) < t.cfg["min_reveals"]
            or self.block > R.validate_end
            and R.leader is None
        )

    def _advance(self, tid: int) -> None:
        t = self.tasks[tid]
        R = t.rounds[t.round]
        reason = (
            FAIL_TOO_FEW_REVEALS
            if self.block > R.reveal_end and len(R.reveals) < t.cfg["min_reveals"]
            else FAIL_NO_QUORUM
            if self.block > R.validate_end and R.leader is None
            else 0
        )
        expected = "rounds: task finished" if t.finished else None if reason else "rounds: nothing to advance"
        receipt = self._send(expected, "advance", tid, sender=self.reporter)
        if receipt:
            assert receipt.event("RoundFailed").args["reason"] == reason
            R.status = FAILED
            self._next_round(tid, receipt)

    @rule(d=st.integers(-1, 3), i=picks, also=st.sampled_from([None, "finalize", "join", "commit"]))
    def advance_a_task_that_does_not_exist(self, d, i, also):
        """SECURITY-REVIEW H-2: nobody can fail (or finish) a task before it is created,
        at next_task_id, a few ids beyond it, or id 0; nor act in its round 0."""
        tid = self.next_task_id + d if d >= 0 else 0
        attacker = self.accounts[i % len(self.accounts)]
        self._send("rounds: no such task", "advance", tid, sender=attacker)
        if also == "finalize":
            self._send("rounds: no quorum", "finalize", tid, *NO_VOTE.args, sender=attacker)
        elif also == "join":
            self._send("rounds: no such round", "join", tid, 0, sender=attacker)
        elif also == "commit":
            self._send("rounds: no such round", "commit", tid, 0, h32("commitment"), sender=attacker)
        c = self.fc.call("rounds", tid, 0)
        assert (c["schedule"], c["status"], c["leader"], c["commits"], c["committee_seats"]) == (0, OPEN, ZERO32, 0, 0)
        task = self.fc.call("tasks", tid)
        assert (task["sponsor"], task["finished"], task["round"]) == (NOBODY, False, 0)
        assert self.fc.call("next_task_id") == self.next_task_id

    # ------------------------------------------------------------ the honest network

    @rule(mask=masks, phases=st.integers(1, 8))
    def honest_network(self, mask, phases):
        """Honest nodes (those in ``mask``) do what the current phase of every task's
        round asks of them (commit and join; their reveals and votes come by
        themselves), a watcher challenges a provably wrong leading vote once the vote
        phase is over, requests the root of a model nobody published or else spot-checks
        one node, settles what nobody answered, then the round is finalized or advanced;
        the chain moves on to the block after the first of those phases ends, ``phases``
        times over (up to eight: a whole round and more). Honest
        nodes also claim what finalized rounds owe them, and the watcher reports every
        slashable fault, once per round and kind."""
        for _ in range(phases):
            self._watch()
            stops = []  # where each task's current phase ends
            for tid, t in list(self.tasks.items()):
                if not t.finished:
                    stops += self._honest_phase(tid, t, mask)
            if stops:
                self._mine_to(min(stops))

    def _honest_phase(self, tid: int, t: GTask, mask: int) -> list[int]:
        """The honest network's part of the current phase of ``tid``'s round; returns
        the block after the phase, where it waits for time to pass."""
        r, R = t.round, t.rounds[t.round]
        window_end = self._window_end(t, R)
        leading = self.results.get(R.leader) if R.leader else None
        if self.block <= R.opened:
            return [R.opened + 1]  # the seed is readable from the next block (M-4)
        if self.block <= R.reveal_end:
            for node in self._masked(mask):
                role = self.stakes[node.address].role
                if (
                    role == ROLE_TRAINER
                    and self.block <= R.commit_end
                    and node.address not in R.commits
                    and self._selected(tid, r, node.address, ROLE_TRAINER)
                ):
                    self._commit(tid, node, "honest")
                if (
                    role == ROLE_VALIDATOR
                    and node.address not in R.weights
                    and self._selected(tid, r, node.address, ROLE_VALIDATOR)
                ):
                    self._join(tid, node)
            return [(R.commit_end if self.block <= R.commit_end else R.reveal_end) + 1]
        if self.block <= R.validate_end:
            return [R.validate_end + 1]
        if self.block <= window_end and leading and leading.scores.nodes and self._provably_wrong(R, leading):
            self._challenge(tid, r, leading, list(leading.scores.nodes), list(leading.scores.scores), self.reporter)
        elif self._request_hidden(tid, t):
            return [window_end + 1]
        elif self._requestable(t, R) and not R.requests:
            if mask & 1 and self.block < window_end:
                return [window_end]  # a spot check in the window's last block: finalize waits for it
            self._spot_check(tid, t, mask)
            return [window_end + 1]
        elif self._failed(t, R):
            self._advance(tid)
        elif R.open_requests:  # answered by their deadline, or settled right after it
            return [max(q.deadline for q in R.open_requests) + 1]
        elif self._finalizable(t, R):
            self._finalize(tid, wrong=False)
        else:
            return [window_end + 1]
        return []

    def _watch(self, claims: bool = True) -> None:
        """The watcher's settlements of unanswered requests and its reports (and the
        honest claims), once per round and duty."""
        self._settle_due()
        for tid, t in self.tasks.items():
            for k, R in enumerate(t.rounds):

                def due(duty: str, ready: bool) -> bool:  # called only for this round: tid and k are current
                    if not ready or (tid, k, duty) in self.watched:  # noqa: B023
                        return False
                    self.watched.add((tid, k, duty))  # noqa: B023
                    return True

                if due("reveals", self.block > R.reveal_end):
                    for a in sorted(set(R.commits) - set(R.reveals) - R.slashed):
                        self._slash_missing_reveal(tid, k, self._node(a), self.reporter)
                if due("votes", self.block > R.validate_end) and not self._exempt(t, R):
                    for a in sorted(set(R.weights) - set(R.votes) - R.equivocated - R.slashed):
                        self._slash_absent(tid, k, self._node(a), self.reporter)
                if due("challenge", R.challenger is not None):
                    for a in sorted(v for v, h in R.votes.items() if h == R.leader and v not in R.slashed):
                        self._slash_wrong_vote(tid, k, self._node(a), self.reporter)
                if due("rejected", self._rejected_final(t, R)):
                    result = R.result or self.results[R.leader]
                    for i, a in enumerate(R.reveals):
                        if result.args[4] >> i & 1 and a not in R.slashed:
                            self._slash_rejected(tid, k, self._node(a), self.reporter, result)
                if claims and due("claims", R.status == FINALIZED):
                    for a in R.reveals:
                        if R.result.scores.score(a):
                            self._claim(tid, k, self._node(a))
                    for a in sorted(v for v, h in R.votes.items() if h == R.leader):
                        self._claim_validator(tid, k, self._node(a))

    # ------------------------------------------------------------ rewards

    @precondition(lambda self: self._any_round(lambda t, R: R.status == FINALIZED, every=True))
    @rule(i=picks, j=picks, r=st.integers(0, 3))
    def claim(self, i, j, r):
        self._claim(*self._target(i, j, r, lambda R: R.reveals if R.status == FINALIZED else []))

    def _claim(self, tid: int, r: int, node) -> None:
        R, a = self._round(tid, r), node.address
        finalized = R is not None and R.status == FINALIZED
        scores = R.result.scores if finalized else None
        total = R.result.args[3] if finalized else 0  # the voted total (a wrong vote's may exceed the leaves' sum)
        score = scores.score(a) if finalized and a in scores.nodes else 1
        proof = scores.proof(a) if finalized and a in scores.nodes else []
        if finalized and R.result.table_root and a in scores.nodes:
            proof.append(R.result.table_root)  # a Krum vote's scores root is the tree's parent, with the table
        amount = R.trainer_budget * score // total if finalized and a in scores.nodes and total else 0
        expected = (
            "rewards: round not finalized"
            if not finalized
            else "rewards: no reveal"
            if a not in R.reveals
            else "rewards: already claimed"
            if a in R.claimed
            else "rewards: nothing to claim"
            if total == 0 or amount == 0
            else None
        )
        receipt = self._send(expected, "claim", tid, r, score, proof, sender=node)
        if receipt:
            assert receipt.event("RewardClaimed").args["amount"] == amount
            R.claimed.add(a)
            R.paid_trainers += amount
            self.unclaimed -= amount
            self.payouts[a] += amount
            self._send("rewards: already claimed", "claim", tid, r, score, proof, sender=node)

    @precondition(lambda self: self._any_round(lambda t, R: R.status == FINALIZED, every=True))
    @rule(i=picks, j=picks, r=st.integers(0, 3))
    def claim_validator(self, i, j, r):
        self._claim_validator(*self._target(i, j, r, lambda R: sorted(R.weights) if R.status == FINALIZED else []))

    def _claim_validator(self, tid: int, r: int, node) -> None:
        """validator_budget * seats // seats behind the finalized vote."""
        R, a = self._round(tid, r), node.address
        finalized = R is not None and R.status == FINALIZED
        amount = R.validator_budget * R.weights.get(a, 0) // R.majority if finalized else 0
        expected = (
            "rewards: round not finalized"
            if not finalized
            else "rewards: not in majority"
            if R.votes.get(a) != R.leader
            else "rewards: already claimed"
            if a in R.vclaimed
            else "rewards: nothing to claim"
            if amount == 0
            else None
        )
        receipt = self._send(expected, "claim_validator", tid, r, sender=node)
        if receipt:
            assert receipt.event("RewardClaimed").args["amount"] == amount
            R.vclaimed.add(a)
            R.paid_validators += amount
            self.unclaimed -= amount
            self.payouts[a] += amount
            self._send("rewards: already claimed", "claim_validator", tid, r, sender=node)

    @precondition(lambda self: any(self.payouts.values()))
    @rule(i=picks)
    def withdraw_payout(self, i):
        who = self.accounts[i % len(self.accounts)]
        amount = self.payouts[who.address]
        if self._send(None if amount else "rewards: no payout", "withdraw_payout", sender=who):
            self.payouts[who.address] = 0
            self.balances[who.address] += amount

    # ------------------------------------------------------------ slashing and reclaim

    def _penalize(
        self,
        expected: str | None,
        fn: str,
        tid: int,
        r: int,
        a: str,
        reporter,
        penalty: int,
        share_to: str,
        evidence: tuple = (),
    ) -> None:
        """Report a fault to the slashing contract; on success the round's one slashed
        flag for ``a`` is set and fedchain takes ``penalty``, ``share_to`` earning the
        reporter share. A successful report is immediately sent again by someone else:
        it must revert (one penalty per address and round)."""
        if self._send(expected, fn, tid, r, a, *evidence, sender=reporter, to=self.slashing):
            self._round(tid, r).slashed.add(a)
            self._slash(a, penalty, share_to)
            self.dirty_accounts.add(share_to)
            self._send("slashing: already slashed", fn, tid, r, a, *evidence, sender=self.sponsors[1], to=self.slashing)

    @precondition(lambda self: self._any_round(lambda t, R: R.commits, every=True))
    @rule(i=picks, j=picks, r=st.integers(0, 3), self_report=st.booleans())
    def slash_missing_reveal(self, i, j, r, self_report):
        tid, r, node = self._target(i, j, r, lambda R: sorted(R.commits) if self.block > R.reveal_end else [])
        self._slash_missing_reveal(tid, r, node, node if self_report else self.reporter)

    def _slash_missing_reveal(self, tid: int, r: int, node, reporter) -> None:
        R, a = self._round(tid, r), node.address
        expected = (
            "slashing: no such round"
            if R is None
            else "slashing: reveal phase not over"
            if self.block <= R.reveal_end
            else "slashing: no commitment"
            if a not in R.commits
            else "slashing: revealed"
            if a in R.reveals
            else "slashing: cannot report yourself"
            if reporter.address == a
            else "slashing: already slashed"
            if a in R.slashed
            else None
        )
        self._penalize(expected, "slash_missing_reveal", tid, r, a, reporter, PARAMS.liveness_penalty, reporter.address)

    def _rejected_final(self, t: GTask, R: GRound) -> bool:
        """Whether a round's rejected set is final: finalized, or still open after its
        challenge window with a leader and enough reveals and no open availability request
        (it can only finalize)."""
        return R.status == FINALIZED or (
            R.status == OPEN
            and R.leader is not None
            and self.block > self._window_end(t, R)
            and len(R.reveals) >= t.cfg["min_reveals"]
            and not R.open_requests
        )

    @precondition(lambda self: self._any_round(lambda t, R: R.status != FAILED and R.leader, every=True))
    @rule(
        i=picks,
        j=picks,
        r=st.integers(0, 3),
        self_report=st.booleans(),
        before_finalize=st.booleans(),
        other_vote=st.booleans(),
    )
    def slash_rejected(self, i, j, r, self_report, before_finalize, other_vote):
        """A rejected update reported after finalize, or (``before_finalize``) after the
        challenge window with the leading vote's preimage; ``other_vote`` sends another one."""

        def revealers(R):  # before finalize: of open rounds, inside their window or past it
            return R.reveals if R.leader and (R.status == OPEN or not before_finalize) else []

        tid, r, node = self._target(i, j, r, revealers)
        R = self._round(tid, r)
        result = None
        if before_finalize:
            leading = self.results[R.leader] if R and R.leader else None
            result = leading if leading and not other_vote else self._wrong_result(tid, r, "phantom") if R else NO_VOTE
        self._slash_rejected(tid, r, node, node if self_report else self.reporter, result)

    def _report_rejected_early(self, tid: int, r: int, result: Result) -> None:
        """An eager reporter tries the slash of an update the new leading vote rejects at
        once: refused while the challenge window is open (the lead may still fall)."""
        R = self._round(tid, r)
        rejected = [a for i, a in enumerate(R.reveals) if result.args[4] >> i & 1]
        if rejected:
            self._slash_rejected(tid, r, self._node(rejected[0]), self.reporter, result)

    def _slash_rejected(self, tid: int, r: int, node, reporter, result: Result | None = None) -> None:
        """``slash_rejected``, or with ``result`` (the vote whose rejected set counts)
        ``slash_rejected_before_finalize``, unless the round is finalized."""
        t, R, a = self.tasks[tid], self._round(tid, r), node.address
        if result is None or (R is not None and R.status == FINALIZED):
            fn, args = "slash_rejected", ()
            expected = "slashing: round not finalized" if R is None or R.status != FINALIZED else None
            rejected = R.result.args[4] if expected is None else 0
        else:
            fn, args, rejected = "slash_rejected_before_finalize", result.args, result.args[4]
            expected = (
                "slashing: round not open"
                if R is None or R.status != OPEN or len(R.reveals) < t.cfg["min_reveals"]
                else "slashing: challenge window open"
                if self.block <= self._window_end(t, R)
                else "slashing: availability request open"
                if R.open_requests
                else "slashing: not the leading vote"
                if R.leader is None or result.hash != R.leader
                else None
            )
        if expected is None:
            expected = (
                "slashing: no reveal"
                if a not in R.reveals
                else "slashing: not rejected"
                if not rejected >> R.reveals.index(a) & 1
                else "slashing: cannot report yourself"
                if reporter.address == a
                else "slashing: already slashed"
                if a in R.slashed
                else None
            )
        self._penalize(expected, fn, tid, r, a, reporter, PARAMS.liveness_penalty, reporter.address, args)

    @precondition(lambda self: self._any_round(lambda t, R: R.weights, every=True))
    @rule(i=picks, j=picks, r=st.integers(0, 3), self_report=st.booleans())
    def slash_absent(self, i, j, r, self_report):
        tid, r, node = self._target(i, j, r, lambda R: sorted(R.weights) if self.block > R.validate_end else [])
        self._slash_absent(tid, r, node, node if self_report else self.reporter)

    def _slash_absent(self, tid: int, r: int, node, reporter) -> None:
        R, a = self._round(tid, r), node.address
        expected = (
            "slashing: no such round"
            if R is None
            else "slashing: vote phase not over"
            if self.block <= R.validate_end
            else "slashing: round exempt"
            if self._exempt(self.tasks[tid], R)
            else "slashing: not in committee"
            if R.weights.get(a, 0) == 0
            else "slashing: voted"
            if a in R.votes or a in R.equivocated
            else "slashing: cannot report yourself"
            if reporter.address == a
            else "slashing: already slashed"
            if a in R.slashed
            else None
        )
        self._penalize(expected, "slash_absent", tid, r, a, reporter, PARAMS.liveness_penalty, reporter.address)

    @precondition(lambda self: self._any_round(lambda t, R: R.votes or R.challenger, every=True))
    @rule(i=picks, j=picks, r=st.integers(0, 3), who=picks)
    def slash_wrong_vote(self, i, j, r, who):
        """Anyone reports a vote for a result a challenge proved wrong; the share goes to
        the round's challenger, whoever sends the report."""
        tid, r, node = self._target(i, j, r, lambda R: sorted(R.votes) if R.challenger else [])
        self._slash_wrong_vote(tid, r, node, self.accounts[who % len(self.accounts)])

    def _slash_wrong_vote(self, tid: int, r: int, node, reporter) -> None:
        R, a = self._round(tid, r), node.address
        expected = (
            "slashing: round not challenged"
            if R is None or R.challenger is None
            else "slashing: no wrong vote"
            if R.votes.get(a) != R.leader
            else "slashing: already slashed"
            if a in R.slashed
            else None
        )
        penalty = self._safety_penalty(a) if a in self.stakes else 0
        self._penalize(expected, "slash_wrong_vote", tid, r, a, reporter, penalty, R and R.challenger)

    @precondition(lambda self: any(t.finished for t in self.tasks.values()))
    @rule(j=picks, by_sponsor=st.booleans())
    def reclaim(self, j, by_sponsor):
        tid, t = self._task(j, lambda t, R: t.finished and t.pool > 0)
        sender = next(s for s in self.sponsors if (s.address == t.sponsor) == by_sponsor)
        expected = (
            "tasks: not the sponsor"
            if sender.address != t.sponsor
            else "tasks: not finished"
            if not t.finished
            else "tasks: empty pool"
            if t.pool == 0
            else None
        )
        if self._send(expected, "reclaim", tid, sender=sender):
            self.balances[sender.address] += t.pool
            t.pool = 0

    # ------------------------------------------------------------ invariants

    @invariant()
    def tokens_are_conserved(self):
        """The vault's balance == stakes + unbonding + pools + owed (unclaimed budgets
        plus payout balances) + burned, to the wei (the core and rewards contracts hold
        nothing), each total as the ghost model has
        it (no slash ever refills a pool: the model's pools change only by create_task,
        finalize and reclaim); the challenges contract holds exactly its forfeited
        bonds and the availability game the bonds of its open requests; then the
        accounts and tasks the step touched match the model too."""
        fc = self.fc
        contract = [
            fc.call("total_active", ROLE_TRAINER),
            fc.call("total_active", ROLE_VALIDATOR),
            fc.call("total_unbonding"),
            fc.call("total_pools"),
            fc.call("total_owed"),
            fc.call("burned"),
        ]
        ghost = [
            self._total_active(ROLE_TRAINER),
            self._total_active(ROLE_VALIDATOR),
            sum(s.unbonding for s in self.stakes.values()),
            sum(t.pool for t in self.tasks.values()),
            self.unclaimed + sum(self.payouts.values()),
            self.burned,
        ]
        assert contract == ghost
        assert self.net.balance(fc.vault.address) == sum(contract)
        assert self.net.balance(fc.core.address) == self.net.balance(fc.rewards.address) == 0
        assert fc.call("unclaimed") == self.unclaimed
        assert self.net.balance(self.challenges.address) == self.challenges.call("forfeited") == self.forfeited
        assert self.net.balance(self.availability.address) == self.availability.call("held") == self.held
        assert self.held == PARAMS.request_bond * sum(q.open for q in self.requests.values())
        assert sum(self.balances.values()) + sum(ghost) + self.forfeited + self.held == len(self.accounts) * BALANCE
        self._check_accounts(self.dirty_accounts)
        self._check_tasks(self.dirty_tasks)
        self.dirty_accounts.clear()
        self.dirty_tasks.clear()

    def teardown(self):
        """Every account and task, once per example, every address's slashed flag and
        seat in every round, and every availability request."""
        self._check_accounts(self.balances)
        self._check_tasks(self.tasks)
        for tid, t in self.tasks.items():
            for r, R in enumerate(t.rounds):
                for node in self.nodes:
                    a = node.address
                    assert bool(self.fc.call("record", tid, r, a) & SLASHED) == (a in R.slashed)
                    assert self.fc.call("committee_weight", tid, r, a) == R.weights.get(a, 0)
        for rid, q in self.requests.items():
            c = self.availability.call("requests", rid)
            assert (c["requester"], c["open"], c["deadline"], c["leader"]) == (
                q.requester,
                q.open,
                q.deadline,
                q.leader,
            )

    def _check_accounts(self, addresses) -> None:
        for a in addresses:
            if a in self.stakes:
                s = self.stakes[a]
                assert self.fc.call("stakes", a) == {
                    "role": s.role,
                    "active": s.active,
                    "unbonding": s.unbonding,
                    "release_block": s.release,
                    "since_block": s.since,
                }
            if a in self.balances:
                assert self.net.balance(a) == self.balances[a]
                assert self.fc.call("payouts", a) == self.payouts[a]

    def _check_tasks(self, tids) -> None:
        for tid in tids:
            if tid not in self.tasks:
                continue
            t = self.tasks[tid]
            c = self.fc.call("tasks", tid)
            assert (c["pool"], c["round"], c["finished"]) == (t.pool, t.round, t.finished)
            for r, R in enumerate(t.rounds):
                c = self.fc.call("rounds", tid, r)
                assert (c["reveals"], c["commits"], c["committee_seats"], c["status"]) == (
                    len(R.reveals),
                    len(R.commits),
                    R.committee_seats,
                    R.status,
                )
                assert (c["leader"], c["challenger"]) == (R.leader or ZERO32, R.challenger or NOBODY)
                assert (c["trainer_budget"], c["validator_budget"], c["majority_seats"]) == (
                    R.trainer_budget,
                    R.validator_budget,
                    R.majority,
                )
                if R.requests:
                    assert (
                        self.availability.call("made", tid, r),
                        self.availability.call("open_requests", tid, r),
                    ) == (len(R.requests), len(R.open_requests))

    @invariant()
    def rounds_never_pay_more_than_their_budget(self):
        for t in self.tasks.values():
            for R in t.rounds:
                assert R.paid_trainers <= R.trainer_budget
                assert R.paid_validators <= R.validator_budget

    @invariant()
    def honest_nodes_are_never_slashed(self):
        for a in self.honest:
            assert self.slashed_total[a] == 0
            assert not any(a in R.slashed for t in self.tasks.values() for R in t.rounds)

    @invariant()
    def no_stake_leaves_before_its_faults_can_be_punished(self):
        """Checked on every unbonding queue, not only at withdraw: the release block is
        fixed by the last unbond, so a later fault deadline would show here first."""
        for a, s in self.stakes.items():
            if s.unbonding:
                self._check_release(a, s.release)


TestInvariants = FedchainMachine.TestCase
TestInvariants.settings = settings(
    max_examples=MAX_EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
