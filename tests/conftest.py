"""Shared fixtures for the contract and property tests.

``net`` is a fresh deployment on a private ``EmbeddedChain`` (the embedded EVM
has no snapshots, and a new chain plus deployment costs a few milliseconds):
an owner who sponsors tasks, four staked trainers, three staked validators and
three funded outsiders with no stake, every account holding ``BALANCE`` test
tokens and an unlimited allowance for fedchain. Stakes are equal and the
default task selects ``trainers_per_round = 4`` out of four trainers, so
everyone is selected whatever the round's seed; sortition tests change ``k``.
Seeds are pinned anyway (``deterministic``) so that a failure reproduces.

The ``Net`` helpers drive one round step by step (``commit``, ``reveal``,
``join``, ``vote``, ``finalize``) or all at once (``play_round``); they only use
the chain interface, so ``make_net`` also works on an anvil ``RpcChain``.
Every test that uses ``net`` ends with the token-conservation check.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from fedchain.chain import commitments as cm
from fedchain.chain.deploy import ROLE_TRAINER, ROLE_VALIDATOR, TOKEN, ProtocolParams, deploy
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import Chain, Contract, Receipt, account_from_seed
from fedchain.chain.layout import Schedule
from fedchain.errors import Reverted
from fedchain.storage.merkle import merkle_proof, merkle_root, score_leaf

BALANCE = 1_000 * TOKEN
STAKE = 100 * TOKEN  # == ProtocolParams().min_stake
MAX_UINT = 2**256 - 1
ZERO32 = bytes(32)

__all__ = [
    "BALANCE",
    "MAX_UINT",
    "ROLE_TRAINER",
    "ROLE_VALIDATOR",
    "STAKE",
    "TOKEN",
    "ZERO32",
    "Net",
    "Result",
    "Scores",
    "Update",
    "deterministic",
    "h32",
    "make_net",
    "reverts",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "anvil: starts its own anvil node (needs node_modules: ./scripts/setup.sh)")


# ---------------------------------------------------------------- value types


def h32(*parts) -> bytes:
    """A deterministic 32-byte value named by ``parts`` (roots, salts, CIDs)."""
    return keccak(text=":".join(map(str, parts)))


@dataclass(frozen=True)
class Update:
    """What a trainer commits to and later reveals."""

    root: bytes
    salt: bytes
    cid: bytes
    samples: int = 10


@dataclass(frozen=True)
class Scores:
    """A scores tree: leaf i is (address of the i-th revealer, its score)."""

    nodes: tuple[str, ...]
    scores: tuple[int, ...]

    @property
    def leaves(self) -> list[bytes]:
        return [score_leaf(a, s) for a, s in zip(self.nodes, self.scores)]

    @property
    def root(self) -> bytes:
        return merkle_root(self.leaves) if self.nodes else ZERO32

    @property
    def total(self) -> int:
        return sum(self.scores)

    def proof(self, node: str) -> list[bytes]:
        return merkle_proof(self.leaves, self.nodes.index(node))

    def score(self, node: str) -> int:
        return self.scores[self.nodes.index(node)]


@dataclass(frozen=True)
class Result:
    """A validator's vote: the arguments of ``vote`` after (task, round)."""

    model_root: bytes
    model_cid: bytes
    scores: Scores
    rejected: int = 0

    @property
    def args(self) -> tuple:
        return (self.model_root, self.model_cid, self.scores.root, self.scores.total, self.rejected)

    @property
    def hash(self) -> bytes:
        return cm.vote_hash(*self.args)


def committed(chain: Chain, challenges: Contract, acct: LocalAccount, *calls: tuple[str, tuple]) -> None:
    """Commit ``acct`` to each challenge call ``(fn, args)`` and mine a block, so that it
    may send them (challenges.vy's commit-reveal, SECURITY-REVIEW M-1)."""
    from fedchain.protocol.challenge import commit

    for fn, args in calls:
        commit(challenges, acct, fn, args)
    chain.mine(1)


@contextmanager
def reverts(reason: str):
    """``pytest.raises(Reverted)`` that also checks the exact revert string."""
    with pytest.raises(Reverted) as excinfo:
        yield excinfo
    assert excinfo.value.reason == reason, f"reverted with {excinfo.value.reason!r}, expected {reason!r}"


# ---------------------------------------------------------------- the network


