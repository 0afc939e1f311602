# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title tasks
@notice Tasks and their pools: create a task (its configuration checked,
        its pool escrowed in the vault, its round 0 opened by fedchain), top
        up a pool, reclaim what is left of a finished task's pool.
@dev Task ids are assigned here and logged (TaskCreated) before fedchain
     opens round 0, so every event of a task comes after its creation
     (SECURITY-REVIEW H-2). fedchain keeps each task's configuration and
     pool (every round transaction reads them) and trusts this contract,
     fixed at deployment, to open tasks and move pools; the vault holds the
     tokens and moves them on this contract's word.
     Reentrancy: the external calls are to fedchain (which calls the vault
     and views) and to the vault (which calls only the token); every
     function that makes them is @nonreentrant.
"""

import fedchain

interface Vault:
    def escrow(payer: address, amount: uint256): nonpayable
    def release(to: address, amount: uint256): nonpayable
    def unbonding_delay() -> uint256: view

interface Availability:
    def answer_blocks() -> uint256: view

BPS: constant(uint256) = 10_000
MAX_REVEALS: constant(uint256) = 256
MAX_ROUND_BLOCKS: constant(uint256) = 2**32
MAX_COMMITTEE: constant(uint256) = 2**32

deployer: immutable(address)
vault: public(immutable(Vault))
unbonding_delay: immutable(uint256)
# The least challenge window a task may have, in blocks (a deployment's
# chain sets it: long enough that nobody can censor every challenge).
min_challenge_blocks: public(immutable(uint256))
# Blocks after a round's challenge window in which its faults are still
# slashable: a round plus this grace must be shorter than the unbonding delay.
slash_grace: public(immutable(uint256))
core: public(fedchain.__interface__)
next_task_id: public(uint256)


event TaskCreated:
    task_id: indexed(uint256)
    sponsor: indexed(address)
    recipe_hash: bytes32
    model_root: bytes32
    model_cid: bytes32
    num_rounds: uint256
    pool: uint256

event PoolFunded:
    task_id: indexed(uint256)
    funder: indexed(address)
    amount: uint256

event PoolReclaimed:
    task_id: indexed(uint256)
    sponsor: indexed(address)
    amount: uint256


@deploy
def __init__(vault_: Vault, availability_: Availability, min_challenge_blocks_: uint256, slash_grace_: uint256):
    """
    @param vault_ The vault (its unbonding delay bounds every round).
    @param availability_ The availability game; its answer time must be
           shorter than the slash grace, so that a round it reverts can still
           slash its voters.
    @param min_challenge_blocks_ The least challenge window a task may set.
    @param slash_grace_ Blocks after a round's challenge window in which its
           faults can still be reported before any stake that backed the
           round can be withdrawn.
    """
    assert staticcall availability_.answer_blocks() < slash_grace_, "tasks: answer time not shorter than slash grace"
    deployer = msg.sender
    vault = vault_
    unbonding_delay = staticcall vault_.unbonding_delay()
    min_challenge_blocks = min_challenge_blocks_
    slash_grace = slash_grace_
    self.next_task_id = 1


@external
def bind(core_: fedchain.__interface__):
    """
    @notice Name the fedchain contract that runs the tasks' rounds (once, by
            the deployer: fedchain takes this contract's address at deployment).
    """
    assert msg.sender == deployer, "tasks: not the deployer"
    assert self.core.address == empty(address), "tasks: already bound"
    self.core = core_


@external
@nonreentrant
def create_task(cfg: fedchain.TaskConfig) -> uint256:
    """
    @notice Create a task, escrow its reward pool and open round 0.
    @dev Effects: the pool moves from the sponsor to the vault; fedchain
         stores the configuration and opens round 0 at this block.
         Requirements: positive rounds, committee sizes, phase lengths and
         pool; 1 <= min_reveals <= max_commits <= 256; a challenge window of at least
         `min_challenge_blocks`; a round plus `slash_grace` shorter than the
         unbonding delay, so that stake which backed a commitment or a
         committee seat (unbonded at the round's opening at the earliest)
         cannot be withdrawn before the round's faults are proven and slashed
         (SECURITY-REVIEW M-2); fee <= 100%; an allowance to the vault.
    @return The new task's id.
    """
    assert cfg.num_rounds > 0, "tasks: zero rounds"
    assert cfg.trainers_per_round > 0 and cfg.validators_per_round > 0, "tasks: empty committee"
    assert cfg.min_reveals > 0 and cfg.min_reveals <= MAX_REVEALS, "tasks: bad min_reveals"
    # A round's commitments (so its reveals) are capped by the sponsor, so that no party can
    # push a round past the size its rule can still be challenged at (SECURITY-REVIEW I-5).
    assert cfg.max_commits >= cfg.min_reveals and cfg.max_commits <= MAX_REVEALS, "tasks: bad max_commits"
    assert min(min(cfg.commit_blocks, cfg.reveal_blocks), min(cfg.validate_blocks, cfg.challenge_blocks)) > 0, "tasks: zero phase length"
    assert cfg.challenge_blocks >= min_challenge_blocks, "tasks: challenge window too short"
    round_blocks: uint256 = cfg.commit_blocks + cfg.reveal_blocks + cfg.validate_blocks + cfg.challenge_blocks
    # Stake that could be punished for anything in a round must still be
    # bonded when the round's last fault can be proven (every fault is
    # provable by the window's end) and reported (the grace); and the packed
    # schedule holds 64-bit block numbers.
    assert round_blocks < MAX_ROUND_BLOCKS, "tasks: phases too long"
    assert round_blocks + slash_grace < unbonding_delay, "tasks: round + slash grace not shorter than unbonding delay"
    assert cfg.trainers_per_round <= MAX_COMMITTEE and cfg.validators_per_round <= MAX_COMMITTEE, "tasks: committee too large"
    assert cfg.validator_fee_bps <= BPS, "tasks: fee above 100%"
    assert cfg.pool > 0, "tasks: empty pool"
    task_id: uint256 = self.next_task_id
    self.next_task_id = task_id + 1
    log TaskCreated(
        task_id=task_id,
        sponsor=msg.sender,
        recipe_hash=cfg.recipe_hash,
        model_root=cfg.model_root,
        model_cid=cfg.model_cid,
        num_rounds=cfg.num_rounds,
        pool=cfg.pool,
    )
    extcall self.core.open_task(task_id, msg.sender, cfg)
    extcall vault.escrow(msg.sender, cfg.pool)
    return task_id


@external
@nonreentrant
def fund_pool(task_id: uint256, amount: uint256):
    """
    @notice Add tokens to a task's reward pool: a sponsor topping it up, or
            anyone else who wants to pay for the task's rounds.
    @dev Requirements: an existing task, a positive amount, an allowance to
         the vault.
    """
    assert task_id > 0 and task_id < self.next_task_id, "tasks: no such task"
    assert amount > 0, "tasks: empty amount"
    log PoolFunded(task_id=task_id, funder=msg.sender, amount=amount)
    extcall self.core.move_pool(task_id, amount, True)
    extcall vault.escrow(msg.sender, amount)


@external
@nonreentrant
def reclaim(task_id: uint256):
    """
    @notice Return what is left of a finished task's pool to its sponsor.
    @dev Requirements: caller is the sponsor, the task is finished, pool > 0.
         Slashes never refill a pool (they are burned), so nothing a slash
         takes reaches the sponsor.
    """
    t: fedchain.PoolFacts = staticcall self.core.pool_facts(task_id)
    assert t.sponsor == msg.sender, "tasks: not the sponsor"
    assert t.finished, "tasks: not finished"
    assert t.pool > 0, "tasks: empty pool"
    log PoolReclaimed(task_id=task_id, sponsor=msg.sender, amount=t.pool)
    extcall self.core.move_pool(task_id, t.pool, False)
    extcall vault.release(msg.sender, t.pool)
