# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title rewards
@notice Claims of finalized rounds: a trainer's share of the trainer budget
        by its score, a validator's share of the fee by its seats. A claim is
        credited to the node's payout balance in the vault; the tokens leave
        only through `vault.withdraw_payout` (one transfer for any number of
        claims).
@dev Reads the round's result from fedchain (one view per claim), keeps
     what was claimed, and asks the vault to credit: it holds no tokens. A
     round never pays more than its budget, whatever its scores sum to.
     Reentrancy: the only external calls are a view of fedchain and
     vault.credit, which calls nothing.
"""

import fedchain
import merkle
import commitments
import layout

interface Vault:
    def credit(node: address, amount: uint256): nonpayable

core: public(immutable(fedchain.__interface__))
vault: public(immutable(Vault))

# task -> round -> bit i: the trainer that revealed i-th has claimed
trainer_claims: HashMap[uint256, HashMap[uint256, uint256]]
validator_claimed: public(HashMap[uint256, HashMap[uint256, HashMap[address, bool]]])
# task -> round -> paid so far from the trainer budget / the validator fee
trainer_paid: public(HashMap[uint256, HashMap[uint256, uint256]])
validator_paid: public(HashMap[uint256, HashMap[uint256, uint256]])


event RewardClaimed:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    node: indexed(address)
    amount: uint256


@deploy
def __init__(core_: fedchain.__interface__, vault_: Vault):
    core = core_
    vault = vault_


@external
def claim(task_id: uint256, round_id: uint256, score: uint256, proof: DynArray[bytes32, merkle.MAX_DEPTH]):
    """
    @notice Claim a trainer's reward for a finalized round:
            trainer_budget * score / total_score, credited to the sender's
            payout balance.
    @dev The scores tree's leaf i belongs to the update revealed i-th, so the
         proof's position comes from the on-chain reveal record.
         Requirements: finalized round, a reveal by the sender, not claimed,
         a valid proof of (sender, score), a positive amount within what is
         left of the round's trainer budget.
    """
    f: fedchain.TrainerFacts = staticcall core.trainer_facts(task_id, round_id, msg.sender)
    assert f.status == layout.FINALIZED, "rewards: round not finalized"
    index: uint256 = f.record & layout.INDEX_MASK
    assert index != 0, "rewards: no reveal"
    index -= 1
    claims: uint256 = self.trainer_claims[task_id][round_id]
    assert (claims >> index) & 1 == 0, "rewards: already claimed"
    leaf: bytes32 = commitments._score_leaf(msg.sender, score)
    assert merkle._verify(leaf, index, proof, f.scores_root), "rewards: invalid proof"
    assert f.trainer_budget > 0, "rewards: nothing to claim"
    amount: uint256 = f.trainer_budget * score // f.total_score
    assert amount > 0, "rewards: nothing to claim"
    # Defence in depth: even a quorum that finalized scores summing to more
    # than total_score cannot make a round pay more than its budget.
    paid: uint256 = self.trainer_paid[task_id][round_id] + amount
    assert paid <= f.trainer_budget, "rewards: round budget exhausted"
    self.trainer_paid[task_id][round_id] = paid
    self.trainer_claims[task_id][round_id] = claims | (1 << index)
    log RewardClaimed(task_id=task_id, round_id=round_id, node=msg.sender, amount=amount)
    extcall vault.credit(msg.sender, amount)


@external
def claim_validator(task_id: uint256, round_id: uint256):
    """
    @notice Claim a validator's share of a finalized round's fee:
            validator_budget * seats / seats of the winning vote, credited to
            the sender's payout balance.
    @dev Requirements: finalized round, the sender voted for the result, not
         claimed, a positive amount within what is left of the fee.
    """
    f: fedchain.ValidatorFacts = staticcall core.validator_facts(task_id, round_id, msg.sender)
    assert f.status == layout.FINALIZED, "rewards: round not finalized"
    assert f.in_majority, "rewards: not in majority"
    assert not self.validator_claimed[task_id][round_id][msg.sender], "rewards: already claimed"
    amount: uint256 = f.validator_budget * f.seats // f.majority_seats
    assert amount > 0, "rewards: nothing to claim"
    paid: uint256 = self.validator_paid[task_id][round_id] + amount
    assert paid <= f.validator_budget, "rewards: round budget exhausted"
    self.validator_paid[task_id][round_id] = paid
    self.validator_claimed[task_id][round_id][msg.sender] = True
    log RewardClaimed(task_id=task_id, round_id=round_id, node=msg.sender, amount=amount)
    extcall vault.credit(msg.sender, amount)


@external
@view
def claimed(task_id: uint256, round_id: uint256, node: address) -> bool:
    """
    @notice Whether `node` has claimed its trainer reward for the round.
    """
    index: uint256 = (staticcall core.record(task_id, round_id, node)) & layout.INDEX_MASK
    return index != 0 and (self.trainer_claims[task_id][round_id] >> (index - 1)) & 1 == 1
