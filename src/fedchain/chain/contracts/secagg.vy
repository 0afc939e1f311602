# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title secagg
@notice The broadcast board of secure aggregation (SecAgg+, Bell et al. CCS
        2020; fedchain/learning/secagg.py): a round's selected trainers
        advertise two X25519 public keys, then publish their encrypted share
        bundles, and after the reveals publish their answers to the round's
        unmasking request. The masked updates themselves are committed and
        revealed through fedchain.vy as every update is.
@dev The board fixes, for everyone alike, the sets the protocol needs: U1
     (who advertised by advertise_end), U_shared (who posted a bundle by
     share_end, having advertised) and the answers (posted by unmask_end, by
     sharers). Its windows split the round's own phases (fedchain.vy's
     schedule, read through `round_facts`):
       advertise:  opened < block <= opened + c // 3
       share:      opened + c // 3 < block <= opened + 2c // 3
                   (c = commit_end - opened; the masked inputs are committed
                   in the last third of the commit phase)
       answer:     reveal_end < block <= reveal_end + v // 2
                   (v = validate_end - reveal_end; validators vote after it)
     Only a trainer that sortition selects for the round may advertise
     (fedchain.is_selected). A key advert is the event's data; bundles and
     answers are blobs named by the sha2-256 digest of their bytes (CIDv1
     raw), served as every blob is. With its bundle a trainer posts
     keccak256 of its self-mask seed (`self_mask`): validators hold the
     rebuilt seed to it, and secagg_judge.vy reads it. The contract holds no tokens and judges
     nothing: what a bundle or an answer holds is checked by whoever unmasks
     (secagg.unmask). Each step is taken at most once per trainer and round,
     so nobody can change what it published. The revert prefix is
     "secagg:". Reentrancy: the only external calls are views of fedchain.
