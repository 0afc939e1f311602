# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title commitments
@notice The hashes that bind nodes to what they say: update commitments,
        validator votes and score leaves.
@dev The Python twins live in `fedchain.chain.commitments` and must agree
     bit for bit (tests compare them). Pure/view functions only: no
     reentrancy surface.
"""

COMMIT_DOMAIN: constant(bytes32) = keccak256("fedchain.commit.v1")


@internal
@view
def _commitment(task_id: uint256, round_id: uint256, node: address, update_root: bytes32, salt: bytes32) -> bytes32:
    """
    @notice keccak256(domain, chain id, this contract, task, round, sender,
            update root, salt): bound to one sender in one round of one task on
            one deployment, so a commitment can be neither copied nor replayed.
    """
    return keccak256(abi_encode(COMMIT_DOMAIN, chain.id, self, task_id, round_id, node, update_root, salt))


@internal
@pure
def _vote_hash(model_root: bytes32, model_cid: bytes32, scores_root: bytes32, total_score: uint256, rejected: uint256) -> bytes32:
    """
    @notice The identity of a validator's vote: equal hashes mean bit-for-bit
            agreement on model, scores and rejected set.
    """
    return keccak256(abi_encode(model_root, model_cid, scores_root, total_score, rejected))


@internal
@pure
def _score_leaf(node: address, score: uint256) -> bytes32:
    """
    @notice Leaf of the scores tree. Hashed twice so that no leaf is ever the
            preimage of an inner node.
    """
    return keccak256(keccak256(abi_encode(node, score)))
