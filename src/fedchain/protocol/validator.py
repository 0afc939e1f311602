"""The validator role: join the committee, check every revealed update,
aggregate and score deterministically, store the new model, vote, finalize.

Every invalid update is rejected with a reason (unavailable, CID mismatch,
malformed file, wrong shape or dtype, NaN/Inf, out of the fixed-point range,
root mismatch) and scores zero; the round goes on without it. Everything that
reaches the vote is exact integer arithmetic, so honest validators agree bit
for bit and any disagreement is evidence. That computation is
``protocol.round.compute_round``, a pure function of reveals and blobs that
watchers and auditors (``fedchain.protocol.audit``) run too.
"""

from __future__ import annotations

from fedchain.chain import commitments
from fedchain.chain.layout import Record
from fedchain.errors import Reverted
from fedchain.protocol import root_set
from fedchain.protocol.node import Node, RoundView, TaskLog
from fedchain.protocol.round import ZERO, RoundResult, Vote, compute_round
from fedchain.protocol.secagg_round import SecAggRoundError, Windows, node_unmasking

ROLE_VALIDATOR = 2


class Validator(Node):
    role = "validator"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._joined: set[tuple[int, int]] = set()  # rounds whose join step is done
        self._members: set[tuple[int, int]] = set()  # rounds whose committee we are in
        self._voted: set[tuple[int, int]] = set()
        self._reported: set[tuple[int, int]] = set()
        self._reported_absent: set[tuple[int, int]] = set()
        self._abstained: set[tuple[int, int]] = set()  # rounds it could not compute (secure aggregation)

    def act(self, log: TaskLog, v: RoundView, phase: str) -> None:
        task_id = log.task_id
        reveals = len(log.reveals.get(v.round_id, []))
        if phase in ("commit", "reveal"):
            self.join(log, v)
        elif reveals < log.config["min_reveals"]:
            self.try_send("advance", task_id)  # too few reveals: the round fails now
        elif phase == "vote":
            self.report_missing_reveals(log, v)
            if not self.recipe.secagg or self.chain.block_number() > Windows.of(v).answer_end:
                self.vote(log, v)  # a secure-aggregation round: after the unmasking answers
            else:  # meanwhile receive the masked updates (and serve them on)
                self.replica().prefetch(ev.cid for ev in log.reveals.get(v.round_id, []))
        elif phase == "challenge":
            self.answer_requests(log, v)
        elif phase == "finalize":
            self.answer_requests(log, v)
            self.report_absent(log, v)
            leader = self.fc.call("rounds", task_id, v.round_id)["leader"]
            if leader == ZERO:
                self.try_send("advance", task_id)  # no quorum
            else:
                self.finalize(log, v, leader)

    def try_send(self, fn: str, *args, to=None) -> bool:
        """For calls any node may make: another node may have made it first."""
        try:
            self.send(fn, *args, to=to)
            return True
        except Reverted as e:
            self.log.debug("%s not needed: %s", fn, e.reason)
            return False

    # -- committee

    def join(self, log: TaskLog, v: RoundView) -> None:
        key = (v.task_id, v.round_id)
        if key in self._joined:
            return
        if self.fc.call("committee_weight", *key, self.address):
            self._joined.add(key)
            self._members.add(key)
            return  # joined before a restart
        k = log.config["validators_per_round"]
        seed = self.round_seed(v)
        if seed is None:
            return  # readable from the block after the opening one
        if commitments.is_selected(seed, self.address, self.weight(ROLE_VALIDATOR, v), v.validator_total, k):
            self.send("join", *key)  # if this raises, the next step tries again
            self._members.add(key)
            self.log.info("round %d: joined the committee", v.round_id)
            if self.recipe.uses_root_set:  # load the root set now, not in the vote window (cached)
                root_set.root_set(self.recipe)
        self._joined.add(key)

    # -- vote

    def vote(self, log: TaskLog, v: RoundView) -> None:
        t, r = v.task_id, v.round_id
        if (t, r) in self._voted | self._abstained or (t, r) not in self._members | self._restored_members(t, r):
            return
        entry = self.journal.get("vote", t, r)
        if entry is None:
            try:
                result = self.compute(log, v)
            except SecAggRoundError as e:  # no result to vote for: the round fails without a quorum
                self._abstained.add((t, r))
                self.log.warning("round %d: not voting: %s", r, e)
                return
            entry = self.journal.write(
                "vote",
                t,
                r,
                model_root=result.model_root.hex(),
                model_cid=result.model_cid,
                scores_root=result.scores_root.hex(),
                total_score=result.total_score,
                rejected=result.rejected,
            )
            for node, reason in result.reasons.items():
                self.log.info("round %d: rejected update of %s: %s", r, node, reason)
        elif self.fc.call("vote_of", t, r, self.address) != ZERO:
            self._voted.add((t, r))
            return  # the journalled vote is on chain already: never vote again
        self.send("vote", t, r, *Vote.from_journal(entry).args())
        self._voted.add((t, r))
        self.log.info("round %d: voted model %s (total score %d)", r, entry["model_cid"], entry["total_score"])

    def report_missing_reveals(self, log: TaskLog, v: RoundView) -> None:
        """Report every commitment left unrevealed (a provable liveness fault); the
        reporter earns a bounded share of the slash. Only committee members do it,
        once per round each, and only while nobody else has."""
        key = (v.task_id, v.round_id)
        if key in self._reported or key not in self._members:
            return
        revealed = {e.node for e in log.reveals.get(v.round_id, [])}
        for e in log.commits.get(v.round_id, []):
            node = e.args["node"]
            if node in revealed or Record.unpack(self.fc.call("record", *key, node)).slashed:
                continue
            if self.try_send("slash_missing_reveal", *key, node, to=self.slashing):
                self.log.info("round %d: reported %s for committing without revealing", v.round_id, node)
        self._reported.add(key)

    def answer_requests(self, log: TaskLog, v: RoundView) -> None:
        """Answer every open availability request about the result this validator voted
        for, from the blobs it holds (the model it computed, the updates it checked, the
        distance table): an unanswered request would revert the round and slash its
        voters. The answer's bond pays for its gas."""
        key = (v.task_id, v.round_id)
        entry = self.journal.get("vote", *key) if key in self._voted else None
        if entry is not None:
            self.answer_requests_about(log, v, Vote.from_journal(entry))

    def report_absent(self, log: TaskLog, v: RoundView) -> None:
        """Report every committee member that joined and never voted (a provable
        liveness fault: joining and staying silent would stall a round for free).
        Only members who voted do it, once per round each."""
        key = (v.task_id, v.round_id)
        if key in self._reported_absent or key not in self._voted:
            return
        voted = {e.args["validator"] for e in log.votes.get(v.round_id, [])}
        for e in log.joins.get(v.round_id, []):
            member = e.args["validator"]
            if member not in voted and self.try_send("slash_absent", *key, member, to=self.slashing):
                self.log.info("round %d: reported %s for joining the committee without voting", v.round_id, member)
        self._reported_absent.add(key)

    def _restored_members(self, t: int, r: int) -> set:
        """After a restart the in-memory committee set is empty: ask the chain once."""
        if (t, r) not in self._joined and self.fc.call("committee_weight", t, r, self.address):
            self._joined.add((t, r))
            self._members.add((t, r))
        return self._members

    def compute(self, log: TaskLog, v: RoundView) -> RoundResult:
        result = (
            node_unmasking(self, log, v).result  # a secure-aggregation round: from the board
            if self.recipe.secagg
            else compute_round(
                v.task_id,
                v.round_id,
                self.current_model(v.task_id),
                log.reveals.get(v.round_id, []),
                self.store,
                self.recipe,
                self.template,
            )
        )
        if result.table_blob is not None:
            self.store.put(result.table_blob)  # before the model: the model's lineage names it
        self.store.put(result.blob)
        return result

    # -- finalize and rewards

    def finalize(self, log: TaskLog, v: RoundView, leader: bytes) -> None:
        entry = self.journal.get("vote", v.task_id, v.round_id)
        if entry is not None and Vote.from_journal(entry).hash() == leader:
            vote = Vote.from_journal(entry)
        else:  # not our vote, or we did not vote: take the leader's preimage from the chain
            vote = Vote.from_event(next(e for e in log.votes[v.round_id] if e.args["vote_hash"] == leader))
        if self.try_send("finalize", v.task_id, *vote.args()):
            self.log.info("round %d: finalized", v.round_id)

    def claim_all(self, log: TaskLog) -> None:
        """Claim the fee share of every finalized round this validator voted in."""
        for t, r in sorted(self._voted - self._claimed):
            if t != log.task_id or r not in log.outcome:
                continue
            if log.outcome[r].name == "RoundFinalized":
                try:
                    rc = self.send("claim_validator", t, r)  # if the chain is unreachable: next step
                    self.rewards += rc.event("RewardClaimed").args["amount"]
                    self.log.info(
                        "round %d: claimed a validator fee of %.4f tokens",
                        r,
                        rc.event("RewardClaimed").args["amount"] / 1e18,
                    )
                except Reverted as e:
                    self.log.info("round %d: no validator reward: %s", r, e.reason)
            self._claimed.add((t, r))

    def outstanding_claims(self, task_id: int) -> int:
        """Rounds of the task this validator voted in and has not settled the fee claim of."""
        return sum(1 for t, _ in self._voted - self._claimed if t == task_id)

    def resume(self, task_id: int) -> None:
        """After a restart: rebuild the rounds this validator voted in from its journal
        and the chain, so it never votes twice and claims each fee once. (Committee
        membership is read back from the chain when needed: see ``join``.)"""
        for entry in self.journal.entries("vote", task_id):
            key = (task_id, entry["round"])
            if self.fc.call("vote_of", *key, self.address) != ZERO:
                self._voted.add(key)
            if self.fc.call("validator_claimed", *key, self.address):
                self._claimed.add(key)
