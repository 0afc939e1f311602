# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title secagg_judge
@notice The judge of a secure-aggregation round's unmasked aggregate
        (challenges.challenge_unmasking): recomputes one value of the new
        model from the masked updates and the survivors' self-mask seeds,
        which nobody could see before the round was unmasked and anyone can
        since (fedchain/learning/secagg.py, fedchain/protocol/secagg_round.py).
@dev Under masking, trainer u revealed y_u = w_u q_u + PRG(b_u) + (pairwise
     masks) mod 2**64, committed by its Merkle root over 64-word chunks of
     big-endian uint64 (secagg_round.masked_root). When every trainer that
     shared its keys also revealed (no dropouts) and the vote rejected
     nothing, the pairwise masks cancel in the sum exactly, so every honest
     validator's unmasking is
         S = sum_u (y_u - PRG(b_u)) mod 2**64, read as int64,
         new = clip(old + floor(S / sum_u w_u), +-QMAX),
     with PRG(b)[i] the big-endian 8 bytes at 8 (i % 4) of
     keccak256(b ++ uint256(i // 4)) (secagg.self_prg). Each b is held to the
     keccak256 its trainer posted on the board with its bundle, which
     validators also check before they vote (secagg_round), so a right result
     is never judged wrong: the judge accepts only the seeds the honest
     validators used. Rounds with dropouts or rejections (whose pairwise
     masks do not cancel) are refused: their unmasking needs the dropped
     trainers' pairwise seeds, which no contract can derive (X25519): see
     docs/decisions.md, "Secure aggregation in rounds".
     The recipe rule is (RULE_SECAGG, dim, 1, 0): dim is the model's length,
     so that a padding position (past dim, zero in every tree) is never
     recomputed as a masked one. Stateless, a view: no reentrancy surface.
"""

import fedchain
import judging
import merkle
import layout
import sumtree

initializes: judging

CHUNK: constant(uint256) = judging.CHUNK
CHUNK_BYTES: constant(uint256) = judging.CHUNK_BYTES
MASKED_BYTES: constant(uint256) = 8 * CHUNK          # 64 big-endian uint64
MAX_UPDATES: constant(uint256) = judging.MAX_UPDATES
MAX_DEPTH: constant(uint256) = sumtree.MAX_DEPTH
MAX_WEIGHT: constant(uint256) = 2**20
QMAX: constant(int256) = 2**23
RULE_SECAGG: constant(uint256) = 7
SHARED: constant(uint8) = 2                          # secagg.vy's step after `share`
INDEX_MASK: constant(uint256) = judging.INDEX_MASK
SAMPLES_MASK: constant(uint256) = layout.SAMPLES_MASK
U64: constant(uint256) = judging.U64


interface Board:
    def self_mask(task_id: uint256, round_id: uint256, trainer: address) -> bytes32: view
    def step(task_id: uint256, round_id: uint256, trainer: address) -> uint8: view
    def shared(task_id: uint256, round_id: uint256) -> uint256: view


board: public(immutable(Board))


@deploy
def __init__(board_: Board):
    """
    @param board_ The secure-aggregation board (secagg.vy) of the same core.
    """
    board = board_


@external
@view
def challenge_unmasking(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    chunk: uint256,
    coordinate: uint256,
    depth: uint256,
    nodes: DynArray[address, MAX_UPDATES],
    update_roots: DynArray[bytes32, MAX_UPDATES],
    salts: DynArray[bytes32, MAX_UPDATES],
    seeds: DynArray[bytes32, MAX_UPDATES],
    masked_chunks: Bytes[131072],
    masked_proofs: DynArray[bytes32, 5120],
    parent_chunk: Bytes[CHUNK_BYTES],
    parent_proof: DynArray[bytes32, MAX_DEPTH],
    claimed_chunk: Bytes[CHUNK_BYTES],
    claimed_proof: DynArray[bytes32, MAX_DEPTH],
) -> bool:
    """
    @notice Judge a challenge of a secure-aggregation round's leading result
            (challenges.challenge_unmasking, same arguments): recompute value
            `coordinate` of chunk `chunk` of the new model.
    @param nodes Every revealed trainer, in reveal order; `update_roots` and
           `salts` their revealed (masked) roots and salts, proven by
           commitment; `seeds` their self-mask seeds, each proven by the hash
           its trainer posted on the board.
    @param masked_chunks Chunk `chunk` of each masked update (512 bytes: 64
           big-endian uint64), concatenated; `masked_proofs` their Merkle
           proofs, `depth` siblings each, concatenated.
    @param parent_chunk Chunk `chunk` of the task's current model.
    @param claimed_chunk Chunk `chunk` of the voted model.
    @dev Effects: none (a view). Requirements: the secure-aggregation rule;
         a position inside the model (below the rule's dim); a vote that
         rejected nothing and a round in which every sharer revealed;
         exactly the round's reveals in order; valid commitments, proofs and
         seeds. The caller (challenges.vy) has checked the recipe, the round,
         the vote and the window.
    @return True if the value is wrong.
    """
    fc: fedchain.__interface__ = judging._fedchain()
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = staticcall fc.rounds(task_id, round_id)
    assert recipe.rule == RULE_SECAGG, "challenges: not a secure-aggregation task"
    assert depth <= MAX_DEPTH and chunk < 2**depth and coordinate < CHUNK, "challenges: bad chunk index"
    position: uint256 = chunk * CHUNK + coordinate
    assert position < recipe.param1, "challenges: a padding position"
    n: uint256 = len(nodes)
    assert n == r.reveals and n > 0, "challenges: not every reveal"
    assert len(update_roots) == n and len(salts) == n and len(seeds) == n, "challenges: ragged inputs"
    assert len(masked_chunks) == n * MASKED_BYTES and len(masked_proofs) == n * depth, "challenges: ragged inputs"
    assert len(parent_proof) == depth and len(claimed_proof) == depth, "challenges: ragged inputs"
    assert len(parent_chunk) == CHUNK_BYTES and len(claimed_chunk) == CHUNK_BYTES, "challenges: bad chunk length"
    assert vote.rejected == 0, "challenges: a masked round with rejections is not judged on chain"
    assert staticcall board.shared(task_id, round_id) == n, "challenges: a masked round with dropouts is not judged on chain"

    assert merkle._verify(keccak256(parent_chunk), chunk, parent_proof, task.model_root), "challenges: bad parent proof"
    assert merkle._verify(keccak256(claimed_chunk), chunk, claimed_proof, vote.model_root), "challenges: bad claimed proof"

    counter: bytes32 = convert(position // 4, bytes32)
    place: uint256 = 192 - 64 * (position % 4)  # the word's place in its keccak block
    acc: uint256 = 0  # sum of (y - PRG(b)) mod 2**64
    total_weight: uint256 = 0
    for i: uint256 in range(n, bound=MAX_UPDATES):
        node: address = nodes[i]
        rec: uint256 = staticcall fc.record(task_id, round_id, node)
        assert rec & INDEX_MASK == i + 1, "challenges: not the reveals in reveal order"
        assert staticcall board.step(task_id, round_id, node) >= SHARED, "challenges: a reveal without shared keys"
        judging._check_commitment(fc, task_id, round_id, node, update_roots[i], salts[i])
        assert keccak256(seeds[i]) == staticcall board.self_mask(task_id, round_id, node), "challenges: not its self-mask seed"
        values: Bytes[MASKED_BYTES] = slice(masked_chunks, i * MASKED_BYTES, MASKED_BYTES)
        h: bytes32 = keccak256(values)
        at: uint256 = chunk
        for k: uint256 in range(depth, bound=MAX_DEPTH):
            sibling: bytes32 = masked_proofs[i * depth + k]
            if at % 2 == 0:
                h = keccak256(concat(h, sibling))
            else:
                h = keccak256(concat(sibling, h))
            at //= 2
        assert h == update_roots[i], "challenges: bad masked update proof"
        y: uint256 = (convert(extract32(values, (coordinate // 4) * 32), uint256) >> (192 - 64 * (coordinate % 4))) & U64
        mask: uint256 = (convert(keccak256(concat(seeds[i], counter)), uint256) >> place) & U64
        acc = (acc + y + 2**64 - mask) & U64
        total_weight += min((rec >> 32) & SAMPLES_MASK, MAX_WEIGHT)

    s: int256 = convert(acc, int256)
    if acc >= 2**63:
        s -= 2**64
    agg: int256 = self._floor_div(s, convert(total_weight, int256))
    new: int256 = max(min(judging._value(parent_chunk, coordinate) + agg, QMAX), -QMAX)
    return new != judging._value(claimed_chunk, coordinate)


@internal
@pure
def _floor_div(a: int256, b: int256) -> int256:
    """
    @dev floor(a / b) for b > 0 (Vyper's // truncates toward zero).
    """
    q: int256 = a // b
    if a % b != 0 and a < 0:
        q -= 1
    return q
