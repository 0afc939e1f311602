"""Attacks on a fedchain network, one per file; ``ATTACKS`` maps names to them.

Update attacks (label flip, sign flip, Gaussian, ALIE, IPM, backdoor,
free-rider) are pure functions on update vectors, wrapped in an ``Attack``
record: the chain-free benchmark (``fedchain.bench.robustness``) and the
on-chain simulation (``fedchain.sim.attacks.trainer.AttackTrainer``) run the very
same code. Protocol attacks (copier, withholder, Sybil) act on commit, reveal
and stake, so only the on-chain simulation runs them. The threat model is
omniscient and colluding (see ``base``).
"""

from fedchain.sim.adversaries.withholder import Withholder
from fedchain.sim.attacks import alie, backdoor, freerider, gaussian, ipm, labelflip, signflip
from fedchain.sim.attacks.base import Attack, Knowledge, finish
from fedchain.sim.attacks.copier import Copier
from fedchain.sim.attacks.sybil import Sybil

ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        labelflip.ATTACK,
        signflip.ATTACK,
        gaussian.ATTACK,
        alie.ATTACK,
        ipm.attack(0.1),
        ipm.attack(100),
        backdoor.ATTACK,
        freerider.ATTACK,
        *freerider.PUBLIC,
        Attack("copier", trainer=Copier),
        Attack("withholder", trainer=Withholder),
        Attack("sybil", trainer=Sybil),
    )
}

UPDATE_ATTACKS = [name for name, a in ATTACKS.items() if not a.protocol]
PROTOCOL_ATTACKS = [name for name, a in ATTACKS.items() if a.protocol]
# attacks that read earlier rounds (``Knowledge.history``): only the robustness benchmark runs them so far
PUBLIC_ATTACKS = [name for name, a in ATTACKS.items() if a.public]

__all__ = ["ATTACKS", "PROTOCOL_ATTACKS", "PUBLIC_ATTACKS", "UPDATE_ATTACKS", "Attack", "Knowledge", "finish"]
