"""The codes the contracts use, once for Python (tests/unit/test_layout.py checks every
value against the contracts' constants).

``RoundStatus`` is a round's ``status``; ``FailReason`` the ``reason`` of a
``RoundFailed`` event; ``SlashReason`` the ``reason`` of a ``Slashed`` event; ``Role``
a stake's role (a watcher stakes nothing: it is a role of the node software, not of
staking). ``describe`` gives the words nodes, the audit and ``fedchain status`` print.
"""

from __future__ import annotations

from enum import IntEnum


class RoundStatus(IntEnum):
    OPEN = 0
    FINALIZED = 1
    FAILED = 2


class FailReason(IntEnum):
    TOO_FEW_REVEALS = 1
    NO_QUORUM = 2
    CHALLENGED = 3  # a fraud proof, or an availability request nobody answered

    def describe(self) -> str:
        return {1: "too few reveals", 2: "no quorum",
                3: "challenged: the leading result was proven wrong or its data withheld"}[self.value]


class SlashReason(IntEnum):
    MISSING_REVEAL = 1
    EQUIVOCATION = 2
    REJECTED = 3
    WRONG_VOTE = 4
    ABSENT = 5
    WITHHELD = 6

    def describe(self) -> str:
        return {1: "commit not revealed", 2: "equivocation", 3: "update rejected",
                4: "voted for a wrong result", 5: "joined the committee, never voted",
                6: "accepted update withheld when asked"}[self.value]


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
