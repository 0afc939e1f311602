"""Write-ahead journal: what a node is about to sign is on disk before it is sent.

One JSON object per line, flushed and fsynced before the transaction goes out.
A node restarted mid-round reads its journal and re-sends the very same
commitment, reveal or vote, so a crash can neither lose an update nor make a
validator equivocate (cf. Ethereum validators' slashing-protection database).
The journal holds salts: it is private to its node.

``durable=False`` skips the fsync (the write still happens first). Only the
one-process simulation uses it: there a crash takes every node down at once,
so no node can outlive another's lost write, and the fsyncs cost ~0.2 s a
round. Nodes run as processes (``fedchain node run``) are always durable.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path


class Journal:
    def __init__(self, path: Path, durable: bool = True):
        self.path = Path(path)
        self.durable = durable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._entries: dict[tuple[str, int, int], dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        torn = not data.endswith(b"\n") and data.strip()
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                if torn and i == len(lines) - 1:
                    # a write that crashed mid-line was never acknowledged: drop it
                    warnings.warn(f"{self.path}: ignoring a torn last entry ({len(line)} bytes)", stacklevel=3)
                    with open(self.path, "r+b") as f:
                        f.truncate(len(data) - len(line))
                        f.flush()
                        os.fsync(f.fileno())
                    return
                raise ValueError(f"{self.path}: line {i + 1} is not JSON; the journal is corrupt") from None
            self._entries[(e["kind"], e["task"], e["round"])] = e

    def get(self, kind: str, task: int, round_id: int) -> dict | None:
        return self._entries.get((kind, task, round_id))

    def entries(self, kind: str, task: int) -> list[dict]:
        """Every entry of ``kind`` for ``task``, by round (what a restarted node resumes from)."""
        found = [e for (k, t, _), e in self._entries.items() if k == kind and t == task]
        return sorted(found, key=lambda e: e["round"])

    def write(self, kind: str, task: int, round_id: int, **fields) -> dict:
        """Append an entry durably. A second entry of the same kind, task and round is refused."""
        key = (kind, task, round_id)
        if key in self._entries:
            raise ValueError(f"journal already holds {kind} for task {task} round {round_id}")
        entry = {"kind": kind, "task": task, "round": round_id, **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            if self.durable:
                os.fsync(f.fileno())
        self._entries[key] = entry
        return entry
