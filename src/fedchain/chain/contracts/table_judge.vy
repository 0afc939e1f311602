# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title table_judge
@notice The judge of a Krum-rule vote's distance table (see judging.vy for
        what a judge is), the bisection's two steps: a node that is not the
        sum of its children (challenge_distance_sum), a leaf entry that is
        not its chunk's squared distance (challenge_distance_leaf).
        challenges.vy staticcalls it with the challenge's calldata, after it
        has checked the recipe, the round, the leading vote and the window;
        it takes the bond, judges by the answer and pays.
@dev Stateless: a contract of its own because challenges.vy would not fit
     EIP-170 (docs/decisions.md, "Contract sizes"). The table's layout is
     sumtree.vy's. View functions only: no reentrancy surface.
"""

import fedchain
import merkle
import judging
initializes: judging
import sumtree

CHUNK: constant(uint256) = judging.CHUNK
CHUNK_BYTES: constant(uint256) = judging.CHUNK_BYTES
INDEX_MASK: constant(uint256) = judging.INDEX_MASK
MAX_DEPTH: constant(uint256) = sumtree.MAX_DEPTH
MAX_PAIRS: constant(uint256) = sumtree.MAX_PAIRS


struct SumNode:
    # one node of a distance table below the root: its children's hashes
    # (unused for a leaf) and its sums
    left: bytes32
    right: bytes32
    sums: DynArray[uint256, MAX_PAIRS]


struct Opening:
    # one accepted update's chunk, proven through the trainer's commitment
    node: address
    update_root: bytes32
    salt: bytes32
    data: Bytes[CHUNK_BYTES]                 # empty: the zero leaf past the model's last chunk
    proof: DynArray[bytes32, MAX_DEPTH]


@external
@view
def challenge_distance_sum(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    scores_tree_root: bytes32,
    height: uint256,
    position: uint256,
    sums: DynArray[uint256, MAX_PAIRS],
    left: SumNode,
    right: SumNode,
    siblings: DynArray[bytes32, MAX_DEPTH],
    digests: DynArray[bytes32, MAX_DEPTH],
) -> bool:
    """
    @notice Judge one step of the bisection of a Krum vote's distance table
            (challenges.challenge_distance_sum, same arguments): the
            node at `height` (leaves: 0) and `position` must hold the sums of
            its two children, entry by entry, each of the table's size.
    @param sums The node's sums; `left` and `right` its children (a child
           leaf's hash is sumtree._leaf of its chunk, 2 * position or + 1).
    @param siblings From the node up to the table root: each ancestor's
           other child; `digests` each ancestor's sums digest
           (keccak256(abi_encode(sums))).
    @dev A table whose root's sums are wrong has, by induction, either a node
         that is not the sum of its children (this step) or a wrong leaf
         (challenge_distance_leaf): walking down from the root along a child
         whose sums differ from the honest ones finds one of the two.
         Effects: none (a view); challenges.vy settles by the answer.
         Requirements checked here: a Krum rule, a node below the root
         (1 <= height <= 20) and a path from it to the vote's table root.
         The caller has checked the recipe, the round, the vote and the window.
    @return True if the node's sums are wrong (or not of the table's size).
    """
    fc: fedchain.__interface__ = judging._fedchain()
    r: fedchain.Round = staticcall fc.rounds(task_id, round_id)
    assert recipe.rule >= judging.RULE_KRUM and recipe.rule <= judging.RULE_BULYAN, "challenges: no distance table"
    assert height >= 1 and height <= MAX_DEPTH, "challenges: bad node"
    hl: bytes32 = empty(bytes32)
    hr: bytes32 = empty(bytes32)
    if height == 1:
        hl = sumtree._leaf(2 * position, left.sums)
        hr = sumtree._leaf(2 * position + 1, right.sums)
    else:
        hl = sumtree._node(left.left, left.right, left.sums)
        hr = sumtree._node(right.left, right.right, right.sums)
    h: bytes32 = sumtree._node(hl, hr, sums)
    self._check_table_path(h, position, siblings, digests, scores_tree_root, vote.scores_root)
    size: uint256 = sumtree._pairs(r.reveals)
    wrong: bool = len(sums) != size or len(left.sums) != size or len(right.sums) != size
    if not wrong:
        for e: uint256 in range(size, bound=MAX_PAIRS):
            if sums[e] != left.sums[e] + right.sums[e]:
                wrong = True
                break
    return wrong



@external
@view
def challenge_distance_leaf(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    scores_tree_root: bytes32,
    chunk: uint256,
    sums: DynArray[uint256, MAX_PAIRS],
    siblings: DynArray[bytes32, MAX_DEPTH],
    digests: DynArray[bytes32, MAX_DEPTH],
    i: uint256,
    j: uint256,
    a: Opening,
    b: Opening,
) -> bool:
    """
    @notice Judge the last step of the bisection of a Krum vote's distance
            table (challenges.challenge_distance_leaf, same arguments):
            entry (i, j) of leaf `chunk` must be |u_i[c] - u_j[c]|**2 over
            chunk c of the two updates (0 if either was rejected).
    @param sums The leaf's sums; `siblings` and `digests` its path to the
           table root (as in challenge_distance_sum).
    @param i Reveal indices, i < j; `a` and `b` chunk `chunk` of their
         updates with Merkle proofs and commitment openings (unused when
         either update was rejected). A table deeper or shallower than the
         updates' trees is wrong.
    @dev Effects: none (a view); challenges.vy settles by the answer.
         Requirements checked here: a Krum rule, a pair of the round's
         reveals, a path from the leaf to the vote's table root, and (both
         updates accepted) openings of the two reveals' committed updates.
         The caller has checked the recipe, the round, the vote and the window.
    @return True if the entry is wrong (or the leaf not of the table's size).
    """
    fc: fedchain.__interface__ = judging._fedchain()
    r: fedchain.Round = staticcall fc.rounds(task_id, round_id)
    assert recipe.rule >= judging.RULE_KRUM and recipe.rule <= judging.RULE_BULYAN, "challenges: no distance table"
    assert i < j and j < r.reveals, "challenges: no such pair"
    self._check_table_path(sumtree._leaf(chunk, sums), chunk, siblings, digests, scores_tree_root, vote.scores_root)
    wrong: bool = len(sums) != sumtree._pairs(r.reveals)
    if not wrong:
        want: uint256 = 0
        if (vote.rejected >> i) & 1 == 0 and (vote.rejected >> j) & 1 == 0:
            assert len(a.proof) == len(b.proof), "challenges: ragged inputs"
            self._check_opening(fc, task_id, round_id, a, i, chunk)
            self._check_opening(fc, task_id, round_id, b, j, chunk)
            if len(siblings) != len(a.proof):
                wrong = True  # the table does not have the model's shape
            elif len(a.data) > 0 and len(b.data) > 0:
                for k: uint256 in range(CHUNK):
                    d: int256 = judging._value(a.data, k) - judging._value(b.data, k)
                    want += convert(d * d, uint256)
            elif len(a.data) != len(b.data):
                raise "challenges: bad chunk length"
        wrong = wrong or sums[j * (j - 1) // 2 + i] != want
    return wrong


@internal
@pure
def _check_table_path(node: bytes32, position: uint256, siblings: DynArray[bytes32, MAX_DEPTH],
                      digests: DynArray[bytes32, MAX_DEPTH], scores_tree_root: bytes32, scores_root: bytes32):
    """
    @dev `node` sits at `position` of a distance table that the vote's
         scores root commits to.
    """
    assert len(digests) == len(siblings), "challenges: ragged inputs"
    table: bytes32 = sumtree._root_through(node, position, siblings, digests)
    assert table != empty(bytes32) and keccak256(concat(scores_tree_root, table)) == scores_root, "challenges: not the vote's distance table"


@internal
@view
def _check_opening(fc: fedchain.__interface__, task_id: uint256, round_id: uint256, o: Opening, index: uint256, chunk: uint256):
    """
    @dev `o` is chunk `chunk` of the update revealed at `index`: its root is
         the committed one and its data (empty: a zero padding leaf) is
         under that root.
    """
    assert (staticcall fc.record(task_id, round_id, o.node)) & INDEX_MASK == index + 1, "challenges: not that reveal"
    judging._check_commitment(fc, task_id, round_id, o.node, o.update_root, o.salt)
    assert len(o.data) == 0 or len(o.data) == CHUNK_BYTES, "challenges: bad chunk length"
    leaf: bytes32 = empty(bytes32)
    if len(o.data) > 0:
        leaf = keccak256(o.data)
    assert merkle._verify(leaf, chunk, o.proof, o.update_root), "challenges: bad update proof"