@dataclass
class Net:
    """One deployment and its accounts, plus helpers that speak the protocol."""

    chain: Chain
    token: Contract
    fc: Contract
    slashing: Contract
    challenges: Contract
    availability: Contract
    owner: LocalAccount
    trainers: list[LocalAccount]
    validators: list[LocalAccount]
    outsiders: list[LocalAccount]
    params: ProtocolParams
    reports: Contract | None = None  # sponsors' evaluation reports
    secagg: Contract | None = None  # secure aggregation's board

    # -- money

    def balance(self, who) -> int:
        return self.token.call("balanceOf", getattr(who, "address", who))

    def liabilities(self) -> int:
        """Everything the vault holds tokens for: stakes, unbonding, pools, unclaimed
        rewards, payouts, and burned slashes (owed to nobody)."""
        fc = self.fc
        return (
            fc.call("total_active", ROLE_TRAINER)
            + fc.call("total_active", ROLE_VALIDATOR)
            + fc.call("total_unbonding")
            + fc.call("total_pools")
            + fc.call("total_owed")
            + fc.call("burned")
        )

    def assert_conserved(self) -> None:
        assert self.balance(self.fc.vault.address) == self.liabilities()
        assert self.balance(self.fc.core.address) == self.balance(self.fc.rewards.address) == 0
        assert self.balance(self.challenges.address) == self.challenges.call("forfeited")
        assert self.balance(self.availability.address) == self.availability.call("held")

    def stake_of(self, who) -> dict:
        return self.fc.call("stakes", getattr(who, "address", who))

    def fund(self, accounts, stake_role: int | None = None, amount: int = STAKE) -> None:
        """Mint ``BALANCE``, approve fedchain, and optionally stake ``amount`` in ``stake_role``."""
        for a in accounts:
            self.chain.fund(a.address, 10**21)
            self.token.tx("mint", a.address, BALANCE, sender=self.owner)
            self.token.tx("approve", self.fc.vault.address, MAX_UINT, sender=a)
            if stake_role:
                self.fc.tx("stake", stake_role, amount, sender=a)

    # -- tasks and rounds

    def task_config(self, **overrides) -> dict:
        cfg = dict(
            recipe_hash=h32("recipe"),
            model_root=h32("model", 0),
            model_cid=h32("cid", 0),
            num_rounds=2,
            trainers_per_round=len(self.trainers),
            validators_per_round=len(self.validators),
            min_reveals=1,
            commit_blocks=5,
            reveal_blocks=5,
            validate_blocks=5,
            challenge_blocks=5,
            validator_fee_bps=1_000,
            pool=100 * TOKEN,
            max_commits=256,
            max_rounds_per_trainer=0,
        )
        unknown = set(overrides) - set(cfg)
        if unknown:
            raise TypeError(f"unknown task fields {unknown}")
        cfg.update(overrides)
        return cfg

    def create_task(self, sender: LocalAccount | None = None, **overrides) -> int:
        """Create a task, then mine its opening block: round 0's seed is readable from the next."""
        r = self.fc.tx("create_task", self.task_config(**overrides), sender=sender or self.owner)
        self.chain.mine(1)
        return r.event("TaskCreated").args["task_id"]

    def schedule(self, task: int, rnd: int) -> tuple[int, int, int, int]:
        """(opened, commit_end, reveal_end, validate_end)."""
        return Schedule.unpack(self.fc.call("rounds", task, rnd)["schedule"]).astuple()

    def current_round(self, task: int) -> int:
        return self.fc.call("tasks", task)["round"]

    def update_for(self, task: int, rnd: int, node: LocalAccount) -> Update:
        return Update(
            h32("update", task, rnd, node.address),
            h32("salt", task, rnd, node.address),
            h32("cid", task, rnd, node.address),
        )

    def commitment(self, task: int, rnd: int, node: LocalAccount, upd: Update) -> bytes:
        return cm.commitment(self.chain.chain_id, self.fc.address, task, rnd, node.address, upd.root, upd.salt)

    def to_seed(self, task: int, rnd: int) -> None:
        """Mine past the round's opening block, whose hash is the seed (M-4)."""
        self.chain.mine_to(self.schedule(task, rnd)[0] + 1)

    def commit(self, task: int, rnd: int, node: LocalAccount, upd: Update | None = None) -> Update:
        upd = upd or self.update_for(task, rnd, node)
        self.to_seed(task, rnd)
        self.fc.tx("commit", task, rnd, self.commitment(task, rnd, node, upd), sender=node)
        return upd

    def reveal(self, task: int, rnd: int, node: LocalAccount, upd: Update | None = None) -> Receipt:
        upd = upd or self.update_for(task, rnd, node)
        return self.fc.tx("reveal", task, rnd, upd.root, upd.cid, upd.samples, upd.salt, sender=node)

    def join(self, task: int, rnd: int, validators=None) -> None:
        self.to_seed(task, rnd)
        for v in self.validators if validators is None else validators:
            self.fc.tx("join", task, rnd, sender=v)

    def result(self, task: int, rnd: int, scored: dict | None = None, rejected: int = 0, tag: str = "") -> Result:
        """The result of a round where ``scored`` maps revealers (in reveal order) to scores."""
        scored = scored or {}
        scores = Scores(tuple(a.address for a in scored), tuple(scored.values()))
        return Result(h32("model", task, rnd, tag), h32("model-cid", task, rnd, tag), scores, rejected)

    def vote(self, task: int, rnd: int, validator: LocalAccount, result: Result) -> Receipt:
        return self.fc.tx("vote", task, rnd, *result.args, sender=validator)

    def finalize(self, task: int, result: Result, sender: LocalAccount | None = None) -> Receipt:
        return self.fc.tx("finalize", task, *result.args, sender=sender or self.owner)

    def claim(self, task: int, rnd: int, node: LocalAccount, result: Result) -> Receipt:
        s = result.scores
        return self.fc.tx("claim", task, rnd, s.score(node.address), s.proof(node.address), sender=node)

    def to_reveal_phase(self, task: int, rnd: int) -> None:
        self.chain.mine_to(self.schedule(task, rnd)[1] + 1)

    def to_vote_phase(self, task: int, rnd: int) -> None:
        self.chain.mine_to(self.schedule(task, rnd)[2] + 1)

    def to_finalizable(self, task: int, rnd: int) -> None:
        challenge = self.fc.call("tasks", task)["challenge_blocks"]
        self.chain.mine_to(self.schedule(task, rnd)[3] + challenge + 1)

    def play_round(
        self,
        task: int,
        rnd: int | None = None,
        *,
        revealers=None,
        silent=(),
        voters=None,
        joiners=None,
        scores=None,
        finalize: bool = True,
    ) -> Result:
        """Run a round: ``revealers`` (default: three trainers) commit and reveal,
        ``silent`` commit only, ``joiners`` (default: ``voters``) join, ``voters``
        (default: every validator) vote the correct result (scores default to 1, 2,
        3...), then finalize after the challenge window. Returns the voted result."""
        rnd = self.current_round(task) if rnd is None else rnd
        revealers = self.trainers[:3] if revealers is None else list(revealers)
        voters = self.validators if voters is None else list(voters)
        for t in [*revealers, *silent]:
            self.commit(task, rnd, t)
        self.join(task, rnd, voters if joiners is None else joiners)
        self.to_reveal_phase(task, rnd)
        for t in revealers:
            self.reveal(task, rnd, t)
        scores = scores or list(range(1, len(revealers) + 1))
        result = self.result(task, rnd, dict(zip(revealers, scores)))
        self.to_vote_phase(task, rnd)
        for v in voters:
            self.vote(task, rnd, v, result)
        if finalize:
            self.to_finalizable(task, rnd)
            self.finalize(task, result)
        return result


