# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title fedchain
@notice Tasks and their rounds: selection, commit, reveal, validator vote,
        challenge window, finalize, advance, revert; the penalties of
        provable faults. The tokens are in the vault (vault.vy: stakes,
        pools, budgets, payouts, burned), claims in rewards.vy, fault
        judgments in slashing.vy, result judgments in challenges.vy and the
        data-availability game in availability.vy.
@dev One round: commit (block <= commit_end) -> reveal (<= reveal_end) ->
     vote (<= validate_end) -> challenge window (validate_end, validate_end +
     challenge_blocks] -> `finalize`, or `advance` fails the round (too few
     reveals, no quorum) and opens the next one from the last finalized model.
     Deadlines are block numbers; anyone may call `advance` and `finalize`.
     No function loops over participants: every call is O(1).
     Tasks are created, topped up and reclaimed through tasks.vy, which
     checks their configuration; this contract stores it (every round
     transaction reads it) and each task's pool.
     Money: this contract holds no tokens. It tells the vault to turn pools
     into round budgets and to slash; the vault's total_pools is the sum of
     the tasks' pools (a stateful hypothesis test checks both contracts
     after every call).
     Committee weight is counted in seats, as trainers' rewards are: a
     validator selected with probability k*w/T below the cap has one seat, at
     the cap k*w/T seats, so its expected weight is linear in its stake
     (SECURITY-REVIEW H-1; docs/security-committee.md).
     Reentrancy: the external calls are to the vault (which calls only the
     token) and views of the availability game; the functions that move
     tokens through the vault are @nonreentrant.
