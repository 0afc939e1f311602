"""The watcher role: one honest observer is enough.

A watcher holds no data and no stake; it needs only the chain, the blobs and
a bond's worth of tokens. Once a round's vote phase is over and a vote leads,
it recomputes the round with the very ``compute_round`` validators run. If the
voted result is wrong it builds a fraud proof (``fedchain.protocol.challenge``)
and sends it to the challenge contract within the round's challenge window, in
two steps (SECURITY-REVIEW M-1): it commits to the proof's exact calldata first
and sends the proof once a block has passed, so a bot that copies the pending
proof has no commitment and is refused. The round is reverted, and the watcher then reports every validator that
voted for the wrong result (``slash_wrong_vote`` on the slashing contract),
earning the reporter share of each slash.

It challenges only after ``validate_end``, never during the vote phase: until
then a colluder can dodge a pending challenge by equivocating on purpose, so
that the wrong result loses its quorum and the other colluders keep their
stake (SECURITY-REVIEW L-3). The challenge window must therefore leave enough
blocks to land a challenge, the commitment's block and the proof's (the
deployment's ``min_challenge_blocks``).
If a proof needs data the watcher cannot fetch (the voted model's blob, an
update the vote accepted, a Krum vote's distance table), it asks the
availability game for the root of that tree (``protocol.availability``): the
round cannot finalize until the voters answer on chain, and if nobody does by
the deadline the watcher settles the request, which reverts the round, and
reports the voters. A quorum that holds a wrong model but withholds its blob
must answer: the watcher then goes down the model's tree one answered request a
level, towards the child that differs from the honest model's tree, and at the
leaf sends the one-chunk fraud proof the answers made possible (coordinate-wise
rules; the window must leave a block a level, and one for the commitment).
Differences that cannot be proven on chain (root-set scores, the rejected set,
rules without a judge) are logged loudly and left to ``fedchain audit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedchain.chain.interface import Contract
from fedchain.errors import FedchainError, Reverted
from fedchain.learning import fixedpoint as fp
from fedchain.protocol.availability import KIND_MODEL, KIND_NAMES, KIND_UPDATE, request_args
from fedchain.protocol.challenge import (
    Unchallengeable,
    Withheld,
    _decode_vector,
    find_score_fault,
    gather,
    gather_one_chunk,
)
from fedchain.protocol.node import Node, RoundView, TaskLog
from fedchain.protocol.recipe import CHALLENGE_NONE
from fedchain.protocol.round import VOTE_FIELDS, ZERO, Vote, compute_round
from fedchain.protocol.secagg_round import SecAggRoundError, node_unmasking, unmasking_challenge
from fedchain.storage.merkle import merkle_layers


class Watcher(Node):
    role = "watcher"

    def __init__(self, *args, challenges: Contract, token: Contract, **kwargs):
        super().__init__(*args, **kwargs)
        self.challenges = challenges
        self.token = token
        self._checked: set[tuple[int, int]] = set()
        self.verified: dict[tuple[int, int], Vote] = {}  # leading votes it recomputed and found right
        self.challenged: list[tuple[int, int, bool]] = []  # (task, round, success)
        self.unprovable: dict[tuple[int, int], str] = {}  # wrong results it could not prove on chain
        self.requested: dict[tuple[int, int], bytes] = {}  # availability requests it made, by round
        self.walks: dict[tuple[int, int], _Walk] = {}  # withheld wrong models it is walking down
        self.pending: dict[tuple[int, int], _Pending] = {}  # challenges committed to, not sent yet

    def act(self, log: TaskLog, v: RoundView, phase: str) -> None:
        key = (v.task_id, v.round_id)
        if key in self.pending:
            self.reveal(log, v)
            return
        if key in self.requested:
            self.follow(log, v)
            return
        if key in self.verified:
            self.answer_requests_about(log, v, self.verified[key])  # a right result must not fall for want of data
            return
        if phase != "challenge" or key in self._checked:
            return  # before validate_end a challenge could be dodged by an equivocation (L-3)
        leader = self.fc.call("rounds", *key)["leader"]
        if leader == ZERO:
            return  # no quorum yet (or ever): nothing to check
        vote = Vote.from_event(next(e for e in log.votes.get(v.round_id, []) if e.args["vote_hash"] == leader))
        self.check(log, v, vote, leader)  # if a blob cannot be fetched yet, it raises: the next step retries
        self._checked.add(key)
        if key in self.verified:
            self.answer_requests_about(log, v, vote)

    def check(self, log: TaskLog, v: RoundView, vote: Vote, leader: bytes) -> None:
        t, r = v.task_id, v.round_id
        parent = self.current_model(t)
        revealed = log.reveals.get(r, [])
        if self.recipe.secagg:
            self.check_secagg(log, v, vote, leader)
            return
        mine = compute_round(t, r, parent, revealed, self.store, self.recipe, self.template)
        try:  # the voted model must be available, right or wrong: the next round builds on it
            self.store.get(vote.cid)
        except FedchainError as e:
            if vote.model_root != mine.model_root:  # and it is wrong: walk down its tree to a wrong chunk
                honest = _decode_vector(mine.blob, self.shapes)
                tree = merkle_layers(fp.chunk_leaves(honest, self.recipe.chunk_size))
                self.walks[(t, r)] = _Walk(vote, honest, tree)
            self.request(v, vote, Withheld(f"the voted model blob cannot be fetched: {e}", KIND_MODEL))
            return
        wrong = [f for f, got, voted in zip(VOTE_FIELDS, mine.vote().args(), vote.args()) if voted != got]
        if not wrong:
            self.log.info("round %d: the leading result checks out", r)
            self.verified[(t, r)] = vote
            return
        self.log.warning("round %d: the leading result is wrong in %s", r, ", ".join(wrong))
        try:
            challenge = self.build_challenge(t, r, parent.q, revealed, vote)
        except Withheld as e:
            self.request(v, vote, e)
            return
        except Unchallengeable as e:
            self.unprovable[(t, r)] = str(e)
            self.log.warning("round %d: cannot prove it on chain: %s", r, e)
            return
        if challenge is None:
            self.unprovable[(t, r)] = (
                f"the model and the scores are right; {', '.join(wrong)} cannot be proven on chain"
            )
            self.log.warning("round %d: %s", r, self.unprovable[(t, r)])
            return
        self.commit(log, v, challenge, leader)

    def check_secagg(self, log: TaskLog, v: RoundView, vote: Vote, leader: bytes) -> None:
        """A secure-aggregation round, unmasked from the board as the validators do. A wrong
        model is challenged on chain (``challenge_unmasking``) where the judge takes the round
        (no dropouts, no rejections); otherwise it is recorded as unprovable."""
        key = (v.task_id, v.round_id)
        try:
            mine = node_unmasking(self, log, v)
        except SecAggRoundError as e:  # nobody honest could compute it, yet a quorum voted
            self.unprovable[key] = f"the round cannot be unmasked, yet a result leads: {e}"
            self.log.warning("round %d: %s", v.round_id, self.unprovable[key])
            return
        wrong = [f for f, got, voted in zip(VOTE_FIELDS, mine.result.vote().args(), vote.args()) if voted != got]
        if not wrong:
            self.log.info("round %d: the leading unmasked result checks out", v.round_id)
            self.verified[key] = vote
            return
        self.log.warning("round %d: the leading unmasked result is wrong in %s", v.round_id, ", ".join(wrong))
        try:
            claimed = _decode_vector(self.store.get(vote.cid), self.shapes)
            challenge = unmasking_challenge(
                mine,
                v.task_id,
                v.round_id,
                log.reveals.get(v.round_id, []),
                self.current_model(v.task_id).q,
                claimed,
                vote.args(),
                self.recipe,
            )
        except (Unchallengeable, FedchainError) as e:
            self.unprovable[key] = f"the leading unmasked result is wrong in {', '.join(wrong)}: {e}"
            self.log.warning("round %d: cannot prove it on chain: %s", v.round_id, e)
            return
        if challenge is None:
            self.unprovable[key] = f"the model is right; {', '.join(wrong)} cannot be proven on chain"
            self.log.warning("round %d: %s", v.round_id, self.unprovable[key])
            return
        self.commit(log, v, challenge, leader)

    def commit(self, log: TaskLog, v: RoundView, ch, leader: bytes) -> None:
        """Commit to challenge ``ch`` (its exact calldata, by this watcher), then send it
        as soon as it would land in a later block: at once on a chain that mines a block
        a transaction, else at the next step (``reveal``)."""
        rc = ch.commit(self.challenges, self.account)
        self.gas_used += rc.gas_used
        self.pending[(v.task_id, v.round_id)] = _Pending(ch, rc.block, leader)
        self.log.info("round %d: committed to a challenge (%s) in block %d", v.round_id, ch.fn, rc.block)
        self.reveal(log, v)

    def reveal(self, log: TaskLog, v: RoundView) -> None:
        """Send the challenge committed to in an earlier block; report the voters if it
        proved the result wrong."""
        key = (v.task_id, v.round_id)
        p = self.pending[key]
        if self.chain.block_number() <= p.block:
            return  # the commitment's own block: a challenge there is refused
        del self.pending[key]
        if self.send_challenge(p.challenge):
            self.report_voters(log, v, p.leader)

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
        what = {
            "challenge": lambda: f"value {ch.coordinate} of chunk {ch.chunk} of the model",
            "challenge_score": lambda: f"the score of reveal {ch.index}",
            "challenge_total": lambda: "the total score",
            "challenge_distance_sum": lambda: f"distance table node {ch.position} at height {ch.height}",
            "challenge_distance_leaf": lambda: f"distances ({ch.i}, {ch.j}) in chunk {ch.chunk}",
            "challenge_unmasking": lambda: f"unmasked value {ch.coordinate} of chunk {ch.chunk} of the model",
        }[ch.fn]()
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
            self.log.warning(
                "round %d: challenge of %s proved the result wrong; round reverted (%d gas)",
                ch.round_id,
                what,
                rc.gas_used,
            )
        else:
            self.log.error("round %d: challenge of %s failed; bond lost", ch.round_id, what)
        return success

    def request(self, v: RoundView, vote: Vote, missing: Withheld, level: int = 0, position: int = 0) -> None:
        """Ask the availability game for a node (by default the root) of the tree a proof lacks."""
        self.log.warning("round %d: %s; requesting node (%d, %d) on chain", v.round_id, missing, level, position)
        bond = self.availability.call("bond")
        if self.token.call("allowance", self.address, self.availability.address) < bond:
            self.gas_used += self.token.tx("approve", self.availability.address, bond, sender=self.account).gas_used
        try:
            rc = self.send(
                "request",
                *request_args(v.task_id, v.round_id, vote, self.recipe, missing.kind, missing.index, level, position),
                to=self.availability,
            )
        except Reverted as e:
            self.unprovable[(v.task_id, v.round_id)] = f"{missing}; the availability request was refused: {e.reason}"
            self.log.error("round %d: availability request refused: %s", v.round_id, e.reason)
            return
        self.requested[(v.task_id, v.round_id)] = rc.event("Requested").args["request_id"]
        self.log.info("round %d: requested %s from the availability game", v.round_id, KIND_NAMES[missing.kind])

    def follow(self, log: TaskLog, v: RoundView) -> None:
        """Follow this round's availability request: after its deadline settle it if nobody
        answered (the round is reverted, its voters are reported); once answered, go one
        level down the withheld model's tree towards a chunk that differs from the honest
        model's, and at that chunk send the fraud proof its answer makes possible."""
        key = (v.task_id, v.round_id)
        rid = self.requested[key]
        req = self.availability.call("requests", rid)
        if not req["open"]:
            answer = next(
                (
                    e.args
                    for e in self.availability.events(v.validate_end)
                    if e.name == "Answered" and e.args["request_id"] == rid
                ),
                None,
            )
            walk = self.walks.get(key)
            if (
                walk is not None
                and answer is not None
                and (walk.level, walk.position) == (req["level"], req["position"])
            ):
                self.descend(log, v, walk, answer)
            elif key not in self.unprovable:
                self.unprovable[key] = "the availability request was answered: the data is on chain, node by node"
                self.log.warning("round %d: %s", v.round_id, self.unprovable[key])
            return
        if self.chain.block_number() <= req["deadline"]:
            return
        rc = self.send("settle", rid, to=self.availability)
        if rc.event("Unanswered").args["reverted"]:
            self.challenged.append((v.task_id, v.round_id, True))
            self.log.warning("round %d: nobody answered the availability request; round reverted", v.round_id)
            self.report_voters(log, v, req["leader"])
            if req["kind"] == KIND_UPDATE:
                self.report_trainer(log, v, req["index"])

    def descend(self, log: TaskLog, v: RoundView, walk: _Walk, answer) -> None:
        """One step down the voted model's tree, whose node (walk.level, walk.position) was
        answered: request the child that differs from the honest tree's, or at a leaf
        challenge the wrong value in it with the path the answers gave."""
        key = (v.task_id, v.round_id)
        depth = len(walk.layers) - 1
        if not answer["inner"]:
            self.walks.pop(key)
            if walk.level != depth or len(answer["data"]) == 0:
                self.unprovable[key] = "the voted model's tree is not shaped like the model"
                return
            t, r = key
            try:
                evidence = gather_one_chunk(
                    t,
                    r,
                    self.current_model(t).q,
                    log.reveals.get(r, []),
                    walk.vote,
                    self.store,
                    self.recipe,
                    self.shapes,
                    walk.honest,
                    walk.position,
                    answer["data"],
                    list(reversed(walk.siblings)),
                )
                fault = evidence.model_fault()
            except Unchallengeable as e:
                self.unprovable[key] = str(e)
                return
            if fault is None:
                self.unprovable[key] = f"chunk {walk.position} of the voted model is right"
            else:
                self.commit(log, v, fault, walk.leader)
            return
        if walk.level >= depth:
            self.walks.pop(key)
            self.unprovable[key] = "the voted model's tree is deeper than the model"
            return
        below, p = walk.layers[depth - walk.level - 1], walk.position
        if answer["left"] != below[2 * p]:
            walk.siblings.append(answer["right"])
            walk.position = 2 * p
        elif answer["right"] != below[2 * p + 1]:
            walk.siblings.append(answer["left"])
            walk.position = 2 * p + 1
        else:
            self.walks.pop(key)
            self.unprovable[key] = "the answered node's children are the honest model's"
            return
        walk.level += 1
        self.request(v, walk.vote, Withheld("a node of the withheld model", KIND_MODEL), walk.level, walk.position)

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

    def report_trainer(self, log: TaskLog, v: RoundView, index: int) -> None:
        """Report the trainer whose accepted update nobody put on chain when asked (liveness)."""
        node = next(e.node for e in log.reveals.get(v.round_id, []) if e.index == index)
        try:
            self.send("slash_withheld", v.task_id, v.round_id, node, to=self.slashing)
            self.log.info("round %d: reported %s for withholding its accepted update", v.round_id, node)
        except Reverted as err:  # reported already, or slashed in the round for another fault
            self.log.debug("slash_withheld not needed: %s", err.reason)

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


@dataclass
class _Pending:
    """A challenge committed to in ``block`` and not sent yet, against the vote ``leader``."""

    challenge: object  # a protocol.challenge step
    block: int
    leader: bytes


@dataclass
class _Walk:
    """A walk down a withheld voted model's chunk tree, one answered request a level."""

    vote: Vote
    honest: np.ndarray  # the honest model's fixed-point vector
    layers: list  # its chunk tree (merkle_layers: leaves first)
    level: int = 0
    position: int = 0
    siblings: list = field(default_factory=list)  # the answered siblings, from the root down

    @property
    def leader(self) -> bytes:
        return self.vote.hash()
