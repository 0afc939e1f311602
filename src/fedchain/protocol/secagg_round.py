"""Secure aggregation in a round: the board's messages, the trainer's four steps and the
validators' unmasking (the cryptography is ``fedchain.learning.secagg``).

A secure-aggregation task (``Recipe.secagg``) runs each round through the board contract
(``secagg.vy``) beside fedchain's own phases:

1. advertise (first third of the commit phase): each selected trainer draws its secrets
   (``TrainerKeys``) and puts its two X25519 public keys on the board. U1 = the advertisers.
2. share (second third): it Shamir-shares its seeds among its neighbours in U1, encrypted to
   each, and posts the bundle's CID. U_shared = the posters whose bundle parses and checks.
3. masked input (last third, then fedchain's reveal phase): it trains, masks its fixed-point
   update (``SecAggTrainer.mask``) and commits and reveals the masked blob as any update.
   U2 = the revealed trainers in U_shared whose masked blob checks (``survivors``); any
   other reveal is rejected with its reason, and a bad blob's sender counts as dropped.
4. answer (first half of the vote phase): each sharer answers the public unmasking request
   (survivors U2, dropped U_shared - U2) with the shares it holds and posts the answer's CID.
   After the answer window, validators (and anyone else) unmask the sum of the survivors'
   weighted updates from this public material alone (``unmasked``): FedAvg's
   update, bit for bit, of the updates nobody saw.

The board's windows are ``windows`` (the contract computes the same). Trainer ids in the
protocol are lower-case hex addresses, so the canonical order is the same everywhere.
Every aggregated update is paid the same score (times its seats): no single update can be
scored under masking. A round whose sum cannot be unmasked (too few answers, the total out
of range) fails: honest validators do not vote (``SecAggRoundError``). A blob that some
parties can fetch and others cannot would split them (as a bundle would): not handled yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from fedchain.chain import commitments
from fedchain.chain.abi import Event
from fedchain.chain.interface import Contract
from fedchain.errors import FedchainError, LearningError, StorageError
from fedchain.learning import fixedpoint as fp
from fedchain.learning import secagg
from fedchain.learning.fixedpoint import MAX_WEIGHT
from fedchain.protocol.challenge import Unchallengeable, UnmaskingChallenge, _chunk_and_proof
from fedchain.protocol.node import Model, Node, RoundView, TaskLog
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import ZERO, Lineage, Reveal, RoundResult, in_reveal_order
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.merkle import keccak, merkle_layers, merkle_root, proof_from_layers, score_leaf
from fedchain.storage.store import BlobStore

SCORE = 1_000_000  # every aggregated update's score, before its seats


class SecAggRoundError(FedchainError):
    """The round cannot be unmasked (too few answers, a survivor's blob missing or malformed,
    a sum out of range): honest validators do not vote, and the round fails."""


@dataclass(frozen=True)
class Windows:
    """A round's last advertise, share and answer blocks (``secagg.vy``'s ``windows``)."""

    advertise_end: int
    share_end: int
    answer_end: int

    @classmethod
    def of(cls, v: RoundView) -> Windows:
        c, vb = v.commit_end - v.opened, v.validate_end - v.reveal_end
        return cls(v.opened + c // 3, v.opened + 2 * c // 3, v.reveal_end + vb // 2)

    def boundaries(self) -> tuple[int, int, int]:
        """The first block after each window (where a simulation steps its nodes again)."""
        return self.advertise_end + 1, self.share_end + 1, self.answer_end + 1


def trainer_id(address: str) -> str:
    return address.lower()


def masked_chunks(y: np.ndarray, chunk_size: int) -> list[bytes]:
    """A masked vector's chunks: ``chunk_size`` big-endian uint64 words each, the last padded
    with zeros (what secagg_judge.vy reads)."""
    words = np.zeros(-(-y.size // chunk_size) * chunk_size, dtype=">u8")
    words[: y.size] = y
    raw, step = words.tobytes(), 8 * chunk_size
    return [raw[i : i + step] for i in range(0, len(raw), step)]


def masked_root(y: np.ndarray, chunk_size: int) -> bytes:
    """The commitment to a masked vector: the Merkle root over its chunks' keccak256, as an
    update root is over its int32 chunks."""
    return merkle_root([keccak(c) for c in masked_chunks(y, chunk_size)])


@dataclass
class Board:
    """One round's messages on the board, as its events state them."""

    adverts: dict[str, secagg.KeyAdvert]
    bundle_cids: dict[str, str]
    answer_cids: dict[str, str]
    self_masks: dict[str, bytes] = field(default_factory=dict)  # keccak256 of each sharer's b

    @classmethod
    def read(cls, board: Contract, task_id: int, round_id: int, from_block: int) -> Board:
        return cls.of(board.events(from_block), task_id, round_id)

    @classmethod
    def of(cls, events: Iterable[Event], task_id: int, round_id: int) -> Board:
        """The round's messages among ``events`` (the board's, perhaps with other contracts')."""
        out = cls({}, {}, {})
        for e in events:
            if e.name not in ("KeysAdvertised", "SharesPosted", "UnmaskAnswered"):
                continue
            a = e.args
            if (a.get("task_id"), a.get("round_id")) != (task_id, round_id):
                continue
            who = trainer_id(a["trainer"])
            if e.name == "KeysAdvertised":
                out.adverts[who] = secagg.KeyAdvert(who, a["c_pk"], a["s_pk"])
            elif e.name == "SharesPosted":
                out.bundle_cids[who] = cid_from_digest(a["bundle_cid"])
                out.self_masks[who] = a["self_mask"]
            elif e.name == "UnmaskAnswered":
                out.answer_cids[who] = cid_from_digest(a["answer_cid"])
        return out

    def params(self, task_id: int, round_id: int, dim: int) -> secagg.SecAggParams:
        """The round's public parameters: U1, the model's length, and the graph, whose seed is
        the hash of U1's adverts (``graph_seed``)."""
        return secagg.SecAggParams.create(task_id, round_id, self.adverts, dim, self.graph_seed())

    def graph_seed(self) -> bytes:
        """keccak of the adverts in canonical order. The graph's guarantees are worst-case (any
        dropouts, any corrupt set within the bounds: ``fedchain.learning.secagg``), so its seed
        only spreads neighbourhoods and need not be unpredictable; taking it from the board
        rather than from the block hash lets anyone recompute a round at any later time (a
        block hash is readable on chain for 256 blocks only)."""
        return keccak(b"".join(bytes.fromhex(u[2:]) + a.c_pk + a.s_pk for u, a in sorted(self.adverts.items())))

    def bundles(self, params: secagg.SecAggParams, store: BlobStore, log=None) -> dict[str, secagg.ShareBundle]:
        """U_shared: the posted bundles that can be fetched, parse, are their poster's and check
        against U1's adverts. A deterministic function of the blobs, so every party that can
        fetch them agrees (a bundle only some can fetch would split them: not handled yet)."""
        out = {}
        for u, cid in sorted(self.bundle_cids.items()):
            try:
                b = secagg.ShareBundle.from_bytes(store.get(cid))
                if b.sharer != u:
                    raise secagg.BundleError(f"the bundle posted by {u} is {b.sharer}'s")
                secagg.validate_bundle(params, self.adverts, b)
            except (StorageError, secagg.SecAggError) as e:
                if log is not None:
                    log.warning("secure aggregation: the share bundle of %s is left out: %s", u, e)
                continue
            out[u] = b
        return out

    def answers(self, store: BlobStore, log=None) -> list[secagg.Reveal]:
        out = []
        for u, cid in sorted(self.answer_cids.items()):
            try:
                rv = secagg.Reveal.from_bytes(store.get(cid))
                if rv.holder != u:
                    raise secagg.SecAggError(f"the answer posted by {u} is {rv.holder}'s")
            except (StorageError, secagg.SecAggError) as e:
                if log is not None:
                    log.warning("secure aggregation: the unmasking answer of %s is left out: %s", u, e)
                continue
            out.append(rv)
        return out


