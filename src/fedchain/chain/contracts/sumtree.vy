# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title sumtree
@notice The hashes of a distance table: a Merkle *sum* tree over a model's
        chunks whose every node carries, for each pair of reveal indices
        i < j (at j * (j - 1) / 2 + i), a sum of squared distances.
@dev A leaf is keccak256(abi_encode(chunk, digest of its sums)) (64 bytes
     hashed), an inner node keccak256(abi_encode(left, right, digest)) (96
     bytes), so neither passes for the other; digest = keccak256(abi_encode(
     sums)). A Krum-rule vote's scores_root is keccak256(scores tree root ++
     table root). Used by challenges.vy (the bisection) and availability.vy
     (the answers to table requests). The Python twin is
     fedchain.protocol.distances. Pure functions only: no reentrancy surface.
"""

MAX_DEPTH: constant(uint256) = 20     # 2**20 chunks: 67M parameters
MAX_TABLE: constant(uint256) = 64     # reveals a distance table may cover
MAX_PAIRS: constant(uint256) = 2016   # MAX_TABLE * (MAX_TABLE - 1) / 2


@internal
@pure
def _leaf(chunk: uint256, sums: DynArray[uint256, MAX_PAIRS]) -> bytes32:
    """
    @notice The hash of leaf `chunk` with `sums`.
    """
    return keccak256(abi_encode(chunk, keccak256(abi_encode(sums))))


@internal
@pure
def _node(left: bytes32, right: bytes32, sums: DynArray[uint256, MAX_PAIRS]) -> bytes32:
    """
    @notice The hash of an inner node with children `left`, `right` and `sums`.
    """
    return keccak256(abi_encode(left, right, keccak256(abi_encode(sums))))


@internal
@pure
def _root_through(node: bytes32, position: uint256, siblings: DynArray[bytes32, MAX_DEPTH],
                  digests: DynArray[bytes32, MAX_DEPTH]) -> bytes32:
    """
    @notice The table root above `node` at `position`: each level hashes the
            node with its sibling and the parent's sums digest. Returns empty
            if the inputs are ragged or `position` is not used up (so no path
            places a node at two positions).
    """
    if len(digests) != len(siblings):
        return empty(bytes32)
    h: bytes32 = node
    at: uint256 = position
    for k: uint256 in range(len(siblings), bound=MAX_DEPTH):
        if at % 2 == 0:
            h = keccak256(abi_encode(h, siblings[k], digests[k]))
        else:
            h = keccak256(abi_encode(siblings[k], h, digests[k]))
        at //= 2
    if at != 0:
        return empty(bytes32)
    return h


@internal
@pure
def _pairs(reveals: uint256) -> uint256:
    """
    @notice The entries of a table over `reveals` updates: reveals * (reveals - 1) / 2.
    """
    if reveals < 2:
        return 0
    return reveals * (reveals - 1) // 2
