"""The robustness grid: every aggregation rule against every update attack.

One cell is (dataset, rule, attack, Byzantine share, seed). It runs the
learning path of the simulation without the chain: the same partitions, model,
initial weights, local training and training seeds as ``fedchain simulate``
(``fedchain.sim.network``), the same attack code as the on-chain attackers
(``fedchain.sim.attacks``), and for the round result the very function the
validators run, ``fedchain.protocol.round.aggregate_round`` (aggregation
by the recipe's rule, scores, the model blob). What it leaves out is what does
not change the numbers: blobs, commitments, votes. Rewards are the contract's
``claim`` formula applied to those scores (``trainer_budget * score //
total_score``, with the round budget ``pool // rounds_left`` less the validator
fee), so the honest reward share is what the trainers would claim on chain;
``tests/sim/test_bench.py`` checks a cell against a full on-chain run, model
root and every claim.

The last ``f = round(share * trainers)`` trainers are the attackers, as in the
simulation. Rules are configured once for every cell, for a tolerance of 30%
Byzantine trainers (``rule_params``), as a deployment would be.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache, partial
from typing import Any

import numpy as np
import torch

from fedchain.chain.commitments import BPS
from fedchain.chain.deploy import TOKEN
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate import RULES, registry
from fedchain.learning.data import load_dataset, partition
from fedchain.learning.models import build_model
from fedchain.learning.train import evaluate, flatten, get_params, param_shapes, train_local, unflatten
from fedchain.protocol.node import Model
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.root_set import report_indices, round_scores
from fedchain.protocol.round import PUBLIC_ROUNDS, ZERO, Reveal, aggregate_round, decode_update
from fedchain.protocol.trainer import client_momentum
from fedchain.sim.attacks import ATTACKS, Knowledge, finish
from fedchain.sim.attacks.backdoor import triggered_test_set
from fedchain.sim.network import SimConfig, build_network, play_round, settle
from fedchain.sim.simulate import model_accuracy

# The model the simulation trains on each dataset (MNIST-1D is a vector: no CNN).
MODELS = {"digits": "cnn", "mnist": "cnn", "mnist1d": "mlp"}
TOLERANCE = 0.3  # the Byzantine share every rule is configured for
VALIDATOR_FEE_BPS = 1_000  # create_task's default
BASELINE = "fedavg"  # the undefended rule every table is read against (no-attack FedAvg)


@dataclass(frozen=True)
class Cell:
    dataset: str
    rule: str
    attack: str | None  # None: no attack
    byzantine_fraction: float
    seed: int


@dataclass(frozen=True)
class Setup:
    """Everything but the rule and the attack: the simulation's defaults."""

    trainers: int = 20
    alpha: float = 0.5
    rounds: int = 20
    epochs: int = SimConfig.epochs
    lr: float = SimConfig.lr
    momentum: float = SimConfig.momentum
    batch_size: int = SimConfig.batch_size
    pool: int = SimConfig.pool
    model: str | None = None  # None: the dataset's model in MODELS


def rule_params(rule: str, trainers: int, tolerance: float = TOLERANCE) -> dict:
    """The rule's parameters for a tolerance of ``tolerance`` Byzantine trainers: its registry
    entry's ``tolerating`` (e.g. Krum's f = round(tolerance * n), the trimmed mean's beta =
    tolerance; each rule's module says why)."""
    return registry.get(rule).tolerating(trainers, tolerance)


@dataclass(frozen=True)
class Variant:
    """A named configuration of a rule beyond ``rule_params``: NNM pre-aggregation, other
    parameters, client momentum, or f set to the cell's actual attacker count.

    A cell whose ``rule`` is a name in ``VARIANTS`` runs the very same path as a plain rule
    (``run_cell``, ``aggregate_round``); only its recipe differs.
    """

    rule: str  # the aggregation rule (a name in RULES)
    params: tuple[tuple[str, object], ...] = ()  # set over rule_params(rule, trainers)
    nnm: bool = False  # NNM pre-aggregation with f = round(TOLERANCE * trainers)
    f_matched: bool = False  # num_malicious_nodes = the cell's attacker count, round(share * trainers)
    client_momentum: float = 0.0  # the recipe's client_momentum (honest trainers apply it)
    about: str = ""

    def rule_params(self, trainers: int, byzantine_fraction: float) -> dict:
        p = rule_params(self.rule, trainers)
        if self.nnm:
            p |= {"nnm": True, "num_malicious_nodes": int(round(TOLERANCE * trainers))}
        if self.f_matched:
            p["num_malicious_nodes"] = int(round(byzantine_fraction * trainers))
        return p | dict(self.params)


VARIANTS: dict[str, Variant] = {
    "nnm+centeredclipping": Variant(
        "centeredclipping", nnm=True, about="NNM (f = 6) before centered clipping (tau 2.5, 3 iterations)"
    ),
    "nnm+fedtrimmedavg": Variant("fedtrimmedavg", nnm=True, about="NNM (f = 6) before the trimmed mean (beta 0.3)"),
    "nnm+multikrum": Variant("multikrum", nnm=True, about="NNM (f = 6) before MultiKrum (f = 6)"),
    "centeredclipping+momentum0.9": Variant(
        "centeredclipping",
        client_momentum=0.9,
        about="centered clipping (tau 2.5, 3 iterations), honest trainers send client momentum 0.9 of their updates",
    ),
    "zeno+clip": Variant(
        "zeno",
        params=(("clip", True),),
        about="Zeno (b = 6) on the root-set score, kept updates clipped to the round's median norm",
    ),
    "multikrum_f_matched": Variant(
        "multikrum",
        f_matched=True,
        about="MultiKrum with f matched to the attack share: f = the actual attacker "
        "count (4 at 20%, 6 at 30%, 0 without attack)",
    ),
}


