"""A whole fedchain network in one process: chain, blob store, sponsor, nodes.

``build_network`` deploys the contracts on a chain (the embedded EVM by
default), funds and stakes every node, and creates the task; ``play_round``
drives every node through one round by stepping them and mining to each phase
boundary. Nodes only ever see the chain and the blob store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fedchain import flower
from fedchain.chain.deploy import ROLE_TRAINER, ROLE_VALIDATOR, TOKEN, Deployment, ProtocolParams, deploy
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import Chain, account_from_seed
from fedchain.chain.layout import RoundStatus
from fedchain.flower import FlowerClient
from fedchain.learning.data import Dataset, load_dataset, partition
from fedchain.learning.models import build_model
from fedchain.learning.models.source import model_source
from fedchain.learning.train import get_params
from fedchain.protocol.challenge import Evidence, gather
from fedchain.protocol.flower_trainer import FlowerTrainer
from fedchain.protocol.journal import Journal
from fedchain.protocol.node import Node, RoundView
from fedchain.protocol.recipe import Recipe
from fedchain.protocol.round import Vote
from fedchain.protocol.secagg_round import Windows
from fedchain.protocol.sponsor import create_task, fine_tune
from fedchain.protocol.trainer import Trainer
from fedchain.protocol.validator import Validator
from fedchain.protocol.watcher import Watcher
from fedchain.sim.adversaries import ADVERSARIES
from fedchain.sim.adversaries.colluder import COLLUDERS
from fedchain.sim.attacks.trainer import arm, attack_trainer, byzantine_count
from fedchain.storage.store import LocalBlobStore


@dataclass
class SimConfig:
    trainers: int = 20
    validators: int = 4
    rounds: int = 20
    dataset: str = "digits"
    partition: str = "dirichlet"
    alpha: float = 0.5
    classes_per_partition: int = 2
    # Local training defaults: plain SGD with momentum, 5 local epochs (FedAvg's
    # usual E), chosen so that FedAvg on digits with Dirichlet(0.5) gets within
    # 2 points of the centralized model in 20 rounds (see docs/decisions.md).
    model: str = "cnn"  # or an entry point package.module:factory (fedchain.learning.models.source)
    epochs: int = 5
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 16
    seed: int = 0
    out: Path = Path("out")
    # name of a misbehaving trainer kind -> how many trainers behave that way
    adversaries: dict[str, int] = field(default_factory=dict)
    # an attack of fedchain.sim.attacks, run by this share of the trainers (the last ones)
    attack: str | None = None
    byzantine: float = 0.0
    # with attack "sybil": False stakes the party as one identity (the first of its trainers, with
    # every stake and all the data of the party), the baseline that splitting is measured against
    sybil_split: bool = True
    # the task's aggregation rule and its parameters (fedchain.learning.aggregate)
    rule: str = "fedavg"
    rule_params: dict = field(default_factory=dict)
    score: str = "cosine"  # or "validation"/"innovation": scored on a root set drawn from this run's held-out split
    stake: int = 100 * TOKEN
    pool: int = 1_000 * TOKEN
    phase_blocks: int = 5
    # the first `colluders` validators vote for a sabotaged model (sim/adversaries/colluder.py);
    # `watchers` honest observers recompute every round and challenge wrong results on chain
    colluders: int = 0
    # what they corrupt: "model", "score", "total", or a Krum task's "distance-sum" or "distance-leaf"
    # (sim/adversaries/colluder.py)
    collusion: str = "model"
    watchers: int = 0
    # every trainer a Flower client (fedchain.flower): MODULE:ATTR of a client_fn or a ClientApp, and
    # for a Message-API ClientApp the MODULE:ATTR of its initial model; the clients load their own
    # data by partition-id (dataset and partition above go unused) and train with their own model
    flower_client: str | None = None
    flower_initial: str | None = None
    # fine-tuning: a safetensors file of the model's tensors (an earlier task's, `fedchain model
    # get`, or fedchain.storage.codec.encode_tensors) the task starts from; with lora_rank > 0 the
    # trainers train LoRA adapters on the modules lora_targets names (fedchain.learning.models.lora)
    base_model: Path | None = None
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_targets: tuple[str, ...] = ()
    lora_full: tuple[str, ...] = ()
    # differential privacy: the recipe's dp fields (fedchain.protocol.recipe.DP_FIELDS), e.g.
    # {"dp": "client", "dp_noise": 5.7, "dp_clip": 1.0, "dp_delta": 1e-5}; trainers' own cap
    dp: dict = field(default_factory=dict)
    max_epsilon: float | None = None
    # secure aggregation (fedchain.protocol.secagg_round): trainers mask their updates; the last
    # `secagg_dropouts` trainers vanish in every round after their masked update is revealed (they
    # never answer the unmasking request), the `secagg_quitters` before them once their share
    # bundle is posted (they never send a masked update)
    secagg: bool = False
    secagg_dropouts: int = 0
    secagg_quitters: int = 0


@dataclass
class Network:
    cfg: SimConfig
    chain: Chain
    deployment: Deployment
    data: Dataset
    parts: list[np.ndarray]
    recipe: Recipe
    task_id: int
    trainers: list[Trainer]
    validators: list[Validator]
    store: LocalBlobStore
    initial_params: dict
    watchers: list[Watcher] = field(default_factory=list)
    flower_clients: list[FlowerClient] = field(default_factory=list)  # one per trainer, in order

    @property
    def nodes(self) -> list[Node]:
        return [*self.trainers, *self.validators, *self.watchers]

    def conservation_gap(self) -> int:
        """Token balances minus what the contracts hold them for: zero, to the wei.

        The vault holds stakes, pools, owed rewards and burned slashes; the
        challenge contract holds forfeited bonds, the availability game the
        bonds of open requests."""
        fc, tok, ch = self.deployment.fedchain, self.deployment.token, self.deployment.challenges
        owed = (
            fc.call("total_active", ROLE_TRAINER)
            + fc.call("total_active", ROLE_VALIDATOR)
            + fc.call("total_unbonding")
            + fc.call("total_pools")
            + fc.call("total_owed")
            + fc.call("burned")
        )
        gap = tok.call("balanceOf", fc.vault.address) - owed
        if ch is not None:
            gap += tok.call("balanceOf", ch.address) - ch.call("forfeited")
        av = self.deployment.availability
        if av is not None:
            gap += tok.call("balanceOf", av.address) - av.call("held")
        return gap


def build_network(
    cfg: SimConfig, chain: Chain | None = None, data: Dataset | None = None, parts: list[np.ndarray] | None = None
) -> Network:
    """The simulated network of ``cfg``, its task created and round 0 open. ``data`` and
    ``parts`` replace the built-in dataset and its partition (a benchmark's own data: one
    array of indices into ``data.x_train`` per trainer)."""
    # One process plays every node: torch's intra-op threads would only fight
    # each other (and other processes) for the cores. One thread keeps training
    # times stable and comparable with the plain-FedAvg baseline in this process.
    torch.set_num_threads(1)
    chain = chain or EmbeddedChain()
    data = data if data is not None else load_dataset(cfg.dataset, seed=cfg.seed)
    clients = flower_clients(cfg)
    parts = (
        parts
        if parts is not None
        else []
        if clients
        else partition(
            cfg.partition,
            data.y_train,
            cfg.trainers,
            seed=cfg.seed,
            alpha=cfg.alpha,
            num_classes_per_partition=cfg.classes_per_partition,
        )
    )
    if clients:
        initial = flower.initial_model(clients[0], cfg.seed)
        for c in clients[1:]:  # a Message-API app's ArrayRecord keys, learnt from the first
            c.keys = clients[0].keys
        model: dict = flower.recipe_model(clients[0].entry, initial)
    else:
        initial = get_params(build_model(cfg.model, tuple(data.input_shape), data.num_classes, seed=cfg.seed))
        model = dict(
            model=cfg.model,
            model_source=model_source(cfg.model),  # an entry point's: every node checks its own copy
            dataset=cfg.dataset,
            input_shape=tuple(data.input_shape),
            num_classes=data.num_classes,
        )
    recipe = Recipe(
        **model,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        momentum=cfg.momentum,
        rule=cfg.rule,
        rule_params=cfg.rule_params,
        score=cfg.score,
        data_seed=cfg.seed,
        lora_alpha=cfg.lora_alpha,  # used only by a LoRA task (fine_tune below)
        secagg=cfg.secagg,
        **cfg.dp,
    )
    out = Path(cfg.out)
    # One process: a crash loses every node at once, so nothing gains from fsync here
    # (nodes run as processes always fsync their journal and blobs).
    store = LocalBlobStore(out / "blobs", durable=False)
    if cfg.base_model is not None:
        tuning = (cfg.lora_rank, tuple(cfg.lora_targets), tuple(cfg.lora_full), cfg.seed)
        recipe, initial = fine_tune(store, cfg.base_model, recipe, initial, *tuning)

    def journal(name: str) -> Journal:
        return Journal(out / "journals" / f"{name}.jsonl", durable=False)

    owner = account_from_seed(f"{cfg.seed}:sponsor")
    chain.fund(owner.address, 10**22)
    dep = deploy(chain, owner, ProtocolParams(min_stake=cfg.stake))
    fc, tok = dep.fedchain, dep.token

    kinds = [kind for kind, n in cfg.adversaries.items() for _ in range(n)]
    byzantine = byzantine_count(cfg)  # 0 without an attack (and an error for a share without one)
    kinds += [cfg.attack] * byzantine if cfg.attack is not None else []
    if len(kinds) > cfg.trainers:
        raise ValueError(f"{len(kinds)} adversaries but only {cfg.trainers} trainers")
    kinds = ["honest"] * (cfg.trainers - len(kinds)) + kinds
    if clients and set(kinds) != {"honest"}:
        raise ValueError("Flower clients are honest trainers: no misbehaviours or attacks with them")

    def account(name: str, stake: int = cfg.stake):
        acct = account_from_seed(f"{cfg.seed}:{name}")
        chain.fund(acct.address, 10**20)
        tok.tx("mint", acct.address, stake, sender=owner)
        tok.tx("approve", fc.vault.address, stake, sender=acct)
        return acct

    # the partitions (and so minimum stakes) each trainer holds: one, except that an unsplit Sybil
    # party's first trainer holds all of the party's and the rest of it do not exist
    holds = {i: [i] for i in range(len(kinds))}
    party = [i for i, kind in enumerate(kinds) if kind == "sybil"] if not cfg.sybil_split else []
    if party:
        holds = {i: ([i] if i not in party else party) for i in holds if i not in party[1:]}
    common = dict(fedchain=fc, store=store, recipe=recipe)
    trainers: list[Trainer] = []
    for i, held in holds.items():
        kind = kinds[i]
        cls = Trainer if kind == "honest" else ADVERSARIES.get(kind) or attack_trainer(kind, data.num_classes)
        stake = cfg.stake * len(held)
        acct = account(f"trainer-{i}", stake)
        fc.tx("stake", ROLE_TRAINER, stake, sender=acct)
        name = f"trainer-{i}" + ("" if kind == "honest" else f"({kind})")
        if clients:
            trainers.append(FlowerTrainer(name, account=acct, journal=journal(name), client=clients[i], **common))
            continue
        idx = np.concatenate([parts[j] for j in held])
        trainers.append(
            cls(
                name,
                account=acct,
                journal=journal(f"trainer-{i}"),
                x=data.x_train[idx],
                y=data.y_train[idx],
                seed=cfg.seed * 1000 + i,
                max_epsilon=cfg.max_epsilon,
                **common,
            )
        )
    arm(trainers)
    faults = cfg.secagg_dropouts + cfg.secagg_quitters
    if faults and (not cfg.secagg or faults > len(trainers)):
        raise ValueError("secagg_dropouts and secagg_quitters are trainers of a secure-aggregation run")
    for i, t in enumerate(reversed(trainers[len(trainers) - faults :])):
        t.secagg_fault = "after_mask" if i < cfg.secagg_dropouts else "after_share"
    validators = []
    for j in range(cfg.validators):
        acct = account(f"validator-{j}")
        fc.tx("stake", ROLE_VALIDATOR, cfg.stake, sender=acct)
        cls, label = (
            (COLLUDERS[cfg.collusion], f"validator-{j}(colluder)")
            if j < cfg.colluders
            else (Validator, f"validator-{j}")
        )
        validators.append(cls(label, account=acct, journal=journal(f"validator-{j}"), **common))
    watchers = []
    assert dep.challenges is not None  # deploy() deploys every contract
    for k in range(cfg.watchers):
        acct = account(f"watcher-{k}")  # holds tokens for challenge bonds, stakes nothing
        tok.tx("mint", acct.address, 10 * dep.challenges.call("bond"), sender=owner)
        watchers.append(
            Watcher(
                f"watcher-{k}",
                account=acct,
                journal=journal(f"watcher-{k}"),
                challenges=dep.challenges,
                token=tok,
                **common,
            )
        )
    for node in [*trainers, *validators, *watchers]:
        node.board = dep.secagg
    chain.mine(1)  # stake counts only in rounds opened after the block it was added in

    tok.tx("mint", owner.address, cfg.pool, sender=owner)
    b = cfg.phase_blocks
    task_id = create_task(
        fc,
        tok,
        owner,
        store,
        recipe,
        initial,
        rounds=cfg.rounds,
        pool=cfg.pool,
        trainers_per_round=cfg.trainers,
        validators_per_round=cfg.validators,
        commit_blocks=b,
        reveal_blocks=b,
        validate_blocks=b,
        challenge_blocks=b,
    )
    chain.mine(1)  # round 0's seed is its opening block's hash: readable from the next block
    return Network(
        cfg, chain, dep, data, parts, recipe, task_id, trainers, validators, store, initial, watchers, clients
    )


def flower_clients(cfg: SimConfig) -> list[FlowerClient]:
    """One Flower client per trainer (partition-id = the trainer's index), none without
    ``cfg.flower_client``."""
    if cfg.flower_client is None:
        return []
    entry = flower.load(cfg.flower_client, cfg.flower_initial)
    config = flower.run_config(cfg.rounds, cfg.epochs, cfg.lr, cfg.batch_size)
    return [FlowerClient(entry, i, cfg.trainers, config) for i in range(cfg.trainers)]


class Stopped(Exception):
    """The run stopped at a clean point, between two node steps, because its ``stop()`` said so.

    Every transaction sent so far is complete and every blob written whole, so the chain's
    history up to here can be saved and audited. ``round_id`` is None outside a round."""

    def __init__(self, round_id: int | None, phase: str, block: int):
        super().__init__(f"stopped in round {round_id}, {phase} phase, block {block}")
        self.round_id, self.phase, self.block = round_id, phase, block


Stop = Callable[[], bool] | None  # asked between node steps: True stops the run there


def step_all(net: Network, v: RoundView, stop: Stop = None) -> None:
    """Step every node once (through round ``v``), asking ``stop`` before each: a round
    decided already is played out (its outcome reported), the next one stops at once."""
    fc = net.deployment.fedchain
    for node in net.nodes:
        if stop is not None and stop() and fc.call("rounds", net.task_id, v.round_id)["status"] == RoundStatus.OPEN:
            block = net.chain.block_number()
            raise Stopped(v.round_id, v.phase(block), block)
        node.step(net.task_id)


@dataclass
class RoundOutcome:
    round_id: int
    finalized: bool
    gas_used: int
    seconds: float


def phase_boundaries(net: Network, v: RoundView) -> tuple[int, ...]:
    """The blocks after the commit and reveal phases, where every node is stepped again; in a
    secure-aggregation task also after its advertise, share and answer windows."""
    ends = [v.commit_end + 1, v.reveal_end + 1]
    if net.recipe.secagg:
        ends += Windows.of(v).boundaries()
    return tuple(sorted(set(ends)))


def play_round(net: Network, stop: Stop = None) -> RoundOutcome:
    """Step every node through one round, mining to each phase boundary.

    Raises ``Stopped`` between two node steps once ``stop()`` returns True."""
    fc, t = net.deployment.fedchain, net.task_id
    start = time.perf_counter()
    gas0 = sum(n.gas_used for n in net.nodes)
    observer = net.validators[0]
    v = observer.task(t).current
    # with watchers, everyone is stepped at every block of the challenge window (a watcher may
    # walk down a withheld model's tree there, one availability request a block)
    window = tuple(range(v.validate_end + 1, v.challenge_end + 1)) if net.watchers else ()
    net.chain.mine_to(v.opened + 1)  # the seed is the opening block's hash: readable from the next
    for boundary in (*phase_boundaries(net, v), *window, v.challenge_end + 1, None):
        step_all(net, v, stop)
        log = observer.task(t)
        if log.finished or log.current.round_id != v.round_id:
            break
        if boundary is not None:
            net.chain.mine_to(boundary)
    # an open availability request holds the round: a block at a time until it is answered or settled
    av = net.deployment.availability
    if av is not None:
        for _ in range(av.call("answer_blocks") + 2):
            log = observer.task(t)
            if log.finished or log.current.round_id != v.round_id or not av.call("open_requests", t, v.round_id):
                break
            net.chain.mine(1)
            step_all(net, v, stop)
    status = fc.call("rounds", t, v.round_id)["status"]
    return RoundOutcome(v.round_id, status == 1, sum(n.gas_used for n in net.nodes) - gas0, time.perf_counter() - start)


def play_to_vote(net: Network) -> RoundView:
    """Step every node to the end of the current round's vote phase (for challenge
    tests and benchmarks: the leading vote stands, its challenge window is open)."""
    t = net.task_id
    v = net.validators[0].task(t).current
    net.chain.mine_to(v.opened + 1)
    for boundary in (*phase_boundaries(net, v), None):
        step_all(net, v)
        if boundary is not None:
            net.chain.mine_to(boundary)
    return v


def leading_evidence(net: Network, v: RoundView) -> Evidence:
    """What a challenge of round ``v``'s leading vote is built from (see ``protocol.challenge``)."""
    observer, fc = net.validators[0], net.deployment.fedchain
    log = observer.task(net.task_id)
    leader = fc.call("rounds", net.task_id, v.round_id)["leader"]
    vote = Vote.from_event(next(e for e in log.votes[v.round_id] if e.args["vote_hash"] == leader))
    return gather(
        net.task_id,
        v.round_id,
        observer.current_model(net.task_id).q,
        log.reveals[v.round_id],
        vote,
        net.store,
        net.recipe,
        observer.shapes,
    )


def settle(net: Network) -> None:
    """After the task finished: one last step to claim, then withdraw the rewards."""
    for node in net.nodes:
        node.step(net.task_id)
        node.withdraw()
