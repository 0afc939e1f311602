"""Python twins of the contracts' hashes and of sortition.

Nodes use these to decide locally whether they are selected and what to
commit; tests check them against the contract's own functions bit for bit.
"""

from __future__ import annotations

import eth_abi
from eth_utils import keccak

COMMIT_DOMAIN = keccak(text="fedchain.commit.v1")
MAX_UINT = 2**256 - 1


def commitment(
    chain_id: int, contract: str, task_id: int, round_id: int, node: str, update_root: bytes, salt: bytes
) -> bytes:
    """keccak(domain, chain id, contract, task, round, sender, update root, salt)."""
    return keccak(
        eth_abi.encode(
            ["bytes32", "uint256", "address", "uint256", "uint256", "address", "bytes32", "bytes32"],
            [COMMIT_DOMAIN, chain_id, contract, task_id, round_id, node, update_root, salt],
        )
    )


def vote_hash(model_root: bytes, model_cid: bytes, scores_root: bytes, total_score: int, rejected: int) -> bytes:
    return keccak(
        eth_abi.encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "uint256"],
            [model_root, model_cid, scores_root, total_score, rejected],
        )
    )


def round_seed(task_id: int, round_id: int, opening_block_hash: bytes) -> bytes:
    """A round's sortition seed: keccak256(task, round, hash of the block that opened it)."""
    return keccak(eth_abi.encode(["uint256", "uint256", "bytes32"], [task_id, round_id, opening_block_hash]))


def is_selected(seed: bytes, node: str, weight: int, total: int, k: int) -> bool:
    """Stake-weighted sortition: selected with probability min(1, k*weight/total)."""
    if weight == 0 or total == 0 or k == 0:
        return False
    if weight * k >= total:
        return True
    draw = int.from_bytes(keccak(eth_abi.encode(["bytes32", "address"], [seed, node])), "big")
    return draw < (MAX_UINT // total) * (weight * k)


BPS = 10_000


def seats_bps(k: int, weight: int, total: int) -> int:
    """The seats a node's stake stands for in a round, in basis points: k * weight /
    total, at least one seat (fedchain.vy's ``_seats``: ``reveal`` records a trainer's,
    ``join`` makes a validator's its committee weight; weight 0 counts one).

    Below the sortition cap a node is selected with probability k*w/T and counts one
    seat; at the cap it is selected for sure and counts k*w/T seats. Either way its
    expected seats are linear in its stake: a trainer splitting a stake over identities
    (a Sybil) earns what the whole stake earns as one identity, and a validator's share
    of a committee is its share of the stake (SECURITY-REVIEW H-1).
    """
    return max(BPS, k * weight * BPS // total)


def has_quorum(tally: int, committee_seats: int, k: int) -> bool:
    """Whether ``tally`` seats behind one result lead the round (fedchain.vy ``_has_quorum``):
    2/3 of the seats of every validator that joined, and of at least k/3 seats, so that a
    committee few joined cannot be decided by one identity."""
    return 3 * tally >= 2 * max(committee_seats, k * BPS // 3)


def paid_score(score: int, seats: int) -> int:
    """A trainer's score as its rewards leaf carries it: the rule's score times its seats."""
    return score * seats // BPS
