# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title merkle
@notice Positional binary Merkle proofs over keccak256.
@dev Leaves are padded with zero words to a power of two; a parent is
     keccak256(left ++ right). At level i, bit i of the leaf's index says
     whether the node is a right child. The Python twin is
     `fedchain.storage.merkle`. Pure functions only: no reentrancy surface.
"""

MAX_DEPTH: constant(uint256) = 32


@internal
@pure
def _verify(leaf: bytes32, index: uint256, proof: DynArray[bytes32, MAX_DEPTH], root: bytes32) -> bool:
    """
    @notice True iff `proof` places `leaf` at `index` under `root`.
    """
    node: bytes32 = leaf
    i: uint256 = index
    for sibling: bytes32 in proof:
        if i % 2 == 0:
            node = keccak256(concat(node, sibling))
        else:
            node = keccak256(concat(sibling, node))
        i //= 2
    return i == 0 and node == root
