"""Its blob host serves bytes that do not hash to the CID it revealed.

In one process the blob store is a directory; the attacker overwrites its own
stored file after `put`, as a lying HTTP peer would serve other bytes.
"""

from fedchain.protocol.trainer import Trainer
from fedchain.storage.store import LocalBlobStore


class CidMismatch(Trainer):
    def commit(self, task_id, v):
        super().commit(task_id, v)
        entry = self.journal.get("commit", task_id, v.round_id)
        if entry is not None:
            assert isinstance(self.store, LocalBlobStore), "the attack rewrites a file of a local blob folder"
            path = self.store._path(entry["cid"])
            path.write_bytes(path.read_bytes()[::-1])
