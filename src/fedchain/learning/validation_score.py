"""Validation scores: how much each update improves the parent model on a clean root set.

The cosine score (``fedchain.learning.scoring``) rewards agreeing with the aggregate,
so ALIE ("a little is enough", Baruch et al., NeurIPS 2019), whose updates sit next
to the mean by design, out-earns honest non-IID trainers. This score asks the root
set instead (the clean data validators hold, as in FLTrust, Cao et al., NDSS 2021):

    P(w)   = sum over root examples of softmax(w; x)[y]       (fixed point, exact)
    G_i    = max(0, P(w + floor(u_i / n)) - P(w))
    t2     = upper median of |u_j|**2 over the round's n accepted updates
             (n and the median count each update once per seat its trainer's stake
             stands for: one, unless a stake is above the sortition cap)
    score_i = G_i                                    if |u_i|**2 <= 25/4 * t2
            = floor(G_i * (25/4 * t2)**4 / |u_i|**8)  otherwise

w is the parent (finalized) model, u_i update i, both fixed point. Why each part:

- P is a smooth accuracy (the expected number of correct answers), so a 1/n step,
  the size of i's share in a FedAvg round, moves it measurably where a correct-count
  would not move at all; G_i is the first-order benefit of i's update to the model
  the network is building. Evaluating the full local model w + u_i instead zeroes
  most honest non-IID trainers once the parent is good: a trainer that holds three
  classes makes the other seven worse (12 of 15 honest zeroed, mlp round 20).
- Floored at 0: an update that hurts the root set earns nothing (sign flip, IPM,
  label flip, noise); there is no negative reward to take away.
- The norm penalty: model replacement (Bagdasaryan et al. 2020) boosts a backdoored
  model's update by gamma ~ n / attackers, and that model is good on clean data by
  design, so G_i alone rewards it (honest share 0.42-0.67 without the penalty in
  rounds 0 and 5). An
  update beyond 2.5x the median norm has its score cut by the 8th power of the
  excess, which is what bounding update norms (Sun et al. 2019, "Can you really
  backdoor federated learning?") does to the aggregate. The median is over the
  round's updates, so attackers, a minority, cannot move it far. Why 2.5: honest
  trainers with large partitions take more local steps; their norms reached 1.7x
  the median (seed 0) and 2.7x (seed 1, round 0, which costs that trainer 44%).
- No gate on agreeing with the aggregate: under IPM with eps = 100 the FedAvg
  aggregate points against every honest update, and such a gate zeroed them all.

Measured with ``benchmarks/scores/measure.py`` (digits, 20 trainers Dirichlet(0.5),
5 attackers, root set 100, epochs 2, lr 0.1; honest share of the score mass, and for
ALIE honest / attacker score per head; the parent is honest FedAvg after r rounds):

    attack        | mlp r0  r5   r20  | logreg r0  r5   r20 | cosine, for comparison
    label flip    | 1.000 1.000 1.000 | 0.998 1.000 1.000   | 0.39-0.80
    sign flip     | 1.000 1.000 1.000 | 1.000 1.000 1.000   | 0.72-0.85
    gaussian      | 0.996 0.998 0.996 | 0.992 0.986 0.980   | 0.88-0.93
    IPM eps 0.1   | 1.000 1.000 1.000 | 1.000 1.000 1.000   | 1.00
    IPM eps 100   | 1.000 1.000 1.000 | 1.000 1.000 1.000   | 0.00
    backdoor      | 1.000 1.000 1.000 | 0.999 1.000 1.000   | 0.21-0.48
    free-rider    | 0.996 0.999 1.000 | 0.999 0.999 0.999   | 0.95-1.00
    ALIE z=0.52   | x1.3  x1.7  x1.4  | x1.6  x1.7  x1.7    | x0.4-0.6 (attackers win)
    ALIE z=1      | x1.7  x4.3  x2.0  | x3.2  x5.0  x4.2    | x0.3-0.6
    no attack     | 0.713 0.723 0.783 | 0.750 0.753 0.816   | (0.75 is an equal share)

Also on digits: cnn (rounds 0, 5, 10) worst 0.957 (label flip, round 0), ALIE
x1.3 or more; mlp seed 1 with 6 attackers worst 0.914 (backdoor, gamma 3, round 5),
ALIE x1.3 or more; mlp seed 2 with 4 attackers worst 0.951 (label flip), ALIE x1.2
or more. Honest trainers zeroed by the floor: none at round 0, up to 4 of 15 at
round 20, when their local data pulls away from the root set's balanced classes;
they score again in rounds where they help.

Where it falls short: on mnist1d (logreg and mlp, lr 0.05 and 0.1), where FedAvg
stalls at 23-34% accuracy, the trainers drawn as attackers send honest updates that
hurt the root set, so their sign-flipped updates help it: the honest share under
sign flip falls to 0.65-0.88 in 5 of the 6 rounds from round 10 on, and ALIE there
is x0.9-x2.3 per head. Everything else on
mnist1d stays at 0.965 or more. A gate on agreeing with the coordinate-wise median
did not help (0.71): the flipped updates are nearly orthogonal to the consensus,
not opposed to it. A round in which no update helps has total score 0 and pays no
trainer (its budget stays in the pool). A score is at most 2**16 * root_set_size.

Every step is exact: the forward pass is ``fedchain.learning.exact`` (int64 with
floor shifts, an integer softmax), sums and norms are Python integers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning import exact
from fedchain.learning.aggregate.common import SEAT, seat_counts, weighted_upper_median
from fedchain.learning.fixedpoint import QMAX, chunked_dot

# Updates up to 5/2 x the median norm are not penalised (|u|**2 <= 25/4 t2); beyond,
# the score is multiplied by (2.5 median / |u|)**8.
SLACK_SQ = (25, 4)
PENALTY_POWER = 8


def root_indices(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(root, rest): a stratified, seeded split of ``labels``' indices, each sorted.

    Validators draw the root set from the held-out test split (which no trainer
    sees); ``rest`` is what is left for reporting test accuracy. sklearn's split
    uses the legacy ``RandomState`` stream, frozen across numpy versions.
    """
    from sklearn.model_selection import train_test_split  # lazy: scikit-learn costs 2 s to import

    labels = np.asarray(labels)
    if not 0 < size < len(labels):
        raise LearningError(f"root_set_size must be in [1, {len(labels) - 1}], got {size}")
    idx = np.arange(len(labels))
    stratify = labels if size >= len(np.unique(labels)) else None
    root, rest = train_test_split(idx, train_size=size, stratify=stratify, random_state=seed)
    return np.sort(root), np.sort(rest)