def cell_recipe(dataset: str, rule: str, byzantine_fraction: float, setup: Setup, data=None, seed: int = 0) -> Recipe:
    """The recipe of a cell: ``recipe_of`` for a plain rule; for a name in VARIANTS, the
    variant's rule, parameters and client momentum."""
    v = VARIANTS.get(rule) if rule not in RULES else None
    if v is None:
        return recipe_of(dataset, rule, setup, data, seed)
    return replace(
        recipe_of(dataset, v.rule, setup, data, seed),
        rule_params=v.rule_params(setup.trainers, byzantine_fraction),
        client_momentum=v.client_momentum,
    )


def uses_root_set(rule: str, recipe: Recipe | None = None) -> bool:
    """Whether validators use trusted root data: FLTrust and Zeno do, and so does a root-set score."""
    if recipe is not None:
        return recipe.uses_root_set
    r = RULES[rule]
    return r.needs_root_set or r.needs_root_scores


@lru_cache(maxsize=4)
def _world(dataset: str, seed: int, setup: Setup):
    """Data, partitions, recipe template and initial model of (dataset, seed), as build_network makes them."""
    data = load_dataset(dataset, seed=seed)
    parts = partition("dirichlet", data.y_train, setup.trainers, seed=seed, alpha=setup.alpha)
    model = setup.model or MODELS[dataset]
    template = get_params(build_model(model, tuple(data.input_shape), data.num_classes, seed=0))
    # the initial model as the task publishes it: in fixed point
    raw = get_params(build_model(model, tuple(data.input_shape), data.num_classes, seed=seed))
    initial = unflatten(fp.from_fixed(fp.to_fixed(flatten(raw))), template)
    net = build_model(model, tuple(data.input_shape), data.num_classes, seed=0)
    return data, parts, model, initial, template, net


@lru_cache(maxsize=64)
def _first_round_update(dataset: str, seed: int, setup: Setup, i: int) -> np.ndarray:
    """Round 0 starts from the same model in every cell: its honest updates are computed once."""
    data, parts, _, initial, _, _ = _world(dataset, seed, setup)
    return _train(dataset, seed, setup, i, initial, 0, data.x_train[parts[i]], data.y_train[parts[i]])