"""

import fedchain
import layout

ROLE_TRAINER: constant(uint8) = 1
# a trainer's progress through a round, in `step`
ADVERTISED: constant(uint8) = 1
SHARED: constant(uint8) = 2
ANSWERED: constant(uint8) = 3

deployer: immutable(address)
# the fedchain contract whose rounds this board serves: bound once, by the deployer (the core's
# challenge contract takes secagg_judge.vy's address, which takes this board's)
core: public(fedchain.__interface__)
# task -> round -> trainer -> the last step it took (0: none)
step: public(HashMap[uint256, HashMap[uint256, HashMap[address, uint8]]])
# task -> round -> trainer -> keccak256 of its self-mask seed b, posted with its bundle: what
# every unmasking holds the rebuilt b to, and what secagg_judge.vy reads
self_mask: public(HashMap[uint256, HashMap[uint256, HashMap[address, bytes32]]])
# task -> round -> how many trainers advertised (|U1|) / shared (|U_shared|)
advertised: public(HashMap[uint256, HashMap[uint256, uint256]])
shared: public(HashMap[uint256, HashMap[uint256, uint256]])


event KeysAdvertised:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    trainer: indexed(address)
    c_pk: bytes32
    s_pk: bytes32

event SharesPosted:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    trainer: indexed(address)
    bundle_cid: bytes32
    self_mask: bytes32

event UnmaskAnswered:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    trainer: indexed(address)
    answer_cid: bytes32


@deploy
def __init__():
    deployer = msg.sender


@external
def bind(core_: fedchain.__interface__):
    """
    @notice Name the fedchain contract whose rounds this board serves (once,
            by the deployer).
    """
    assert msg.sender == deployer, "secagg: not the deployer"
    assert self.core.address == empty(address), "secagg: already bound"
    self.core = core_


@external
def advertise(task_id: uint256, round_id: uint256, c_pk: bytes32, s_pk: bytes32):
    """
    @notice Advertise this round's two X25519 public keys: c_pk encrypts the
            shares sent to this trainer, s_pk agrees its pairwise masks.
    @dev Effects: logs KeysAdvertised; counts the trainer into U1.
         Requirements: the round exists and is in its advertise window; the
         sender is selected as a trainer of the round; it has not advertised
         in the round; neither key is zero.
    """
    sched: uint256 = self._schedule(task_id, round_id)
    assert block.number <= self._advertise_end(sched), "secagg: advertise phase over"
    assert c_pk != empty(bytes32) and s_pk != empty(bytes32), "secagg: empty key"
    assert self.step[task_id][round_id][msg.sender] == 0, "secagg: already advertised"
    assert staticcall self.core.is_selected(task_id, round_id, msg.sender, ROLE_TRAINER), "secagg: not selected"
    self.step[task_id][round_id][msg.sender] = ADVERTISED
    self.advertised[task_id][round_id] += 1
    log KeysAdvertised(task_id=task_id, round_id=round_id, trainer=msg.sender, c_pk=c_pk, s_pk=s_pk)


@external
def share(task_id: uint256, round_id: uint256, bundle_cid: bytes32, self_mask_: bytes32):
    """
    @notice Publish this trainer's share bundle: its seeds' Shamir shares,
            encrypted to each of its neighbours in U1, and their commitments;
            and keccak256 of its self-mask seed b.
    @dev Effects: logs SharesPosted; records `self_mask`; counts the trainer
         into U_shared. Requirements: the round's share window; the sender
         advertised in the round and has not shared yet; a non-zero digest
         and hash.
    """
    sched: uint256 = self._schedule(task_id, round_id)
    assert block.number > self._advertise_end(sched), "secagg: share phase not started"
    assert block.number <= self._share_end(sched), "secagg: share phase over"
    assert bundle_cid != empty(bytes32) and self_mask_ != empty(bytes32), "secagg: empty bundle"
    s: uint8 = self.step[task_id][round_id][msg.sender]
    assert s != 0, "secagg: not advertised"
    assert s == ADVERTISED, "secagg: already shared"
    self.step[task_id][round_id][msg.sender] = SHARED
    self.shared[task_id][round_id] += 1
    self.self_mask[task_id][round_id][msg.sender] = self_mask_
    log SharesPosted(task_id=task_id, round_id=round_id, trainer=msg.sender, bundle_cid=bundle_cid, self_mask=self_mask_)


@external
def answer(task_id: uint256, round_id: uint256, answer_cid: bytes32):
    """
    @notice Publish this trainer's answer to the round's unmasking request:
            the shares it holds of each survivor's self-mask seed and of each
            dropped sharer's mask key, never both of one sharer.
    @dev Effects: logs UnmaskAnswered. Requirements: the round's answer
         window (after its reveals, before its votes); the sender shared in
         the round and has not answered yet; a non-zero digest.
    """
    sched: uint256 = self._schedule(task_id, round_id)
    assert block.number > layout._reveal_end(sched), "secagg: answer phase not started"
    assert block.number <= self._answer_end(sched), "secagg: answer phase over"
    assert answer_cid != empty(bytes32), "secagg: empty answer"
    s: uint8 = self.step[task_id][round_id][msg.sender]
    assert s == SHARED or s == ANSWERED, "secagg: not a sharer"
    assert s == SHARED, "secagg: already answered"
    self.step[task_id][round_id][msg.sender] = ANSWERED
    log UnmaskAnswered(task_id=task_id, round_id=round_id, trainer=msg.sender, answer_cid=answer_cid)


@external
@view
def windows(task_id: uint256, round_id: uint256) -> (uint256, uint256, uint256):
    """
    @notice The round's last advertise, share and answer blocks (0, 0, 0 if
            the round does not exist).
    """
    sched: uint256 = (staticcall self.core.round_facts(task_id, round_id)).schedule
    if sched == 0:
        return 0, 0, 0
    return self._advertise_end(sched), self._share_end(sched), self._answer_end(sched)


@internal
@view
def _schedule(task_id: uint256, round_id: uint256) -> uint256:
    sched: uint256 = (staticcall self.core.round_facts(task_id, round_id)).schedule
    assert sched != 0, "secagg: no such round"
    return sched


@internal
@pure
def _advertise_end(sched: uint256) -> uint256:
    opened: uint256 = layout._opened(sched)
    return opened + (layout._commit_end(sched) - opened) // 3


@internal
@pure
def _share_end(sched: uint256) -> uint256:
    opened: uint256 = layout._opened(sched)
    return opened + 2 * (layout._commit_end(sched) - opened) // 3


@internal
@pure
def _answer_end(sched: uint256) -> uint256:
    reveal_end: uint256 = layout._reveal_end(sched)
    return reveal_end + (layout._validate_end(sched) - reveal_end) // 2
