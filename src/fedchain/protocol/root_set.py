"""The validators' root set and the round's scores, as the task's recipe names them.

A task whose recipe says ``score = "validation"`` is scored on a root set: the
``root_set_size`` examples drawn, stratified and seeded by ``data_seed``, from the
held-out test split of ``load_dataset(recipe.dataset, seed=recipe.data_seed)``.
No trainer trains on that split; the rest of it (``report_indices``) is what test
accuracy should be reported on, so the root set never grades itself.

Trust assumption: validators hold clean data from the task's distribution (here the
public dataset, regenerated locally and bit-identical on every machine), as FLTrust's
server does (Cao et al., NDSS 2021). A trainer who knows the root set can fit it;
the set is public here because every validator must load the same bits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning import exact
from fedchain.learning.innovation import innovation_scores
from fedchain.learning.scoring import scores as cosine_scores
from fedchain.learning.validation_score import root_indices, validation_scores
from fedchain.learning.validation_score import root_update as _root_update
from fedchain.protocol.recipe import Recipe

SCORES = ("cosine", "validation", "innovation")


@dataclass(frozen=True)
class RootSet:
    xq: np.ndarray  # quantised inputs, read-only
    y: np.ndarray  # labels, read-only


def root_set(recipe: Recipe) -> RootSet:
    """The recipe's root set (loaded once per process and cached)."""
    return _load(recipe.dataset, recipe.data_seed, recipe.root_set_size)


@functools.cache
def _load(dataset: str, data_seed: int, size: int) -> RootSet:
    # imported here: the datasets pull in scikit-learn (2 s), which a node that never
    # scores on a root set should not pay for at start-up
    from fedchain.learning.data import load_dataset

    data = load_dataset(dataset, seed=data_seed)
    idx, _ = root_indices(data.y_test, size, data_seed)
    xq, y = exact.quantize_inputs(data.x_test[idx]), data.y_test[idx].copy()
    xq.setflags(write=False)
    y.setflags(write=False)
    return RootSet(xq, y)


def report_indices(recipe: Recipe, y_test: np.ndarray) -> np.ndarray:
    """Indices of the test split left after the root set: report accuracy on these."""
    return root_indices(y_test, recipe.root_set_size, recipe.data_seed)[1]


def round_scores(
    recipe: Recipe,
    parent_q: np.ndarray,
    updates: Sequence[np.ndarray],
    aggregate: np.ndarray,
    template: Mapping[str, np.ndarray],
    seats: Sequence[int] | None = None,
    public: Sequence[np.ndarray] = (),
    root_scores: Sequence[int] | None = None,
) -> list[int]:
    """Each accepted update's score under the recipe's rule ("cosine", "validation" or
    "innovation"); ``seats`` (basis points, one seat each if omitted) matter to the root-set
    scores, ``public`` (``round.public_span``) to the innovation score only, and
    ``root_scores`` are the updates' root-set scores where the caller computed them already
    (Zeno selects by them): the root-set score uses them instead of computing again."""
    if recipe.score == "cosine":
        return cosine_scores(updates, aggregate)
    if recipe.score == "validation":
        if root_scores is not None:
            return list(root_scores)
        return validation_round_scores(recipe, parent_q, updates, template, seats)
    if recipe.score == "innovation":
        rs = root_set(recipe)
        return innovation_scores(recipe.model, parent_q, updates, public, template, rs.xq, rs.y, seats)
    raise LearningError(f"unknown score {recipe.score!r}; choose one of {list(SCORES)}")


def validation_round_scores(
    recipe: Recipe,
    parent_q: np.ndarray,
    updates: Sequence[np.ndarray],
    template: Mapping[str, np.ndarray],
    seats: Sequence[int] | None = None,
) -> list[int]:
    """Each update's root-set score (``validation_score.validation_scores``): what a task
    with ``score = "validation"`` pays by and what Zeno selects by."""
    rs = root_set(recipe)
    return validation_scores(recipe.model, parent_q, updates, template, rs.xq, rs.y, seats)


def root_update(recipe: Recipe, model_q: np.ndarray, template: Mapping[str, np.ndarray]) -> np.ndarray:
    """FLTrust's g0: the fixed-point update of training ``model_q`` on the root set with the
    recipe's epochs, batch size and learning rate, in exact integer arithmetic (momentum and
    the proximal term are not applied). Identical on every validator."""
    rs = root_set(recipe)
    return _root_update(recipe.model, model_q, template, rs.xq, rs.y, recipe.epochs, recipe.batch_size, recipe.lr)