"""

from ethereum.ercs import IERC20
import staking
import sortition
import commitments
import layout

BPS: constant(uint256) = 10_000
MAX_REVEALS: constant(uint256) = 256  # commitments (so reveals) a round accepts


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
    max_commits: uint256  # commitments a round accepts (<= 256): the sponsor keeps rounds challengeable
    # a differentially private task's cap on the rounds one trainer commits in, which keeps every
    # trainer's epsilon at the recipe's maximum (Recipe.max_dp_rounds); 0: no cap
    max_rounds_per_trainer: uint256

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
    max_commits: uint256
    max_rounds_per_trainer: uint256
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


struct TrainerFacts:
    # what a trainer's claim is judged by (rewards.vy)
    status: uint8
    record: uint256
    scores_root: bytes32
    total_score: uint256
    trainer_budget: uint256

struct FaultFacts:
    # what a trainer's liveness fault is judged by (slashing.vy): five
    # storage reads in one call, not RoundFacts' nine and two more calls
    schedule: uint256
    status: uint8
    rejected: uint256
    commitment: bytes32
    record: uint256

struct PoolFacts:
    # what a reclaim of a task's pool is judged by (tasks.vy)
    sponsor: address
    finished: bool
    pool: uint256

struct ValidatorFacts:
    # what a validator's claim is judged by (rewards.vy)
    status: uint8
    in_majority: bool
    seats: uint256
    validator_budget: uint256
    majority_seats: uint256


interface Vault:
    def spend(amount: uint256): nonpayable
    def slash(node: address, amount: uint256, reason: uint8, reporter: address) -> uint256: nonpayable
    def weight(node: address, role: uint8, opened_at: uint256) -> uint256: view
    def bonded(node: address) -> uint256: view
    def total_active(role: uint8) -> uint256: view
    def token() -> IERC20: view


interface Availability:
    def open_requests(task_id: uint256, round_id: uint256) -> uint256: view
    def withheld(task_id: uint256, round_id: uint256) -> uint256: view
    def answer_blocks() -> uint256: view


# Every token of the protocol (see vault.vy), and its token.
vault: public(immutable(Vault))
token: public(immutable(IERC20))
# The contract that judges challenges (see challenges.vy); only it may
# revert a round.
challenges: public(immutable(address))
# The contract that judges faults (see slashing.vy); only it may penalize.
slashing: public(immutable(address))
# The data-availability game (see availability.vy): a round does not finalize
# while a request is open, and an unanswered one reverts the round.
availability: public(immutable(Availability))
# The tasks contract (see tasks.vy): it checks and numbers new tasks and
# moves their pools; only it may open a task or change a pool here.
task_registry: public(immutable(address))

# Tokens taken for a liveness fault; share of a validator's stake taken for a safety fault.
liveness_penalty: public(immutable(uint256))
safety_penalty_bps: public(immutable(uint256))

tasks: public(HashMap[uint256, Task])
rounds: public(HashMap[uint256, HashMap[uint256, Round]])

# task -> round -> trainer -> commitment / packed record
commitment: public(HashMap[uint256, HashMap[uint256, HashMap[address, bytes32]]])
# rounds each trainer committed in, per task: counted only in a task with max_rounds_per_trainer
rounds_taken: public(HashMap[uint256, HashMap[address, uint256]])
record: public(HashMap[uint256, HashMap[uint256, HashMap[address, uint256]]])
# task -> round -> validator -> committee weight / vote / flags
committee_weight: public(HashMap[uint256, HashMap[uint256, HashMap[address, uint256]]])
vote_of: public(HashMap[uint256, HashMap[uint256, HashMap[address, bytes32]]])
equivocated: public(HashMap[uint256, HashMap[uint256, HashMap[address, bool]]])
# task -> round -> vote hash -> committee weight behind it
tally: public(HashMap[uint256, HashMap[uint256, HashMap[bytes32, uint256]]])


event RoundOpened:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    commit_end: uint256
    reveal_end: uint256
    validate_end: uint256
    trainer_total: uint256
    validator_total: uint256

event SeedDrawn:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    seed: bytes32

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



@deploy
def __init__(
    vault_: Vault,
    task_registry_: address,
    liveness_penalty_: uint256,
    safety_penalty_bps_: uint256,
    challenges_: address,
    slashing_: address,
    availability_: Availability,
):
    """
    @param vault_ The vault: stakes, pools, budgets, payouts.
    @param task_registry_ The tasks contract, the only caller of `open_task`
           and `move_pool` (it checks every task's configuration).
    @param liveness_penalty_ Tokens taken for a missing reveal, a rejected
           update or an absent committee member: small, repeatable.
    @param safety_penalty_bps_ Share of a validator's stake taken for
           equivocation or a wrong vote: large, once per round.
    @param challenges_ The challenge contract, a caller of `revert_round`.
    @param slashing_ The slashing contract, the only caller of `penalize`.
    @param availability_ The availability game, a caller of `revert_round`.
    """
    assert safety_penalty_bps_ <= BPS, "fedchain: penalty above 100%"
    vault = vault_
    token = staticcall vault_.token()
    liveness_penalty = liveness_penalty_
    safety_penalty_bps = safety_penalty_bps_
    challenges = challenges_
    slashing = slashing_
    task_registry = task_registry_
    availability = availability_


# ---------------------------------------------------------------- tasks


@external
def open_task(task_id: uint256, sponsor: address, cfg: TaskConfig):
    """
    @notice Store a new task's configuration and pool and open its round 0.
    @dev Only the tasks contract, which checked the configuration, numbered
         the task and logged TaskCreated, and escrows the pool in the vault.
    """
    assert msg.sender == task_registry, "tasks: not allowed"
    self.tasks[task_id] = Task(
        sponsor=sponsor,
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
        max_commits=cfg.max_commits,
        max_rounds_per_trainer=cfg.max_rounds_per_trainer,
        finished=False,
    )
    self._open_round(task_id, 0)


@external
def move_pool(task_id: uint256, amount: uint256, add: bool):
    """
    @notice Add `amount` to a task's pool (a top-up) or take it out (a
            reclaim), as the tasks contract says.
    @dev Only the tasks contract, which checks who may and moves the tokens.
    """
    assert msg.sender == task_registry, "tasks: not allowed"
    if add:
        self.tasks[task_id].pool += amount
    else:
        self.tasks[task_id].pool -= amount


# ---------------------------------------------------------------- rounds


@external
def commit(task_id: uint256, round_id: uint256, commitment_: bytes32):
    """
    @notice Commit to an update as a selected trainer.
    @dev Effects: the first commit or join of a round stores its seed
         (SeedDrawn). Requirements: the round's commit phase (opened < block
         <= commit_end; the seed exists from the block after the opening,
         for 256 blocks), the sender selected by trainer sortition, no
         earlier commitment, a non-zero commitment, fewer than the task's
         max_commits (<= 256) commitments so far (so every commitment can be
         revealed: a trainer refused here is not slashable); in a task with a
         max_rounds_per_trainer, fewer commits by the sender in this task so
         far (its privacy budget), which this commit then counts.
         Only the current round can be in its commit phase, so `round_id`
         needs no further check.
    """
    sched: uint256 = self.rounds[task_id][round_id].schedule
    assert sched != 0, "rounds: no such round"
    assert block.number <= layout._commit_end(sched), "rounds: commit phase over"
    assert commitment_ != empty(bytes32), "rounds: empty commitment"
    assert self.commitment[task_id][round_id][msg.sender] == empty(bytes32), "rounds: already committed"
    commits: uint256 = self.rounds[task_id][round_id].commits
    assert commits < self.tasks[task_id].max_commits, "rounds: too many commitments"
    seed: bytes32 = self._settle_seed(task_id, round_id, sched)
    assert self._weight_if_selected(task_id, round_id, msg.sender, staking.ROLE_TRAINER, sched, seed) > 0, "rounds: not selected"
    cap: uint256 = self.tasks[task_id].max_rounds_per_trainer
    if cap != 0:
        taken: uint256 = self.rounds_taken[task_id][msg.sender]
        assert taken < cap, "rounds: privacy budget spent"
        self.rounds_taken[task_id][msg.sender] = taken + 1
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
    assert block.number > layout._commit_end(sched), "rounds: reveal phase not started"
    assert block.number <= layout._reveal_end(sched), "rounds: reveal phase over"
    c: bytes32 = self.commitment[task_id][round_id][msg.sender]
    assert c != empty(bytes32), "rounds: no commitment"
    assert self.record[task_id][round_id][msg.sender] == 0, "rounds: already revealed"
    assert c == commitments._commitment(task_id, round_id, msg.sender, update_root, salt), "rounds: reveal does not match commitment"
    assert samples > 0 and samples <= layout.SAMPLES_MASK, "rounds: bad sample count"
    index: uint256 = self.rounds[task_id][round_id].reveals
    assert index < MAX_REVEALS, "rounds: too many reveals"
    self.rounds[task_id][round_id].reveals = index + 1
    # The seats the trainer's stake stands for: k * w / T of its round, at
    # least one. It scales the trainer's score (validators multiply, a score
    # challenge checks it), so expected reward is linear in stake: splitting a
    # stake over identities gains nothing, at the sortition cap or below it.
    w: uint256 = staticcall vault.weight(msg.sender, staking.ROLE_TRAINER, layout._opened(sched))
    seats: uint256 = self._seats(w, self.rounds[task_id][round_id].trainer_total, self.tasks[task_id].trainers_per_round)
    self.record[task_id][round_id][msg.sender] = layout._record(index, samples, seats)
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
         liveness fault (slashing.slash_absent); the first commit or join of
         a round stores its seed. Requirements: opened < block <= reveal_end
         (and within 256 blocks of the opening if nobody drew the seed yet),
         selected by validator sortition, not joined yet.
    """
    sched: uint256 = self.rounds[task_id][round_id].schedule
    assert sched != 0, "rounds: no such round"
    assert block.number <= layout._reveal_end(sched), "rounds: joining closed"
    assert self.committee_weight[task_id][round_id][msg.sender] == 0, "rounds: already joined"
    seed: bytes32 = self._settle_seed(task_id, round_id, sched)
    w: uint256 = self._weight_if_selected(task_id, round_id, msg.sender, staking.ROLE_VALIDATOR, sched, seed)
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
    assert block.number > layout._reveal_end(sched), "rounds: vote phase not started"
    assert block.number <= layout._validate_end(sched), "rounds: vote phase over"
    assert self.rounds[task_id][round_id].status == layout.OPEN, "rounds: round closed"
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
    assert block.number > layout._validate_end(sched) + self.tasks[task_id].challenge_blocks, "rounds: challenge window open"
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
    self.tasks[task_id].model_root = model_root
    self.tasks[task_id].model_cid = model_cid
    self.rounds[task_id][round_id].status = layout.FINALIZED
    self.rounds[task_id][round_id].model_root = model_root
    self.rounds[task_id][round_id].scores_root = scores_root
    self.rounds[task_id][round_id].total_score = total_score
    self.rounds[task_id][round_id].rejected = rejected
    self.rounds[task_id][round_id].trainer_budget = trainer_budget
    self.rounds[task_id][round_id].validator_budget = validator_budget
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
    extcall vault.spend(spent)


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
    if block.number > layout._reveal_end(sched) and self.rounds[task_id][round_id].reveals < self.tasks[task_id].min_reveals:
        reason = layout.FAIL_TOO_FEW_REVEALS
    elif block.number > layout._validate_end(sched) and self.rounds[task_id][round_id].leader == empty(bytes32):
        reason = layout.FAIL_NO_QUORUM
    assert reason != 0, "rounds: nothing to advance"
    self.rounds[task_id][round_id].status = layout.FAILED
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
    assert msg.sender != challenges or block.number <= layout._validate_end(sched) + self.tasks[task_id].challenge_blocks, "challenges: window closed"
    self.rounds[task_id][round_id].status = layout.FAILED
    self.rounds[task_id][round_id].challenger = challenger
    log RoundFailed(task_id=task_id, round_id=round_id, reason=layout.FAIL_CHALLENGED)
    self._next_round(task_id, round_id)


