"""The validator role: join the committee, check every revealed update,
aggregate and score deterministically, store the new model, vote, finalize.

Every invalid update is rejected with a reason (unavailable, CID mismatch,
malformed file, wrong shape or dtype, NaN/Inf, out of the fixed-point range,
root mismatch) and scores zero; the round goes on without it. Everything that
reaches the vote is exact integer arithmetic, so honest validators agree bit
for bit and any disagreement is evidence. That computation is ``compute_round``,
a pure function of events and blobs: an auditor (``fedchain.protocol.audit``)
replays it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from fedchain.chain import commitments
from fedchain.errors import BlobCorrupt, BlobNotFound, CodecError, LearningError, Reverted
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate import (
    aggregate_update,
    enough_updates,
    needs_root_scores,
    needs_root_set,
    uses_prev_update,
)
from fedchain.learning.train import flatten, param_shapes, unflatten
from fedchain.protocol import root_set
from fedchain.protocol.distances import DistanceTable, combined_scores_root, has_table
from fedchain.protocol.node import Model, Node, RoundView, TaskLog
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.root_set import round_scores
from fedchain.storage.cid import cid_from_digest, cid_of, digest_of
from fedchain.storage.codec import decode_metadata, decode_tensors, encode_tensors
from fedchain.storage.merkle import merkle_root, score_leaf
from fedchain.storage.store import BlobStore

ROLE_VALIDATOR = 2
ZERO = b"\0" * 32
SLASHED_BIT = 1 << 253  # in a trainer's packed round record (see fedchain.vy)


@dataclass(frozen=True)
class RoundResult:
    """What a validator computed for a round, and the vote it makes of it."""

    model_root: bytes
    model_cid: str
    scores_root: bytes
    total_score: int
    rejected: int
    scores: list[tuple[str, int]]
    reasons: dict[str, str]
    blob: bytes = field(repr=False)  # the new model's safetensors file, named by model_cid
    table_blob: bytes | None = field(default=None, repr=False)  # Krum rules: the distance table (protocol.distances)
    # the accepted updates' root-set scores, in reveal order, where the round computed them (Zeno)
    root_set_scores: list[int] | None = field(default=None, repr=False)

    def vote_args(self) -> tuple:
        return (self.model_root, digest_of(self.model_cid), self.scores_root, self.total_score, self.rejected)


class Validator(Node):
    role = "validator"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._joined: set[tuple[int, int]] = set()   # rounds whose join step is done
        self._members: set[tuple[int, int]] = set()  # rounds whose committee we are in
        self._voted: set[tuple[int, int]] = set()
        self._reported: set[tuple[int, int]] = set()
        self._reported_absent: set[tuple[int, int]] = set()

    def act(self, log: TaskLog, v: RoundView, phase: str) -> None:
        task_id = log.task_id
        reveals = len(log.reveals.get(v.round_id, []))
        if phase in ("commit", "reveal"):
            self.join(log, v)
        elif reveals < log.config["min_reveals"]:
            self.try_send("advance", task_id)  # too few reveals: the round fails now
        elif phase == "vote":
            self.report_missing_reveals(log, v)
            self.vote(log, v)
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
        self._joined.add(key)

    # -- vote

    def vote(self, log: TaskLog, v: RoundView) -> None:
        t, r = v.task_id, v.round_id
        if (t, r) in self._voted or (t, r) not in self._members | self._restored_members(t, r):
            return
        entry = self.journal.get("vote", t, r)
        if entry is None:
            result = self.compute(log, v)
            entry = self.journal.write("vote", t, r, model_root=result.model_root.hex(), model_cid=result.model_cid,
                                       scores_root=result.scores_root.hex(), total_score=result.total_score,
                                       rejected=result.rejected)
            for node, reason in result.reasons.items():
                self.log.info("round %d: rejected update of %s: %s", r, node, reason)
        elif self.fc.call("vote_of", t, r, self.address) != ZERO:
            self._voted.add((t, r))
            return  # the journalled vote is on chain already: never vote again
        self.send("vote", t, r, *_vote_args(entry))
        self._voted.add((t, r))
        self.log.info("round %d: voted model %s (total score %d)", r, entry["model_cid"], entry["total_score"])

    def report_missing_reveals(self, log: TaskLog, v: RoundView) -> None:
        """Report every commitment left unrevealed (a provable liveness fault); the
        reporter earns a bounded share of the slash. Only committee members do it,
        once per round each, and only while nobody else has."""
        key = (v.task_id, v.round_id)
        if key in self._reported or key not in self._members:
            return
        revealed = {e.args["node"] for e in log.reveals.get(v.round_id, [])}
        for e in log.commits.get(v.round_id, []):
            node = e.args["node"]
            if node in revealed or self.fc.call("record", *key, node) & SLASHED_BIT:
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
            fields = ("model_root", "model_cid", "scores_root", "total_score", "rejected")
            self.answer_requests_about(log, v, dict(zip(fields, _vote_args(entry))))

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
        result = compute_round(v.task_id, v.round_id, self.current_model(v.task_id),
                               log.reveals.get(v.round_id, []), self.store, self.recipe, self.template)
        if result.table_blob is not None:
            self.store.put(result.table_blob)  # before the model: the model's lineage names it
        self.store.put(result.blob)
        return result

    # -- finalize and rewards

    def finalize(self, log: TaskLog, v: RoundView, leader: bytes) -> None:
        entry = self.journal.get("vote", v.task_id, v.round_id)
        if entry is not None and commitments.vote_hash(*_vote_args(entry)) == leader:
            args = _vote_args(entry)
        else:  # not our vote, or we did not vote: take the leader's preimage from the chain
            a = next(e for e in log.votes[v.round_id] if e.args["vote_hash"] == leader).args
            args = (a["model_root"], a["model_cid"], a["scores_root"], a["total_score"], a["rejected"])
        if self.try_send("finalize", v.task_id, *args):
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
                    self.log.info("round %d: claimed a validator fee of %.4f tokens", r,
                                  rc.event("RewardClaimed").args["amount"] / 1e18)
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


def _vote_args(entry: dict) -> tuple:
    return (bytes.fromhex(entry["model_root"]), digest_of(entry["model_cid"]), bytes.fromhex(entry["scores_root"]),
            entry["total_score"], entry["rejected"])


# -- the deterministic round computation (validators and auditors share it)


def decode_update(data: bytes, shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray:
    """An update blob to its fixed-point vector; CodecError/LearningError say why not."""
    q = fp.to_fixed(flatten(decode_tensors(data, shapes)))
    if q.size == 0:
        raise LearningError("empty update")
    return q


def check_update(ev, store: BlobStore, shapes: Mapping[str, tuple[int, ...]], chunk_size: int) -> np.ndarray:
    """Fetch and check one revealed update; raise with the reason to reject it."""
    q = decode_update(store.get(cid_from_digest(ev.args["update_cid"])), shapes)
    if fp.vector_root(q, chunk_size) != ev.args["update_root"]:
        raise LearningError("update root does not match the blob")
    return q


# Rejections that judge availability (no copy, or no intact copy, could be fetched):
# they cannot be proven on chain, and an auditor takes the committee's word for them.
STORAGE_REASONS = ("unavailable: ", "CID mismatch: ")


def check_updates(revealed: Iterable, store: BlobStore, shapes: Mapping[str, tuple[int, ...]],
                  chunk_size: int) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, str]]:
    """(updates, sample counts, rejection reasons), each keyed by node, in reveal order.

    Reasons name no local path or peer: every validator must write the same
    string, since the model blob that carries them is named by its hash.
    """
    updates, samples, reasons = {}, {}, {}
    for ev in revealed:
        node = ev.args["node"]
        cid = cid_from_digest(ev.args["update_cid"])
        try:
            updates[node] = check_update(ev, store, shapes, chunk_size)
            samples[node] = ev.args["samples"]
        except BlobNotFound:
            reasons[node] = f"unavailable: {cid}"
        except BlobCorrupt:
            reasons[node] = f"CID mismatch: blob {cid} does not hash to its CID"
        except (CodecError, LearningError) as e:
            reasons[node] = str(e)
    return updates, samples, reasons


def aggregate_round(task_id: int, round_id: int, model: Model, revealed: list, updates: dict[str, np.ndarray],
                    samples: dict[str, int], reasons: dict[str, str], recipe: Recipe,
                    template: dict[str, np.ndarray], prev_update: np.ndarray | None = None) -> RoundResult:
    """The round's result from the checked updates: the new model (the recipe's rule from
    ``model``), its blob with the lineage in its metadata, each reveal's score and the
    rejected set.

    ``revealed`` is in reveal-index order; ``updates`` and ``samples`` hold the accepted
    ones and ``reasons`` the rejected ones, as ``check_updates`` returns them.
    ``prev_update`` is the update that made ``model`` (centered clipping's centre; see
    ``previous_update``).
    """
    accepted = list(updates.values())
    seats_of = {ev.args["node"]: ev.args["seats_bps"] for ev in revealed}
    seats = [seats_of[node] for node in updates]
    # Zeno selects by the root-set score; a task scored on the root set pays by the same numbers
    by_root_set = (root_set.validation_round_scores(recipe, model.q, accepted, template, seats)
                   if needs_root_scores(recipe.rule) else None)
    new_q = (fp.clip_fixed(model.q + aggregate_update(
        recipe.rule, recipe.rule_params, accepted, list(samples.values()),
        root_update=root_set.root_update(recipe, model.q, template) if needs_root_set(recipe.rule) else None,
        prev_update=prev_update, root_scores=by_root_set, seats=seats))
             if enough_updates(recipe.rule, recipe.rule_params, seats) else model.q)
    round_score = (by_root_set if by_root_set is not None and recipe.score == "validation"
                   else round_scores(recipe, model.q, accepted, new_q - model.q, template, seats))
    node_scores = dict(zip(updates, round_score))
    # paid scores: the rule's score times the seats the trainer's stake stands for
    scores = [(ev.args["node"], commitments.paid_score(node_scores.get(ev.args["node"], 0), ev.args["seats_bps"]))
              for ev in revealed]
    rejected = sum(1 << ev.args["index"] for ev in revealed if ev.args["node"] in reasons)
    lineage = {"task": task_id, "round": round_id, "parent": model.cid, "rule": recipe.rule,
               "scores": scores, "rejected": reasons}
    scores_root = merkle_root([score_leaf(a, s) for a, s in scores]) if scores else ZERO
    table_blob = None
    if has_table(recipe) and revealed:
        # Krum's distances, committed beside the scores so that a challenge can dispute them
        table = DistanceTable.of_round([updates.get(ev.args["node"]) for ev in revealed], model.q.size,
                                       recipe.chunk_size)
        table_blob = table.to_bytes()
        lineage["distances"] = {"cid": cid_of(table_blob), "root": table.root.hex()}
        scores_root = combined_scores_root(scores_root, table.root)
    blob = encode_tensors(unflatten(fp.from_fixed(new_q), template), {"fedchain": json.dumps(lineage, sort_keys=True)})
    return RoundResult(fp.vector_root(new_q, recipe.chunk_size), cid_of(blob), scores_root,
                       sum(s for _, s in scores), rejected, scores, reasons, blob, table_blob, by_root_set)


def compute_round(task_id: int, round_id: int, model: Model, revealed: Iterable, store: BlobStore, recipe: Recipe,
                  template: dict[str, np.ndarray]) -> RoundResult:
    """What every honest validator computes for a round: a pure function of the previous
    finalized ``model``, the round's ``Revealed`` events (any order), the blobs they name
    and the task's recipe. Nothing is stored: the caller keeps ``result.blob`` if it wants.
    """
    revealed = sorted(revealed, key=lambda e: e.args["index"])
    checked = check_updates(revealed, store, param_shapes(template), recipe.chunk_size)
    prev = previous_update(model, store, param_shapes(template)) if uses_prev_update(recipe.rule) else None
    return aggregate_round(task_id, round_id, model, revealed, *checked, recipe, template, prev)


def previous_update(model: Model, store: BlobStore, shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray | None:
    """The aggregate update that produced ``model``: ``model`` minus its parent, the parent
    named in ``model``'s lineage (None for the task's initial model, which has none).
    A blob that cannot be fetched raises (StorageError): without it no validator can
    compute the round, and none should vote on a guess."""
    try:
        parent = json.loads(decode_metadata(store.get(model.cid))["fedchain"]).get("parent")
    except (CodecError, KeyError, ValueError, TypeError, AttributeError):
        return None
    if not parent:
        return None
    return model.q - decode_update(store.get(parent), shapes)
