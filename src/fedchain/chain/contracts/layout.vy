# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title layout
@notice The round's codes and packed records, once for every contract
        (chain/layout.py is the Python twin; tests/unit/test_layout.py checks
        every value against this file).
@dev Stateless: constants and pure functions only.
     A trainer's record in a round packs: reveal index + 1 (bits 0-31; 0 =
     not revealed), sample count (bits 32-159), seats in basis points (bits
     160-223) and the SLASHED flag (any fault of this address in the round,
     a validator's too: an address has one role).
     A round's schedule packs four block numbers, 64 bits each: opened,
     commit_end, reveal_end, validate_end.
"""

# round status
OPEN: constant(uint8) = 0
FINALIZED: constant(uint8) = 1
FAILED: constant(uint8) = 2

# why a round failed (RoundFailed.reason)
FAIL_TOO_FEW_REVEALS: constant(uint8) = 1
FAIL_NO_QUORUM: constant(uint8) = 2
FAIL_CHALLENGED: constant(uint8) = 3

# why a node was slashed (Slashed.reason)
SLASH_MISSING_REVEAL: constant(uint8) = 1
SLASH_EQUIVOCATION: constant(uint8) = 2
SLASH_REJECTED: constant(uint8) = 3
SLASH_WRONG_VOTE: constant(uint8) = 4
SLASH_ABSENT: constant(uint8) = 5  # joined a committee, never voted
SLASH_WITHHELD: constant(uint8) = 6  # an accepted update nobody put on chain when asked

# the reveal record
INDEX_MASK: constant(uint256) = 2**32 - 1
SAMPLES_MASK: constant(uint256) = 2**128 - 1
SEATS_MASK: constant(uint256) = 2**64 - 1
SLASHED: constant(uint256) = 2**253

# the schedule
U64: constant(uint256) = 2**64 - 1


@internal
@pure
def _record(index: uint256, samples: uint256, seats: uint256) -> uint256:
    """
    @dev The record of the update revealed `index`-th (from 0).
    """
    return (index + 1) | (samples << 32) | (seats << 160)


@internal
@pure
def _samples(rec: uint256) -> uint256:
    return (rec >> 32) & SAMPLES_MASK


@internal
@pure
def _seats(rec: uint256) -> uint256:
    return (rec >> 160) & SEATS_MASK


@internal
@pure
def _schedule(opened: uint256, commit_end: uint256, reveal_end: uint256, validate_end: uint256) -> uint256:
    return opened | (commit_end << 64) | (reveal_end << 128) | (validate_end << 192)


@internal
@pure
def _opened(sched: uint256) -> uint256:
    return sched & U64


@internal
@pure
def _commit_end(sched: uint256) -> uint256:
    return (sched >> 64) & U64


@internal
@pure
def _reveal_end(sched: uint256) -> uint256:
    return (sched >> 128) & U64


@internal
@pure
def _validate_end(sched: uint256) -> uint256:
    return (sched >> 192) & U64