def _train(
    dataset: str, seed: int, setup: Setup, i: int, params: dict, round_id: int, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Trainer i's update, as ``Trainer.train`` computes it (same seed, same float32 delta)."""
    data, _, _, _, _, net = _world(dataset, seed, setup)
    tc = recipe_of(dataset, "fedavg", setup, data).train_config()
    trained = train_local(net, params, x, y, tc, seed=(seed * 1000 + i) * 100_003 + round_id)
    return flatten({k: (trained[k] - params[k]).astype(np.float32) for k in params})


def recipe_of(dataset: str, rule: str, setup: Setup, data=None, seed: int = 0, score: str = "cosine") -> Recipe:
    """The recipe ``build_network`` writes for this setup (root set drawn from seed's held-out split)."""
    data = data or load_dataset(dataset)
    return Recipe(
        model=setup.model or MODELS[dataset],
        dataset=dataset,
        input_shape=tuple(data.input_shape),
        num_classes=data.num_classes,
        epochs=setup.epochs,
        batch_size=setup.batch_size,
        lr=setup.lr,
        momentum=setup.momentum,
        rule=rule,
        rule_params=rule_params(rule, setup.trainers),
        score=score,
        data_seed=seed,
    )


class Payouts:
    """The contract's budget and claim arithmetic (fedchain.vy: ``finalize``, ``claim``), per trainer."""

    def __init__(self, pool: int, rounds: int, trainers: int):
        self.pool, self.rounds, self.rewards = pool, rounds, [0] * trainers

    def pay(self, round_id: int, scores: list[int]) -> None:
        budget = self.pool // (self.rounds - round_id)
        validator_budget = budget * VALIDATOR_FEE_BPS // 10_000
        total = sum(scores)
        trainer_budget = budget - validator_budget if total else 0
        self.pool -= validator_budget + trainer_budget
        for i, s in enumerate(scores):
            if s:
                self.rewards[i] += trainer_budget * s // total

    def min_over_median(self, honest: list[int]) -> float | None:
        """The lowest-paid honest trainer's reward over the median honest trainer's."""
        med = float(np.median([self.rewards[i] for i in honest]))
        return min(self.rewards[i] for i in honest) / med if med else None

    def shares(self, honest: list[int], attackers: list[int]) -> dict:
        total, h = sum(self.rewards), sum(self.rewards[i] for i in honest)
        return {
            "honest_reward_share": h / total if total else None,
            "honest_reward_per_head": h / len(honest) / TOKEN,
            "attacker_reward_per_head": (total - h) / len(attackers) / TOKEN if attackers else None,
        }


def run_cell(cell: Cell, setup: Setup = Setup()) -> dict:
    """Play one cell for ``setup.rounds`` rounds; accuracy, attack success, rewards."""
    start = time.perf_counter()
    torch.set_num_threads(1)  # as build_network: one thread, so that training is bit-identical to the simulation's
    data, parts, model, initial, template, net = _world(cell.dataset, cell.seed, setup)
    recipe = cell_recipe(cell.dataset, cell.rule, cell.byzantine_fraction, setup, data, cell.seed)
    by_root_set = replace(recipe, score="validation")
    by_innovation = replace(recipe, score="innovation")
    test = report_indices(recipe, data.y_test)  # the test split less the validators' root set
    n = setup.trainers
    attack = ATTACKS[cell.attack] if cell.attack else None
    if attack is not None and attack.protocol:
        raise ValueError(f"{cell.attack} is a protocol attack: only the on-chain simulation runs it")
    f = int(round(cell.byzantine_fraction * n)) if attack else 0
    honest_ids, attacker_ids = list(range(n - f)), list(range(n - f, n))
    xs = {i: (data.x_train[parts[i]], data.y_train[parts[i]]) for i in range(n)}
    if attack is not None and attack.local_data is not None:
        for i in attacker_ids:
            xs[i] = attack.local_data(*xs[i], data.num_classes, np.random.default_rng(cell.seed * 1000 + i))
    samples = [len(xs[i][1]) for i in range(n)]
    nodes = [f"0x{i + 1:040x}" for i in range(n)]
    shapes = param_shapes(template)

    q = fp.to_fixed(flatten(initial))
    cosine, validation, innovation = (Payouts(setup.pool, setup.rounds, n) for _ in range(3))
    curve: list[float] = []
    # public information before each round: the global updates so far (fixed point, newest first)
    # and the last round's accepted updates in reveal order (round.public_span reads the same)
    history: list[np.ndarray] = []
    last: list[np.ndarray] = []
    prev = None  # the update that made the current model: centered clipping's centre (round.previous_update)
    momentum: dict[int, np.ndarray] = {}  # honest trainers' client momentum buffers (recipe.client_momentum)
    for r in range(setup.rounds):
        params = unflatten(fp.from_fixed(q), template)

        def trained(i):  # called only in this round: binding r and params late is what is meant
            if r == 0 and not (attack and attack.local_data and i in attacker_ids):  # noqa: B023
                return _first_round_update(cell.dataset, cell.seed, setup, i)
            return _train(cell.dataset, cell.seed, setup, i, params, r, *xs[i])  # noqa: B023

        updates = {i: trained(i) for i in honest_ids}
        if recipe.client_momentum:  # what honest trainers send (Trainer.make_update); attackers send raw crafts
            for i in honest_ids:
                updates[i] = momentum[i] = client_momentum(
                    {"u": momentum[i]} if i in momentum else None, {"u": updates[i]}, recipe.client_momentum
                )["u"]
        # An honest trainer whose training diverged (a wrecked model) cannot send a valid
        # update: it could not commit one on chain either, so it sits the round out.
        valid = {i: u for i, u in updates.items() if _in_range(u)}
        if attacker_ids:
            assert attack is not None  # attackers only under an attack (f > 0)
            honest = (
                np.stack([valid[i] for i in honest_ids if i in valid]).astype(np.float64)
                if attack.omniscient and valid
                else np.zeros((0, q.size))
            )
            g = flatten(params).astype(np.float64)
            # what every attacker reads of earlier rounds (float, as the attacks compute), once a round
            seen = tuple(fp.from_fixed(h).astype(np.float64) for h in history) if attack.public else ()
            last_seen = (
                np.stack([fp.from_fixed(u) for u in last]).astype(np.float64) if attack.public and last else None
            )
            for i in attacker_ids:
                own = trained(i).astype(np.float64) if attack.trains else None
                if attack.craft is None:
                    assert own is not None, "an attack that crafts nothing sends the update it trained"
                    valid[i] = finish(own)
                else:
                    valid[i] = finish(
                        attack.craft(
                            Knowledge(
                                model=g,
                                own=own,
                                honest=honest,
                                n=n,
                                f=f,
                                rng=np.random.default_rng([cell.seed * 1000 + i, r]),
                                history=seen,
                                revealed=last_seen,
                            )
                        )
                    )
        ids = sorted(valid)  # reveal order: trainer order, as the simulation steps them
        # as on the chain: every trainer holds one minimum stake and k = n, so each stands for one seat
        # (no blobs, no commitments: the updates are in memory and aggregate_round reads no root, CID or salt)
        revealed = [Reveal(0, r, nodes[i], k, ZERO, ZERO, samples[i], ZERO, BPS) for k, i in enumerate(ids)]
        qs = {nodes[i]: fp.to_fixed(valid[i]) for i in ids}
        model_now = Model(params=params, q=q, root=b"", cid="")
        result = aggregate_round(
            0, r, model_now, revealed, qs, {nodes[i]: samples[i] for i in ids}, {}, recipe, template, prev_update=prev
        )
        new_q = decode_update(result.blob, shapes)
        cosine.pay(r, _by_trainer(n, ids, [s for _, s in result.scores]))
        # the same round scored on the root set, by the function validators call for score = "validation"
        root_scores = (
            result.root_set_scores
            if result.root_set_scores is not None  # Zeno computed them already
            else round_scores(by_root_set, q, list(qs.values()), new_q - q, template)
            if ids
            else []
        )
        validation.pay(r, _by_trainer(n, ids, root_scores))
        public = history[:PUBLIC_ROUNDS] + last if history else []
        innovation_scores = (
            round_scores(by_innovation, q, list(qs.values()), new_q - q, template, public=public) if ids else []
        )
        innovation.pay(r, _by_trainer(n, ids, innovation_scores))
        q, prev = new_q, new_q - q
        history.insert(0, prev)
        last = list(qs.values())
        curve.append(evaluate(net, unflatten(fp.from_fixed(q), template), data.x_test[test], data.y_test[test]))

    final = unflatten(fp.from_fixed(q), template)
    model_root = result.model_root.hex()
    row = {
        **asdict(cell),
        "attack": cell.attack or "none",
        "rounds": setup.rounds,
        "model": model,
        "local_epochs": setup.epochs,
        "byzantine_trainers": f,
        "rule_params": dict(recipe.rule_params),
        "uses_root_set": uses_root_set(recipe.rule, recipe),
        "accuracy": curve[-1],
        "accuracy_curve": curve,
        **cosine.shares(honest_ids, attacker_ids),
        **{k + "_root_set": v for k, v in validation.shares(honest_ids, attacker_ids).items()},
        **{k + "_innovation": v for k, v in innovation.shares(honest_ids, attacker_ids).items()},
        "honest_min_over_median": {
            "cosine": cosine.min_over_median(honest_ids),
            "root_set": validation.min_over_median(honest_ids),
            "innovation": innovation.min_over_median(honest_ids),
        },
        "model_root": "0x" + model_root,
        "rewards_wei": cosine.rewards,
        "rewards_by_score": {
            "cosine": cosine.rewards,
            "root_set": validation.rewards,
            "innovation": innovation.rewards,
        },
        "seconds": time.perf_counter() - start,
    }
    if cell.rule in VARIANTS and cell.rule not in RULES:
        row |= {"variant": cell.rule, "base_rule": recipe.rule, "client_momentum": recipe.client_momentum}
    if cell.attack == "backdoor":
        xt, yt = triggered_test_set(data.x_test[test], data.y_test[test])
        row["attack_success_rate"] = evaluate(net, final, xt, yt)
    return row


def _in_range(u: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(u))) and float(np.max(np.abs(u), initial=0.0)) <= fp.CLIP


