"""Commits, then never reveals: a provable liveness fault, slashed."""

from fedchain.protocol.trainer import Trainer


class Withholder(Trainer):
    def reveal(self, task_id, round_id):
        return
