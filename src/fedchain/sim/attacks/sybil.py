"""Sybil: one party splits its stake over k identities.

Each identity stakes the minimum and is selected by stake-weighted sortition
(``fedchain.chain.commitments.is_selected``) like anyone else; the party trains
once on the data of all its identities and every identity sends that same
update. What it can gain is measured, not assumed: ``expected_seats`` is the
exact expectation of the sortition code, and the on-chain simulation pays the
party by score like everyone else.

Expected seats of one identity with weight w out of total T for k seats is
min(1, k*w/T) (up to the contract's integer rounding). Below the cap it is
linear in w, so splitting a stake leaves the expected seats unchanged. At the
cap it is not: a stake with k*w >= T gets one seat, however large, and the same
stake split into identities below the cap gets k*w/T seats, its proportional
share. Rewards make up the difference: an identity's score is paid times the
seats its stake stands for, max(1, k*w/T) (``commitments.seats_bps``), so the
expected reward is k*w/T seats' worth either way, and splitting gains nothing
(the ``sybil_split=False`` simulation is the party as one identity).

That holds for the payment and for the aggregate: every rule counts an update
once per seat, as its k copies would count (``fedchain.learning.aggregate``;
docs/robustness.md, "Sybil rewards by rule and score").
Separately, the party's k copies of its pooled update earn more than its identities
would as separate honest trainers: that is the pooling of data, not the split
(the party earns the same as one identity with the same data and stake).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from fedchain.chain.commitments import MAX_UINT, is_selected
from fedchain.learning import fixedpoint as fp
from fedchain.learning.train import flatten, train_local
from fedchain.protocol.trainer import Trainer
from fedchain.storage.codec import encode_tensors


def selection_probability(weight: int, total: int, k: int) -> Fraction:
    """The exact probability that ``is_selected`` picks a node: its threshold over 2**256."""
    if weight == 0 or total == 0 or k == 0:
        return Fraction(0)
    if weight * k >= total:
        return Fraction(1)
    return Fraction((MAX_UINT // total) * (weight * k), 2**256)


def expected_seats(weights: Sequence[int], total: int, k: int) -> Fraction:
    """Expected number of the given identities that sortition selects in a round."""
    return sum((selection_probability(w, total, k) for w in weights), Fraction(0))


def sampled_seats(seeds: Sequence[bytes], nodes: Sequence[str], weights: Sequence[int], total: int, k: int) -> float:
    """The same expectation estimated by running ``is_selected`` over many round seeds."""
    hits = sum(is_selected(s, a, w, total, k) for s in seeds for a, w in zip(nodes, weights))
    return hits / len(seeds)


class SybilParty:
    """The one party behind every Sybil identity: pools their data and trains once a round."""

    def __init__(self, identities: Sequence[Sybil]):
        self.identities = list(identities)
        self.x = np.concatenate([t.x for t in self.identities])
        self.y = np.concatenate([t.y for t in self.identities])
        self._cache: dict[int, tuple[bytes, bytes]] = {}

    def update(self, model, round_id: int) -> tuple[bytes, bytes]:
        if round_id not in self._cache:
            first = self.identities[0]
            r = first.recipe
            params = train_local(
                first.net, model.params, self.x, self.y, r.train_config(), seed=first.train_seed(round_id)
            )
            delta = {k: (params[k] - model.params[k]).astype(np.float32) for k in model.params}
            self._cache = {round_id: (encode_tensors(delta), fp.vector_root(fp.to_fixed(flatten(delta)), r.chunk_size))}
        return self._cache[round_id]


class Sybil(Trainer):
    """One identity of a Sybil party: sends the party's update (``party`` is set by ``arm``)."""

    party: SybilParty | None = None

    def make_update(self, model, round_id):
        if self.party is None:
            return super().make_update(model, round_id)
        return self.party.update(model, round_id)
