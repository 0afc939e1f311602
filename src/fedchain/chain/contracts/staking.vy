# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title staking
@notice ERC-20 stake per role (trainer or validator), an unbonding queue and
        the slashing hook used by the round logic.
@dev One address holds one role; to change role, unbond and withdraw
     everything first. Stake added at block b counts for selection only in
     rounds opened after b (`since_block`), so nobody can stake after seeing a
     round's seed. Unbonding stake stays slashable until it is withdrawn, and
     the unbonding delay is longer than any task's challenge window.
     Reentrancy: the only external calls are to the stake token; `stake` and
     `withdraw` change all state before calling it, and the contract that
     initializes this module marks them @nonreentrant where it exports them
     through its own functions (here: the module's own @nonreentrant).
"""

from ethereum.ercs import IERC20

ROLE_NONE: constant(uint8) = 0
ROLE_TRAINER: constant(uint8) = 1
ROLE_VALIDATOR: constant(uint8) = 2


struct Stake:
    role: uint8
    active: uint256
    unbonding: uint256
    release_block: uint256
    since_block: uint256


token: public(immutable(IERC20))
min_stake: public(immutable(uint256))
unbonding_delay: public(immutable(uint256))

stakes: public(HashMap[address, Stake])
total_active: public(HashMap[uint8, uint256])
total_unbonding: public(uint256)


event Staked:
    node: indexed(address)
    role: uint8
    amount: uint256
    active: uint256

event UnbondRequested:
    node: indexed(address)
    amount: uint256
    release_block: uint256

event Withdrawn:
    node: indexed(address)
    amount: uint256

event Slashed:
    node: indexed(address)
    amount: uint256
    reason: uint8
    reporter: address


@deploy
def __init__(token_: IERC20, min_stake_: uint256, unbonding_delay_: uint256):
    """
    @param token_ The ERC-20 used for stake (and, by the caller, rewards).
    @param min_stake_ Least active stake a node needs to be selected.
    @param unbonding_delay_ Blocks between an unbond request and withdrawal.
    """
    assert min_stake_ > 0, "staking: zero minimum stake"
    token = token_
    min_stake = min_stake_
    unbonding_delay = unbonding_delay_


@external
@nonreentrant
def stake(role: uint8, amount: uint256):
    """
    @notice Lock `amount` tokens as stake for `role` (1 trainer, 2 validator).
    @dev Effects: active stake and the role's total grow by `amount`; the
         node becomes eligible for rounds opened after this block.
         Requirements: a known role, the same role as any stake already held,
         resulting stake at least `min_stake`, token allowance.
    """
    assert role == ROLE_TRAINER or role == ROLE_VALIDATOR, "staking: unknown role"
    s: Stake = self.stakes[msg.sender]
    assert s.role == ROLE_NONE or s.role == role, "staking: role mismatch"
    assert amount > 0, "staking: zero amount"
    assert s.active + amount >= min_stake, "staking: below minimum stake"
    s.role = role
    s.active += amount
    s.since_block = block.number
    self.stakes[msg.sender] = s
    self.total_active[role] += amount
    log Staked(node=msg.sender, role=role, amount=amount, active=s.active)
    assert extcall token.transferFrom(msg.sender, self, amount), "staking: transfer failed"


@external
def unbond(amount: uint256):
    """
    @notice Move `amount` of active stake into the unbonding queue.
    @dev Effects: the amount stops counting for selection at once and can be
         withdrawn `unbonding_delay` blocks later; a second request adds to
         the queue and restarts the delay. It remains slashable until then.
         Requirements: 0 < amount <= active stake; what stays active is either
         zero or at least `min_stake`.
    """
    s: Stake = self.stakes[msg.sender]
    assert amount > 0, "staking: zero amount"
    assert amount <= s.active, "staking: amount exceeds active stake"
    remaining: uint256 = s.active - amount
    assert remaining == 0 or remaining >= min_stake, "staking: below minimum stake"
    s.active = remaining
    s.unbonding += amount
    s.release_block = block.number + unbonding_delay
    self.stakes[msg.sender] = s
    self.total_active[s.role] -= amount
    self.total_unbonding += amount
    log UnbondRequested(node=msg.sender, amount=amount, release_block=s.release_block)


@external
@nonreentrant
def withdraw():
    """
    @notice Withdraw all unbonded stake whose delay has passed.
    @dev Effects: the unbonding amount is paid out; a node with no stake left
         loses its role. Requirements: something unbonding, delay elapsed.
    """
    s: Stake = self.stakes[msg.sender]
    assert s.unbonding > 0, "staking: nothing unbonding"
    assert block.number >= s.release_block, "staking: still unbonding"
    amount: uint256 = s.unbonding
    s.unbonding = 0
    if s.active == 0:
        s.role = ROLE_NONE
    self.stakes[msg.sender] = s
    self.total_unbonding -= amount
    log Withdrawn(node=msg.sender, amount=amount)
    assert extcall token.transfer(msg.sender, amount), "staking: transfer failed"


@internal
@view
def _weight(node: address, role: uint8, opened_at: uint256) -> uint256:
    """
    @notice Selection weight of `node` for a round of `role` opened at block
            `opened_at`: its active stake, or 0 if it has the wrong role, too
            little stake, or stake added at or after `opened_at`.
    """
    # Field by field: copying the struct would read all five slots.
    if self.stakes[node].role != role or self.stakes[node].since_block >= opened_at:
        return 0
    active: uint256 = self.stakes[node].active
    if active < min_stake:
        return 0
    return active


@internal
def _slash(node: address, amount: uint256, reason: uint8, reporter: address) -> uint256:
    """
    @notice Take up to `amount` from `node`: active stake first, then stake
            still unbonding. Returns what was taken (the caller routes it).
    """
    s: Stake = self.stakes[node]
    taken: uint256 = min(amount, s.active)
    s.active -= taken
    self.total_active[s.role] -= taken
    rest: uint256 = min(amount - taken, s.unbonding)
    s.unbonding -= rest
    self.total_unbonding -= rest
    self.stakes[node] = s
    log Slashed(node=node, amount=taken + rest, reason=reason, reporter=reporter)
    return taken + rest
