"""Copier: tries to pass off another trainer's update as its own.

Commit-reveal is what stops it (the commitment binds the committer's address:
``fedchain.chain.commitments.commitment``). Two ways to try, both refused:

- ``"commitment"``: in the commit phase, commit a copy of another trainer's
  commitment hash, then reveal that trainer's preimage (read from its Revealed
  event). The contract recomputes the hash with the copier's own address, so the
  reveal does not match; the copier is left with a commitment it cannot open, a
  provable liveness fault that validators slash.
- ``"late"``: wait for the victim's reveal, then commit to the revealed update
  root: the commit phase is over by then, so the commit reverts, and a reveal
  without a commitment reverts too.

Every refusal is kept in ``refusals`` (the contract's revert reasons).
"""

from __future__ import annotations

from fedchain.chain import commitments
from fedchain.errors import Reverted
from fedchain.protocol.trainer import Trainer


class Copier(Trainer):
    strategy = "commitment"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refusals: list[str] = []
        self._victim: dict[tuple[int, int], str] = {}
        self._tried: set[tuple[int, int]] = set()  # rounds of its one reveal attempt

    def commit(self, task_id, v):
        key = (task_id, v.round_id)
        if self.strategy != "commitment" or key in self._victim or key in self._committed:
            return
        log = self.task(task_id)
        if not self.selected(log, v):
            return
        others = [e for e in log.commits.get(v.round_id, []) if e.args["node"] != self.address]
        if not others:
            return  # nothing to copy yet: try again at the next step
        victim = others[0].args
        self._victim[key] = victim["node"]
        self._try("commit", task_id, v.round_id, victim["commitment"])

    def reveal(self, task_id, round_id):
        key = (task_id, round_id)
        if key in self._tried:
            return
        if self.strategy == "commitment" and key not in self._victim:
            return  # it copied no commitment this round: nothing to open
        log = self.task(task_id)
        victim = self._victim.get(key)
        shown = [
            e for e in log.reveals.get(round_id, []) if e.node != self.address and (victim is None or e.node == victim)
        ]
        if not shown:
            return
        a = shown[0]
        self._tried.add(key)
        if self.strategy == "late":
            c = commitments.commitment(
                self.chain.chain_id, self.fc.address, task_id, round_id, self.address, a.update_root, a.salt
            )
            self._try("commit", task_id, round_id, c)
        self._try("reveal", task_id, round_id, a.update_root, a.update_cid, a.samples, a.salt)

    def _try(self, fn: str, *args) -> bool:
        try:
            self.send(fn, *args)
            return True
        except Reverted as e:
            self.refusals.append(e.reason)
            self.log.info("%s refused: %s", fn, e.reason)
            return False

    def claim_all(self, log):
        return  # it never revealed an update of its own: nothing to claim
