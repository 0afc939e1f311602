# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title sortition
@notice Stake-weighted sortition, checked in O(1) without a loop over nodes.
@dev A node with weight w out of a total T is selected iff
     uint256(keccak256(seed, node)) < k * w / T * 2**256, i.e. with
     probability min(1, k*w/T): the expected committee size is k. Because the
     probability is linear in w below the cap, splitting stake across
     identities that all stay below it leaves the expected number of seats
     unchanged. At the cap it does not: a node with k*w >= T has one seat,
     the same stake split into identities below the cap expects k*w/T seats.
     Splitting never buys more than the stake's proportional share, and the
     cap costs one large identity nothing in rewards: fedchain.vy's `reveal`
     records the k*w/T seats its stake stands for and its score is paid that
     many times (docs/robustness.md, "Sybil").
     The Python twin is `fedchain.chain.commitments.is_selected`; both must
     agree bit for bit. Pure functions only: no state, no reentrancy surface.
"""

MAX_UINT: constant(uint256) = max_value(uint256)


@internal
@pure
def _is_selected(seed: bytes32, node: address, weight: uint256, total: uint256, k: uint256) -> bool:
    """
    @notice Whether `node` with `weight` is in a committee of expected size `k`.
    """
    if weight == 0 or total == 0 or k == 0:
        return False
    if weight * k >= total:
        return True
    draw: uint256 = convert(keccak256(abi_encode(seed, node)), uint256)
    return draw < (MAX_UINT // total) * (weight * k)
