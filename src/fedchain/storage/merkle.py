"""Positional binary Merkle trees over 32-byte leaves, hashed with keccak256.

The leaf list is padded with zero hashes to the next power of two; an internal node is
``keccak(left + right)``; one leaf is its own root. A proof is the list of siblings from
the leaf up. The on-chain verifier walks it the same way: where bit ``i`` of the index is
0 the node is ``keccak(node + sibling)``, else ``keccak(sibling + node)``.

Padding leaves (zero hashes) have valid proofs too, so a consumer must also check that
the index is below the real leaf count. :func:`score_leaf` builds the leaf that binds a
participant's address to its score.
"""

from collections.abc import Sequence

from sha3 import keccak_256

HASH_SIZE = 32


def keccak(data: bytes) -> bytes:
    """keccak256, straight from safe-pysha3's C code: every chunk leaf and tree node of
    every update goes through here, and eth_hash's backend dispatch costs ~5x the hash."""
    return keccak_256(data).digest()


ZERO = bytes(HASH_SIZE)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {value!r:.80}")


def merkle_layers(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Build every layer of the tree once, so roots and proofs share the work.

    Parameters
    ----------
    leaves : Sequence[bytes]
        At least one 32-byte leaf.

    Returns
    -------
    list[list[bytes]]
        ``layers[0]`` is the padded leaf list, each next layer half as long, and
        ``layers[-1] == [root]``.

    Raises
    ------
    ValueError
        If ``leaves`` is empty or a leaf is not 32 bytes.
    """
    if len(leaves) == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    for i, leaf in enumerate(leaves):
        _check_hash(leaf, f"leaf {i}")
    width = 1 << (len(leaves) - 1).bit_length()
    layer = [bytes(leaf) for leaf in leaves] + [ZERO] * (width - len(leaves))
    layers = [layer]
    while len(layer) > 1:
        layer = [keccak(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
        layers.append(layer)
    return layers


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Return the root of the tree over ``leaves`` (see :func:`merkle_layers`)."""
    return merkle_layers(leaves)[-1][0]


def proof_from_layers(layers: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """Return the siblings of leaf ``index``, bottom-up, from prebuilt layers.

    Parameters
    ----------
    layers : Sequence[Sequence[bytes]]
        The output of :func:`merkle_layers`.
    index : int
        Position of the leaf in the padded leaf list.

    Returns
    -------
    list[bytes]
        One 32-byte sibling per level below the root (empty for a one-leaf tree).
    """
    if not 0 <= index < len(layers[0]):
        raise IndexError(f"leaf index {index} out of range for {len(layers[0])} leaves")
    return [layer[(index >> level) ^ 1] for level, layer in enumerate(layers[:-1])]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the proof (siblings bottom-up) that ``leaves[index]`` is in the tree.

    Raises
    ------
    IndexError
        If ``index`` is not the position of one of ``leaves``.
    """
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} out of range for {len(leaves)} leaves")
    return proof_from_layers(merkle_layers(leaves), index)


def all_proofs(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Return the proof of every leaf, building the tree only once."""
    layers = merkle_layers(leaves)
    return [proof_from_layers(layers, i) for i in range(len(leaves))]


def verify_proof(leaf: bytes, index: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Check that ``leaf`` sits at ``index`` in the tree with ``root``.

    The index must fit in ``len(proof)`` bits: otherwise high bits would be ignored and
    one leaf could be proven at several positions.

    Parameters
    ----------
    leaf : bytes
        The 32-byte leaf.
    index : int
        Its position.
    proof : Sequence[bytes]
        Siblings bottom-up, as from :func:`merkle_proof`.
    root : bytes
        The expected 32-byte root.

    Returns
    -------
    bool
        Whether the proof holds.
    """
    if index < 0 or index >> len(proof):
        return False
    try:
        _check_hash(leaf, "leaf")
        _check_hash(root, "root")
        for sibling in proof:
            _check_hash(sibling, "sibling")
    except ValueError:
        return False
    node = bytes(leaf)
    for level, sibling in enumerate(proof):
        if (index >> level) & 1:
            node = keccak(bytes(sibling) + node)
        else:
            node = keccak(node + bytes(sibling))
    return node == bytes(root)


def score_leaf(address: str, score: int) -> bytes:
    """Return the leaf binding ``address`` to ``score`` in a scores tree.

    ``keccak(keccak(abi.encode(address, uint256 score)))``: hashed twice so that a leaf
    can never equal an internal node, whose preimage is also 64 bytes.

    Parameters
    ----------
    address : str
        A 20-byte hex address (any case).
    score : int
        A non-negative integer below 2**256.

    Returns
    -------
    bytes
        The 32-byte leaf.
    """
    # abi.encode(address, uint256) packed by hand: every node rebuilds a round's scores
    # tree to claim or to vote, and eth_abi's generic encoder costs 8x the two hashes
    if not (isinstance(address, str) and len(address) == 42 and address[:2] in ("0x", "0X")):
        raise ValueError(f"not a 20-byte hex address: {address!r:.60}")
    if not isinstance(score, int) or not 0 <= score < 2**256:
        raise ValueError(f"score must be an integer in [0, 2**256), got {score!r:.60}")
    return keccak(keccak(bytes(12) + bytes.fromhex(address[2:]) + score.to_bytes(32, "big")))