def _by_trainer(n: int, ids: list[int], scores: list[int]) -> list[int]:
    out = [0] * n
    for i, s in zip(ids, scores):
        out[i] = s
    return out


def _worker_init() -> None:
    torch.set_num_threads(1)


def _run(args) -> dict:
    cell, setup = args
    return run_cell(cell, setup)


def run_cells(cells: list[Cell], setup: Setup, workers: int = 2, on_cell=None) -> list[dict]:
    """Run the cells in ``workers`` processes (one torch thread each); results in cell order."""
    import multiprocessing as mp

    # Cells that share a (dataset, seed) go to the same worker in turn; the slowest
    # datasets first, so that the last cells to finish are short ones.
    order = sorted(range(len(cells)), key=lambda k: (cells[k].dataset != "digits", cells[k].seed))
    results: dict[int, dict] = {}
    if workers <= 1:
        _worker_init()
        for k in order:
            results[k] = run_cell(cells[k], setup)
            on_cell and on_cell(results[k])
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            it = pool.imap(_run, [(cells[k], setup) for k in order], chunksize=1)
            for k, row in zip(order, it):
                results[k] = row
                on_cell and on_cell(row)
    return [results[k] for k in range(len(cells))]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# -- the grid, its summary and its report


QUICK: dict[str, Any] = dict(
    datasets=["digits"],
    rules=["fedavg", "fedmedian"],
    attacks=["signflip", "backdoor"],
    fractions=[0.3],
    seeds=[0],
    rounds=2,
    workers=1,
    chain_attacks=["withholder"],
)


def grid(datasets, rules, attacks, fractions, seeds) -> list[Cell]:
    """Every rule under no attack, and under every attack at every Byzantine share."""
    cells = []
    for ds in datasets:
        for seed in seeds:
            for rule in rules:
                cells.append(Cell(ds, rule, None, 0.0, seed))
                cells += [Cell(ds, rule, a, fr, seed) for a in attacks for fr in fractions if fr > 0]
    return cells


