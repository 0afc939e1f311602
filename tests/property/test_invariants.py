"""Stateful property test of the fedchain contract: a hypothesis state machine
drives random sequences of every user action against a fresh EmbeddedChain and
keeps a ghost model (stakes, balances, pools, rounds, votes, claims, payouts).

Every action's outcome is predicted by the ghost model first: it must succeed,
or revert with exactly the reason the model names. After every step:

- token conservation to the wei: balance == stakes + unbonding + pools +
  unclaimed + payouts, and the ghost model equals the contract's state;
- no double claim: a successful claim is immediately retried and must revert,
  and what a round paid never exceeds its trainer or validator budget;
- honest nodes (every commitment revealed, never equivocated) are never
  slashed: no ``Slashed`` event names them and their stake changes only by
  their own stake/unbond/withdraw calls.

Honest trainers reveal as soon as their reveal phase opens: every rule that
mines blocks stops there on the way and reveals the pending honest commitments.
Random rules alone rarely line up a whole round inside one example, so an
``honest_network`` rule plays the honest nodes' part of one phase (commit and
join, vote, finalize or advance, claim) and moves to the next phase; every
other rule interleaves anywhere.

Effort comes from the environment:

- ``FEDCHAIN_HYPOTHESIS_PROFILE``: ``default`` (30 examples x 50 steps, under a
  minute on two cores) or ``ci`` (200 examples x 50 steps, a few minutes);
- ``FEDCHAIN_MAX_EXAMPLES`` / ``FEDCHAIN_STEPS`` override either number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from conftest import BALANCE, ROLE_TRAINER, ROLE_VALIDATOR, STAKE, TOKEN, ZERO32, Result, Scores, deterministic, h32, make_net
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fedchain.chain import commitments as cm
from fedchain.chain.deploy import ProtocolParams
from fedchain.chain.embedded import EmbeddedChain
from fedchain.errors import Reverted

PROFILES = {"default": (30, 50), "ci": (200, 50)}  # (max_examples, stateful_step_count)
PROFILE = os.environ.get("FEDCHAIN_HYPOTHESIS_PROFILE", "default")
MAX_EXAMPLES = int(os.environ.get("FEDCHAIN_MAX_EXAMPLES", PROFILES[PROFILE][0]))
STEPS = int(os.environ.get("FEDCHAIN_STEPS", PROFILES[PROFILE][1]))

PARAMS = ProtocolParams(unbonding_delay=17)  # short, so that withdrawals happen; longer than every round (<= 16 blocks)
BPS = 10_000
OPEN, FINALIZED, FAILED = 0, 1, 2
TASK_FUNCTIONS = {"commit", "reveal", "join", "vote", "finalize", "advance", "claim", "claim_validator",
                  "slash_missing_reveal", "slash_rejected", "reclaim"}  # their first argument is a task id

picks = st.integers(0, 15)  # an index into whatever list the rule picks from
masks = st.integers(1, 255)  # a subset of the eight nodes


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
    seed: bytes
    trainer_total: int
    validator_total: int
    commits: dict = field(default_factory=dict)     # node -> Update
    reveals: list = field(default_factory=list)     # nodes in reveal order
    samples: dict = field(default_factory=dict)     # node -> samples
    weights: dict = field(default_factory=dict)     # validator -> committee weight
    votes: dict = field(default_factory=dict)       # validator -> vote hash
    tally: dict = field(default_factory=dict)       # vote hash -> weight
    equivocated: set = field(default_factory=set)
    slashed: set = field(default_factory=set)
    claimed: set = field(default_factory=set)
    vclaimed: set = field(default_factory=set)
    leader: bytes | None = None
    status: int = OPEN
    result: Result | None = None
    trainer_budget: int = 0
    validator_budget: int = 0
    majority: int = 0
    paid_trainers: int = 0
    paid_validators: int = 0

    @property
    def committee_stake(self) -> int:
        return sum(self.weights.values())


@dataclass
class GTask:
    sponsor: str
    cfg: dict
    pool: int
    round: int = 0
    finished: bool = False
    rounds: list = field(default_factory=list)


class FedchainMachine(RuleBasedStateMachine):
    """Random protocol traffic against one deployment, checked against a ghost model."""

    def __init__(self):
        super().__init__()
        self.net = make_net(deterministic(EmbeddedChain()), PARAMS, trainers=4, validators=3, outsiders=3)
        net = self.net
        self.fc, self.chain = net.fc, net.chain
        self.sponsors = [net.owner, net.outsiders[0]]
        self.reporter = net.outsiders[1]
        self.nodes = [*net.trainers, *net.validators, net.outsiders[2]]  # the last one starts unstaked
        self.accounts = [net.owner, *net.outsiders, *net.trainers, *net.validators]
        self.stakes = {a.address: GStake(**dict(zip(
            ["role", "active", "unbonding", "release", "since"], net.stake_of(a).values()))) for a in self.nodes}
        self.balances = {a.address: net.balance(a) for a in self.accounts}
        self.payouts = {a.address: 0 for a in self.accounts}
        self.unclaimed = 0
        self.tasks: dict[int, GTask] = {}
        self.honest = {a.address for a in self.nodes}
        self.slashed_total = {a.address: 0 for a in self.nodes}
        self.pending: list[tuple[int, int, object]] = []  # honest commitments awaiting their reveal
        self.results: dict[bytes, Result] = {}  # vote hash -> the result it stands for
        self.claimed_rounds: set[tuple[int, int]] = set()  # where the honest network claimed
        self.reported_rounds: set[tuple[int, int]] = set()  # where the watcher reported
        self.dirty_accounts: set[str] = set()  # touched since the last invariant check
        self.dirty_tasks: set[int] = set()

    # ------------------------------------------------------------ plumbing

    @property
    def block(self) -> int:
        return self.chain.block_number()

    def _send(self, expected: str | None, fn: str, *args, sender):
        """Send ``fn``: it must succeed if ``expected`` is None, else revert with that reason."""
        try:
            r = self.fc.tx(fn, *args, sender=sender)
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

    def _weight(self, node: str, role: int, opened: int) -> int:
        s = self.stakes[node]
        if s.role != role or s.since >= opened or s.active < PARAMS.min_stake:
            return 0
        return s.active

    def _selected(self, tid: int, r: int, node: str, role: int) -> bool:
        t, R = self.tasks[tid], self.tasks[tid].rounds[r]
        k, total = ((t.cfg["trainers_per_round"], R.trainer_total) if role == ROLE_TRAINER
                    else (t.cfg["validators_per_round"], R.validator_total))
        twin = cm.is_selected(R.seed, node, self._weight(node, role, R.opened), total, k)
        assert self.fc.call("is_selected", tid, r, node, role) == twin
        return twin

    def _total_active(self, role: int) -> int:
        return sum(s.active for s in self.stakes.values() if s.role == role)

    def _open_round(self, tid: int, receipt) -> None:
        t = self.tasks[tid]
        ev = next(e for e in receipt.events if e.name == "RoundOpened").args
        b, c = receipt.block, t.cfg
        assert ev["round_id"] == t.round == len(t.rounds)
        commit_end = b + c["commit_blocks"]
        reveal_end = commit_end + c["reveal_blocks"]
        validate_end = reveal_end + c["validate_blocks"]
        assert (ev["commit_end"], ev["reveal_end"], ev["validate_end"]) == (commit_end, reveal_end, validate_end)
        t.rounds.append(GRound(b, commit_end, reveal_end, validate_end, ev["seed"],
                               self._total_active(ROLE_TRAINER), self._total_active(ROLE_VALIDATOR)))

    def _next_round(self, tid: int, receipt) -> None:
        t = self.tasks[tid]
        if t.round + 1 >= t.cfg["num_rounds"]:
            t.finished = True
            return
        t.round += 1
        self._open_round(tid, receipt)

    def _slash(self, tid: int, node: str, amount: int, reporter: str | None) -> None:
        s = self.stakes[node]
        taken = min(amount, s.active)
        s.active -= taken
        rest = min(amount - taken, s.unbonding)
        s.unbonding -= rest
        share = (taken + rest) * PARAMS.reporter_bps // BPS if reporter else 0
        if reporter:
            self.payouts[reporter] += share
        self.tasks[tid].pool += taken + rest - share
        self.slashed_total[node] += taken + rest

    def _correct_result(self, tid: int, r: int, tag: str = "") -> Result:
        R = self.tasks[tid].rounds[r]
        scores = Scores(tuple(R.reveals), tuple((tid + r + int(a, 16)) % 3 for a in R.reveals))  # 0 happens
        return Result(h32("model", tid, r, tag), h32("model-cid", tid, r, tag), scores)

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

    # ------------------------------------------------------------ staking

    @rule(i=picks, role=st.sampled_from([ROLE_TRAINER, ROLE_VALIDATOR]),
          amount=st.sampled_from([0, 1, STAKE // 2, STAKE, 3 * STAKE]))
    def stake(self, i, role, amount):
        node = self.nodes[i % len(self.nodes)]
        s = self.stakes[node.address]
        expected = ("staking: role mismatch" if s.role not in (0, role)
                    else "staking: zero amount" if amount == 0
                    else "staking: below minimum stake" if s.active + amount < PARAMS.min_stake
                    else "erc20: transfer amount exceeds balance" if self.balances[node.address] < amount
                    else None)
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
        expected = ("staking: zero amount" if amount == 0
                    else "staking: amount exceeds active stake" if amount > s.active
                    else "staking: below minimum stake" if 0 < remaining < PARAMS.min_stake
                    else None)
        r = self._send(expected, "unbond", amount, sender=node)
        if r:
            s.active, s.unbonding, s.release = remaining, s.unbonding + amount, r.block + PARAMS.unbonding_delay

    @precondition(lambda self: any(s.unbonding for s in self.stakes.values()))
    @rule(i=picks)
    def withdraw(self, i):
        """A node withdraws, preferably one with stake unbonding."""
        unbonding = [n for n in self.nodes if self.stakes[n.address].unbonding] or self.nodes
        node = unbonding[i % len(unbonding)]
        s = self.stakes[node.address]
        expected = ("staking: nothing unbonding" if s.unbonding == 0
                    else "staking: still unbonding" if self.block < s.release else None)
        if self._send(expected, "withdraw", sender=node):
            self.balances[node.address] += s.unbonding
            s.unbonding = 0
            if s.active == 0:
                s.role = 0

    # ------------------------------------------------------------ tasks and blocks

    task_configs = dict(
        i=picks, rounds=st.integers(1, 3), kt=st.integers(1, 4), kv=st.integers(1, 3),
        min_reveals=st.integers(1, 2), phases=st.tuples(*[st.integers(1, 4)] * 4),
        fee=st.sampled_from([0, 1_000, 10_000]), pool=st.sampled_from([7, 10**18 + 3, 100 * TOKEN, 100 * TOKEN]),
    )

    @initialize(**task_configs)
    def first_task(self, **cfg):
        self.create_task(**cfg)

    @precondition(lambda self: sum(not t.finished for t in self.tasks.values()) < 2)
    @rule(**task_configs)
    def create_task(self, i, rounds, kt, kv, min_reveals, phases, fee, pool):
        sponsor = self.sponsors[i % 2]
        cfg = self.net.task_config(num_rounds=rounds, trainers_per_round=kt, validators_per_round=kv,
                                   min_reveals=min_reveals, commit_blocks=phases[0], reveal_blocks=phases[1],
                                   validate_blocks=phases[2], challenge_blocks=phases[3],
                                   validator_fee_bps=fee, pool=pool)
        expected = ("tasks: round not shorter than unbonding delay" if sum(phases) >= PARAMS.unbonding_delay
                    else "erc20: transfer amount exceeds balance" if self.balances[sponsor.address] < pool else None)
        r = self._send(expected, "create_task", cfg, sender=sponsor)
        if r:
            tid = r.event("TaskCreated").args["task_id"]
            self.tasks[tid] = GTask(sponsor.address, cfg, pool)
            self.dirty_tasks.add(tid)
            self.balances[sponsor.address] -= pool
            self._open_round(tid, r)

    @rule(n=st.integers(1, 3))
    def mine(self, n):
        self._mine_to(self.block + n)

    @rule(j=picks, deadline=st.integers(0, 4), offset=st.integers(-1, 1))
    def mine_to_deadline(self, j, deadline, offset):
        """Jump to one block around a deadline: the end of the commit, reveal or
        vote phase or of the challenge window of a task's current round, or the
        next block where unbonding stake is released."""
        tid, t = self._task(j)
        R = t.rounds[t.round]
        releases = [s.release for s in self.stakes.values() if s.unbonding and s.release >= self.block]
        ends = [R.commit_end, R.reveal_end, R.validate_end, R.validate_end + t.cfg["challenge_blocks"],
                min(releases, default=self.block)]
        self._mine_to(ends[deadline] + offset)

    def _mine_to(self, target: int) -> None:
        """Mine forward to ``target``, stopping where honest trainers must reveal."""
        for stop in sorted({self.tasks[tid].rounds[r].commit_end + 1 for tid, r, _ in self.pending}):
            if stop <= target:
                self.chain.mine_to(stop)
                self._reveal_pending()
        self.chain.mine_to(target)
        self._reveal_pending()

    # ------------------------------------------------------------ trainers

    def _commit(self, tid: int, node, honest: bool) -> None:
        t = self.tasks[tid]
        r, R = t.round, t.rounds[t.round]
        expected = ("rounds: commit phase over" if self.block > R.commit_end
                    else "rounds: already committed" if node.address in R.commits
                    else "rounds: not selected" if not self._selected(tid, r, node.address, ROLE_TRAINER)
                    else None)
        upd = self.net.update_for(tid, r, node)
        upd = upd.__class__(upd.root, upd.salt, upd.cid, 1 + int(node.address, 16) % 7)
        if expected is None and not honest:
            self.honest.discard(node.address)  # before the tx: it is already a fault
        if self._send(expected, "commit", tid, r, self.net.commitment(tid, r, node, upd), sender=node):
            R.commits[node.address] = upd
            if honest:
                self.pending.append((tid, r, node))

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.commit_end))
    @rule(mask=masks, j=picks)
    def honest_commit(self, mask, j):
        """The trainers in ``mask`` commit; they will reveal as soon as they can."""
        tid, _ = self._task(j, lambda t, R: self.block <= R.commit_end)
        for node in self._masked(mask):
            self._commit(tid, node, honest=True)

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.commit_end))
    @rule(i=picks, j=picks)
    def commit_without_reveal(self, i, j):
        tid, _ = self._task(j, lambda t, R: self.block <= R.commit_end)
        self._commit(tid, self.nodes[i % len(self.nodes)], honest=False)

    @precondition(lambda self: self._any_round(lambda t, R: R.commit_end < self.block <= R.reveal_end))
    @rule(j=picks)
    def mismatched_reveal(self, j):
        """A withholding trainer tries to reveal something else: it must revert."""
        for tid, t in self.tasks.items():
            for r, R in enumerate(t.rounds):
                for node in self.nodes:
                    a = node.address
                    if a in R.commits and a not in R.reveals and a not in self.honest \
                            and R.commit_end < self.block <= R.reveal_end:
                        upd = R.commits[a]
                        self._send("rounds: reveal does not match commitment", "reveal", tid, r, upd.root,
                                   upd.cid, upd.samples, h32("wrong salt", j), sender=node)
                        return

    # ------------------------------------------------------------ validators

    @precondition(lambda self: self._any_round(lambda t, R: self.block <= R.reveal_end))
    @rule(mask=masks, j=picks)
    def join(self, mask, j):
        """The nodes in ``mask`` try to join the round's committee."""
        tid, _ = self._task(j, lambda t, R: self.block <= R.reveal_end)
        for node in self._masked(mask):
            self._join(tid, node)

    def _join(self, tid: int, node) -> None:
        t = self.tasks[tid]
        r, R = t.round, t.rounds[t.round]
        expected = ("rounds: joining closed" if self.block > R.reveal_end
                    else "rounds: already joined" if node.address in R.weights
                    else "rounds: not selected" if not self._selected(tid, r, node.address, ROLE_VALIDATOR)
                    else None)
        if self._send(expected, "join", tid, r, sender=node):
            R.weights[node.address] = self.stakes[node.address].active

    def _vote(self, tid: int, r: int, node, result: Result) -> None:
        R = self._round(tid, r)
        a, h = node.address, result.hash
        reveal_end, validate_end = (R.reveal_end, R.validate_end) if R else (0, 0)
        expected = ("rounds: vote phase not started" if self.block <= reveal_end
                    else "rounds: vote phase over" if self.block > validate_end
                    else "rounds: round closed" if R.status != OPEN
                    else "rounds: not in committee" if R.weights.get(a, 0) == 0
                    else "rounds: equivocated" if a in R.equivocated
                    else "rounds: already voted" if R.votes.get(a) == h
                    else None)
        first = R.votes.get(a) if R else None
        if expected is None and first is not None:
            self.honest.discard(a)
        if not self._send(expected, "vote", tid, r, *result.args, sender=node):
            return
        self.results[h] = result
        w = R.weights[a]
        if first is None:
            R.votes[a] = h
            R.tally[h] = R.tally.get(h, 0) + w
            if R.leader is None and 3 * R.tally[h] >= 2 * R.committee_stake:
                R.leader = h
        else:
            R.equivocated.add(a)
            del R.votes[a]
            R.tally[first] -= w
            if R.leader == first and 3 * R.tally[first] < 2 * R.committee_stake:
                R.leader = None
            s = self.stakes[a]
            self._slash(tid, a, (s.active + s.unbonding) * PARAMS.safety_penalty_bps // BPS, None)

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

    # ------------------------------------------------------------ finalize and advance

    @precondition(lambda self: self._any_round(self._finalizable))
    @rule(j=picks, wrong=st.booleans())
    def finalize(self, j, wrong):
        tid, _ = self._task(j, self._finalizable)
        self._finalize(tid, wrong)

    def _finalizable(self, t: GTask, R: GRound) -> bool:
        return not t.finished and R.leader is not None and self.block > R.validate_end + t.cfg["challenge_blocks"]

    def _finalize(self, tid: int, wrong: bool) -> None:
        t = self.tasks[tid]
        r, R = t.round, t.rounds[t.round]
        result = self.results.get(R.leader) or self._correct_result(tid, r)
        if wrong:
            result = self._correct_result(tid, r, tag="wrong")
        expected = ("rounds: task finished" if t.finished
                    else "rounds: no quorum" if R.leader is None
                    else "rounds: challenge window open" if self.block <= R.validate_end + t.cfg["challenge_blocks"]
                    else "rounds: result does not match quorum" if result.hash != R.leader
                    else None)
        receipt = self._send(expected, "finalize", tid, *result.args, sender=self.reporter)
        if not receipt:
            return
        budget = t.pool // (t.cfg["num_rounds"] - r)
        vb = budget * t.cfg["validator_fee_bps"] // BPS
        tb = budget - vb if result.scores.total else 0
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
        return not t.finished and (self.block > R.reveal_end and len(R.reveals) < t.cfg["min_reveals"]
                                   or self.block > R.validate_end and R.leader is None)

    def _advance(self, tid: int) -> None:
        t = self.tasks[tid]
        R = t.rounds[t.round]
        reason = (1 if self.block > R.reveal_end and len(R.reveals) < t.cfg["min_reveals"]
                  else 2 if self.block > R.validate_end and R.leader is None else 0)
        expected = "rounds: task finished" if t.finished else None if reason else "rounds: nothing to advance"
        receipt = self._send(expected, "advance", tid, sender=self.reporter)
        if receipt:
            assert receipt.event("RoundFailed").args["reason"] == reason
            R.status = FAILED
            self._next_round(tid, receipt)

    # ------------------------------------------------------------ the honest network

    @rule(mask=masks)
    def honest_network(self, mask):
        """Honest nodes (those in ``mask``) do what the current phase of every task's
        round asks of them (commit and join, join, vote, then finalize or advance),
        and the chain moves on to the block after the first of those phases ends.
        They also claim
        what finalized rounds owe them, and a watcher reports unrevealed
        commitments, once per round."""
        for tid_, t_ in self.tasks.items():
            for k, done in enumerate(t_.rounds):
                if self.block > done.reveal_end and (tid_, k) not in self.reported_rounds:
                    self.reported_rounds.add((tid_, k))
                    for a in sorted(set(done.commits) - set(done.reveals) - done.slashed):
                        self._slash_missing_reveal(tid_, k, self._node(a), self.reporter)
                if done.status == FINALIZED and (tid_, k) not in self.claimed_rounds:
                    self.claimed_rounds.add((tid_, k))
                    for a in sorted(done.reveals):
                        if done.result.scores.score(a):
                            self._claim(tid_, k, self._node(a))
                    for a in sorted(v for v, h in done.votes.items() if h == done.leader):
                        self._claim_validator(tid_, k, self._node(a))
        stops = []  # where each task's current phase ends
        for tid, t in list(self.tasks.items()):
            if t.finished:
                continue
            r, R = t.round, t.rounds[t.round]
            window_end = R.validate_end + t.cfg["challenge_blocks"]
            if self.block <= R.reveal_end:
                for node in self._masked(mask):
                    role = self.stakes[node.address].role
                    if role == ROLE_TRAINER and self.block <= R.commit_end and node.address not in R.commits \
                            and self._selected(tid, r, node.address, ROLE_TRAINER):
                        self._commit(tid, node, honest=True)
                    if role == ROLE_VALIDATOR and node.address not in R.weights \
                            and self._selected(tid, r, node.address, ROLE_VALIDATOR):
                        self._join(tid, node)
                stops.append((R.commit_end if self.block <= R.commit_end else R.reveal_end) + 1)
            elif self.block <= R.validate_end:
                if R.status == OPEN:
                    result = self._correct_result(tid, r)
                    for a in sorted(set(R.weights) - set(R.votes) - R.equivocated):
                        self._vote(tid, r, self._node(a), result)
                stops.append(window_end + 1)
            elif self._finalizable(t, R):
                self._finalize(tid, wrong=False)
            elif self._failed(t, R):
                self._advance(tid)
            else:
                stops.append(window_end + 1)
        if stops:
            self._mine_to(min(stops))

    def _node(self, address: str):
        return next(n for n in self.nodes if n.address == address)

    # ------------------------------------------------------------ rewards

    @precondition(lambda self: self._any_round(lambda t, R: R.status == FINALIZED, every=True))
    @rule(i=picks, j=picks, r=st.integers(0, 3))
    def claim(self, i, j, r):
        self._claim(*self._target(i, j, r, lambda R: R.reveals if R.status == FINALIZED else []))

    def _claim(self, tid: int, r: int, node) -> None:
        R, a = self._round(tid, r), node.address
        finalized = R is not None and R.status == FINALIZED
        scores = R.result.scores if finalized else None
        score = scores.score(a) if finalized and a in scores.nodes else 1
        proof = scores.proof(a) if finalized and a in scores.nodes else []
        amount = R.trainer_budget * score // scores.total if finalized and a in scores.nodes and scores.total else 0
        expected = ("rewards: round not finalized" if not finalized
                    else "rewards: no reveal" if a not in R.reveals
                    else "rewards: already claimed" if a in R.claimed
                    else "rewards: nothing to claim" if scores.total == 0 or amount == 0
                    else None)
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
        R, a = self._round(tid, r), node.address
        finalized = R is not None and R.status == FINALIZED
        amount = R.validator_budget * R.weights.get(a, 0) // R.majority if finalized else 0
        expected = ("rewards: round not finalized" if not finalized
                    else "rewards: not in majority" if R.votes.get(a) != R.leader
                    else "rewards: already claimed" if a in R.vclaimed
                    else "rewards: nothing to claim" if amount == 0
                    else None)
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

    @precondition(lambda self: self._any_round(lambda t, R: R.commits, every=True))
    @rule(i=picks, j=picks, r=st.integers(0, 3), self_report=st.booleans())
    def slash_missing_reveal(self, i, j, r, self_report):
        tid, r, node = self._target(i, j, r, lambda R: sorted(R.commits) if self.block > R.reveal_end else [])
        self._slash_missing_reveal(tid, r, node, node if self_report else self.reporter)

    def _slash_missing_reveal(self, tid: int, r: int, node, reporter) -> None:
        R, a = self._round(tid, r), node.address
        expected = ("slashing: no such round" if R is None
                    else "slashing: reveal phase not over" if self.block <= R.reveal_end
                    else "slashing: no commitment" if a not in R.commits
                    else "slashing: revealed" if a in R.reveals
                    else "slashing: cannot report yourself" if reporter.address == a
                    else "slashing: already slashed" if a in R.slashed
                    else None)
        if self._send(expected, "slash_missing_reveal", tid, r, a, sender=reporter):
            R.slashed.add(a)
            self._slash(tid, a, PARAMS.liveness_penalty, reporter.address)

    @precondition(lambda self: any(t.finished for t in self.tasks.values()))
    @rule(j=picks, by_sponsor=st.booleans())
    def reclaim(self, j, by_sponsor):
        tid, t = self._task(j, lambda t, R: t.finished and t.pool > 0)
        sender = next(s for s in self.sponsors if (s.address == t.sponsor) == by_sponsor)
        expected = ("tasks: not the sponsor" if sender.address != t.sponsor
                    else "tasks: not finished" if not t.finished
                    else "tasks: empty pool" if t.pool == 0
                    else None)
        if self._send(expected, "reclaim", tid, sender=sender):
            self.balances[sender.address] += t.pool
            t.pool = 0

    # ------------------------------------------------------------ invariants

    @invariant()
    def tokens_are_conserved(self):
        """balance == stakes + unbonding + pools + owed (unclaimed budgets plus
        payout balances), to the wei, each total as the ghost model has it; then
        the accounts and tasks the step touched match the model too."""
        fc = self.fc
        contract = [fc.call("total_active", ROLE_TRAINER), fc.call("total_active", ROLE_VALIDATOR),
                    fc.call("total_unbonding"), fc.call("total_pools"), fc.call("total_owed")]
        ghost = [self._total_active(ROLE_TRAINER), self._total_active(ROLE_VALIDATOR),
                 sum(s.unbonding for s in self.stakes.values()), sum(t.pool for t in self.tasks.values()),
                 self.unclaimed + sum(self.payouts.values())]
        assert contract == ghost
        assert self.net.balance(fc.address) == sum(contract)
        assert sum(self.balances.values()) + sum(ghost) == len(self.accounts) * BALANCE
        self._check_accounts(self.dirty_accounts)
        self._check_tasks(self.dirty_tasks)
        self.dirty_accounts.clear()
        self.dirty_tasks.clear()

    def teardown(self):
        """Every account and task, once per example."""
        self._check_accounts(self.balances)
        self._check_tasks(self.tasks)

    def _check_accounts(self, addresses) -> None:
        for a in addresses:
            if a in self.stakes:
                s = self.stakes[a]
                assert self.fc.call("stakes", a) == {"role": s.role, "active": s.active, "unbonding": s.unbonding,
                                                     "release_block": s.release, "since_block": s.since}
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
                assert (c["reveals"], c["committee_stake"], c["status"]) == (len(R.reveals), R.committee_stake, R.status)
                assert c["leader"] == (R.leader or ZERO32)
                assert (c["trainer_budget"], c["validator_budget"]) == (R.trainer_budget, R.validator_budget)

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


TestInvariants = FedchainMachine.TestCase
TestInvariants.settings = settings(
    max_examples=MAX_EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
