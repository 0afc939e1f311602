"""The codes and packed records the contracts use, once for Python (tests/unit/test_layout.py
checks every value against the contracts' constants and every record against layout.vy's own
pack and unpack functions).

``RoundStatus`` is a round's ``status``; ``FailReason`` the ``reason`` of a
``RoundFailed`` event; ``SlashReason`` the ``reason`` of a ``Slashed`` event; ``Role``
a stake's role (a watcher stakes nothing: it is a role of the node software, not of
staking). ``describe`` gives the words nodes, the audit and ``fedchain status`` print.

``Record`` is a trainer's packed record in a round (``fedchain.record``), ``Schedule`` a
round's four packed phase ends (``rounds(...).schedule``): layout.vy's bit layout, mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

# layout.vy's masks and flag
INDEX_MASK = 2**32 - 1
SAMPLES_MASK = 2**128 - 1
SEATS_MASK = 2**64 - 1
SLASHED = 2**253
U64 = 2**64 - 1


class RoundStatus(IntEnum):
    OPEN = 0
    FINALIZED = 1
    FAILED = 2


class FailReason(IntEnum):
    TOO_FEW_REVEALS = 1
    NO_QUORUM = 2
    CHALLENGED = 3  # a fraud proof, or an availability request nobody answered

    def describe(self) -> str:
        return {
            1: "too few reveals",
            2: "no quorum",
            3: "challenged: the leading result was proven wrong or its data withheld",
        }[self.value]


class SlashReason(IntEnum):
    MISSING_REVEAL = 1
    EQUIVOCATION = 2
    REJECTED = 3
    WRONG_VOTE = 4
    ABSENT = 5
    WITHHELD = 6

    def describe(self) -> str:
        return {
            1: "commit not revealed",
            2: "equivocation",
            3: "update rejected",
            4: "voted for a wrong result",
            5: "joined the committee, never voted",
            6: "accepted update withheld when asked",
        }[self.value]


class Role(IntEnum):
    NONE = 0
    TRAINER = 1
    VALIDATOR = 2


def describe(enum: type[FailReason] | type[SlashReason], code: int) -> str:
    """The words for ``code``, or ``reason N`` for a code this version does not know."""
    try:
        return enum(code).describe()
    except ValueError:
        return f"reason {code}"


@dataclass(frozen=True)
class Record:
    """A trainer's record in a round: its reveal index (None before it revealed), sample
    count, seats in basis points, and whether the address was slashed in the round."""

    index: int | None
    samples: int = 0
    seats_bps: int = 0
    slashed: bool = False

    @classmethod
    def unpack(cls, rec: int) -> Record:
        index = (rec & INDEX_MASK) - 1
        return cls(
            index if index >= 0 else None, (rec >> 32) & SAMPLES_MASK, (rec >> 160) & SEATS_MASK, bool(rec & SLASHED)
        )

    @property
    def revealed(self) -> bool:
        return self.index is not None

    def pack(self) -> int:
        """layout.vy's ``_record`` (with the SLASHED flag where set)."""
        index = 0 if self.index is None else self.index + 1
        return index | (self.samples << 32) | (self.seats_bps << 160) | (SLASHED if self.slashed else 0)


@dataclass(frozen=True)
class Schedule:
    """A round's phase ends: the opening block and the last blocks of commit, reveal and vote."""

    opened: int
    commit_end: int
    reveal_end: int
    validate_end: int

    @classmethod
    def unpack(cls, sched: int) -> Schedule:
        return cls(sched & U64, (sched >> 64) & U64, (sched >> 128) & U64, (sched >> 192) & U64)

    def pack(self) -> int:
        """layout.vy's ``_schedule``."""
        return self.opened | (self.commit_end << 64) | (self.reveal_end << 128) | (self.validate_end << 192)

    def astuple(self) -> tuple[int, int, int, int]:
        return (self.opened, self.commit_end, self.reveal_end, self.validate_end)