# ---------------------------------------------------------------- slashing


@external
def penalize(task_id: uint256, round_id: uint256, node: address, reason: uint8, reporter: address) -> uint256:
    """
    @notice Take the penalty of a fault the slashing contract proved: the
            liveness penalty (or what is left), or for a wrong vote the
            safety share of the validator's stake. The vault pays the
            reporter its bounded share and burns the rest.
    @dev Only the slashing contract calls it. Effects: the node is marked
         slashed in the round (its record's SLASHED bit), so each address is
         penalized at most once per round. Requirements: not slashed in the
         round yet. Returns the amount taken.
    """
    assert msg.sender == slashing, "slashing: not allowed"
    rec: uint256 = self.record[task_id][round_id][node]
    assert rec & layout.SLASHED == 0, "slashing: already slashed"
    self.record[task_id][round_id][node] = rec | layout.SLASHED
    if reason == layout.SLASH_WRONG_VOTE:
        return self._safety_slash(node, reason, reporter)
    return extcall vault.slash(node, liveness_penalty, reason, reporter)


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
def fault_facts(task_id: uint256, round_id: uint256, node: address) -> FaultFacts:
    """
    @notice What a missing reveal or a rejected update of `node` in the
            round is judged by: see FaultFacts.
    """
    return FaultFacts(schedule=self.rounds[task_id][round_id].schedule, status=self.rounds[task_id][round_id].status,
                      rejected=self.rounds[task_id][round_id].rejected,
                      commitment=self.commitment[task_id][round_id][node], record=self.record[task_id][round_id][node])