def survivors(
    revealed: Iterable[Reveal],
    shared: Mapping[str, object],
    store: BlobStore,
    dim: int,
    chunk_size: int,
    log=None,
    unfetched: set[str] | None = None,
) -> tuple[dict[str, secagg.MaskedInput], dict[str, str]]:
    """U2, in reveal order: the masked inputs of the revealed trainers that shared their keys
    and whose blob checks (``masked_input``); and the reason each other reveal is left out.
    What a blob holds is a deterministic function of its CID: every party that fetches it
    decides alike, and a trainer that sent a bad blob is treated as dropped (its s key is
    rebuilt, not its b). A blob that cannot be fetched is not evidence of anything: with
    ``unfetched`` (an answerer) its trainer goes into that set and still counts as a survivor,
    so that this party reveals only its b-share, as every party that fetched the blob does
    (were the blob judged missing here and present elsewhere, both of its secrets would be
    revealed); without (a validator), the round cannot be computed here (``SecAggRoundError``:
    no vote), rather than computed differently from the validators that could fetch it."""
    masked, reasons = {}, {}
    for ev in in_reveal_order(revealed):
        if trainer_id(ev.node) not in shared:
            reasons[ev.node] = (
                "secure aggregation: this trainer posted no usable share bundle, so its mask cannot be removed"
            )
            continue
        try:
            masked[trainer_id(ev.node)] = masked_input(ev, store, dim, chunk_size)
        except StorageError as e:
            if unfetched is None:
                raise SecAggRoundError(f"the masked input of {ev.node} cannot be fetched here: {e}") from e
            unfetched.add(trainer_id(ev.node))
        except SecAggRoundError as e:
            reasons[ev.node] = f"secure aggregation: {e}"
            if log is not None:
                log.warning("secure aggregation: %s", e)
    return masked, reasons


