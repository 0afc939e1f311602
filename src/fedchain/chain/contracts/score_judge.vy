# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title score_judge
@notice The judge of a vote's scores (see judging.vy for what a judge is):
        one trainer's cosine score recomputed from whole vectors
        (challenge_score), and the scores tree as a whole: one leaf per
        reveal, summing to the vote's total score (challenge_total).
        challenges.vy staticcalls it with the challenge's calldata, after it
        has checked the recipe, the round, the leading vote and the window;
        it takes the bond, judges by the answer and pays.
@dev Stateless: a contract of its own because challenges.vy would not fit
     EIP-170 (docs/decisions.md, "Contract sizes"). View functions only: no
     reentrancy surface.
"""

import fedchain
import merkle
import commitments
import judging
initializes: judging

CHUNK_BYTES: constant(uint256) = judging.CHUNK_BYTES
INDEX_MASK: constant(uint256) = judging.INDEX_MASK
U64: constant(uint256) = judging.U64
HIGH_BITS: constant(uint256) = max_value(uint256) - (2**32 - 1)  # sign extension of an int32
SCORE_COSINE: constant(uint256) = 1
PPM: constant(uint256) = 10**6
BPS: constant(uint256) = 10_000
MAX_CHUNKS: constant(uint256) = 256         # a score check reads whole vectors: up to 16,384 parameters
MAX_VECTOR_BYTES: constant(uint256) = 65536  # MAX_CHUNKS * CHUNK_BYTES
MAX_SCORES: constant(uint256) = 256         # leaves of a scores tree (one per reveal)


@external
@view
def challenge_score(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    index: uint256,
    node: address,
    score: uint256,
    score_proof: DynArray[bytes32, merkle.MAX_DEPTH],
    update_root: bytes32,
    salt: bytes32,
    update: Bytes[MAX_VECTOR_BYTES],
    parent: Bytes[MAX_VECTOR_BYTES],
    claimed: Bytes[MAX_VECTOR_BYTES],
) -> bool:
    """
    @notice Judge a challenge of one trainer's score in the leading vote
            (challenges.challenge_score, same arguments): recompute the cosine score from the whole update, parent model
            and voted model (the score is not coordinate-wise, but it depends
            on this one update only):
            floor(10**6 * <u, g> / sqrt(|u|**2 |g|**2)), 0 if <u, g> <= 0,
            g = voted model - parent; and 0 for a rejected update; then
            times the trainer's seats in basis points, divided by 10,000.
    @param index A reveal index; `node` and `score` the vote's scores-tree
           leaf there (the voted model's lineage lists them), with its Merkle
           proof. A leaf that names anyone but the index-th revealer is wrong.
    @param update The trainer's whole update, parent and claimed the two
           models, each as packed big-endian int32 chunks of 64 values (the
           last zero-padded); empty for a rejected update.
    @dev Effects: none (a view); challenges.vy settles by the answer.
         Requirements checked here: the cosine score, a reveal index of the
         round, a valid score leaf there, and (unless the leaf is misnamed or
         the update rejected) vectors whose Merkle roots are the revealed
         update root (proven through the commitment) and the two model roots.
         The caller has checked the recipe, the round, the vote and the window.
    @return True if the score is wrong.
    """
    fc: fedchain.__interface__ = judging._fedchain()
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = staticcall fc.rounds(task_id, round_id)
    assert recipe.score == SCORE_COSINE, "challenges: score not challengeable"
    assert index < r.reveals, "challenges: no such reveal"
    assert merkle._verify(commitments._score_leaf(node, score), index, score_proof, vote.scores_root), "challenges: bad score proof"
    rec: uint256 = staticcall fc.record(task_id, round_id, node)

    expected: uint256 = 0
    misnamed: bool = rec & INDEX_MASK != index + 1
    if not misnamed and (vote.rejected >> index) & 1 == 0:
        judging._check_commitment(fc, task_id, round_id, node, update_root, salt)
        size: uint256 = len(update)
        assert size > 0 and size % CHUNK_BYTES == 0 and len(parent) == size and len(claimed) == size, "challenges: bad vector length"
        assert self._vector_root(update) == update_root, "challenges: bad update"
        assert self._vector_root(parent) == task.model_root, "challenges: bad parent"
        assert self._vector_root(claimed) == vote.model_root, "challenges: bad claimed model"
        # Two's complement arithmetic mod 2**256 (unchecked uint256 ops on
        # sign-extended values) gives exact results: |u| <= 2**23 and
        # |g| <= 2**24 per value and at most 2**14 values keep every true sum
        # below 2**62 in magnitude; dot**2 * 10**12 stays below 2**164.
        dot_w: uint256 = 0
        uu_w: uint256 = 0
        gg_w: uint256 = 0
        for k: uint256 in range(size // 32, bound=MAX_VECTOR_BYTES // 32):
            wu: uint256 = convert(extract32(update, k * 32), uint256)
            wp: uint256 = convert(extract32(parent, k * 32), uint256)
            wc: uint256 = convert(extract32(claimed, k * 32), uint256)
            for m: uint256 in range(8):
                # sign-extend each int32 inline (an internal call per value would double the cost)
                sh: uint256 = unsafe_sub(224, unsafe_mul(32, m))
                xu: uint256 = (wu >> sh) & INDEX_MASK
                xc: uint256 = (wc >> sh) & INDEX_MASK
                xp: uint256 = (wp >> sh) & INDEX_MASK
                u: uint256 = xu | unsafe_mul(xu >> 31, HIGH_BITS)
                g: uint256 = unsafe_sub(xc | unsafe_mul(xc >> 31, HIGH_BITS), xp | unsafe_mul(xp >> 31, HIGH_BITS))
                dot_w = unsafe_add(dot_w, unsafe_mul(u, g))
                uu_w = unsafe_add(uu_w, unsafe_mul(u, u))
                gg_w = unsafe_add(gg_w, unsafe_mul(g, g))
        dot: int256 = convert(convert(dot_w, bytes32), int256)
        if dot > 0:
            d: uint256 = convert(dot, uint256)
            # times the seats its stake stands for (fedchain.vy, `reveal`)
            expected = min(PPM, isqrt(PPM * PPM * d * d // (uu_w * gg_w))) * ((rec >> 160) & U64) // BPS
    wrong: bool = misnamed or expected != score
    return wrong



@external
@view
def challenge_total(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    nodes: DynArray[address, MAX_SCORES],
    scores: DynArray[uint256, MAX_SCORES],
    table_root: bytes32,
) -> bool:
    """
    @notice Judge a challenge of the leading vote's scores tree as a whole
            (challenges.challenge_total, same arguments): it must have
            one leaf per reveal of the round, and its leaves must sum to
            `total_score`, which divides every trainer's reward. Any rule may
            be challenged here, rule 0 (not recomputable) included.
    @param nodes Every leaf of the vote's scores tree, in order (the
           trainer of each); `scores` their scores.
    @param table_root A Krum-rule vote's distance table root (see challenges.vy, Distances):
           its scores root is keccak256(scores tree root ++ table root).
           Required (non-empty) for the Krum rules (4, 5, 6) and empty for
           every other rule, so the leaves that hash to the vote's scores
           root are unique (a plain tree's root is also keccak256 of its two
           halves' roots: a free table root would let a subset of the leaves
           pass for the whole tree).
    @dev Effects: none (a view); challenges.vy settles by the answer.
         Requirements checked here: at least one leaf, as many scores as
         nodes, a table root exactly when the rule is a Krum rule, and leaves
         whose Merkle root (with the table root, for the Krum rules) is the
         vote's scores root. The caller has checked the recipe, the round,
         the vote and the window.
    @return True if the vote is wrong: not as many leaves as the round has
            reveals (a revealer left out, or a phantom leaf added), or leaves
            that do not sum to `total_score`.
    """
    fc: fedchain.__interface__ = judging._fedchain()
    r: fedchain.Round = staticcall fc.rounds(task_id, round_id)
    if recipe.rule >= judging.RULE_KRUM and recipe.rule <= judging.RULE_BULYAN:
        assert table_root != empty(bytes32), "challenges: Krum rules need the table root"
    else:
        assert table_root == empty(bytes32), "challenges: table root only for Krum rules"
    n: uint256 = len(nodes)
    assert n > 0 and len(scores) == n, "challenges: ragged inputs"
    layer: DynArray[bytes32, MAX_SCORES] = []
    total: uint256 = 0
    for i: uint256 in range(n, bound=MAX_SCORES):
        layer.append(commitments._score_leaf(nodes[i], scores[i]))
        total += scores[i]
    root: bytes32 = self._root_of(layer)
    if table_root != empty(bytes32):
        root = keccak256(concat(root, table_root))
    assert root == vote.scores_root, "challenges: not the scores tree"
    wrong: bool = n != r.reveals or total != vote.total_score
    return wrong


@internal
@pure
def _vector_root(data: Bytes[MAX_VECTOR_BYTES]) -> bytes32:
    """
    @dev Merkle root over the keccak256 of each 256-byte chunk (the Python
         twin is fixedpoint.vector_root).
    """
    layer: DynArray[bytes32, MAX_SCORES] = []
    for c: uint256 in range(len(data) // CHUNK_BYTES, bound=MAX_CHUNKS):
        layer.append(keccak256(slice(data, c * CHUNK_BYTES, CHUNK_BYTES)))
    return self._root_of(layer)


@internal
@pure
def _root_of(leaves: DynArray[bytes32, MAX_SCORES]) -> bytes32:
    """
    @dev Merkle root of 1 to 256 leaves, padded with zero hashes to a power
         of two (storage.merkle's rule), computed in place.
    """
    layer: DynArray[bytes32, MAX_SCORES] = leaves
    width: uint256 = 1
    for _: uint256 in range(9):  # 256 = 2**8 leaves at most
        if width >= len(layer):
            break
        width *= 2
    for _: uint256 in range(MAX_SCORES):
        if len(layer) >= width:
            break
        layer.append(empty(bytes32))
    for _: uint256 in range(9):
        if width <= 1:
            break
        width //= 2
        for i: uint256 in range(width, bound=MAX_SCORES):
            layer[i] = keccak256(concat(layer[2 * i], layer[2 * i + 1]))
    return layer[0]