def true_class_mass(model: str, params: exact.IntParams, xq: np.ndarray, y: np.ndarray) -> int:
    """P(w): the sum over examples of the softmax probability of the true class (2**16 = 1)."""
    return int(class_masses(model, params, xq, y).sum())


def class_masses(model: str, params: exact.IntParams, xq: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P_c(w) for every class c of the model's output: the true-class probability mass of the
    root examples labelled c (int64, exact; a class the root set lacks has mass 0)."""
    p = exact.softmax(exact.logits(model, params, xq))
    out = np.zeros(p.shape[1], dtype=np.int64)
    np.add.at(out, y, p[np.arange(len(y)), y])
    return out


def _penalised(gain: int, num: int, den: int) -> int:
    """``gain`` cut by ((2.5 median) / |u|)**8 when |u|**2 = den / 4 exceeds 25/4 t2 = num / 4."""
    return gain * num ** (PENALTY_POWER // 2) // den ** (PENALTY_POWER // 2) if den > num else gain


def _gains(model, parent_q, updates, template, xq, y, seats):
    """For each update: (P_c(w + floor(u / n)) - P_c(w) for every class c, the penalty's (num, den)),
    n and the median norm counted in seats (``validation_scores``' docstring)."""
    seats = seat_counts(seats, len(updates))
    parent_q = np.asarray(parent_q, dtype=np.int64)
    base = class_masses(model, exact.int_params(parent_q, template), xq, y)
    sq_norms = [chunked_dot(u, u) for u in updates]
    t2 = weighted_upper_median(sq_norms, seats)
    for u, u2 in zip(updates, sq_norms):
        # floor(u / n) with n counted in seats: floor(u * SEAT / total seats in basis points)
        stepped = np.clip(parent_q + np.asarray(u, dtype=np.int64) * SEAT // sum(seats), -QMAX, QMAX)
        yield (
            class_masses(model, exact.int_params(stepped, template), xq, y) - base,
            (SLACK_SQ[0] * t2, SLACK_SQ[1] * u2),
        )


def validation_scores(
    model: str,
    parent_q: np.ndarray,
    updates: Sequence[np.ndarray],
    template: Mapping[str, np.ndarray],
    xq: np.ndarray,
    y: np.ndarray,
    seats: Sequence[int] | None = None,
) -> list[int]:
    """Each update's score (see the module docstring), in the order given.

    Parameters
    ----------
    model : str
        The recipe's model name ("logreg", "mlp", "cnn").
    parent_q : np.ndarray
        The parent model, a flat fixed-point vector.
    updates : sequence of np.ndarray
        The round's accepted fixed-point updates (all of them: n and the median use them).
    template : mapping
        Parameter names and shapes (the flat vector's layout).
    xq, y : np.ndarray
        The root set: quantised inputs (``exact.quantize_inputs``) and labels.
    seats : sequence of int, optional
        The seats each update's trainer stands for, in basis points (the Revealed
        events' ``seats_bps``; one seat each if omitted). n and the median count an
        update once per seat, so one identity holding k stakes is scored exactly as
        k identities sending its update would be (a Sybil gains nothing by splitting).
        With one seat each this is the plain count and upper median, bit for bit.
    """
    if not updates:
        return []
    return [
        _penalised(max(0, int(g.sum())), *pen) for g, pen in _gains(model, parent_q, updates, template, xq, y, seats)
    ]


def class_gains(
    model: str,
    parent_q: np.ndarray,
    updates: Sequence[np.ndarray],
    template: Mapping[str, np.ndarray],
    xq: np.ndarray,
    y: np.ndarray,
    seats: Sequence[int] | None = None,
) -> list[list[int]]:
    """Each update's root-set gain class by class: for every class c, ``max(0, P_c(w + floor(u / n))
    - P_c(w))`` with the same norm penalty as ``validation_scores`` (same arguments). Their sum is at
    least the update's root-set score: an update that helps some classes and hurts others is
    credited for the ones it helps."""
    if not updates:
        return []
    return [
        [_penalised(max(0, int(x)), *pen) for x in g]
        for g, pen in _gains(model, parent_q, updates, template, xq, y, seats)
    ]


def root_update(
    model: str,
    parent_q: np.ndarray,
    template: Mapping[str, np.ndarray],
    xq: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    lr: float,
) -> np.ndarray:
    """FLTrust's g0: the fixed-point update of training the parent on the root set.

    Plain SGD on cross-entropy in exact integer arithmetic (``exact.train_exact``):
    batches in root-set order, no shuffle, no momentum or proximal term, so every
    validator gets the same vector. Returns the trained model minus the parent.
    """
    parent_q = np.asarray(parent_q, dtype=np.int64)
    trained = exact.train_exact(model, exact.int_params(parent_q, template), xq, y, epochs, batch_size, lr)
    return exact.flat_params(trained) - parent_q
