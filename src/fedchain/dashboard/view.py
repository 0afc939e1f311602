"""What the dashboard shows, as plain JSON data, built from the chain and the blobs alone.

``build`` folds a contract's events (``fedchain audit``'s event sources: a live chain
or a saved simulation) into tasks, round timelines, per-node histories and the model
lineage. The lineage is read from the model blobs the chain names (``Lineage`` in
their metadata), each fetched through a blob store that checks its bytes against its
CID; a blob that is missing or corrupt becomes an ``error`` on its round (which CID,
what each store said) and everything else is still shown. Nothing is stored: a new
dashboard rebuilds the same view from the same chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedchain.chain.abi import Event
from fedchain.chain.layout import FailReason, SlashReason, describe
from fedchain.errors import CodecError, StorageError
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.store import BlobStore

ROLES = {0: "-", 1: "trainer", 2: "validator"}


@dataclass
class Lineages:
    """Lineages of model blobs by CID, each blob checked against its CID once per process
    (a CID names its bytes for ever: what verified once stays true). Failures are not kept:
    a blob missing now is asked for again at the next rebuild."""

    store: BlobStore
    known: dict[str, dict] = field(default_factory=dict)

    def get(self, cid: str) -> dict:
        """{"parent", "scores", "rejected", "rule", "recipe"} or {"error": why}."""
        from fedchain.protocol.round import Lineage

        if cid in self.known:
            return self.known[cid]
        try:
            lin = Lineage.from_blob(self.store.get(cid))  # the store verifies the bytes' CID
        except StorageError as e:
            return {"error": f"model blob {cid}: {e}"}
        except CodecError as e:
            return {"error": f"model blob {cid}: {e}"}
        out = {
            "parent": lin.parent,
            "scores": [list(s) for s in lin.scores],
            "rejected": dict(lin.rejected),
            "rule": lin.rule,
            "recipe": lin.recipe,
        }
        self.known[cid] = out
        return out


def _node(nodes: dict[str, dict], addr: str) -> dict:
    return nodes.setdefault(
        addr,
        {
            "address": addr,
            "role": "-",
            "stake": 0,
            "rewards": 0,
            "withdrawn": 0,
            "slashed": 0,
            "slashes": [],
            "history": [],
        },
    )


def _round(e: Event, challenge_blocks: int | None) -> dict:
    a = e.args
    return {
        "round": a["round_id"],
        "opened": e.block,
        "commit_end": a["commit_end"],
        "reveal_end": a["reveal_end"],
        "validate_end": a["validate_end"],
        "challenge_end": None if challenge_blocks is None else a["validate_end"] + challenge_blocks,
        "status": "open",
        "commits": [],
        "reveals": [],
        "committee": [],
        "votes": [],
        "equivocated": [],
        "quorum": None,
        "claims": [],
        "slashes": [],
    }


def phase(r: dict, block: int) -> str:
    """An open round's phase at ``block`` (the contract's schedule; cf. ``fedchain status``)."""
    if block <= r["commit_end"]:
        return "commit"
    if block <= r["reveal_end"]:
        return "reveal"
    if block <= r["validate_end"]:
        return "vote"
    if r["challenge_end"] is not None and block <= r["challenge_end"]:
        return "challenge"
    return "finalize"


def build(
    events: list[Event],
    lineages: Lineages,
    block: int,
    tasks_info: dict[int, dict],
    evaluations: dict[int, dict[int, dict]] | None = None,
    stakes: dict[str, dict] | None = None,
) -> dict:
    """The whole view.

    ``tasks_info``: each task's record (``tasks(id)``: ``challenge_blocks``, committee
    sizes, ...) where known; ``evaluations``: per task and round ``{"accuracy", "loss",
    "source"}`` where someone published one; ``stakes``: contract state per node
    (``active``, ``role``, ``pending``) on a live chain, else stakes follow the events.
    """
    tasks: dict[int, dict] = {}
    rounds: dict[int, dict[int, dict]] = {}
    nodes: dict[str, dict] = {}
    evaluations = evaluations or {}
    last_round: dict[int, dict] = {}  # task -> the round opened last (slashes name no round)

    def history(addr: str, task: int | None, rnd: int | None, what: str, blk: int, amount: int | None = None) -> None:
        entry = {"task": task, "round": rnd, "what": what, "block": blk, "amount": amount}
        _node(nodes, addr)["history"].append(entry)

    for e in events:
        a = e.args
        t: Any = a.get("task_id")  # None for a staking event
        r: Any = a.get("round_id")
        if e.name == "Staked":
            n = _node(nodes, a["node"])
            n["role"], n["stake"] = ROLES.get(a["role"], str(a["role"])), a["active"]
            history(a["node"], None, None, "staked", e.block, a["amount"])
        elif e.name == "UnbondRequested":
            _node(nodes, a["node"])["stake"] -= a["amount"]
            history(a["node"], None, None, "unstaked", e.block, a["amount"])
        elif e.name == "Slashed":
            n = _node(nodes, a["node"])
            n["stake"] = max(0, n["stake"] - a["amount"])  # active first (staking.vy _slash)
            n["slashed"] += a["amount"]
            s = {
                "node": a["node"],
                "amount": a["amount"],
                "reason": describe(SlashReason, a["reason"]),
                "reporter": a["reporter"],
                "block": e.block,
            }
            n["slashes"].append(s)
            history(a["node"], None, None, f"slashed ({s['reason']})", e.block, a["amount"])
            for task_id in last_round:  # a slash names no round: the one it falls in, in each running task
                if not tasks[task_id]["finished"]:
                    _slashed_in(rounds[task_id], last_round[task_id], e.block)["slashes"].append(s)
        elif e.name == "PayoutWithdrawn":
            _node(nodes, a["node"])["withdrawn"] += a["amount"]
            history(a["node"], None, None, "withdrew", e.block, a["amount"])
        elif e.name == "TaskCreated":
            tasks[t] = {
                "id": t,
                "sponsor": a["sponsor"],
                "created": e.block,
                "num_rounds": a["num_rounds"],
                "pool": a["pool"],
                "initial_model": cid_from_digest(a["model_cid"]),
                "finished": None,
                "reclaimed": 0,
                **{k: tasks_info.get(t, {}).get(k) for k in ("trainers_per_round", "validators_per_round")},
            }
            rounds[t] = {}
        elif t not in tasks:
            continue  # another task id, logged before its creation (cf. model.py _task_events)
        elif e.name == "TaskFinished":
            tasks[t]["finished"] = e.block
        elif e.name == "PoolFunded":
            tasks[t]["pool"] += a["amount"]
        elif e.name == "PoolReclaimed":
            tasks[t]["reclaimed"] += a["amount"]
        elif e.name == "RoundOpened":
            rounds[t][r] = last_round[t] = _round(e, tasks_info.get(t, {}).get("challenge_blocks"))
        elif r in rounds[t]:
            _round_event(rounds[t][r], e, history)

    for t, task in tasks.items():
        rs = [rounds[t][k] for k in sorted(rounds[t])]
        for rd in rs:
            if rd["status"] == "open":
                rd["status"] = "finished" if task["finished"] else phase(rd, block)
            ev = evaluations.get(t, {}).get(rd["round"])
            rd["evaluation"] = ev
        task["decided"] = sum(rd["status"] in ("finalized", "failed") for rd in rs)
        task["finalized"] = sum(rd["status"] == "finalized" for rd in rs)
        task["status"] = "finished" if task["finished"] else (rs[-1]["status"] if rs else "created")
        task["rounds"] = rs
        task["lineage"] = _lineage(task, rs, lineages)
        for rd in rs:
            for c in rd["claims"]:
                _node(nodes, c["node"])["rewards"] += c["amount"]
    for addr, n in nodes.items():
        if stakes is not None and addr in stakes:
            n.update(stakes[addr])
    return {
        "block": block,
        "tasks": [tasks[k] for k in sorted(tasks)],
        "nodes": sorted(nodes.values(), key=lambda n: (n["role"], n["address"])),
    }


def _slashed_in(rounds: dict[int, dict], last: dict, block: int) -> dict:
    """The round decided in the slash's block (a revert slashes its voters as it opens the
    next round), else the round open then."""
    return next((rd for rd in rounds.values() if rd.get("decided") == block), last)


def _round_event(rd: dict, e: Event, history) -> None:
    a = e.args
    t, r = a["task_id"], a["round_id"]
    if e.name == "Committed":
        rd["commits"].append({"node": a["node"], "block": e.block})
        history(a["node"], t, r, "committed", e.block)
    elif e.name == "Revealed":
        cid = cid_from_digest(a["update_cid"])
        rd["reveals"].append(
            {"node": a["node"], "index": a["index"], "cid": cid, "samples": a["samples"], "block": e.block}
        )
        history(a["node"], t, r, f"revealed update {cid}", e.block)
    elif e.name == "Joined":
        rd["committee"].append({"validator": a["validator"], "weight": a["weight"], "block": e.block})
        history(a["validator"], t, r, f"joined the committee ({a['weight']} seat bps)", e.block)
    elif e.name == "Voted":
        rd["votes"].append(
            {
                "validator": a["validator"],
                "vote": "0x" + a["vote_hash"].hex(),
                "model_cid": cid_from_digest(a["model_cid"]),
                "block": e.block,
            }
        )
        history(a["validator"], t, r, "voted", e.block)
    elif e.name == "Equivocated":
        rd["equivocated"].append(a["validator"])
        history(a["validator"], t, r, "equivocated (two votes)", e.block)
    elif e.name == "QuorumReached":
        rd["quorum"] = {"vote": "0x" + a["vote_hash"].hex(), "block": e.block}
    elif e.name == "RoundFinalized":
        rd.update(
            status="finalized",
            decided=e.block,
            model_cid=cid_from_digest(a["model_cid"]),
            total_score=a["total_score"],
            rejected_count=bin(a["rejected"]).count("1"),
            trainer_budget=a["trainer_budget"],
            validator_budget=a["validator_budget"],
        )
    elif e.name == "RoundFailed":
        rd.update(status="failed", decided=e.block, reason=describe(FailReason, a["reason"]))
        rd["reverted"] = a["reason"] == FailReason.CHALLENGED
    elif e.name == "RewardClaimed":
        rd["claims"].append({"node": a["node"], "amount": a["amount"], "block": e.block})
        history(a["node"], t, r, "claimed a reward", e.block, a["amount"])


def _lineage(task: dict, rounds: list[dict], lineages: Lineages) -> dict[str, Any]:
    """Parent -> child for every finalized round, from the model blobs' own lineage; the
    chain's parent (the previous finalized model) is shown beside the blob's claim."""
    initial = lineages.get(task["initial_model"])
    versions = []
    parent = task["initial_model"]
    for rd in rounds:
        if rd["status"] != "finalized":
            continue
        lin = lineages.get(rd["model_cid"])
        v: dict[str, Any] = {"round": rd["round"], "model": rd["model_cid"], "parent": parent}
        if "error" in lin:
            v["error"] = lin["error"]
        else:
            rejected = lin["rejected"]
            v["contributors"] = [{"node": a, "score": s} for a, s in lin["scores"] if a not in rejected]
            v["rejected"] = [{"node": a, "reason": why} for a, why in rejected.items()]
            v["rule"] = lin["rule"]
            if lin["parent"] != parent:
                v["error"] = f"the blob names parent {lin['parent']}, the chain's previous model is {parent}"
        versions.append(v)
        parent = rd["model_cid"]
    out: dict[str, Any] = {"initial": task["initial_model"], "versions": versions}
    if "error" in initial:
        out["error"] = initial["error"]
    else:
        out["recipe"] = initial["recipe"]
    return out
