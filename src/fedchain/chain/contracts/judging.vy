# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title judging
@notice What challenges.vy and its judges (score_judge.vy, table_judge.vy) share:
        the vote and recipe a challenge names, the constants of the model's
        encoding, and the checks every judgment makes of the revealed
        updates.
@dev A judge is a stateless contract that challenges.vy staticcalls with
     the challenge's own calldata (the judge's function has the challenge
     function's name and arguments, so the selector is the same): it reads
     the round from the fedchain contract its caller is bound to
     (`_fedchain`), and returns whether the result was wrong. It holds
     nothing and pays nothing, so a call from anyone but challenges.vy
     answers only that caller. Revert reasons keep the `challenges:` prefix:
     they reach the challenger as challenges.vy's own. View functions only:
     no reentrancy surface.
"""

import commitments
import fedchain
import layout

CHUNK: constant(uint256) = 64          # values per chunk (leaf)
CHUNK_BYTES: constant(uint256) = 256   # 64 big-endian int32
MAX_UPDATES: constant(uint256) = 256   # the round's reveal limit
INDEX_MASK: constant(uint256) = layout.INDEX_MASK
U64: constant(uint256) = layout.U64
RULE_KRUM: constant(uint256) = 4       # the Krum rules: 4 Krum, 5 MultiKrum, 6 Bulyan
RULE_BULYAN: constant(uint256) = 6


struct RecipeRule:
    rule: uint256        # 1 FedAvg, 2 FedMedian, 3 FedTrimmedAvg, 4 Krum, 5 MultiKrum, 6 Bulyan, 0 not recomputable here
    param1: uint256      # FedTrimmedAvg: beta = param1 / param2; Krum, MultiKrum, Bulyan: f = param1
    param2: uint256      # MultiKrum: m = param2 (0: n - f, at least 1)
    score: uint256       # 1 the cosine score, 0 not recomputable here
    json_hash: bytes32   # keccak256 of the recipe JSON


struct Vote:
    model_root: bytes32
    model_cid: bytes32
    scores_root: bytes32
    total_score: uint256
    rejected: uint256


interface Bound:
    def fc() -> address: view


@internal
@view
def _fedchain() -> fedchain.__interface__:
    """
    @dev The fedchain contract the caller (challenges.vy) is bound to.
    """
    return fedchain.__interface__(staticcall Bound(msg.sender).fc())


@internal
@view
def _check_commitment(fc: fedchain.__interface__, task_id: uint256, round_id: uint256, node: address,
                      update_root: bytes32, salt: bytes32):
    """
    @dev The node's commitment opens to (update_root, salt): commitments._commitment
         as fedchain computes it (bound to fedchain's address).
    """
    c: bytes32 = keccak256(abi_encode(commitments.COMMIT_DOMAIN, chain.id, fc.address, task_id, round_id, node,
                                      update_root, salt))
    assert staticcall fc.commitment(task_id, round_id, node) == c, "challenges: root does not match commitment"


@internal
@pure
def _value(data: Bytes[CHUNK_BYTES], j: uint256) -> int256:
    """
    @dev Value j of a chunk: 4-byte big-endian two's complement.
    """
    word: uint256 = convert(extract32(data, (j // 8) * 32), uint256)
    v: uint256 = (word >> (224 - 32 * (j % 8))) & INDEX_MASK
    if v >= 2**31:
        return convert(v, int256) - 2**32
    return convert(v, int256)