def make_net(
    chain: Chain,
    params: ProtocolParams = ProtocolParams(),
    *,
    trainers: int = 4,
    validators: int = 3,
    outsiders: int = 3,
) -> Net:
    """Deploy on ``chain`` and fund, approve and stake the accounts (see the module docstring)."""
    owner = account_from_seed("owner")
    chain.fund(owner.address, 10**21)
    d = deploy(chain, owner, params)
    net = Net(
        chain,
        d.token,
        d.fedchain,
        d.slashing,
        d.challenges,
        d.availability,
        owner,
        [account_from_seed(f"trainer{i}") for i in range(trainers)],
        [account_from_seed(f"validator{i}") for i in range(validators)],
        [account_from_seed(f"outsider{i}") for i in range(outsiders)],
        params,
        d.reports,
        d.secagg,
    )
    net.fund([owner])
    net.fund(net.trainers, ROLE_TRAINER)
    net.fund(net.validators, ROLE_VALIDATOR)
    net.fund(net.outsiders)
    chain.mine(1)  # stake counts only in rounds opened after the block it was added in
    return net


def deterministic(chain: EmbeddedChain) -> EmbeddedChain:
    """The embedded chain's block hashes, so round seeds, are a fixed function of the
    block number (``embedded.block_hash``): every run selects the same nodes. Kept as a
    marker of the tests that rely on it."""
    return chain


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request):
    """Each backend in turn: the embedded EVM, then a fresh anvil node (started and stopped here)."""
    if request.param == "embedded":
        yield EmbeddedChain()
        return
    from fedchain.chain.anvil import Anvil
    from fedchain.chain.rpc import RpcChain

    anvil = Anvil()
    try:
        yield RpcChain(anvil.url)
    finally:
        anvil.stop()


@pytest.fixture
def net() -> Net:
    n = make_net(deterministic(EmbeddedChain()))
    yield n
    n.assert_conserved()
