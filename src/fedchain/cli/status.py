"""``fedchain status``: a task, its rounds, and every node's stake, rewards and slashes, from the chain."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from fedchain.chain.layout import FailReason, SlashReason, describe
from fedchain.cli._common import DeploymentOpt, PeerOpt, RpcOpt, connect, errors, fmt_tokens

ROLES = {0: "-", 1: "trainer", 2: "validator"}


def status(
    task: Annotated[int | None, typer.Option(help="Task to show (default: the newest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Show it again at every new block, until Ctrl-C.")] = False,
    deployment: DeploymentOpt = Path("deployment.json"),
    rpc: RpcOpt = None,
    peer: PeerOpt = [],
    blobs: Annotated[
        list[Path], typer.Option("--blobs", help="Local blob folder, repeatable; tried before HTTP peers.")
    ] = [],
) -> None:
    """Show a task, its rounds, and every node's stake, rewards and slashes.

    The task's round, phase and pool; per round the commits, reveals, committee,
    votes and outcome, and the finalized model's accuracy and loss on the
    sponsor's test data where the sponsor published them (`task create --test`);
    per node its stake, the rewards it claimed, what it withdrew, what is
    pending, and what was slashed and why; each rejected update with the reason
    its round's model blob records (fetched from the peers, checked against its
    CID). Read from the chain's events and storage: needs no account.
    """
    from fedchain.cli import checks

    checks.url(rpc, "--rpc")
    for url in peer:
        checks.url(url, "--peer")
    with errors():
        chain, dep, info = connect(deployment, rpc)
        store = blob_reader(dep, deployment, peer, blobs)
        try:
            show(chain, dep, task, store, as_json, watch)
        except KeyboardInterrupt:  # how --watch ends
            return


def show(chain, dep, task: int | None, store, as_json: bool, watch: bool) -> None:
    """The status once, or (``watch``) again at every new block."""
    shown = -1
    while True:
        block = chain.block_number()
        if block != shown:
            report = collect(dep, task, store)
            if as_json:
                typer.echo(json.dumps(report, indent=2))
            else:
                if watch:
                    typer.echo("\x1b[2J\x1b[H", nl=False)  # clear the terminal, cursor home
                render(report)
            shown = block
        if not watch:
            return
        time.sleep(0.25)


def blob_reader(dep, deployment: Path, peer: list[str], folders: list[Path]):
    """Where status reads model blobs: --blobs folders, --peer, the peers file, and the
    endpoints announced on chain. Every blob is checked against its CID."""
    from fedchain.cli._common import peers_file_for
    from fedchain.protocol.endpoints import ChainDirectory
    from fedchain.storage.http import HttpBlobStore, Peers
    from fedchain.storage.store import LocalBlobStore, MultiStore

    directory = ChainDirectory(dep) if dep.endpoints is not None else None
    http = HttpBlobStore(Peers(peer, peers_file_for(deployment), directory=directory))
    return MultiStore([*(LocalBlobStore(f) for f in folders), http])


def collect(dep, task_id: int | None, store=None) -> dict:
    """Everything ``status`` shows, as plain data; with a blob ``store``, each rejected
    update's reason too (from its round's model blob)."""
    fc = dep.fedchain
    block = fc.chain.block_number()
    events = fc.events(dep.block)
    created = [e.args["task_id"] for e in events if e.name == "TaskCreated"]
    out: dict = {"chain_id": fc.chain.chain_id, "fedchain": fc.address, "block": block, "tasks": created}
    nodes: dict[str, dict] = {}

    def node(addr: str) -> dict:
        return nodes.setdefault(
            addr,
            {
                "address": addr,
                "role": "-",
                "stake": 0,
                "rewards": 0,
                "payout_pending": 0,
                "withdrawn": 0,
                "slashed": 0,
                "slashes": 0,
            },
        )

    for e in events:
        a = e.args
        if e.name == "Staked":
            node(a["node"])
        elif e.name == "Slashed":
            n = node(a["node"])
            n["slashed"] += a["amount"]
            n["slashes"] += 1
            n.setdefault("slashed_for", []).append(describe(SlashReason, a["reason"]))
            node(a["reporter"]).setdefault("reported", 0)
            nodes[a["reporter"]]["reported"] += 1
        elif e.name == "Challenged":
            node(a["challenger"]).setdefault("challenges", 0)
            nodes[a["challenger"]]["challenges"] += 1
        elif e.name == "PayoutWithdrawn":
            node(a["node"])["withdrawn"] += a["amount"]
    for addr, n in nodes.items():
        s = fc.call("stakes", addr)
        n["role"], n["stake"] = ROLES.get(s["role"], str(s["role"])), s["active"]
        if s["role"] == 0 and (n.get("reported") or n.get("challenges")):
            n["role"] = "watcher"  # no stake: it only reports and challenges
        n["payout_pending"] = fc.call("payouts", addr)
    out["slashes"] = [
        {
            "node": e.args["node"],
            "amount": e.args["amount"],
            "block": e.block,
            "reason": describe(SlashReason, e.args["reason"]),
            "reporter": e.args["reporter"],
        }
        for e in events
        if e.name == "Slashed"
    ]
    if not created:
        out["task"], out["rounds"], out["nodes"] = None, [], list(nodes.values())
        return out
    task_id = task_id if task_id is not None else max(created)
    if task_id not in created:
        from fedchain.errors import FedchainError

        raise FedchainError(f"no task {task_id}; tasks: {created}")
    t = fc.call("tasks", task_id)
    mine = [e for e in events if e.args.get("task_id") == task_id]
    rounds: dict[int, dict] = {}
    for e in mine:
        a = e.args
        if e.name == "RoundOpened":
            rounds[a["round_id"]] = {
                "round": a["round_id"],
                "opened": e.block,
                "commit_end": a["commit_end"],
                "reveal_end": a["reveal_end"],
                "validate_end": a["validate_end"],
                "challenge_end": a["validate_end"] + t["challenge_blocks"],
                "commits": 0,
                "reveals": 0,
                "committee": 0,
                "votes": 0,
                "status": "open",
            }
        r = rounds.get(a.get("round_id"))
        if r is None:
            continue
        if e.name == "Committed":
            r["commits"] += 1
            node(a["node"]).setdefault("rounds", {})[a["round_id"]] = "committed"
        elif e.name == "Revealed":
            r["reveals"] += 1
            node(a["node"]).setdefault("rounds", {})[a["round_id"]] = "revealed"
        elif e.name == "Joined":
            r["committee"] += 1
            node(a["validator"]).setdefault("rounds", {})[a["round_id"]] = "joined"
        elif e.name == "Voted":
            r["votes"] += 1
            node(a["validator"]).setdefault("rounds", {})[a["round_id"]] = "voted"
        elif e.name == "RewardClaimed":
            node(a["node"])["rewards"] += a["amount"]
        elif e.name == "RoundFinalized":
            from fedchain.storage.cid import cid_from_digest

            r.update(
                status="finalized",
                model_cid=cid_from_digest(a["model_cid"]),
                total_score=a["total_score"],
                rejected=bin(a["rejected"]).count("1"),
                trainer_budget=a["trainer_budget"],
                validator_budget=a["validator_budget"],
            )
        elif e.name == "RoundFailed":
            r.update(status="failed", reason=describe(FailReason, a["reason"]))
    current = rounds.get(t["round"])
    if current is not None and current["status"] == "open":
        b = block
        current["status"] = (
            "commit"
            if b <= current["commit_end"]
            else "reveal"
            if b <= current["reveal_end"]
            else "vote"
            if b <= current["validate_end"]
            else "challenge"
            if b <= current["challenge_end"]
            else "finalize"
        )
    out["task"] = {
        "id": task_id,
        "sponsor": t["sponsor"],
        "rounds": t["num_rounds"],
        "round": t["round"],
        "finished": t["finished"],
        "pool_left": t["pool"],
        "trainers_per_round": t["trainers_per_round"],
        "validators_per_round": t["validators_per_round"],
        "min_reveals": t["min_reveals"],
        "phase": "finished" if t["finished"] else (current or {}).get("status", "-"),
    }
    out["rounds"] = [rounds[k] for k in sorted(rounds)]
    add_reports(dep, task_id, t["sponsor"], out["rounds"])
    if store is not None:
        add_rejections(store, out["rounds"], node)
    out["nodes"] = sorted(nodes.values(), key=lambda n: (n["role"], n["address"]))
    for n in out["nodes"]:
        n["rounds"] = {str(k): v for k, v in sorted(n.get("rounds", {}).items())}
    return out


_REJECTED: dict[str, dict[str, str]] = {}  # model CID -> its lineage's rejected updates (blobs never change)


def add_rejections(store, rounds: list[dict], node) -> None:
    """Each finalized round's rejected updates with their reasons, as its model blob's
    lineage records them (the blob checked against the CID on chain); also per node."""
    from fedchain.errors import FedchainError
    from fedchain.protocol.round import Lineage

    for r in rounds:
        if r["status"] != "finalized" or not r["rejected"]:
            continue
        cid = str(r["model_cid"])
        if cid not in _REJECTED:
            try:
                _REJECTED[cid] = dict(Lineage.from_blob(store.get(r["model_cid"])).rejected)
            except FedchainError as e:
                r["rejections"] = f"unknown: model blob {cid} not read ({e})"
                continue
        r["rejections"] = _REJECTED[cid]
        for who, why in _REJECTED[cid].items():
            node(who).setdefault("rejected", []).append({"round": r["round"], "reason": why})


def add_reports(dep, task_id: int, sponsor: str, rounds: list[dict]) -> None:
    """Each round's accuracy and loss from the sponsor's evaluation reports on chain (None
    where there is none), and the report's state for a finalized round: "published",
    "missing", or "refused: why" (a report that is malformed or names another model)."""
    from fedchain.protocol.evaluation import read_reports, report_fields

    models = {r["round"]: r["model_cid"] for r in rounds if r["status"] == "finalized"}
    found = read_reports(dep.reports, task_id, sponsor, models, dep.block) if dep.reports is not None else {}
    for r in rounds:
        if r["status"] != "finalized":
            r.update(accuracy=None, loss=None, report=None)
        elif dep.reports is None:
            r.update(accuracy=None, loss=None, report="no reports contract in this deployment")
        else:
            r.update(report_fields(found.get(r["round"])))


def render(report: dict) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(
        f"chain {report['chain_id']} at block {report['block']}, fedchain {report['fedchain']}; "
        f"tasks: {', '.join(map(str, report['tasks'])) or 'none'}"
    )
    t = report["task"]
    if t is None:
        console.print("no task yet: create one with `fedchain task create`")
    else:
        head = Table(title=f"Task {t['id']}", show_header=False)
        head.add_row("sponsor", short(t["sponsor"]))
        head.add_row("round", f"{t['round'] + 1 if not t['finished'] else t['rounds']} of {t['rounds']}")
        head.add_row("phase", t["phase"])
        head.add_row(
            "committees",
            f"{t['trainers_per_round']} trainers, {t['validators_per_round']} validators "
            f"expected; at least {t['min_reveals']} reveals",
        )
        head.add_row("pool left", f"{fmt_tokens(t['pool_left'])} tokens")
        console.print(head)
        rounds = Table(title="Rounds")
        evaluated = any(r["report"] == "published" or str(r["report"]).startswith("refused") for r in report["rounds"])
        cols = ["round", "blocks", "commits", "reveals", "committee", "votes", "outcome", "model", "rewards"]
        for col in cols + (["accuracy", "loss"] if evaluated else []):
            rounds.add_column(col)
        for r in report["rounds"]:
            outcome = r["status"]
            if outcome == "failed":
                outcome = f"failed: {r['reason']}"
            elif outcome == "finalized" and r["rejected"]:
                outcome = f"finalized ({r['rejected']} rejected)"
            paid = (
                f"{fmt_tokens(r['trainer_budget'])} + {fmt_tokens(r['validator_budget'])}"
                if r["status"] == "finalized"
                else ""
            )
            cells = [
                str(r["round"]),
                f"{r['opened']}-{r['challenge_end']}",
                str(r["commits"]),
                str(r["reveals"]),
                str(r["committee"]),
                str(r["votes"]),
                outcome,
                short(r.get("model_cid") or ""),
                paid,
            ]
            rounds.add_row(*cells, *(figures(r) if evaluated else []))
        console.print(rounds)
    nodes = Table(title="Nodes (tokens; rewards claimed in this task, slashes in any)")
    for col in ("address", "role", "stake", "rewards", "withdrawn", "pending", "slashed", "last rounds"):
        nodes.add_column(col, justify="left" if col in ("address", "role", "last rounds") else "right")
    for n in report["nodes"]:
        last = ", ".join(f"{k}:{v}" for k, v in list(n.get("rounds", {}).items())[-3:])
        nodes.add_row(
            short(n["address"]),
            n["role"],
            fmt_tokens(n["stake"]),
            fmt_tokens(n["rewards"]),
            fmt_tokens(n["withdrawn"]),
            fmt_tokens(n["payout_pending"]),
            fmt_tokens(n["slashed"]) + (f" ({n['slashes']}x)" if n["slashes"] else ""),
            last,
        )
    console.print(nodes)
    rejected = [(r["round"], who, why) for r in report["rounds"] if isinstance(r.get("rejections"), dict)
                for who, why in r["rejections"].items()]  # fmt: skip
    unread = [r for r in report["rounds"] if isinstance(r.get("rejections"), str)]
    if rejected or unread:
        rj = Table(title="Rejected updates (reasons from each round's model blob)")
        for col in ("round", "trainer", "reason"):
            rj.add_column(col)
        for rnd, who, why in rejected:
            rj.add_row(str(rnd), short(who), why)
        for r in unread:
            rj.add_row(str(r["round"]), f"{r['rejected']} updates", r["rejections"])
        console.print(rj)
    if report["slashes"]:
        sl = Table(title="Slashes")
        for col in ("block", "node", "amount", "reason", "reporter"):
            sl.add_column(col)
        for s in report["slashes"]:
            sl.add_row(str(s["block"]), short(s["node"]), fmt_tokens(s["amount"]), s["reason"], short(s["reporter"]))
        console.print(sl)


def figures(r: dict) -> list[str]:
    """A round's accuracy and loss cells: the figures, or what became of its report."""
    if r["accuracy"] is not None:
        return [f"{r['accuracy']:.3f}", f"{r['loss']:.3f}"]
    if r["report"] is None:
        return ["", ""]
    return [r["report"].split(":")[0], ""]  # "missing", "refused" (--json says why)


def short(text: str) -> str:
    """``0x1234…abcd``: enough to tell nodes apart in a table (--json has the full value)."""
    return text if len(text) <= 14 else f"{text[:8]}…{text[-4:]}"