@external
@view
def pool_facts(task_id: uint256) -> PoolFacts:
    """
    @notice What a reclaim of the task's pool is judged by (three storage
            reads, not the whole Task's seventeen).
    """
    return PoolFacts(sponsor=self.tasks[task_id].sponsor, finished=self.tasks[task_id].finished,
                     pool=self.tasks[task_id].pool)


@external
@view
def trainer_facts(task_id: uint256, round_id: uint256, node: address) -> TrainerFacts:
    """
    @notice What `node`'s trainer claim in the round is judged by.
    """
    return TrainerFacts(
        status=self.rounds[task_id][round_id].status,
        record=self.record[task_id][round_id][node],
        scores_root=self.rounds[task_id][round_id].scores_root,
        total_score=self.rounds[task_id][round_id].total_score,
        trainer_budget=self.rounds[task_id][round_id].trainer_budget,
    )


@external
@view
def validator_facts(task_id: uint256, round_id: uint256, node: address) -> ValidatorFacts:
    """
    @notice What `node`'s validator claim in the round is judged by.
    """
    v: bytes32 = self.vote_of[task_id][round_id][node]
    return ValidatorFacts(
        status=self.rounds[task_id][round_id].status,
        in_majority=v != empty(bytes32) and v == self.rounds[task_id][round_id].leader,
        seats=self.committee_weight[task_id][round_id][node],
        validator_budget=self.rounds[task_id][round_id].validator_budget,
        majority_seats=self.rounds[task_id][round_id].majority_seats,
    )