def masked_input(ev: Reveal, store: BlobStore, dim: int, chunk_size: int) -> secagg.MaskedInput:
    """A survivor's masked input, checked against its reveal (CID, root, weight, length).
    Raises ``SecAggRoundError`` for a blob that fails, ``StorageError`` for one not fetched."""
    data = store.get(ev.cid)
    try:
        m = secagg.MaskedInput.from_bytes(data)
    except secagg.SecAggError as e:
        raise SecAggRoundError(f"the masked input of {ev.node} cannot be used: {e}") from e
    if m.trainer != trainer_id(ev.node) or m.y.size != dim:
        raise SecAggRoundError(f"the masked input of {ev.node} is not its own or not {dim} words long")
    if m.weight != min(ev.samples, MAX_WEIGHT):
        raise SecAggRoundError(f"the masked input of {ev.node} has weight {m.weight}, its reveal {ev.samples} samples")
    if masked_root(m.y, chunk_size) != ev.update_root:
        raise SecAggRoundError(f"the masked input of {ev.node} does not match its update root")
    return m


@dataclass(frozen=True, eq=False)
class Unmasked:
    """A round's unmasking with what a challenge of it needs: the masked inputs of the
    survivors and their rebuilt self-mask seeds (public once the round is unmasked)."""

    result: RoundResult
    masked: dict[str, secagg.MaskedInput]
    self_seeds: dict[str, bytes]
    new_q: np.ndarray
    sharers: int  # the bundles posted on the board (secagg.vy's `shared`)


def unmasked(
    task_id: int,
    round_id: int,
    model: Model,
    revealed: Iterable[Reveal],
    board: Board,
    store: BlobStore,
    recipe: Recipe,
    template: dict[str, np.ndarray],
    log=None,
) -> Unmasked:
    """What every honest validator computes for a secure-aggregation round (``.result``), with
    the evidence a challenge of it needs: a pure function of the previous model, the reveals,
    the board's messages and the blobs they name. Raises ``SecAggRoundError`` when the round
    cannot be unmasked."""
    revealed = in_reveal_order(revealed)
    dim = model.q.size
    try:
        params = board.params(task_id, round_id, dim)
    except secagg.SecAggError as e:
        raise SecAggRoundError(f"no secure aggregation this round: {e}") from e
    bundles = board.bundles(params, store, log)
    masked, reasons = survivors(revealed, bundles, store, dim, recipe.chunk_size, log)
    if not masked:
        raise SecAggRoundError("no usable masked input from a trainer that shared its keys")
    try:
        um = secagg.unmask(params, board.adverts, bundles, masked, board.answers(store, log), strict=False)
    except secagg.SecAggError as e:
        raise SecAggRoundError(f"the round cannot be unmasked: {e}") from e
    for u, b in um.self_seeds.items():  # what the judge will hold them to (secagg_judge.vy)
        if secagg.self_mask_hash(b) != board.self_masks.get(u):
            raise SecAggRoundError(f"the rebuilt self-mask seed of {u} is not the one it posted on the board")
    if log is not None:
        for r in um.rejected:
            log.warning(
                "secure aggregation: a %s-share of %s from %s left out: %s", r.kind, r.sharer, r.holder, r.reason
            )
    new_q = fp.clip_fixed(model.q + um.fedavg())
    aggregated = {ev.node for ev in revealed if trainer_id(ev.node) in masked}
    scores = [(ev.node, commitments.paid_score(SCORE if ev.node in aggregated else 0, ev.seats_bps)) for ev in revealed]
    rejected = sum(1 << ev.index for ev in revealed if ev.node in reasons)
    scores_root = merkle_root([score_leaf(a, s) for a, s in scores]) if scores else ZERO
    lineage = Lineage(round_id, model.cid, tuple(scores), reasons, task_id, recipe.rule)
    result = RoundResult.of(new_q, lineage, scores_root, rejected, template, recipe.chunk_size)
    return Unmasked(result, masked, dict(um.self_seeds), new_q, len(board.bundle_cids))


