"""The watcher role: one honest observer is enough.

A watcher holds no data and no stake; it needs only the chain, the blobs and
a bond's worth of tokens. Once a round's vote phase is over and a vote leads,
it recomputes the round with the very ``compute_round`` validators run. If the
voted result is wrong it builds a fraud proof (``fedchain.protocol.challenge``)
and sends it to the challenge contract within the round's challenge window:
the round is reverted, and the watcher then reports every validator that
voted for the wrong result (``slash_wrong_vote`` on the slashing contract),
earning the reporter share of each slash.

It challenges only after ``validate_end``, never during the vote phase: until
then a colluder can dodge a pending challenge by equivocating on purpose, so
that the wrong result loses its quorum and the other colluders keep their
stake (SECURITY-REVIEW L-3). The challenge window must therefore leave enough
blocks to land a challenge (the deployment's ``min_challenge_blocks``).
Differences that cannot be proven on chain (root-set scores, the rejected set,
rules without a judge) are logged loudly and left to ``fedchain audit``.
"""

from __future__ import annotations

from fedchain.chain.interface import Contract
from fedchain.errors import Reverted
from fedchain.protocol.challenge import Unchallengeable, find_score_fault, gather
from fedchain.protocol.recipe import CHALLENGE_NONE
from fedchain.protocol.node import Node, RoundView, TaskLog
from fedchain.protocol.validator import ZERO, compute_round

VOTE_FIELDS = ("model_root", "model_cid", "scores_root", "total_score", "rejected")


class Watcher(Node):
    role = "watcher"

    def __init__(self, *args, challenges: Contract, token: Contract, **kwargs):
        super().__init__(*args, **kwargs)
        self.challenges = challenges
        self.token = token
        self._checked: set[tuple[int, int]] = set()
        self.challenged: list[tuple[int, int, bool]] = []  # (task, round, success)
        self.unprovable: dict[tuple[int, int], str] = {}   # wrong results it could not prove on chain

    def act(self, log: TaskLog, v: RoundView, phase: str) -> None:
        key = (v.task_id, v.round_id)
        if phase != "challenge" or key in self._checked:
            return  # before validate_end a challenge could be dodged by an equivocation (L-3)
        leader = self.fc.call("rounds", *key)["leader"]
        if leader == ZERO:
            return  # no quorum yet (or ever): nothing to check
        vote = next(e.args for e in log.votes.get(v.round_id, []) if e.args["vote_hash"] == leader)
        self.check(log, v, vote, leader)  # if a blob cannot be fetched yet, it raises: the next step retries
        self._checked.add(key)

    def check(self, log: TaskLog, v: RoundView, vote, leader: bytes) -> None:
        t, r = v.task_id, v.round_id
        parent = self.current_model(t)
        revealed = log.reveals.get(r, [])
        mine = compute_round(t, r, parent, revealed, self.store, self.recipe, self.template)
        wrong = [f for f, got in zip(VOTE_FIELDS, mine.vote_args()) if vote[f] != got]
        if not wrong:
            self.log.info("round %d: the leading result checks out", r)
            return
        self.log.warning("round %d: the leading result is wrong in %s", r, ", ".join(wrong))
        try:
            challenge = self.build_challenge(t, r, parent.q, revealed, vote)
        except Unchallengeable as e:
            self.unprovable[(t, r)] = str(e)
            self.log.warning("round %d: cannot prove it on chain: %s", r, e)
            return
        if challenge is None:
            self.unprovable[(t, r)] = (f"the model and the scores are right; {', '.join(wrong)} cannot be proven "
                                       "on chain")
            self.log.warning("round %d: %s", r, self.unprovable[(t, r)])
            return
        if self.send_challenge(challenge):
            self.report_voters(log, v, leader)

    def build_challenge(self, t: int, r: int, parent_q, revealed, vote):
        """A wrong aggregate value first (if the rule is challengeable), else a wrong score
        or total; None if the contract would find nothing wrong."""
        evidence = gather(t, r, parent_q, revealed, vote, self.store, self.recipe, self.shapes)
        if self.recipe.challenge_rule[0] != CHALLENGE_NONE and (fault := evidence.model_fault()) is not None:
            return fault
        return find_score_fault(evidence)

    def send_challenge(self, ch) -> bool:
        bond = self.challenges.call("bond")
        if self.token.call("allowance", self.address, self.challenges.address) < bond:
            self.gas_used += self.token.tx("approve", self.challenges.address, bond, sender=self.account).gas_used
        what = {"challenge": lambda: f"value {ch.coordinate} of chunk {ch.chunk} of the model",
                "challenge_score": lambda: f"the score of reveal {ch.index}",
                "challenge_total": lambda: "the total score",
                "challenge_distance_sum": lambda: f"distance table node {ch.position} at height {ch.height}",
                "challenge_distance_leaf": lambda: f"distances ({ch.i}, {ch.j}) in chunk {ch.chunk}"}[ch.fn]()
        try:
            if getattr(ch, "opening", None) is not None:  # a Krum-rule vote: record its selection first
                self.gas_used += self.challenges.tx("open_table", *ch.opening.args(), sender=self.account).gas_used
            rc = self.challenges.tx(ch.fn, *ch.args(), sender=self.account)
        except Reverted as e:
            self.log.error("round %d: challenge of %s refused: %s", ch.round_id, what, e.reason)
            return False
        self.gas_used += rc.gas_used
        success = rc.event("Challenged").args["success"]
        self.challenged.append((ch.task_id, ch.round_id, success))
        if success:
            self.log.warning("round %d: challenge of %s proved the result wrong; round reverted (%d gas)",
                             ch.round_id, what, rc.gas_used)
        else:
            self.log.error("round %d: challenge of %s failed; bond lost", ch.round_id, what)
        return success

    def report_voters(self, log: TaskLog, v: RoundView, leader: bytes) -> None:
        """Report every validator that voted for the reverted result (a safety fault)."""
        for e in log.votes.get(v.round_id, []):
            if e.args["vote_hash"] != leader:
                continue
            try:
                self.send("slash_wrong_vote", v.task_id, v.round_id, e.args["validator"], to=self.slashing)
                self.log.info("round %d: reported %s for voting for the wrong result", v.round_id, e.args["validator"])
            except Reverted as err:  # reported already (by anyone), or a later equivocation withdrew the vote
                self.log.debug("slash_wrong_vote not needed: %s", err.reason)

    def withdraw(self) -> int:
        """Withdraw the reporter shares earned by challenges (they count as its rewards)."""
        owed = super().withdraw()
        self.rewards += owed
        return owed

    def resume(self, task_id: int) -> None:
        """Nothing to restore: after a restart a watcher checks every round still in its window."""

    def claim_all(self, log: TaskLog) -> None:
        """Watchers claim nothing per round: reporter shares are credited on chain."""

    def outstanding_claims(self, task_id: int) -> int:
        return 0
