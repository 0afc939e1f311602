"""Misbehaving trainers, one per file; ``ADVERSARIES`` maps names to classes."""

from fedchain.sim.adversaries.cid_mismatch import CidMismatch
from fedchain.sim.adversaries.garbage import Garbage
from fedchain.sim.adversaries.nan import NaNUpdate
from fedchain.sim.adversaries.silent import Silent
from fedchain.sim.adversaries.withholder import Withholder
from fedchain.sim.adversaries.wrong_shape import WrongShape

ADVERSARIES = {
    "garbage": Garbage,
    "nan": NaNUpdate,
    "wrong_shape": WrongShape,
    "cid_mismatch": CidMismatch,
    "silent": Silent,
    "withholder": Withholder,
}