def summarize(rows: list[dict]) -> list[dict]:
    """One entry per (dataset, rule, attack, share): mean and std over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["rule"], r["attack"], r["byzantine_fraction"]), []).append(r)
    cells = []
    for (ds, rule, attack, fr), rs in groups.items():
        acc = np.array([r["accuracy"] for r in rs])
        cell = {
            "dataset": ds,
            "rule": rule,
            "attack": attack,
            "byzantine_fraction": fr,
            "accuracy_mean": float(acc.mean()),
            "accuracy_std": float(acc.std()),
            "accuracy_min": float(acc.min()),
            "seeds": [r["seed"] for r in rs],
            "uses_root_set": rs[0]["uses_root_set"],
            "rule_params": rs[0]["rule_params"],
            "rounds": rs[0]["rounds"],
            "model": rs[0]["model"],
        }
        for score in ("", "_root_set"):
            shares = [r["honest_reward_share" + score] for r in rs if r["honest_reward_share" + score] is not None]
            cell["honest_reward_share" + score] = float(np.mean(shares)) if shares else None
            cell["honest_reward_share_min" + score] = float(np.min(shares)) if shares else None
            for who in ("honest", "attacker"):
                key = f"{who}_reward_per_head{score}"
                heads = [r[key] for r in rs if r[key] is not None]
                cell[f"{who}_reward_per_head{score}"] = float(np.mean(heads)) if heads else None
        if attack == "backdoor":
            cell["attack_success_rate"] = float(np.mean([r["attack_success_rate"] for r in rs]))
        cells.append(cell)
    return cells


def merge(old: dict, new: dict) -> dict:
    """Results of two invocations as one: other datasets, or other seeds of a dataset (same setup
    and rules; every cell lists its seeds, and a dataset may have fewer shares than another)."""
    for key in ("setup", "rules"):
        if old[key] != new[key]:
            raise ValueError(f"cannot add results with another {key}: {old[key]} != {new[key]}")
    overlap = {(r["dataset"], r["seed"]) for r in old["runs"]} & {(r["dataset"], r["seed"]) for r in new["runs"]}
    if overlap:
        raise ValueError(f"the results hold (dataset, seed) {sorted(overlap)} already")
    return new | {
        "commands": old.get("commands", [old.get("command")]) + new["commands"],
        "datasets": list(dict.fromkeys(old["datasets"] + new["datasets"])),
        "attacks": list(dict.fromkeys(old["attacks"] + new["attacks"])),
        "seeds": sorted(set(old["seeds"]) | set(new["seeds"])),
        "fractions": sorted(set(old["fractions"]) | set(new["fractions"])),
        "models": old["models"] | new["models"],
        "seconds": old["seconds"] + new["seconds"],
        "chain_runs": old["chain_runs"] + new["chain_runs"],
        "runs": old["runs"] + new["runs"],
    }


def worst_cases(cells: list[dict]) -> list[dict]:
    """Per dataset, rule and share: the lowest mean accuracy over the attacks, and which."""
    out: dict[tuple, dict] = {}
    for c in cells:
        if c["byzantine_fraction"] == 0:
            continue
        key = (c["dataset"], c["rule"], c["byzantine_fraction"])
        if key not in out or c["accuracy_mean"] < out[key]["accuracy_mean"]:
            out[key] = {
                "dataset": c["dataset"],
                "rule": c["rule"],
                "byzantine_fraction": c["byzantine_fraction"],
                "accuracy_mean": c["accuracy_mean"],
                "attack": c["attack"],
                "uses_root_set": c["uses_root_set"],
            }
    return list(out.values())


# -- full runs on the chain: rewards and slashes as the contracts pay them


def chain_run(dataset: str, rule: str, attack: str, fraction: float, seed: int, setup: Setup, out) -> dict:
    """One whole simulation on the embedded chain with ``attack`` run by ``fraction`` of the trainers."""
    start = time.perf_counter()
    cfg = SimConfig(
        trainers=setup.trainers,
        rounds=setup.rounds,
        dataset=dataset,
        alpha=setup.alpha,
        model=setup.model or MODELS[dataset],
        epochs=setup.epochs,
        lr=setup.lr,
        momentum=setup.momentum,
        batch_size=setup.batch_size,
        seed=seed,
        out=out,
        attack=attack,
        byzantine=fraction,
        rule=rule,
        rule_params=rule_params(rule, setup.trainers),
        pool=setup.pool,
    )
    net = build_network(cfg)
    finalized = sum(play_round(net).finalized for _ in range(cfg.rounds))
    settle(net)
    honest = [t for t in net.trainers if type(t).__name__ == "Trainer"]
    bad = [t for t in net.trainers if t not in honest]
    slashed = {e.args["node"] for e in net.deployment.fedchain.events() if e.name == "Slashed"}
    total = sum(t.rewards for t in net.trainers)
    row = {
        "dataset": dataset,
        "rule": rule,
        "attack": attack,
        "byzantine_fraction": fraction,
        "seed": seed,
        "rounds": cfg.rounds,
        "rounds_finalized": finalized,
        "accuracy": model_accuracy(net),
        "honest_reward_share": sum(t.rewards for t in honest) / total if total else None,
        "honest_reward_per_head": sum(t.rewards for t in honest) / len(honest) / TOKEN,
        "attacker_reward_per_head": sum(t.rewards for t in bad) / len(bad) / TOKEN if bad else None,
        "attackers_slashed": sum(t.address in slashed for t in bad),
        "honest_slashed": sum(t.address in slashed for t in honest),
        "conservation_gap_wei": net.conservation_gap(),
        "model_root": "0x" + net.deployment.fedchain.call("tasks", net.task_id)["model_root"].hex(),
        "rewards_wei": [t.rewards for t in net.trainers],
        "seconds": time.perf_counter() - start,
    }
    refusals = sorted({r for t in bad for r in getattr(t, "refusals", [])})
    if refusals:
        row["refusals"] = refusals
    return row


# -- the report


def _bar_verdict(cands: list, baseline: float, limit: float, against: str = "") -> str:
    """The best of (rule, worst cell) candidates against a bar: "rule, worst case ..., gap: holds?"."""
    rule, w = max(cands, key=lambda rw: rw[1]["accuracy_mean"])
    gap = 100 * (baseline - w["accuracy_mean"])
    return (
        f"{rule}, worst case {_fmt(w['accuracy_mean'])} ({w['attack']}), {gap:.1f} points below"
        f"{' ' + against if against else ''} (bar: {limit}): **{'holds' if gap <= limit else 'does not hold'}**"
    )


def _fmt(x, pct=True, digits=1):
    if x is None:
        return "–"
    return f"{100 * x:.{digits}f}" if pct else f"{x:.{digits}f}"


def markdown(result: dict) -> str:
    cells, lines = result["cells"], []
    s = result["setup"]
    lines += [
        "# Robustness benchmark: aggregation rules against attacks",
        "",
        "Produced by "
        + ", then ".join(f"`{c}`" for c in result["commands"])
        + f" in {result['seconds'] / 60:.1f} minutes ({result['workers']} worker processes, one torch "
        f"thread each, on a machine with {result['cpu_count']} cores shared with other work).",
        "",
        f"Setup: {s['trainers']} trainers, Dirichlet alpha {s['alpha']}, {s['rounds']} rounds of "
        f"{s['epochs']} local epochs (SGD lr {s['lr']}, momentum {s['momentum']}, batch {s['batch_size']}), "
        f"seeds {result['seeds']} (each cell lists its own); model per dataset {result['models']}. "
        "Accuracies in percent, mean ± std over seeds; the attackers are the last trainers; rules configured "
        "for 30% Byzantine (`rule_params` in results.json). Reward shares: the share of the trainer rewards "
        "that honest trainers claim, from the validators' scores and the contract's payout formula.",
        "",
    ]
    for ds in result["datasets"]:
        dcells = [c for c in cells if c["dataset"] == ds]
        rules = list(dict.fromkeys(c["rule"] for c in dcells))
        cols = [(a, fr) for a, fr in dict.fromkeys((c["attack"], c["byzantine_fraction"]) for c in dcells)]
        by = {(c["rule"], c["attack"], c["byzantine_fraction"]): c for c in dcells}
        base = by.get((BASELINE, "none", 0.0))
        lines += [f"## {ds}", ""]
        if base:
            lines += [f"No-attack FedAvg: {_fmt(base['accuracy_mean'])} ± {_fmt(base['accuracy_std'])}.", ""]
        header = (
            "| rule | " + " | ".join(f"{a} {int(round(fr * 100))}%" if fr else "no attack" for a, fr in cols) + " |"
        )
        lines += ["### Final accuracy", "", header, "|---" * (len(cols) + 1) + "|"]
        for rule in rules:
            vals = [by.get((rule, a, fr)) for a, fr in cols]
            lines.append(
                f"| {rule}{' (root set)' if vals[0] and vals[0]['uses_root_set'] else ''} | "
                + " | ".join(f"{_fmt(c['accuracy_mean'])} ± {_fmt(c['accuracy_std'])}" if c else "–" for c in vals)
                + " |"
            )
        worst = [w for w in result["worst_cases"] if w["dataset"] == ds]
        fracs = sorted({w["byzantine_fraction"] for w in worst})
        if worst:
            lines += [
                "",
                "### Worst case per rule over the attacks",
                "",
                "| rule | " + " | ".join(f"{int(round(fr * 100))}% Byzantine" for fr in fracs) + " |",
                "|---" * (len(fracs) + 1) + "|",
            ]
            for rule in rules:
                row = []
                for fr in fracs:
                    w = next((w for w in worst if w["rule"] == rule and w["byzantine_fraction"] == fr), None)
                    gap = f", {100 * (w['accuracy_mean'] - base['accuracy_mean']):+.1f} vs FedAvg" if w and base else ""
                    row.append(f"{_fmt(w['accuracy_mean'])} ({w['attack']}{gap})" if w else "–")
                lines.append(f"| {rule} | " + " | ".join(row) + " |")
        bd = [c for c in dcells if c["attack"] == "backdoor"]
        if bd:
            bfr = sorted({c["byzantine_fraction"] for c in bd})
            lines += [
                "",
                "### Backdoor attack success rate (triggered test inputs put in the target class)",
                "",
                "| rule | " + " | ".join(f"{int(round(fr * 100))}%" for fr in bfr) + " |",
                "|---" * (len(bfr) + 1) + "|",
            ]
            for rule in rules:
                lines.append(
                    f"| {rule} | "
                    + " | ".join(
                        _fmt(by[(rule, "backdoor", fr)]["attack_success_rate"]) if (rule, "backdoor", fr) in by else "–"
                        for fr in bfr
                    )
                    + " |"
                )
        acols = [col for col in cols if col[1] > 0]
        for score, title in (
            ("", "cosine score (the default recipe)"),
            ("_root_set", 'root-set score (recipe score = "validation")'),
        ):
            lines += [
                "",
                f"### Honest trainers' share of trainer rewards (%), {title}; per head honest / attacker (tokens)",
                "",
                "| rule | " + " | ".join(f"{a} {int(round(fr * 100))}%" for a, fr in acols) + " |",
                "|---" * (len(acols) + 1) + "|",
            ]
            for rule in rules:
                lines.append(
                    f"| {rule} | "
                    + " | ".join(
                        (
                            f"{_fmt(c['honest_reward_share' + score])} ({c['honest_reward_per_head' + score]:.1f}/"
                            f"{_fmt(c['attacker_reward_per_head' + score], pct=False)})"
                            if c
                            else "–"
                        )
                        for c in (by.get((rule, a, fr)) for a, fr in acols)
                    )
                    + " |"
                )
        lines.append("")
    lines += bars(result)
    if result.get("chain_runs"):
        lines += [
            "## Full runs on the chain",
            "",
            "| dataset | rule | attack | Byzantine | accuracy | honest reward share | per head honest / attacker "
            "| attackers slashed | honest slashed | refused | seconds |",
            "|---" * 11 + "|",
        ]
        for r in result["chain_runs"]:
            lines.append(
                f"| {r['dataset']} | {r['rule']} | {r['attack']} "
                f"| {int(round(100 * r['byzantine_fraction']))}% | {_fmt(r['accuracy'])} "
                f"| {_fmt(r['honest_reward_share'])} | {r['honest_reward_per_head']:.1f} / "
                f"{_fmt(r['attacker_reward_per_head'], pct=False)} | {r['attackers_slashed']} "
                f"| {r['honest_slashed']} | {', '.join(r.get('refusals', [])) or '–'} | {r['seconds']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


# The bars, measured on digits over these attacks.
BAR_ATTACKS = ("labelflip", "signflip", "gaussian", "alie", "ipm_0.1", "ipm_100", "freerider", "backdoor")


def _worst(by: dict, rule: str, fr: float) -> dict | None:
    """A rule's worst cell at Byzantine share ``fr`` over BAR_ATTACKS; None unless all were measured."""
    cs = [by[(rule, a, fr)] for a in BAR_ATTACKS if (rule, a, fr) in by]
    return min(cs, key=lambda c: c["accuracy_mean"]) if len(cs) == len(BAR_ATTACKS) else None


