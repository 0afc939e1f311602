# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title slashing
@notice Judges provable faults from fedchain's public state; fedchain takes
        the penalty (`fedchain.penalize`, through the vault). Five faults, each a fact anyone can
        check on chain:
          - a commitment never revealed (liveness);
          - an update the finalized quorum rejected (liveness: availability
            cannot be proven on chain, so a rejection costs what a missing
            reveal costs);
          - a joined committee member that never voted in a round that could
            be voted on (liveness: otherwise joining and staying silent
            stalls a round for free, SECURITY-REVIEW H-1);
          - an accepted update that its trainer (and everyone else) withheld
            when the availability game asked for it, which reverted the round
            (liveness: the data was not there, as for a rejected update);
          - a vote for a result a challenge proved wrong (safety).
@dev Holds no tokens and no state but fedchain's address: fedchain marks each
     penalized address in the round's record and the vault pays the reporter
     its share and burns the rest. Liveness reporters are whoever sends the report (not
     the node itself); a wrong vote's reporter share goes to the round's
     challenger, whoever sends the report. The revert prefix is "slashing:".
     Reentrancy: the only external calls are views of fedchain and
     fedchain.penalize, which calls nothing outside fedchain.
"""

import fedchain
import commitments
import layout

deployer: immutable(address)
fc: public(fedchain.__interface__)


@deploy
def __init__():
    deployer = msg.sender


@external
def bind(fedchain_: fedchain.__interface__):
    """
    @notice Name the fedchain contract this contract judges for (once, by the
            deployer: fedchain takes this contract's address at deployment).
    """
    assert msg.sender == deployer, "slashing: not the deployer"
    assert self.fc.address == empty(address), "slashing: already bound"
    self.fc = fedchain_


@external
def slash_missing_reveal(task_id: uint256, round_id: uint256, node: address):
    """
    @notice Report a commitment that was never revealed (liveness fault).
    @dev Effects: the liveness penalty (or what is left) is taken from the
         node; the reporter earns a bounded share, the rest is burned.
         Requirements: reveal phase over, a commitment, no reveal, not
         slashed in the round yet, not reported by the node itself.
    """
    fc: fedchain.__interface__ = self.fc
    f: fedchain.FaultFacts = staticcall fc.fault_facts(task_id, round_id, node)
    assert f.schedule != 0, "slashing: no such round"
    assert block.number > layout._reveal_end(f.schedule), "slashing: reveal phase not over"
    assert f.commitment != empty(bytes32), "slashing: no commitment"
    assert f.record & layout.INDEX_MASK == 0, "slashing: revealed"
    self._liveness(fc, task_id, round_id, node, layout.SLASH_MISSING_REVEAL)


@external
def slash_rejected(task_id: uint256, round_id: uint256, node: address):
    """
    @notice Report an update that the finalized quorum rejected (blob
            unavailable or malformed): the liveness penalty of a missing
            reveal.
    @dev Requirements: finalized round, the node's reveal index in the
         rejected set, not slashed in the round yet, not reported by the
         node itself.
    """
    fc: fedchain.__interface__ = self.fc
    f: fedchain.FaultFacts = staticcall fc.fault_facts(task_id, round_id, node)
    assert f.status == layout.FINALIZED, "slashing: round not finalized"
    assert f.record & layout.INDEX_MASK != 0, "slashing: no reveal"
    assert (f.rejected >> ((f.record & layout.INDEX_MASK) - 1)) & 1 == 1, "slashing: not rejected"
    self._liveness(fc, task_id, round_id, node, layout.SLASH_REJECTED)


@external
def slash_rejected_before_finalize(task_id: uint256, round_id: uint256, node: address, model_root: bytes32,
                                   model_cid: bytes32, scores_root: bytes32, total_score: uint256, rejected: uint256):
    """
    @notice `slash_rejected` for a round whose challenge window is over but
            that nobody has finalized yet: its leading vote (whose preimage
            is given, from its Voted event) can no longer change, so its
            rejected set is final. Nobody has to call `finalize` for a
            rejected update to be slashed before its stake can leave
            (SECURITY-REVIEW M-2).
    @dev Requirements: an open round with at least min_reveals reveals, its
         challenge window over and no availability request open (one left
         unanswered would still revert the round), the fields hash to the
         leading vote, the
         node's reveal index in that vote's rejected set, not slashed in the
         round yet, not reported by the node itself.
    """
    fc: fedchain.__interface__ = self.fc
    facts: fedchain.RoundFacts = staticcall fc.round_facts(task_id, round_id)
    assert facts.status == layout.OPEN and facts.reveals >= facts.min_reveals, "slashing: round not open"
    assert block.number > layout._validate_end(facts.schedule) + facts.challenge_blocks, "slashing: challenge window open"
    game: fedchain.Availability = staticcall fc.availability()
    assert staticcall game.open_requests(task_id, round_id) == 0, "slashing: availability request open"
    assert facts.leader != empty(bytes32) and commitments._vote_hash(model_root, model_cid, scores_root, total_score, rejected) == facts.leader, "slashing: not the leading vote"
    rec: uint256 = staticcall fc.record(task_id, round_id, node)
    assert rec & layout.INDEX_MASK != 0, "slashing: no reveal"
    assert (rejected >> ((rec & layout.INDEX_MASK) - 1)) & 1 == 1, "slashing: not rejected"
    self._liveness(fc, task_id, round_id, node, layout.SLASH_REJECTED)


@external
def slash_absent(task_id: uint256, round_id: uint256, validator: address):
    """
    @notice Report a validator that joined a round's committee and did not
            vote by the end of the vote phase (liveness fault).
    @dev A round that failed for too few reveals, or that a challenge
         reverted, is exempt: its vote may have been impossible. Requirements:
         vote phase over, at least min_reveals reveals, no challenge, the
         validator joined, has no vote and did not equivocate (that is
         slashed already), not slashed in the round yet, not reported by the
         validator itself.
    """
    fc: fedchain.__interface__ = self.fc
    facts: fedchain.RoundFacts = staticcall fc.round_facts(task_id, round_id)
    assert facts.schedule != 0, "slashing: no such round"
    assert block.number > layout._validate_end(facts.schedule), "slashing: vote phase not over"
    assert facts.reveals >= facts.min_reveals and facts.challenger == empty(address), "slashing: round exempt"
    assert staticcall fc.committee_weight(task_id, round_id, validator) > 0, "slashing: not in committee"
    assert staticcall fc.vote_of(task_id, round_id, validator) == empty(bytes32), "slashing: voted"
    assert not staticcall fc.equivocated(task_id, round_id, validator), "slashing: voted"
    self._liveness(fc, task_id, round_id, validator, layout.SLASH_ABSENT)


@external
def slash_withheld(task_id: uint256, round_id: uint256, node: address):
    """
    @notice Report a trainer whose accepted update was asked for by the
            availability game and never answered, so the round was reverted
            (liveness fault: the trainer holds its update and may answer for
            it, SECURITY-REVIEW H-3).
    @dev Requirements: the node's reveal index is marked in the game's
         `withheld` for the round, not slashed in the round yet, not reported
         by the node itself.
    """
    fc: fedchain.__interface__ = self.fc
    rec: uint256 = staticcall fc.record(task_id, round_id, node)
    assert rec & layout.INDEX_MASK != 0, "slashing: no reveal"
    game: fedchain.Availability = staticcall fc.availability()
    withheld: uint256 = staticcall game.withheld(task_id, round_id)
    assert (withheld >> ((rec & layout.INDEX_MASK) - 1)) & 1 == 1, "slashing: not withheld"
    self._liveness(fc, task_id, round_id, node, layout.SLASH_WITHHELD)


@external
def slash_wrong_vote(task_id: uint256, round_id: uint256, validator: address):
    """
    @notice Slash a validator that voted for a result a challenge proved
            wrong: a safety fault (the safety penalty, once per round). The
            round's challenger earns the reporter share.
    @dev Anyone may call it. Requirements: the round was reverted by a
         challenge, the validator voted for its leading result, not slashed
         in the round yet.
    """
    fc: fedchain.__interface__ = self.fc
    facts: fedchain.RoundFacts = staticcall fc.round_facts(task_id, round_id)
    assert facts.challenger != empty(address), "slashing: round not challenged"
    h: bytes32 = staticcall fc.vote_of(task_id, round_id, validator)
    assert h != empty(bytes32) and h == facts.leader, "slashing: no wrong vote"
    extcall fc.penalize(task_id, round_id, validator, layout.SLASH_WRONG_VOTE, facts.challenger)


@internal
def _liveness(fc: fedchain.__interface__, task_id: uint256, round_id: uint256, node: address, reason: uint8):
    """
    @dev A liveness fault's penalty, reported by anyone but the node itself
         (who would earn back the reporter share from this address; from a
         second address it still loses the rest: docs/decisions.md).
    """
    assert node != msg.sender, "slashing: cannot report yourself"
    extcall fc.penalize(task_id, round_id, node, reason, msg.sender)
