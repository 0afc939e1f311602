"""Deploy the stake token and the fedchain contract, and the parameters they take."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from eth_account.signers.local import LocalAccount

from fedchain.chain.interface import Chain, Contract, artifact

ROLE_TRAINER = 1
ROLE_VALIDATOR = 2
TOKEN = 10**18


@dataclass(frozen=True)
class ProtocolParams:
    """Network-wide parameters fixed at deployment (token amounts in wei)."""

    min_stake: int = 100 * TOKEN
    unbonding_delay: int = 100          # blocks; must exceed every challenge window
    liveness_penalty: int = 5 * TOKEN   # missing reveal, rejected update
    safety_penalty_bps: int = 5_000     # equivocation: half the stake
    reporter_bps: int = 1_000           # a reporter's share of a slash


@dataclass
class Deployment:
    token: Contract
    fedchain: Contract
    block: int

    def to_json(self) -> dict:
        return {"token": self.token.address, "fedchain": self.fedchain.address,
                "chain_id": self.fedchain.chain.chain_id, "block": self.block}


def deploy(chain: Chain, owner: LocalAccount, params: ProtocolParams = ProtocolParams()) -> Deployment:
    """Deploy a fresh test token and fedchain; ``owner`` may mint the token."""
    block = chain.block_number()
    token = chain.deploy(artifact("test_token"), "fedchain test token", "FED", sender=owner)
    fc = chain.deploy(artifact("fedchain"), token.address, *asdict(params).values(), sender=owner)
    return Deployment(token, fc, block)
