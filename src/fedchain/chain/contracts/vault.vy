# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title vault
@notice Every token the protocol holds, by account: stakes (the staking
        module, whose entry points nodes call here), task pools, round
        budgets not yet claimed, payout balances, and burned slashes. Bonds
        of challenges and availability requests are held by those games.
@dev Money moves only on the instruction of the three contracts bound once
     at deployment: tasks (escrow and release a pool), fedchain (turn pool
     into a round budget, slash) and rewards (credit a claim from the round
     budgets to a payout balance). Nothing else can move a token out, and nobody can
     change those addresses afterwards.
     Conservation, to the wei, after every call (a stateful hypothesis test
     checks it): token balance == total_active + total_unbonding +
     total_pools + total_owed + burned, where total_owed == unclaimed +
     the sum of payouts. Slashed stake, less the reporter's share, is burned:
     held here for ever, owed to nobody (SECURITY-REVIEW M-5).
     Reentrancy: the only external calls are to the stake token; every
     function that makes one is @nonreentrant and changes its state first.
"""

from ethereum.ercs import IERC20
import staking

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
MAX_REPORTER_BPS: constant(uint256) = 5_000

deployer: immutable(address)
# Share of a slash paid to whoever reported it; the rest is burned.
reporter_bps: public(immutable(uint256))
# The round logic (fedchain.vy), the claims (rewards.vy) and the tasks
# (tasks.vy), bound once.
fedchain: public(address)
rewards: public(address)
tasks: public(address)

total_pools: public(uint256)
# Round budgets not yet claimed plus payout balances not yet withdrawn.
total_owed: public(uint256)
# The part of total_owed that is round budgets not yet claimed: a claim can
# credit no more than this, whatever rewards.vy computes.
unclaimed: public(uint256)
payouts: public(HashMap[address, uint256])
# Slashed stake less reporter shares: held here for ever, owed to nobody.
burned: public(uint256)


event PayoutWithdrawn:
    node: indexed(address)
    amount: uint256


@deploy
def __init__(token_: IERC20, min_stake_: uint256, unbonding_delay_: uint256, reporter_bps_: uint256):
    """
    @param token_ ERC-20 for stake, pools and rewards.
    @param min_stake_ Least stake a node needs to be selected.
    @param unbonding_delay_ Blocks from unbond to withdraw; fedchain checks at
           task creation that it exceeds every round plus the slash grace.
    @param reporter_bps_ Share of a slash paid to its reporter (at most
           MAX_REPORTER_BPS); the rest is burned.
    """
    assert reporter_bps_ <= MAX_REPORTER_BPS, "vault: reporter share too large"
    staking.__init__(token_, min_stake_, unbonding_delay_)
    deployer = msg.sender
    reporter_bps = reporter_bps_


@external
def bind(fedchain_: address, rewards_: address, tasks_: address):
    """
    @notice Name the round logic, the claims contract and the tasks contract
            (once, by the deployer: each takes this contract's address at
            deployment).
    """
    assert msg.sender == deployer, "vault: not the deployer"
    assert self.fedchain == empty(address), "vault: already bound"
    assert fedchain_ != empty(address) and rewards_ != empty(address) and tasks_ != empty(address), "vault: empty address"
    self.fedchain = fedchain_
    self.rewards = rewards_
    self.tasks = tasks_


# ---------------------------------------------------------------- pools


@external
@nonreentrant
def escrow(payer: address, amount: uint256):
    """
    @notice Take `amount` from `payer` into the pools (a task's creation or
            top-up; fedchain keeps each task's share).
    @dev Only the tasks contract. Requirements: `payer`'s allowance to this
         contract.
    """
    assert msg.sender == self.tasks, "vault: not tasks"
    self.total_pools += amount
    assert extcall staking.token.transferFrom(payer, self, amount), "vault: transfer failed"


@external
@nonreentrant
def release(to: address, amount: uint256):
    """
    @notice Pay `amount` of the pools to `to` (a finished task's sponsor
            reclaiming what is left).
    @dev Only the tasks contract.
    """
    assert msg.sender == self.tasks, "vault: not tasks"
    self.total_pools -= amount
    assert extcall staking.token.transfer(to, amount), "vault: transfer failed"


@external
def spend(amount: uint256):
    """
    @notice Turn `amount` of the pools into round budgets, owed to the
            round's trainers and validators until they claim.
    @dev Only fedchain (at finalize).
    """
    assert msg.sender == self.fedchain, "vault: not fedchain"
    self.total_pools -= amount
    self.total_owed += amount
    self.unclaimed += amount


# ---------------------------------------------------------------- payouts


@external
def credit(node: address, amount: uint256):
    """
    @notice Move a claimed reward from the round budgets to `node`'s payout
            balance (total_owed does not change).
    @dev Only rewards. Requirements: amount <= unclaimed budgets.
    """
    assert msg.sender == self.rewards, "vault: not rewards"
    assert amount <= self.unclaimed, "vault: more than the budgets"
    self.unclaimed -= amount
    self.payouts[node] += amount


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
def slash(node: address, amount: uint256, reason: uint8, reporter: address) -> uint256:
    """
    @notice Take up to `amount` of `node`'s stake (active first, then
            unbonding): the reporter's share to its payout balance, the rest
            burned. Returns what was taken.
    @dev Only fedchain (its `penalize`, called by the slashing contract, and
         its equivocation check), which marks the node slashed in the round.
    """
    assert msg.sender == self.fedchain, "vault: not fedchain"
    taken: uint256 = staking._slash(node, amount, reason, reporter)
    share: uint256 = 0
    if reporter != empty(address):
        share = taken * reporter_bps // BPS
        self.payouts[reporter] += share
        self.total_owed += share
    self.burned += taken - share
    return taken


# ---------------------------------------------------------------- views


@external
@view
def weight(node: address, role: uint8, opened_at: uint256) -> uint256:
    """
    @notice Selection weight of `node` for `role` in a round opened at block
            `opened_at`: its active stake, or 0 if it has the wrong role, too
            little stake, or stake added at or after `opened_at`.
    """
    return staking._weight(node, role, opened_at)


@external
@view
def bonded(node: address) -> uint256:
    """
    @notice `node`'s stake that a slash can take: active plus unbonding.
    """
    return staking.stakes[node].active + staking.stakes[node].unbonding