def bars(result: dict, dataset: str = "digits") -> list[str]:
    """The done-when bars, each with the figures that decide it."""
    cells = [c for c in result["cells"] if c["dataset"] == dataset]
    by = {(c["rule"], c["attack"], c["byzantine_fraction"]): c for c in cells}
    base = by.get((BASELINE, "none", 0.0))
    if base is None or not set(BAR_ATTACKS) <= set(result["attacks"]):
        return []
    b = base["accuracy_mean"]
    lines = [f"## Done-when bars ({dataset}; no-attack FedAvg {_fmt(b)})", ""]
    worst = partial(_worst, by)
    rules = list(dict.fromkeys(c["rule"] for c in cells))
    for fr, limit, trusted in ((0.2, 5, False), (0.3, 10, False), (0.3, 3, True)):
        cands = [(r, worst(r, fr)) for r in rules if by[(r, "none", 0.0)]["uses_root_set"] == trusted and worst(r, fr)]
        if not cands:
            lines.append(f"- {'with' if trusted else 'without'} a root set at {fr:.0%}: no rule measured")
            continue
        lines.append(
            f"- {'with' if trusted else 'without'} trusted data, {fr:.0%} Byzantine: best rule "
            + _bar_verdict(cands, b, limit, "no-attack FedAvg")
        )
    for score, name in (("", "cosine score"), ("_root_set", "root-set score")):
        ok = []
        for rule in rules:
            shares = [
                by[(rule, a, fr)]["honest_reward_share" + score]
                for a in BAR_ATTACKS
                if a != "alie"
                for fr in result["fractions"]
                if (rule, a, fr) in by
            ]
            alie = [by[(rule, "alie", fr)] for fr in result["fractions"] if (rule, "alie", fr) in by]
            low = min((x for x in shares if x is not None), default=None)
            head = all(c["honest_reward_per_head" + score] > (c["attacker_reward_per_head" + score] or 0) for c in alie)
            if low is not None and low >= 0.9 and head:
                ok.append(f"{rule} (lowest share {_fmt(low)})")
        lines.append(
            f"- honest trainers >= 90% of trainer rewards under every attack but ALIE and more per head "
            f"under ALIE, {name}: **{'holds for ' + ', '.join(ok) if ok else 'holds for no rule'}**"
        )
    chain = result.get("chain_runs", [])
    if chain:
        slashed = sum(r["honest_slashed"] for r in chain)
        lines.append(
            f"- no honest trainer slashed: {slashed} in {len(chain)} full runs on the chain: "
            f"**{'holds' if slashed == 0 else 'does not hold'}**"
        )
    return lines + [""]


