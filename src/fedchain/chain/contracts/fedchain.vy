# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title fedchain
@notice Tasks and their rounds: selection, commit, reveal, validator vote,
        challenge window, finalize; pull-based rewards; the penalties of
        provable faults. Stake lives in the `staking` module this contract
        initializes; the slashing contract judges faults (slashing.vy) and the
        challenges contract judges results (challenges.vy).
@dev One round: commit (block <= commit_end) -> reveal (<= reveal_end) ->
     vote (<= validate_end) -> challenge window (validate_end, validate_end +
     challenge_blocks] -> `finalize`, or `advance` fails the round (too few
     reveals, no quorum) and opens the next one from the last finalized model.
     Deadlines are block numbers; anyone may call `advance` and `finalize`.
     No function loops over participants: every call is O(1).
     Money: token balance == stakes + unbonding + pools + owed (unclaimed
     budgets and payout balances) + burned, to the wei, after every call
     (tested with a stateful hypothesis test). Slashed stake, less the
     reporter's share, is burned: it never returns to a task's pool, so no
     sponsor profits from a slash in its task (SECURITY-REVIEW M-5).
     Committee weight is counted in seats, as trainers' rewards are: a
     validator selected with probability k*w/T below the cap has one seat, at
     the cap k*w/T seats, so its expected weight is linear in its stake
     (SECURITY-REVIEW H-1; docs/security-committee.md).
     Rewards are credited to a payout balance and leave the contract only
     through `withdraw_payout`, so claims make no external call.
     Reentrancy: every function that transfers tokens is @nonreentrant and
     changes its state before the transfer.