@external
@view
def seed_of(task_id: uint256, round_id: uint256) -> bytes32:
    """
    @notice The round's sortition seed: stored once drawn, else computable
            from the block after the opening one for 256 blocks; empty
            before that or after (then nobody can commit or join).
    """
    return self._seed(task_id, round_id, self.rounds[task_id][round_id].schedule)


@external
@view
def is_selected(task_id: uint256, round_id: uint256, node: address, role: uint8) -> bool:
    """
    @notice Whether `node` is selected for `role` in the round.
    """
    sched: uint256 = self.rounds[task_id][round_id].schedule
    seed: bytes32 = self._seed(task_id, round_id, sched)
    return seed != empty(bytes32) and self._weight_if_selected(task_id, round_id, node, role, sched, seed) > 0


# ---------------------------------------------------------------- internal


@internal
@view
def _weight_if_selected(task_id: uint256, round_id: uint256, node: address, role: uint8, sched: uint256, seed: bytes32) -> uint256:
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
    weight: uint256 = staticcall vault.weight(node, role, layout._opened(sched))
    if sortition._is_selected(seed, node, weight, total, k):
        return weight
    return 0


@internal
@view
def _seed(task_id: uint256, round_id: uint256, sched: uint256) -> bytes32:
    """
    @dev The round's seed: keccak256(task, round, blockhash(opened)), the
         hash of the block that opened the round. While the opening
         transaction runs, that hash does not exist yet: nobody can compute
         the seed before the round is open, and whoever opens it cannot
         choose it by choosing the block (SECURITY-REVIEW M-4; the block's
         producer still can, docs/decisions.md). It can be read from the next
         block on and for 256 blocks (the EVM keeps 256 block hashes); once
         drawn it is stored. Empty: not drawable (too early, or expired).
    """
    seed: bytes32 = self.rounds[task_id][round_id].seed
    opened: uint256 = layout._opened(sched)
    if seed == empty(bytes32) and block.number > opened and block.number <= opened + 256:
        seed = keccak256(abi_encode(task_id, round_id, blockhash(opened)))
    return seed


@internal
def _settle_seed(task_id: uint256, round_id: uint256, sched: uint256) -> bytes32:
    """
    @dev The seed, stored (and logged) by the round's first commit or join.
         A round nobody commits in within 256 blocks of its opening gets no
         commitment and fails cleanly (too few reveals) at `advance`.
    """
    if self.rounds[task_id][round_id].seed != empty(bytes32):
        return self.rounds[task_id][round_id].seed
    assert block.number > layout._opened(sched), "rounds: seed not drawn yet"
    seed: bytes32 = self._seed(task_id, round_id, sched)
    assert seed != empty(bytes32), "rounds: seed expired"
    self.rounds[task_id][round_id].seed = seed
    log SeedDrawn(task_id=task_id, round_id=round_id, seed=seed)
    return seed


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
    @dev Stake added at or after this block does not count in this round,
         and the round's seed comes from this block's hash, which nobody
         knows while the opening transaction runs (see `_seed`): registration
         closes before the seed exists.
    """
    commit_end: uint256 = block.number + self.tasks[task_id].commit_blocks
    reveal_end: uint256 = commit_end + self.tasks[task_id].reveal_blocks
    validate_end: uint256 = reveal_end + self.tasks[task_id].validate_blocks
    self.rounds[task_id][round_id].schedule = layout._schedule(block.number, commit_end, reveal_end, validate_end)
    trainer_total: uint256 = staticcall vault.total_active(staking.ROLE_TRAINER)
    validator_total: uint256 = staticcall vault.total_active(staking.ROLE_VALIDATOR)
    self.rounds[task_id][round_id].trainer_total = trainer_total
    self.rounds[task_id][round_id].validator_total = validator_total
    log RoundOpened(
        task_id=task_id,
        round_id=round_id,
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
    self._safety_slash(validator, layout.SLASH_EQUIVOCATION, empty(address))


@internal
def _safety_slash(validator: address, reason: uint8, reporter: address) -> uint256:
    penalty: uint256 = staticcall vault.bonded(validator) * safety_penalty_bps // BPS
    return extcall vault.slash(validator, penalty, reason, reporter)
