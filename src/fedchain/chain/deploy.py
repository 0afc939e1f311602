"""Deploy the stake token and fedchain's contracts (core, vault, rewards; the slashing,
challenge and availability contracts; the challenge contract's stateless judges; the
endpoints contract) with the parameters they take."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from fedchain.chain.fedchain import Fedchain
from fedchain.chain.interface import Chain, Contract, artifact
from fedchain.errors import ChainError

ROLE_TRAINER = 1
ROLE_VALIDATOR = 2
TOKEN = 10**18


@dataclass(frozen=True)
class ProtocolParams:
    """Network-wide parameters fixed at deployment (token amounts in wei)."""

    min_stake: int = 100 * TOKEN
    unbonding_delay: int = 100  # blocks; must exceed every round plus the slash grace
    liveness_penalty: int = 5 * TOKEN  # missing reveal, rejected update
    safety_penalty_bps: int = 5_000  # equivocation: half the stake
    reporter_bps: int = 1_000  # a reporter's share of a slash (the rest is burned)
    challenge_bond: int = 10 * TOKEN  # posted by a challenger, lost if the challenge fails
    # The least challenge window a task may set. 5 blocks suits a local chain
    # that mines on demand; on a public chain use at least an hour of blocks
    # (`fedchain deploy` refuses less there: docs/decisions.md, "Security").
    min_challenge_blocks: int = 5
    # Blocks after a round's challenge window in which its faults can still be
    # reported: every task's round plus this grace must end before unbonding does.
    slash_grace: int = 20
    # The availability game: a request's bond, and the blocks an answer is due in
    # (shorter than the slash grace).
    request_bond: int = 10 * TOKEN
    answer_blocks: int = 5


@dataclass
class Deployment:
    token: Contract
    fedchain: Fedchain  # core, vault and rewards behind one interface
    block: int
    challenges: Contract | None = None
    slashing: Contract | None = None
    availability: Contract | None = None
    # challenges' stateless helpers, fixed in its constructor: Krum's selections and the judges
    krum: Contract | None = None
    model_judge: Contract | None = None
    score_judge: Contract | None = None
    table_judge: Contract | None = None
    secagg_judge: Contract | None = None  # a secure-aggregation round's unmasking (older files lack it)
    reports: Contract | None = None  # sponsors' evaluation reports (older files lack it)
    endpoints: Contract | None = None  # where participants serve their blobs (not bound to the core)
    secagg: Contract | None = None  # secure aggregation's board (the core's; older files lack it)

    def to_json(self) -> dict:
        fc = self.fedchain
        return {
            "token": self.token.address,
            "fedchain": fc.core.address,
            "vault": fc.vault.address,
            "rewards": fc.rewards.address,
            "tasks": fc.tasks_contract.address,
            **{
                name: c.address if c else None
                for name, c in self.contracts().items()
                if name not in ("token", "fedchain", "vault", "rewards", "tasks")
            },
            "chain_id": fc.chain.chain_id,
            "block": self.block,
            "contracts": fc.artifact.version,
        }

    def contracts(self) -> dict[str, Contract | None]:
        """Every contract of the deployment, by its name in the deployment file."""
        fc = self.fedchain
        return {
            "token": self.token,
            "fedchain": fc.core,
            "vault": fc.vault,
            "rewards": fc.rewards,
            "tasks": fc.tasks_contract,
            **{name: getattr(self, name) for name in OPTIONAL},
        }

    def save(self, path: Path, **extra) -> None:
        """Write the deployment file other commands read (``extra``: e.g. the RPC URL)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps({**self.to_json(), **extra}, indent=2) + "\n")
        os.replace(tmp, path)


# the deployment file's optional contracts (older files lack the judges), by artifact
OPTIONAL = {
    "challenges": "challenges",
    "slashing": "slashing",
    "availability": "availability",
    "krum": "krum",
    "model_judge": "model_judge",
    "score_judge": "score_judge",
    "table_judge": "table_judge",
    "secagg_judge": "secagg_judge",
    "reports": "reports",
    "endpoints": "endpoints",
    "secagg": "secagg",
}