def unmasking_challenge(
    ev: Unmasked,
    task_id: int,
    round_id: int,
    revealed: Iterable[Reveal],
    parent_q: np.ndarray,
    claimed_q: np.ndarray,
    vote: tuple,
    recipe: Recipe,
) -> UnmaskingChallenge | None:
    """The challenge of the first value where the voted model ``claimed_q`` differs from the
    honest unmasking ``ev`` (None if it does not). Raises ``Unchallengeable`` for a round the
    judge does not take (rejections or dropouts: secagg_judge.vy)."""
    size = recipe.chunk_size
    wrong = np.flatnonzero(claimed_q != ev.new_q)
    if wrong.size == 0:
        return None
    revealed = in_reveal_order(revealed)
    if vote[4] != 0 or set(ev.masked) != {trainer_id(e.node) for e in revealed}:
        raise Unchallengeable("a masked round with rejections is not judged on chain")
    if ev.sharers != len(revealed):
        raise Unchallengeable("a masked round with dropouts is not judged on chain")
    c, j = divmod(int(wrong[0]), size)
    parent_chunk, parent_proof = _chunk_and_proof(parent_q, c, size)
    claimed_chunk, claimed_proof = _chunk_and_proof(claimed_q, c, size)
    chunks, proofs = b"", []
    for e in revealed:
        y = ev.masked[trainer_id(e.node)].y
        cs = masked_chunks(y, size)
        chunks += cs[c]
        proofs += proof_from_layers(merkle_layers([keccak(x) for x in cs]), c)
    return UnmaskingChallenge(
        task_id,
        round_id,
        vote,
        recipe.challenge_rule,
        keccak(recipe.to_bytes()),
        c,
        j,
        len(parent_proof),
        [e.node for e in revealed],
        [e.update_root for e in revealed],
        [e.salt for e in revealed],
        [ev.self_seeds[trainer_id(e.node)] for e in revealed],
        chunks,
        proofs,
        parent_chunk,
        parent_proof,
        claimed_chunk,
        claimed_proof,
    )


def node_unmasking(node: Node, log: TaskLog, v: RoundView) -> Unmasked:
    """``unmasked`` as a validator or a watcher runs it, from the board it reads."""
    board = Board.read(node.secagg_board(), v.task_id, v.round_id, v.opened)
    return unmasked(
        v.task_id,
        v.round_id,
        node.current_model(v.task_id),
        log.reveals.get(v.round_id, []),
        board,
        node.replica(),
        node.recipe,
        node.template,
        node.log,
    )


class TrainerSession:
    """One trainer's secure aggregation in one round: its secrets in memory only (a restarted
    trainer has lost them and drops out of the round, which the protocol tolerates)."""

    def __init__(self, me: str):
        self.me = trainer_id(me)
        self.keys: secagg.TrainerKeys | None = None
        self.trainer: secagg.SecAggTrainer | None = None
        self.bundles: dict[str, secagg.ShareBundle] | None = None
        self.answered = False

    def advertise(self) -> secagg.KeyAdvert:
        self.keys = secagg.TrainerKeys.draw()
        return self.keys.advert(self.me)

    def share(self, board: Board, params: secagg.SecAggParams) -> tuple[bytes, bytes]:
        """The share bundle's bytes and the hash of the self-mask seed (step 2)."""
        if self.keys is None or self.me not in board.adverts:
            raise LearningError("this trainer did not advertise its keys this round")
        self.trainer = secagg.SecAggTrainer(params, self.me, keys=self.keys)
        return self.trainer.share_keys(board.adverts).to_bytes(), secagg.self_mask_hash(self.keys.b)

    def receive(self, bundles: dict[str, secagg.ShareBundle]) -> dict[str, secagg.SecAggError]:
        if self.trainer is None:
            raise LearningError("this trainer did not share its keys this round")
        self.bundles = bundles
        return self.trainer.receive_shares(bundles, strict=False)

    def mask(self, q: np.ndarray, samples: int, chunk_size: int) -> tuple[bytes, bytes]:
        """The masked input's blob and its root (step 3)."""
        if self.trainer is None or self.bundles is None:
            raise LearningError("masking before the shares were received")
        m = self.trainer.mask(q, samples)
        return m.to_bytes(), masked_root(m.y, chunk_size)

    def answer(self, revealed: Iterable[Reveal], store: BlobStore, chunk_size: int) -> bytes:
        """The answer to the round's unmasking request (step 4): U2 as the validators find it."""
        if self.trainer is None or self.bundles is None:
            raise LearningError("no shares held this round")
        unfetched: set[str] = set()  # counted as survivors: see ``survivors``
        masked, _ = survivors(revealed, self.bundles, store, self.trainer.params.dim, chunk_size, unfetched=unfetched)
        request = secagg.unmask_request(self.bundles, {*masked, *unfetched})
        self.answered = True
        return self.trainer.answer_unmasking(request).to_bytes()