"""

from ethereum.ercs import IERC20
import staking
import sortition
import merkle
import commitments

initializes: staking

exports: (
    staking.stake,
    staking.unbond,
    staking.withdraw,
    staking.token,
    staking.min_stake,
    staking.unbonding_delay,
    staking.stakes,
    staking.total_active,
    staking.total_unbonding,
)

BPS: constant(uint256) = 10_000
MAX_REVEALS: constant(uint256) = 256  # commitments (so reveals) a round accepts
MAX_REPORTER_BPS: constant(uint256) = 5_000

OPEN: constant(uint8) = 0
FINALIZED: constant(uint8) = 1
FAILED: constant(uint8) = 2

FAIL_TOO_FEW_REVEALS: constant(uint8) = 1
FAIL_NO_QUORUM: constant(uint8) = 2
FAIL_CHALLENGED: constant(uint8) = 3

SLASH_MISSING_REVEAL: constant(uint8) = 1
SLASH_EQUIVOCATION: constant(uint8) = 2
SLASH_REJECTED: constant(uint8) = 3
SLASH_WRONG_VOTE: constant(uint8) = 4
SLASH_ABSENT: constant(uint8) = 5  # joined a committee, never voted

# A trainer's record in a round packs: reveal index + 1 (bits 0-31), sample
# count (bits 32-159), seats in basis points (bits 160-223, see `reveal`)
# and two flags: claimed, and slashed (any fault of this address in the
# round, a validator's too: an address has one role). Index 0 means "not
# revealed".
INDEX_MASK: constant(uint256) = 2**32 - 1
SAMPLES_MASK: constant(uint256) = 2**128 - 1
CLAIMED: constant(uint256) = 2**254
SLASHED: constant(uint256) = 2**253

# A round's schedule packs four block numbers, 64 bits each.
U64: constant(uint256) = 2**64 - 1
MAX_ROUND_BLOCKS: constant(uint256) = 2**32
MAX_COMMITTEE: constant(uint256) = 2**32


struct TaskConfig:
    recipe_hash: bytes32
    model_root: bytes32
    model_cid: bytes32
    num_rounds: uint256
    trainers_per_round: uint256
    validators_per_round: uint256
    min_reveals: uint256
    commit_blocks: uint256
    reveal_blocks: uint256
    validate_blocks: uint256
    challenge_blocks: uint256
    validator_fee_bps: uint256
    pool: uint256

struct Task:
    sponsor: address
    recipe_hash: bytes32
    model_root: bytes32
    model_cid: bytes32
    num_rounds: uint256
    round: uint256
    trainers_per_round: uint256
    validators_per_round: uint256
    min_reveals: uint256
    commit_blocks: uint256
    reveal_blocks: uint256
    validate_blocks: uint256
    challenge_blocks: uint256
    validator_fee_bps: uint256
    pool: uint256
    finished: bool

struct Round:
    seed: bytes32
    schedule: uint256
    trainer_total: uint256
    validator_total: uint256
    reveals: uint256
    commits: uint256
    committee_seats: uint256
    leader: bytes32
    status: uint8
    model_root: bytes32
    scores_root: bytes32
    total_score: uint256
    rejected: uint256
    trainer_budget: uint256
    validator_budget: uint256
    majority_seats: uint256
    trainer_left: uint256
    validator_left: uint256
    challenger: address

struct RoundFacts:
    # a round's fields that slashing.vy judges faults by, and its task's min_reveals
    schedule: uint256
    status: uint8
    reveals: uint256
    min_reveals: uint256
    leader: bytes32
    rejected: uint256
    challenger: address
    challenge_blocks: uint256
    recipe_hash: bytes32


interface Availability:
    def open_requests(task_id: uint256, round_id: uint256) -> uint256: view
    def answer_blocks() -> uint256: view


# The contract that judges challenges (see challenges.vy); only it may
# revert a round.
challenges: public(immutable(address))
# The contract that judges faults (see slashing.vy); only it may penalize.
slashing: public(immutable(address))
# The data-availability game (see availability.vy): a round does not finalize
# while a request is open, and an unanswered one reverts the round.
availability: public(immutable(Availability))
# The least challenge window a task may have, in blocks (a deployment's
# chain sets it: long enough that nobody can censor every challenge).
min_challenge_blocks: public(immutable(uint256))
# Blocks after a round's challenge window in which its faults are still
# slashable: a round plus this grace must be shorter than the unbonding delay.
slash_grace: public(immutable(uint256))

reporter_bps: public(uint256)
liveness_penalty: public(uint256)
safety_penalty_bps: public(uint256)

next_task_id: public(uint256)
tasks: public(HashMap[uint256, Task])
rounds: public(HashMap[uint256, HashMap[uint256, Round]])

# task -> round -> trainer -> commitment / packed record
commitment: public(HashMap[uint256, HashMap[uint256, HashMap[address, bytes32]]])
record: public(HashMap[uint256, HashMap[uint256, HashMap[address, uint256]]])
# task -> round -> validator -> committee weight / vote / flags
committee_weight: public(HashMap[uint256, HashMap[uint256, HashMap[address, uint256]]])
vote_of: public(HashMap[uint256, HashMap[uint256, HashMap[address, bytes32]]])
equivocated: public(HashMap[uint256, HashMap[uint256, HashMap[address, bool]]])
validator_claimed: public(HashMap[uint256, HashMap[uint256, HashMap[address, bool]]])
# task -> round -> vote hash -> committee weight behind it
tally: public(HashMap[uint256, HashMap[uint256, HashMap[bytes32, uint256]]])

payouts: public(HashMap[address, uint256])
total_pools: public(uint256)
# Tokens owed to nodes: round budgets not yet claimed, plus payout balances
# (claimed rewards and reporter shares) not yet withdrawn. A claim moves money
# between those two without changing their sum, so it touches no global.
total_owed: public(uint256)
# Slashed stake less reporter shares: held here for ever, owed to nobody.
burned: public(uint256)


event TaskCreated:
    task_id: indexed(uint256)
    sponsor: indexed(address)
    recipe_hash: bytes32
    model_root: bytes32
    model_cid: bytes32
    num_rounds: uint256
    pool: uint256

event RoundOpened:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    seed: bytes32
    commit_end: uint256
    reveal_end: uint256
    validate_end: uint256
    trainer_total: uint256
    validator_total: uint256

event Committed:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    node: indexed(address)
    commitment: bytes32

event Revealed:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    node: indexed(address)
    index: uint256
    update_root: bytes32
    update_cid: bytes32
    samples: uint256
    salt: bytes32
    seats_bps: uint256

event Joined:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    validator: indexed(address)
    weight: uint256

event Voted:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    validator: indexed(address)
    vote_hash: bytes32
    model_root: bytes32
    model_cid: bytes32
    scores_root: bytes32
    total_score: uint256
    rejected: uint256

event Equivocated:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    validator: indexed(address)
    first_vote: bytes32
    second_vote: bytes32

event QuorumReached:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    vote_hash: bytes32

event RoundFailed:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    reason: uint8

event RoundFinalized:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    model_root: bytes32
    model_cid: bytes32
    scores_root: bytes32
    total_score: uint256
    rejected: uint256
    trainer_budget: uint256
    validator_budget: uint256

event TaskFinished:
    task_id: indexed(uint256)

event RewardClaimed:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    node: indexed(address)
    amount: uint256

event PayoutWithdrawn:
    node: indexed(address)
    amount: uint256

event PoolFunded:
    task_id: indexed(uint256)
    funder: indexed(address)
    amount: uint256

event PoolReclaimed:
    task_id: indexed(uint256)
    sponsor: indexed(address)
    amount: uint256


@deploy
def __init__(
    token_: IERC20,
    min_stake_: uint256,
    unbonding_delay_: uint256,
    liveness_penalty_: uint256,
    safety_penalty_bps_: uint256,
    reporter_bps_: uint256,
    min_challenge_blocks_: uint256,
    slash_grace_: uint256,
    challenges_: address,
    slashing_: address,
    availability_: Availability,
):
    """
    @param token_ ERC-20 for stake, pools and rewards.
    @param min_stake_ Least stake a node needs to be selected.
    @param unbonding_delay_ Blocks from unbond to withdraw; must exceed every
           task's challenge window (checked at task creation).
    @param liveness_penalty_ Tokens taken for a missing reveal or a rejected
           update: small, repeatable.
    @param safety_penalty_bps_ Share of a validator's stake taken for
           equivocation: large, once per incident.
    @param reporter_bps_ Share of a slash paid to whoever reported it
           (bounded by MAX_REPORTER_BPS); the rest is burned.
    @param min_challenge_blocks_ The least challenge window a task may set.
    @param slash_grace_ Blocks after a round's challenge window in which its
           faults can still be reported before any stake that backed the
           round can be withdrawn (checked at task creation).
    @param challenges_ The challenge contract, the only caller of
           `revert_round`.
    @param slashing_ The slashing contract, the only caller of `penalize`.
    @param availability_ The availability game; its answer time must be
           shorter than the slash grace, so that a round it reverts can still
           slash its voters.
    """
    assert safety_penalty_bps_ <= BPS, "fedchain: penalty above 100%"
    assert reporter_bps_ <= MAX_REPORTER_BPS, "fedchain: reporter share too large"
    staking.__init__(token_, min_stake_, unbonding_delay_)
    self.liveness_penalty = liveness_penalty_
    self.safety_penalty_bps = safety_penalty_bps_
    self.reporter_bps = reporter_bps_
    self.next_task_id = 1
    challenges = challenges_
    slashing = slashing_
    min_challenge_blocks = min_challenge_blocks_
    slash_grace = slash_grace_
    availability = availability_
    assert staticcall availability_.answer_blocks() < slash_grace_, "fedchain: answer time not shorter than slash grace"


# ---------------------------------------------------------------- tasks


@external
@nonreentrant
def create_task(cfg: TaskConfig) -> uint256:
    """
    @notice Create a task, escrow its reward pool and open round 0.
    @dev Effects: the pool moves from the sponsor to this contract; round 0
         opens at this block. Requirements: positive rounds, committee sizes,
         phase lengths and pool; 1 <= min_reveals <= 256; a challenge window
         of at least `min_challenge_blocks`; a round plus `slash_grace`
         shorter than the unbonding delay, so that stake which backed a
         commitment or a committee seat (unbonded at the round's opening at
         the earliest) cannot be withdrawn before the round's faults are
         proven and slashed (SECURITY-REVIEW M-2); fee <= 100%; allowance.
    @return The new task's id.
    """
    assert cfg.num_rounds > 0, "tasks: zero rounds"
    assert cfg.trainers_per_round > 0 and cfg.validators_per_round > 0, "tasks: empty committee"
    assert cfg.min_reveals > 0 and cfg.min_reveals <= MAX_REVEALS, "tasks: bad min_reveals"
    assert min(min(cfg.commit_blocks, cfg.reveal_blocks), min(cfg.validate_blocks, cfg.challenge_blocks)) > 0, "tasks: zero phase length"
    assert cfg.challenge_blocks >= min_challenge_blocks, "tasks: challenge window too short"
    round_blocks: uint256 = cfg.commit_blocks + cfg.reveal_blocks + cfg.validate_blocks + cfg.challenge_blocks
    # Stake that could be punished for anything in a round must still be
    # bonded when the round's last fault can be proven (every fault is
    # provable by the window's end) and reported (the grace); and the packed
    # schedule holds 64-bit block numbers.
    assert round_blocks < MAX_ROUND_BLOCKS, "tasks: phases too long"
    assert round_blocks + slash_grace < staking.unbonding_delay, "tasks: round + slash grace not shorter than unbonding delay"
    assert cfg.trainers_per_round <= MAX_COMMITTEE and cfg.validators_per_round <= MAX_COMMITTEE, "tasks: committee too large"
    assert cfg.validator_fee_bps <= BPS, "tasks: fee above 100%"
    assert cfg.pool > 0, "tasks: empty pool"
    task_id: uint256 = self.next_task_id
    self.next_task_id = task_id + 1
    self.tasks[task_id] = Task(
        sponsor=msg.sender,
        recipe_hash=cfg.recipe_hash,
        model_root=cfg.model_root,
        model_cid=cfg.model_cid,
        num_rounds=cfg.num_rounds,
        round=0,
        trainers_per_round=cfg.trainers_per_round,
        validators_per_round=cfg.validators_per_round,
        min_reveals=cfg.min_reveals,
        commit_blocks=cfg.commit_blocks,
        reveal_blocks=cfg.reveal_blocks,
        validate_blocks=cfg.validate_blocks,
        challenge_blocks=cfg.challenge_blocks,
        validator_fee_bps=cfg.validator_fee_bps,
        pool=cfg.pool,
        finished=False,
    )
    self.total_pools += cfg.pool
    log TaskCreated(
        task_id=task_id,
        sponsor=msg.sender,
        recipe_hash=cfg.recipe_hash,
        model_root=cfg.model_root,
        model_cid=cfg.model_cid,
        num_rounds=cfg.num_rounds,
        pool=cfg.pool,
    )
    self._open_round(task_id, 0)
    assert extcall staking.token.transferFrom(msg.sender, self, cfg.pool), "tasks: transfer failed"
    return task_id


@external
@nonreentrant
def reclaim(task_id: uint256):
    """
    @notice Return what is left of a finished task's pool to its sponsor.
    @dev Requirements: caller is the sponsor, the task is finished, pool > 0.
         Slashes never refill a pool (they are burned), so nothing a slash
         takes reaches the sponsor.
    """
    assert self.tasks[task_id].sponsor == msg.sender, "tasks: not the sponsor"
    assert self.tasks[task_id].finished, "tasks: not finished"
    amount: uint256 = self.tasks[task_id].pool
    assert amount > 0, "tasks: empty pool"
    self.tasks[task_id].pool = 0
    self.total_pools -= amount
    log PoolReclaimed(task_id=task_id, sponsor=msg.sender, amount=amount)
    assert extcall staking.token.transfer(msg.sender, amount), "tasks: transfer failed"


@external
@nonreentrant
def fund_pool(task_id: uint256, amount: uint256):
    """
    @notice Add tokens to a task's reward pool: a sponsor topping it up, or
            anyone else who wants to pay for the task's rounds.
    @dev Requirements: an existing task, a positive amount, an allowance.
    """
    assert self.tasks[task_id].sponsor != empty(address), "tasks: no such task"
    assert amount > 0, "tasks: empty amount"
    self.tasks[task_id].pool += amount
    self.total_pools += amount
    log PoolFunded(task_id=task_id, funder=msg.sender, amount=amount)
    assert extcall staking.token.transferFrom(msg.sender, self, amount), "tasks: transfer failed"


# ---------------------------------------------------------------- rounds


@external
def commit(task_id: uint256, round_id: uint256, commitment_: bytes32):
    """
    @notice Commit to an update as a selected trainer.
    @dev Requirements: the round's commit phase (block <= commit_end), the
         sender selected by trainer sortition, no earlier commitment, a
         non-zero commitment, fewer than 256 commitments so far (so every
         commitment can be revealed: a trainer refused here is not slashable).
         Only the current round can be in its commit phase, so `round_id`
         needs no further check.
    """
    sched: uint256 = self.rounds[task_id][round_id].schedule
    assert sched != 0, "rounds: no such round"
    assert block.number <= (sched >> 64) & U64, "rounds: commit phase over"
    assert commitment_ != empty(bytes32), "rounds: empty commitment"
    assert self.commitment[task_id][round_id][msg.sender] == empty(bytes32), "rounds: already committed"
    commits: uint256 = self.rounds[task_id][round_id].commits
    assert commits < MAX_REVEALS, "rounds: too many commitments"
    assert self._weight_if_selected(task_id, round_id, msg.sender, staking.ROLE_TRAINER, sched) > 0, "rounds: not selected"
    self.rounds[task_id][round_id].commits = commits + 1
    self.commitment[task_id][round_id][msg.sender] = commitment_
    log Committed(task_id=task_id, round_id=round_id, node=msg.sender, commitment=commitment_)


@external
def reveal(task_id: uint256, round_id: uint256, update_root: bytes32, update_cid: bytes32, samples: uint256, salt: bytes32):
    """
    @notice Reveal a committed update: its Merkle root, the sha2-256 digest
            of its blob (CIDv1 raw), its sample count and the salt.
    @dev Requirements: the reveal phase (commit_end < block <= reveal_end),
         a commitment equal to keccak(domain, chain id, this, task, round,
         sender, update_root, salt), no earlier reveal, 0 < samples < 2**128
         (at most 256 commitments, so at most 256 reveals). A reveal that
         does not match reverts;
         the commitment then stays unrevealed and is slashable.
    """
    sched: uint256 = self.rounds[task_id][round_id].schedule
    assert block.number > (sched >> 64) & U64, "rounds: reveal phase not started"
    assert block.number <= (sched >> 128) & U64, "rounds: reveal phase over"
    c: bytes32 = self.commitment[task_id][round_id][msg.sender]
    assert c != empty(bytes32), "rounds: no commitment"
    assert self.record[task_id][round_id][msg.sender] == 0, "rounds: already revealed"
    assert c == commitments._commitment(task_id, round_id, msg.sender, update_root, salt), "rounds: reveal does not match commitment"
    assert samples > 0 and samples <= SAMPLES_MASK, "rounds: bad sample count"
    index: uint256 = self.rounds[task_id][round_id].reveals
    assert index < MAX_REVEALS, "rounds: too many reveals"
    self.rounds[task_id][round_id].reveals = index + 1
    # The seats the trainer's stake stands for: k * w / T of its round, at
    # least one. It scales the trainer's score (validators multiply, a score
    # challenge checks it), so expected reward is linear in stake: splitting a
    # stake over identities gains nothing, at the sortition cap or below it.
    seats: uint256 = self._seats(staking._weight(msg.sender, staking.ROLE_TRAINER, sched & U64), self.rounds[task_id][round_id].trainer_total, self.tasks[task_id].trainers_per_round)
    self.record[task_id][round_id][msg.sender] = (index + 1) | (samples << 32) | (seats << 160)
    log Revealed(
        task_id=task_id,
        round_id=round_id,
        node=msg.sender,
        index=index,
        update_root=update_root,
        update_cid=update_cid,
        samples=samples,
        salt=salt,
        seats_bps=seats,
    )


@external
def join(task_id: uint256, round_id: uint256):
    """
    @notice Join a round's validator committee as a selected validator.
    @dev Effects: the sender's seats (max(1, k*w/T) in basis points, w its
         weight at the round's opening) count towards the committee seats a
         quorum needs 2/3 of; a member that then never votes commits a
         liveness fault (slashing.slash_absent). Requirements: block <=
         reveal_end, selected by validator sortition, not joined yet.
    """
    sched: uint256 = self.rounds[task_id][round_id].schedule
    assert sched != 0, "rounds: no such round"
    assert block.number <= (sched >> 128) & U64, "rounds: joining closed"
    assert self.committee_weight[task_id][round_id][msg.sender] == 0, "rounds: already joined"
    w: uint256 = self._weight_if_selected(task_id, round_id, msg.sender, staking.ROLE_VALIDATOR, sched)
    assert w > 0, "rounds: not selected"
    weight: uint256 = self._seats(w, self.rounds[task_id][round_id].validator_total, self.tasks[task_id].validators_per_round)
    self.committee_weight[task_id][round_id][msg.sender] = weight
    self.rounds[task_id][round_id].committee_seats += weight
    log Joined(task_id=task_id, round_id=round_id, validator=msg.sender, weight=weight)


@external
def vote(task_id: uint256, round_id: uint256, model_root: bytes32, model_cid: bytes32, scores_root: bytes32, total_score: uint256, rejected: uint256):
    """
    @notice Vote for a round's result: the new model's root and blob digest,
            the scores root and total, and the rejected set (bit i = the
            update revealed i-th was rejected).
    @dev Effects: the sender's seats back the vote; when a vote has 2/3 of
         the committee's seats, and of at least k/3 seats, it leads (a
         committee of fewer seats cannot decide: one large identity must not
         be a quorum alone in a round few others joined). A second, different vote by
         the same validator is equivocation: it is not counted, the first one
         is withdrawn and the validator is slashed (safety penalty).
         Requirements: the vote phase (reveal_end < block <= validate_end),
         an open round, a committee member, not the same vote twice.
    """
    sched: uint256 = self.rounds[task_id][round_id].schedule
    assert block.number > (sched >> 128) & U64, "rounds: vote phase not started"
    assert block.number <= (sched >> 192) & U64, "rounds: vote phase over"
    assert self.rounds[task_id][round_id].status == OPEN, "rounds: round closed"
    weight: uint256 = self.committee_weight[task_id][round_id][msg.sender]
    assert weight > 0, "rounds: not in committee"
    assert not self.equivocated[task_id][round_id][msg.sender], "rounds: equivocated"
    h: bytes32 = commitments._vote_hash(model_root, model_cid, scores_root, total_score, rejected)
    first: bytes32 = self.vote_of[task_id][round_id][msg.sender]
    if first == h:
        raise "rounds: already voted"
    if first != empty(bytes32):
        self._equivocate(task_id, round_id, msg.sender, weight, first, h)
        return
    self.vote_of[task_id][round_id][msg.sender] = h
    t: uint256 = self.tally[task_id][round_id][h] + weight
    self.tally[task_id][round_id][h] = t
    log Voted(
        task_id=task_id,
        round_id=round_id,
        validator=msg.sender,
        vote_hash=h,
        model_root=model_root,
        model_cid=model_cid,
        scores_root=scores_root,
        total_score=total_score,
        rejected=rejected,
    )
    if self.rounds[task_id][round_id].leader == empty(bytes32):
        if self._has_quorum(task_id, round_id, t):
            self.rounds[task_id][round_id].leader = h
            log QuorumReached(task_id=task_id, round_id=round_id, vote_hash=h)


@external
def finalize(task_id: uint256, model_root: bytes32, model_cid: bytes32, scores_root: bytes32, total_score: uint256, rejected: uint256):
    """
    @notice Finalize the current round with the result its quorum voted for,
            once its challenge window has passed, and open the next round.
    @dev Anyone may call it with the preimage of the leading vote (from the
         Voted events). Effects: the task's model becomes the voted model; the
         round's budget (pool / rounds left) is split into a validator fee and
         a trainer budget paid by score (none if the total score is zero).
         Requirements: a quorum, at least min_reveals reveals, block >
         validate_end + challenge_blocks, no open availability request, the
         fields hash to the leading vote.
    """
    assert not self.tasks[task_id].finished, "rounds: task finished"
    round_id: uint256 = self.tasks[task_id].round
    sched: uint256 = self.rounds[task_id][round_id].schedule
    leader: bytes32 = self.rounds[task_id][round_id].leader
    assert leader != empty(bytes32), "rounds: no quorum"
    assert self.rounds[task_id][round_id].reveals >= self.tasks[task_id].min_reveals, "rounds: too few reveals"
    assert block.number > ((sched >> 192) & U64) + self.tasks[task_id].challenge_blocks, "rounds: challenge window open"
    assert staticcall availability.open_requests(task_id, round_id) == 0, "rounds: availability request open"
    assert commitments._vote_hash(model_root, model_cid, scores_root, total_score, rejected) == leader, "rounds: result does not match quorum"

    rounds_left: uint256 = self.tasks[task_id].num_rounds - round_id
    budget: uint256 = self.tasks[task_id].pool // rounds_left
    validator_budget: uint256 = budget * self.tasks[task_id].validator_fee_bps // BPS
    trainer_budget: uint256 = budget - validator_budget
    if total_score == 0:
        trainer_budget = 0
    spent: uint256 = validator_budget + trainer_budget
    self.tasks[task_id].pool -= spent
    self.total_pools -= spent
    self.total_owed += spent
    self.tasks[task_id].model_root = model_root
    self.tasks[task_id].model_cid = model_cid
    self.rounds[task_id][round_id].status = FINALIZED
    self.rounds[task_id][round_id].model_root = model_root
    self.rounds[task_id][round_id].scores_root = scores_root
    self.rounds[task_id][round_id].total_score = total_score
    self.rounds[task_id][round_id].rejected = rejected
    self.rounds[task_id][round_id].trainer_budget = trainer_budget
    self.rounds[task_id][round_id].validator_budget = validator_budget
    self.rounds[task_id][round_id].trainer_left = trainer_budget
    self.rounds[task_id][round_id].validator_left = validator_budget
    self.rounds[task_id][round_id].majority_seats = self.tally[task_id][round_id][leader]
    log RoundFinalized(
        task_id=task_id,
        round_id=round_id,
        model_root=model_root,
        model_cid=model_cid,
        scores_root=scores_root,
        total_score=total_score,
        rejected=rejected,
        trainer_budget=trainer_budget,
        validator_budget=validator_budget,
    )
    self._next_round(task_id, round_id)


@external
def advance(task_id: uint256):
    """
    @notice Fail the current round if it can no longer finalize (fewer than
            min_reveals reveals after the reveal phase, or no quorum after the
            vote phase) and open the next round from the last finalized model.
    @dev Requirements: an existing, unfinished task whose current round has
         failed by one of those two rules. Finalizing is `finalize`'s job.
    """
    assert self.tasks[task_id].sponsor != empty(address), "rounds: no such task"
    assert not self.tasks[task_id].finished, "rounds: task finished"
    round_id: uint256 = self.tasks[task_id].round
    sched: uint256 = self.rounds[task_id][round_id].schedule
    reason: uint8 = 0
    if block.number > (sched >> 128) & U64 and self.rounds[task_id][round_id].reveals < self.tasks[task_id].min_reveals:
        reason = FAIL_TOO_FEW_REVEALS
    elif block.number > (sched >> 192) & U64 and self.rounds[task_id][round_id].leader == empty(bytes32):
        reason = FAIL_NO_QUORUM
    assert reason != 0, "rounds: nothing to advance"
    self.rounds[task_id][round_id].status = FAILED
    log RoundFailed(task_id=task_id, round_id=round_id, reason=reason)
    self._next_round(task_id, round_id)


@external
def revert_round(task_id: uint256, round_id: uint256, challenger: address):
    """
    @notice Revert the current round's leading result, which a challenge
            proved wrong: the round fails, its voters become slashable
            (slashing.slash_wrong_vote, reporter share to `challenger`) and the next
            round opens from the last finalized model.
    @dev Only the challenge contract (a proven-wrong result) and the
         availability game (an unanswered request) call it. A result becomes
         the task's model only at `finalize`, after its challenge window and
         its open requests, and only then does the next round open: no later
         round can have built on a reverted result. Requirements: the task's
         current round, a quorum; for a challenge, block <= validate_end +
         challenge_blocks (a request's deadline may fall after the window:
         finalize waits for it).
    """
    assert msg.sender == challenges or msg.sender == availability.address, "challenges: not allowed"
    assert not self.tasks[task_id].finished, "rounds: task finished"
    assert round_id == self.tasks[task_id].round, "challenges: not the current round"
    assert self.rounds[task_id][round_id].leader != empty(bytes32), "rounds: no quorum"
    sched: uint256 = self.rounds[task_id][round_id].schedule
    assert msg.sender != challenges or block.number <= ((sched >> 192) & U64) + self.tasks[task_id].challenge_blocks, "challenges: window closed"
    self.rounds[task_id][round_id].status = FAILED
    self.rounds[task_id][round_id].challenger = challenger
    log RoundFailed(task_id=task_id, round_id=round_id, reason=FAIL_CHALLENGED)
    self._next_round(task_id, round_id)


# ---------------------------------------------------------------- rewards


@external
def claim(task_id: uint256, round_id: uint256, score: uint256, proof: DynArray[bytes32, merkle.MAX_DEPTH]):
    """
    @notice Claim a trainer's reward for a finalized round:
            trainer_budget * score / total_score, credited to the sender's
            payout balance (withdraw it with `withdraw_payout`: one token
            transfer for any number of claims).
    @dev The scores tree's leaf i belongs to the update revealed i-th, so
         the proof's position comes from the on-chain reveal record.
         Requirements: finalized round, a reveal by the sender, not claimed,
         a valid proof of (sender, score), a positive amount.
    """
    assert self.rounds[task_id][round_id].status == FINALIZED, "rewards: round not finalized"
    rec: uint256 = self.record[task_id][round_id][msg.sender]
    assert rec & INDEX_MASK != 0, "rewards: no reveal"
    assert rec & CLAIMED == 0, "rewards: already claimed"
    index: uint256 = (rec & INDEX_MASK) - 1
    leaf: bytes32 = commitments._score_leaf(msg.sender, score)
    assert merkle._verify(leaf, index, proof, self.rounds[task_id][round_id].scores_root), "rewards: invalid proof"
    budget: uint256 = self.rounds[task_id][round_id].trainer_budget
    assert budget > 0, "rewards: nothing to claim"
    amount: uint256 = budget * score // self.rounds[task_id][round_id].total_score
    assert amount > 0, "rewards: nothing to claim"
    # Defence in depth: even a quorum that finalized scores summing to more
    # than total_score cannot make a round pay more than its budget.
    left: uint256 = self.rounds[task_id][round_id].trainer_left
    assert amount <= left, "rewards: round budget exhausted"
    self.rounds[task_id][round_id].trainer_left = left - amount
    self.record[task_id][round_id][msg.sender] = rec | CLAIMED
    self._credit(msg.sender, amount)
    log RewardClaimed(task_id=task_id, round_id=round_id, node=msg.sender, amount=amount)


@external
def claim_validator(task_id: uint256, round_id: uint256):
    """
    @notice Claim a validator's share of a finalized round's fee:
            validator_budget * seats / seats of the winning vote, credited
            to the sender's payout balance.
    @dev Requirements: finalized round, the sender voted for the result,
         not claimed, a positive amount.
    """
    assert self.rounds[task_id][round_id].status == FINALIZED, "rewards: round not finalized"
    assert self.vote_of[task_id][round_id][msg.sender] == self.rounds[task_id][round_id].leader, "rewards: not in majority"
    assert not self.validator_claimed[task_id][round_id][msg.sender], "rewards: already claimed"
    weight: uint256 = self.committee_weight[task_id][round_id][msg.sender]
    amount: uint256 = self.rounds[task_id][round_id].validator_budget * weight // self.rounds[task_id][round_id].majority_seats
    assert amount > 0, "rewards: nothing to claim"
    left: uint256 = self.rounds[task_id][round_id].validator_left
    assert amount <= left, "rewards: round budget exhausted"
    self.rounds[task_id][round_id].validator_left = left - amount
    self.validator_claimed[task_id][round_id][msg.sender] = True
    self._credit(msg.sender, amount)
    log RewardClaimed(task_id=task_id, round_id=round_id, node=msg.sender, amount=amount)


@external
@nonreentrant
def withdraw_payout():
    """
    @notice Withdraw the sender's payout balance: claimed rewards and the
            reporter shares earned by reporting slashable faults.
    @dev Requirements: a positive payout balance.
    """
    amount: uint256 = self.payouts[msg.sender]
    assert amount > 0, "rewards: no payout"
    self.payouts[msg.sender] = 0
    self.total_owed -= amount
    log PayoutWithdrawn(node=msg.sender, amount=amount)
    assert extcall staking.token.transfer(msg.sender, amount), "rewards: transfer failed"


# ---------------------------------------------------------------- slashing


@external
def penalize(task_id: uint256, round_id: uint256, node: address, reason: uint8, reporter: address) -> uint256:
    """
    @notice Take the penalty of a fault the slashing contract proved: the
            liveness penalty (or what is left), or for a wrong vote the
            safety share of the validator's stake. The reporter earns its
            bounded share; the rest is burned.
    @dev Only the slashing contract calls it. Effects: the node is marked
         slashed in the round (its record's SLASHED bit), so each address is
         penalized at most once per round. Requirements: not slashed in the
         round yet. Returns the amount taken.
    """
    assert msg.sender == slashing, "slashing: not allowed"
    rec: uint256 = self.record[task_id][round_id][node]
    assert rec & SLASHED == 0, "slashing: already slashed"
    self.record[task_id][round_id][node] = rec | SLASHED
    if reason == SLASH_WRONG_VOTE:
        return self._safety_slash(node, reason, reporter)
    return self._slash(node, self.liveness_penalty, reason, reporter)


# ---------------------------------------------------------------- views


@external
@view
def commitment_of(task_id: uint256, round_id: uint256, node: address, update_root: bytes32, salt: bytes32) -> bytes32:
    """
    @notice The commitment `node` must send for (`update_root`, `salt`).
    """
    return commitments._commitment(task_id, round_id, node, update_root, salt)


@external
@view
def round_facts(task_id: uint256, round_id: uint256) -> RoundFacts:
    """
    @notice What a fault or an availability request is judged by, in one
            call (nine storage reads, not the whole Round): see RoundFacts.
    """
    return RoundFacts(
        schedule=self.rounds[task_id][round_id].schedule,
        status=self.rounds[task_id][round_id].status,
        reveals=self.rounds[task_id][round_id].reveals,
        min_reveals=self.tasks[task_id].min_reveals,
        leader=self.rounds[task_id][round_id].leader,
        rejected=self.rounds[task_id][round_id].rejected,
        challenger=self.rounds[task_id][round_id].challenger,
        challenge_blocks=self.tasks[task_id].challenge_blocks,
        recipe_hash=self.tasks[task_id].recipe_hash,
    )


@external
@view
def is_selected(task_id: uint256, round_id: uint256, node: address, role: uint8) -> bool:
    """
    @notice Whether `node` is selected for `role` in the round.
    """
    return self._weight_if_selected(task_id, round_id, node, role, self.rounds[task_id][round_id].schedule) > 0


# ---------------------------------------------------------------- internal


@internal
@view
def _weight_if_selected(task_id: uint256, round_id: uint256, node: address, role: uint8, sched: uint256) -> uint256:
    """
    @dev The node's selection weight in the round if sortition selects it
         for `role`, else 0.
    """
    total: uint256 = 0
    k: uint256 = 0
    if role == staking.ROLE_TRAINER:
        total = self.rounds[task_id][round_id].trainer_total
        k = self.tasks[task_id].trainers_per_round
    else:
        total = self.rounds[task_id][round_id].validator_total
        k = self.tasks[task_id].validators_per_round
    weight: uint256 = staking._weight(node, role, sched & U64)
    if sortition._is_selected(self.rounds[task_id][round_id].seed, node, weight, total, k):
        return weight
    return 0


@internal
@pure
def _seats(weight: uint256, total: uint256, k: uint256) -> uint256:
    """
    @dev The seats, in basis points, that a selected weight stands for:
         max(1, k * w / T). Selection has probability min(1, k*w/T), so the
         expected seats are k*w/T: linear in stake, below the cap and at it.
    """
    return max(BPS, k * weight * BPS // total)


@internal
@view
def _has_quorum(task_id: uint256, round_id: uint256, tally: uint256) -> bool:
    """
    @dev 2/3 of the committee's seats, and of at least k/3 seats.
    """
    seats: uint256 = max(self.rounds[task_id][round_id].committee_seats, self.tasks[task_id].validators_per_round * BPS // 3)
    return 3 * tally >= 2 * seats


@internal
def _open_round(task_id: uint256, round_id: uint256):
    """
    @dev The seed mixes RANDAO and the previous block hash at opening; stake
         added at or after this block does not count in this round, so the
         seed is fixed after registration closed. A block producer could
         still grind one block's worth of seeds: a production deployment
         would take the seed from a later block's RANDAO or a VRF.
    """
    commit_end: uint256 = block.number + self.tasks[task_id].commit_blocks
    reveal_end: uint256 = commit_end + self.tasks[task_id].reveal_blocks
    validate_end: uint256 = reveal_end + self.tasks[task_id].validate_blocks
    seed: bytes32 = keccak256(abi_encode(task_id, round_id, block.prevrandao, blockhash(block.number - 1)))
    self.rounds[task_id][round_id].seed = seed
    self.rounds[task_id][round_id].schedule = block.number | (commit_end << 64) | (reveal_end << 128) | (validate_end << 192)
    trainer_total: uint256 = staking.total_active[staking.ROLE_TRAINER]
    validator_total: uint256 = staking.total_active[staking.ROLE_VALIDATOR]
    self.rounds[task_id][round_id].trainer_total = trainer_total
    self.rounds[task_id][round_id].validator_total = validator_total
    log RoundOpened(
        task_id=task_id,
        round_id=round_id,
        seed=seed,
        commit_end=commit_end,
        reveal_end=reveal_end,
        validate_end=validate_end,
        trainer_total=trainer_total,
        validator_total=validator_total,
    )


@internal
def _next_round(task_id: uint256, round_id: uint256):
    if round_id + 1 >= self.tasks[task_id].num_rounds:
        self.tasks[task_id].finished = True
        log TaskFinished(task_id=task_id)
        return
    self.tasks[task_id].round = round_id + 1
    self._open_round(task_id, round_id + 1)


@internal
def _equivocate(task_id: uint256, round_id: uint256, validator: address, weight: uint256, first: bytes32, second: bytes32):
    """
    @dev Withdraws the first vote's weight (and its lead, if it no longer
         has a quorum) and slashes the safety penalty. The evidence is the
         validator's own second transaction, so there is no reporter share.
    """
    self.equivocated[task_id][round_id][validator] = True
    self.vote_of[task_id][round_id][validator] = empty(bytes32)
    t: uint256 = self.tally[task_id][round_id][first] - weight
    self.tally[task_id][round_id][first] = t
    if self.rounds[task_id][round_id].leader == first:
        if not self._has_quorum(task_id, round_id, t):
            self.rounds[task_id][round_id].leader = empty(bytes32)
    log Equivocated(task_id=task_id, round_id=round_id, validator=validator, first_vote=first, second_vote=second)
    self._safety_slash(validator, SLASH_EQUIVOCATION, empty(address))


@internal
def _safety_slash(validator: address, reason: uint8, reporter: address) -> uint256:
    s: staking.Stake = staking.stakes[validator]
    penalty: uint256 = (s.active + s.unbonding) * self.safety_penalty_bps // BPS
    return self._slash(validator, penalty, reason, reporter)


@internal
def _credit(node: address, amount: uint256):
    """
    @dev Move a claimed reward from its round's budget to `node`'s payouts
         (both are part of total_owed, which therefore does not change).
    """
    self.payouts[node] += amount


@internal
def _slash(node: address, amount: uint256, reason: uint8, reporter: address) -> uint256:
    """
    @dev Take up to `amount` from the node's stake: the reporter's share to
         its payouts, the rest burned (never to a pool: M-5). Returns what
         was taken.
    """
    taken: uint256 = staking._slash(node, amount, reason, reporter)
    share: uint256 = 0
    if reporter != empty(address):
        share = taken * self.reporter_bps // BPS
        self.payouts[reporter] += share
        self.total_owed += share
    self.burned += taken - share
    return taken