def heatmap(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = result["datasets"]
    fig, axes = plt.subplots(len(datasets), 1, figsize=(14, 3.2 * len(datasets) + 1), squeeze=False)
    for ax, ds in zip(axes[:, 0], datasets):
        dcells = [c for c in result["cells"] if c["dataset"] == ds]
        rules = list(dict.fromkeys(c["rule"] for c in dcells))
        cols = list(dict.fromkeys((c["attack"], c["byzantine_fraction"]) for c in dcells))
        by = {(c["rule"], c["attack"], c["byzantine_fraction"]): c["accuracy_mean"] for c in dcells}
        m = np.array([[by.get((r, a, fr), np.nan) for a, fr in cols] for r in rules]) * 100
        im = ax.imshow(m, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(
            range(len(cols)), [f"{a}\n{int(round(fr * 100))}%" if fr else "none" for a, fr in cols], fontsize=7
        )
        ax.set_yticks(range(len(rules)), rules, fontsize=8)
        for i in range(len(rules)):
            for j in range(len(cols)):
                if not np.isnan(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=6)
        seeds = sorted({s for c in dcells for s in c["seeds"]})
        ax.set_title(f"{ds}: final test accuracy (%), mean over seeds {seeds}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rerender(out) -> dict:
    """Rewrite README.md and heatmap.png (and the summaries in results.json) from the runs in results.json."""
    import json
    from pathlib import Path

    result = json.loads((Path(out) / "results.json").read_text())
    if "command" in result:
        result["commands"] = [result.pop("command")]
    result["cells"] = summarize(result["runs"])
    result["worst_cases"] = worst_cases(result["cells"])
    write_report(result, out)
    return result


def write_report(result: dict, out) -> None:
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "README.md").write_text(markdown(result))
    heatmap(result, out / "heatmap.png")


# -- rule variants (VARIANTS): the same cells, reported against no-attack FedAvg


def variant_cells(datasets, variants, attacks, fractions, seeds) -> list[Cell]:
    """The grid of ``variants`` (names in VARIANTS), plus no-attack FedAvg per seed: the reference."""
    return [Cell(ds, BASELINE, None, 0.0, seed) for ds in datasets for seed in seeds] + grid(
        datasets, variants, attacks, fractions, seeds
    )


def summarize_variants(rows: list[dict]) -> list[dict]:
    """``summarize``, each cell also naming its variant, base rule and client momentum."""
    cells = summarize(rows)
    for c in cells:
        v = VARIANTS.get(c["rule"]) if c["rule"] not in RULES else None
        c |= (
            {"variant": c["rule"], "base_rule": v.rule, "client_momentum": v.client_momentum, "about": v.about}
            if v
            else {"variant": None, "base_rule": c["rule"], "client_momentum": 0.0}
        )
    return cells


def variants_markdown(result: dict) -> str:
    cells, s = result["cells"], result["setup"]
    lines = [
        "# Robustness benchmark: rule variants",
        "",
        "Produced by "
        + ", then ".join(f"`{c}`" for c in result["commands"])
        + f" in {result['seconds'] / 60:.1f} minutes ({result['workers']} worker processes, one torch thread "
        f"each, on a machine with {result['cpu_count']} cores shared with other work).",
        "",
        f"Setup as the main grid (`benchmarks/robustness`): {s['trainers']} trainers, Dirichlet alpha "
        f"{s['alpha']}, {s['rounds']} rounds of {s['epochs']} local epochs (SGD lr {s['lr']}, momentum "
        f"{s['momentum']}, batch {s['batch_size']}), seeds {result['seeds']}; the same cell code "
        "(`run_cell`, the validators' `aggregate_round`); only the recipe differs (`VARIANTS` in "
        "`src/fedchain/bench/robustness.py`). Accuracies in percent, mean ± std over seeds; the attackers "
        "are the last trainers. Client momentum is applied by the honest trainers only (as "
        "`Trainer.make_update`); attackers send their crafted updates as they are, and omniscient attackers "
        "see the honest updates as sent.",
        "",
        "## Variants",
        "",
        "| variant | rule | rule_params (at 20% / 30%) | client momentum | what |",
        "|---|---|---|---|---|",
    ]
    for name in result["rules"]:
        v = VARIANTS[name]
        ps = [
            next((c["rule_params"] for c in cells if c["rule"] == name and c["byzantine_fraction"] == fr), None)
            for fr in result["fractions"]
        ]
        ps = [p for p in ps if p is not None]
        shown = " / ".join(dict.fromkeys(f"`{json_compact(p)}`" for p in ps))
        lines.append(f"| {name} | {v.rule} | {shown} | {v.client_momentum or '–'} | {v.about} |")
    lines.append("")
    for ds in result["datasets"]:
        dcells = [c for c in cells if c["dataset"] == ds]
        by = {(c["rule"], c["attack"], c["byzantine_fraction"]): c for c in dcells}
        base = by.get((BASELINE, "none", 0.0))
        b = base["accuracy_mean"] if base else None
        lines += [f"## {ds}", ""]
        if base:
            lines += [
                f"No-attack FedAvg (this run, seeds {base['seeds']}): {_fmt(b)} ± {_fmt(base['accuracy_std'])}.",
                "",
            ]
        fracs = sorted({c["byzantine_fraction"] for c in dcells if c["byzantine_fraction"] > 0})
        worst = partial(_worst, by)

        lines += [
            f"### Worst case over the {len(BAR_ATTACKS)} model-poisoning attacks ({', '.join(BAR_ATTACKS)})",
            "",
            "| variant | no attack | "
            + " | ".join(f"worst at {fr:.0%} (attack, vs no-attack FedAvg)" for fr in fracs)
            + " |",
            "|---" * (len(fracs) + 2) + "|",
        ]
        for name in result["rules"]:
            row = [
                f"{_fmt(by[(name, 'none', 0.0)]['accuracy_mean'])} ± {_fmt(by[(name, 'none', 0.0)]['accuracy_std'])}"
                if (name, "none", 0.0) in by
                else "–"
            ]
            for fr in fracs:
                w = worst(name, fr)
                gap = f", {100 * (w['accuracy_mean'] - b):+.1f}" if w and b is not None else ""
                row.append(
                    f"{_fmt(w['accuracy_mean'])} ± {_fmt(w['accuracy_std'])} ({w['attack']}{gap})"
                    if w
                    else "– (not every attack measured)"
                )
            lines.append(f"| {name} | " + " | ".join(row) + " |")
        if b is not None:
            lines += [
                "",
                "Bars (issue 4): without trusted data, the best worst case within 5 points of no-attack "
                "FedAvg at 20% Byzantine and within 10 at 30%; with a root set held by validators, within 3 at "
                "30%.",
                "",
            ]
            for fr, limit, trusted in ((0.2, 5, False), (0.3, 10, False), (0.3, 3, True)):
                cands = [(r, w) for r in result["rules"] if (w := worst(r, fr)) and w["uses_root_set"] == trusted]
                if cands:
                    lines.append(
                        f"- {'with' if trusted else 'without'} trusted data, {fr:.0%} Byzantine: best "
                        "variant " + _bar_verdict(cands, b, limit)
                    )
        cols = list(dict.fromkeys((c["attack"], c["byzantine_fraction"]) for c in dcells if c["rule"] != BASELINE))
        rules = result["rules"]

        def row_of(fmt, columns, by=by):  # a row's cells: fmt(cell) for each measured column, "–" for the others
            return lambda rule: [fmt(c) if c else "–" for c in (by.get((rule, a, fr)) for a, fr in columns)]

        lines += _table(
            "Final accuracy",
            rules,
            [f"{a} {fr:.0%}" if fr else "no attack" for a, fr in cols],
            row_of(lambda c: f"{_fmt(c['accuracy_mean'])} ± {_fmt(c['accuracy_std'])}", cols),
        )
        acols = [col for col in cols if col[1] > 0]
        attacked = [f"{a} {fr:.0%}" for a, fr in acols]
        lines += _table(
            "Honest trainers' share of trainer rewards (%), cosine score",
            rules,
            attacked,
            row_of(lambda c: _fmt(c["honest_reward_share"]), acols),
        )
        lines += _table(
            "Honest trainers' share of trainer rewards (%), root-set score; per head honest / attacker (tokens)",
            rules,
            attacked,
            row_of(
                lambda c: (
                    f"{_fmt(c['honest_reward_share_root_set'])} ({c['honest_reward_per_head_root_set']:.1f}/"
                    f"{_fmt(c['attacker_reward_per_head_root_set'], pct=False)})"
                ),
                acols,
            ),
        )
        if any((name, "backdoor", fr) in by for name in rules for fr in fracs):
            lines += _table(
                "Backdoor attack success rate (%)",
                rules,
                [f"{fr:.0%}" for fr in fracs],
                row_of(lambda c: _fmt(c["attack_success_rate"]), [("backdoor", fr) for fr in fracs]),
            )
        lines.append("")
    return "\n".join(lines)


def _table(title: str, rules, headers: list[str], row) -> list[str]:
    """A Markdown table under a heading: a row a rule (``row(name)``: its cells), a column a header."""
    lines = ["", f"### {title}", "", "| variant | " + " | ".join(headers) + " |", "|---" * (len(headers) + 1) + "|"]
    return lines + [f"| {name} | " + " | ".join(row(name)) + " |" for name in rules]


def json_compact(x) -> str:
    import json

    return json.dumps(x, separators=(", ", ": "))


def write_variants_report(result: dict, out) -> None:
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "README.md").write_text(variants_markdown(result))