def read_deployment_file(path: Path) -> dict:
    """The deployment file's fields; a clear error if it is missing or malformed."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ChainError(f"no deployment file at {path}: run `fedchain deploy` or pass --deployment") from None
    except ValueError as e:
        raise ChainError(f"deployment file {path} is not JSON: {e}") from None
    missing = {"token", "fedchain", "vault", "rewards", "tasks", "chain_id", "block"} - set(d)
    if missing:
        raise ChainError(f"deployment file {path} lacks {sorted(missing)}")
    return d


def load_deployment(chain: Chain, info: dict) -> Deployment:
    """The contracts named in a deployment file, checked to exist on ``chain``."""
    if chain.chain_id != info["chain_id"]:
        raise ChainError(f"the chain has id {chain.chain_id} but the deployment is for chain {info['chain_id']}")
    code_at = getattr(chain, "code_at", None)
    if code_at is not None and not code_at(info["fedchain"]):
        raise ChainError(
            f"no contract at {info['fedchain']} on this chain: was it restarted without its state? "
            "Deploy again or restore the chain's state"
        )
    fc = artifact("fedchain")
    if info.get("contracts") and info["contracts"] != fc.version:
        raise ChainError(
            f"the deployment is of contract sources {info['contracts']}, this fedchain has "
            f"{fc.version}: their interfaces may differ. Use the fedchain version that deployed it, "
            "or deploy again"
        )
    optional = {name: chain.at(artifact(art), info[name]) if info.get(name) else None for name, art in OPTIONAL.items()}
    core = Fedchain(
        chain.at(fc, info["fedchain"]),
        chain.at(artifact("vault"), info["vault"]),
        chain.at(artifact("rewards"), info["rewards"]),
        chain.at(artifact("tasks"), info["tasks"]),
    )
    return Deployment(chain.at(artifact("test_token"), info["token"]), core, info["block"], **optional)


def deploy(chain: Chain, owner: LocalAccount, params: ProtocolParams = ProtocolParams()) -> Deployment:
    """Deploy a fresh test token and fedchain's contracts; ``owner`` may mint the token.

    Order: the vault (stakes and every other token); the challenge contract's stateless
    helpers (Krum's selections and the judges: model values, scores, distance tables, and
    a secure-aggregation round's unmasking, which takes the secure-aggregation board's
    address) and the challenge contract, which takes their addresses; the slashing and
    availability contracts; tasks (the vault's and the game's); the core, which takes
    the vault's, the tasks contract's and the three judges' addresses; rewards (the
    core's and the vault's); reports (the core's: sponsors' evaluation reports). Then the vault, the tasks contract,
    the challenge, slashing and availability contracts and the secure-aggregation board are
    bound to the core, once, by ``owner``. No address can change afterwards. Last, the endpoints contract (blob
    server URLs), which stands alone."""
    block = chain.block_number()
    token = chain.deploy(artifact("test_token"), "fedchain test token", "FED", sender=owner)
    p = params
    vault = chain.deploy(artifact("vault"), token.address, p.min_stake, p.unbonding_delay, p.reporter_bps, sender=owner)
    helpers = {
        name: chain.deploy(artifact(name), sender=owner)
        for name in ("krum", "model_judge", "score_judge", "table_judge")
    }
    board = chain.deploy(artifact("secagg"), sender=owner)  # bound to the core below
    helpers["secagg_judge"] = chain.deploy(artifact("secagg_judge"), board.address, sender=owner)
    challenges = chain.deploy(
        artifact("challenges"), p.challenge_bond, *(c.address for c in helpers.values()), sender=owner
    )
    slashing = chain.deploy(artifact("slashing"), sender=owner)
    availability = chain.deploy(artifact("availability"), p.request_bond, p.answer_blocks, sender=owner)
    tasks = chain.deploy(
        artifact("tasks"), vault.address, availability.address, p.min_challenge_blocks, p.slash_grace, sender=owner
    )
    core = chain.deploy(
        artifact("fedchain"),
        vault.address,
        tasks.address,
        p.liveness_penalty,
        p.safety_penalty_bps,
        challenges.address,
        slashing.address,
        availability.address,
        sender=owner,
    )
    rewards = chain.deploy(artifact("rewards"), core.address, vault.address, sender=owner)
    reports = chain.deploy(artifact("reports"), core.address, sender=owner)
    vault.tx("bind", core.address, rewards.address, tasks.address, sender=owner)
    for judge in (tasks, challenges, slashing, availability, board):
        judge.tx("bind", core.address, sender=owner)
    endpoints = chain.deploy(artifact("endpoints"), sender=owner)
    return Deployment(
        token,
        Fedchain(core, vault, rewards, tasks),
        block,
        challenges,
        slashing,
        availability,
        **helpers,
        reports=reports,
        endpoints=endpoints,
        secagg=board,
    )
