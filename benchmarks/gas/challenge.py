"""Gas of an on-chain challenge: one step with 10, 20 and 50 updates a round, per rule.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/gas/challenge.py

For each coordinate-wise rule (FedAvg, FedMedian, FedTrimmedAvg with beta 0.2)
and each N it builds a real network (N trainers with the simulation's CNN on
digits, one local epoch; three colluding validators), plays round 0 to its
leading vote, and challenges it: the gas of the ``challenge`` transaction (the
whole fraud proof: one step, these rules need no bisection) and of one
``slash_wrong_vote``. It also measures a failed challenge (a right value of an
honest FedAvg round, which costs the bond) at N = 20. A linear fit
gas = a + b * N per rule gives the cost per update and the largest N under 5M
gas. Scores: a wrong score (``challenge_score`` reads the trainer's whole update
and both whole models, so its cost follows the model size, not N) and a wrong
total (``challenge_total`` rebuilds the scores tree from every leaf). The chunk
is 64 values (a recipe constant the contract shares): each
update adds its chunk (256 bytes) and its proof to the calldata, and the
contract recomputes one value of the chunk.

Krum rules (key ``"krum"``): MultiKrum with ``num_malicious_nodes`` f = 2 at
N = 10, 20, 50, and Krum (same f) at N = 20, three colluding validators each
way; the step measured is what ``Evidence.model_fault()`` sends: against a
"model" collusion two steps, ``open_table`` (the distance table's root opened,
all N(N-1)/2 pairwise squared distances in calldata, Krum's selection recomputed
on chain and recorded) then ``challenge`` (one value of the selection's mean),
``challenge_distance_sum`` against
"distance-sum" (one bisection step: a table node's sums and its two children's,
3 vectors of N(N-1)/2 words) and ``challenge_distance_leaf`` against
"distance-leaf" (entry (i, j) of one leaf recomputed from chunk c of two
updates). The calldata grows as N^2, so each step gets a quadratic fit
gas = a + b N + c N^2 through its three MultiKrum points, the largest N under 5M
gas per step and for every step; the binding step is then measured at that N
and one past it (``boundary``). ``open_table`` binds (the table's N(N-1)/2
totals in calldata and memory, Krum's N^2 scoring on chain); past the fit it
grows a little faster than N^2. Bulyan (same f,
N = 20 and 50) uses the same table and the same two bisection steps; its
``open_table`` repeats Krum's scoring N - 2f times, about N^3, so its limit
is found by bisecting N between 20 and 50 with real runs
(``bulyan_max_updates_under_5M``). Only the Krum part::

    PYTHONPATH=src .venv/bin/python benchmarks/gas/challenge.py --krum-only

runs in about three minutes and merges its figures into the existing json; the
whole script takes about four.

Every step but ``open_table`` is committed to first (``commit_challenge``, a block
earlier: challenges.vy's commit-reveal); ``commit_gas`` is that transaction's gas,
``challenge_gas`` the step's alone.

Writes ``benchmarks/gas/challenge.json``. It runs on the embedded EVM, whose gas
equals anvil's receipts (benchmarks/gas/run.py checks that on every function);
on anvil a 50-trainer round would need phases longer than the simulation's
unbonding delay allows, since anvil mines one block per transaction.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from unittest.mock import patch

import numpy as np

from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import account_from_seed
from fedchain.learning import fixedpoint as fp
from fedchain.protocol import sponsor
from fedchain.protocol.challenge import commit, find_score_fault
from fedchain.protocol.distances import MAX_TABLE
from fedchain.sim.network import SimConfig, build_network, leading_evidence, play_to_vote

LIMIT = 5_000_000
RULES = ("fedavg", "fedmedian", "fedtrimmedavg")
HERE = Path(__file__).parent


def measure(n: int, colluders: int, rule: str = "fedavg") -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = SimConfig(trainers=n, validators=3, rounds=2, epochs=1, colluders=colluders, out=Path(out), rule=rule)
        net = build_network(cfg, chain=EmbeddedChain())
        v = play_to_vote(net)
        ev = leading_evidence(net, v)
        challenger = account_from_seed("challenger")
        bond = net.deployment.challenges.call("bond")
        net.chain.fund(challenger.address, 10**20)
        net.deployment.token.tx("mint", challenger.address, bond, sender=account_from_seed(f"{cfg.seed}:sponsor"))
        net.deployment.token.tx("approve", net.deployment.challenges.address, bond, sender=challenger)
        ch = ev.challenge(*(ev.first_wrong() or (0, 0)))
        committed = commit(net.deployment.challenges, challenger, "challenge", ch.args())
        net.chain.mine(1)
        rc = net.deployment.challenges.tx("challenge", *ch.args(), sender=challenger)
        row = {
            "rule": rule,
            "updates": len(ev.updates),
            "parameters": int(ev.parent.size),
            "chunks": int(fp.chunks(ev.parent).shape[0]),
            "depth": ch.depth,
            "calldata_bytes": len(net.deployment.challenges.artifact.codec.encode_call("challenge", ch.args())),
            "success": rc.event("Challenged").args["success"],
            "challenge_gas": rc.gas_used,
            "commit_gas": committed.gas_used,
        }
        if row["success"]:
            voter = net.validators[0].address
            row["slash_wrong_vote_gas"] = net.deployment.slashing.tx(
                "slash_wrong_vote", net.task_id, v.round_id, voter, sender=challenger
            ).gas_used
        return row


def measure_scores(n: int, collusion: str) -> dict:
    """A wrong score (whole-vector recomputation) or a wrong total (every leaf)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = SimConfig(trainers=n, validators=3, rounds=2, epochs=1, colluders=3, collusion=collusion, out=Path(out))
        net = build_network(cfg, chain=EmbeddedChain())
        v = play_to_vote(net)
        ch = find_score_fault(leading_evidence(net, v))
        challenger = account_from_seed("challenger")
        bond = net.deployment.challenges.call("bond")
        net.chain.fund(challenger.address, 10**20)
        net.deployment.token.tx("mint", challenger.address, bond, sender=account_from_seed(f"{cfg.seed}:sponsor"))
        net.deployment.token.tx("approve", net.deployment.challenges.address, bond, sender=challenger)
        committed = ch.commit(net.deployment.challenges, challenger)
        net.chain.mine(1)
        rc = net.deployment.challenges.tx(ch.fn, *ch.args(), sender=challenger)
        return {
            "function": ch.fn,
            "updates": n,
            "success": rc.event("Challenged").args["success"],
            "commit_gas": committed.gas_used,
            "calldata_bytes": len(net.deployment.challenges.artifact.codec.encode_call(ch.fn, ch.args())),
            "challenge_gas": rc.gas_used,
        }


KRUM_PARAMS = {"num_malicious_nodes": 2}
KRUM_CASES = [("multikrum", n) for n in (10, 20, 50)] + [("krum", 20)] + [("bulyan", n) for n in (20, 50)]
KRUM_STEPS = {
    "model": "challenge",
    "distance-sum": "challenge_distance_sum",
    "distance-leaf": "challenge_distance_leaf",
}
STEP_FNS = ("open_table", *KRUM_STEPS.values())


def measure_krum(n: int, rule: str, collusion: str) -> dict:
    """One Krum-rule fraud proof: whatever ``Evidence.model_fault`` sends against the collusion."""
    # past a rule's default commitment cap (sponsor.CHALLENGEABLE_COMMITS, review I-5: Bulyan 24),
    # which these measurements set: the sponsor may lift it (create_task's max_commits)
    with tempfile.TemporaryDirectory() as out, patch.dict(sponsor.CHALLENGEABLE_COMMITS, {rule: sponsor.MAX_COMMITS}):
        # Dirichlet(0.5) cannot give more than ~60 digits partitions 10 examples each: IID above 50
        cfg = SimConfig(
            trainers=n,
            validators=3,
            rounds=2,
            epochs=1,
            colluders=3,
            collusion=collusion,
            out=Path(out),
            rule=rule,
            rule_params=dict(KRUM_PARAMS),
            partition="dirichlet" if n <= 50 else "iid",
        )
        net = build_network(cfg, chain=EmbeddedChain())
        v = play_to_vote(net)
        ev = leading_evidence(net, v)
        ch = ev.model_fault()
        if ch is None or ch.fn != KRUM_STEPS[collusion]:
            raise SystemExit(
                f"{rule} {n} {collusion}: model_fault() gave {ch and ch.fn}, expected {KRUM_STEPS[collusion]}"
            )
        challenger = account_from_seed("challenger")
        bond = net.deployment.challenges.call("bond")
        net.chain.fund(challenger.address, 10**20)
        net.deployment.token.tx("mint", challenger.address, bond, sender=account_from_seed(f"{cfg.seed}:sponsor"))
        net.deployment.token.tx("approve", net.deployment.challenges.address, bond, sender=challenger)
        row = {
            "rule": rule,
            "updates": len(ev.updates),
            "reveals": len(ev.revealed),
            "pairs": len(ev.revealed) * (len(ev.revealed) - 1) // 2,
            "collusion": collusion,
            "function": ch.fn,
        }
        if getattr(ch, "opening", None) is not None:  # the value check needs the table opened: its own step
            op = net.deployment.challenges.tx("open_table", *ch.opening.args(), sender=challenger)
            row |= {
                "open_table_gas": op.gas_used,
                "open_table_calldata_bytes": len(
                    net.deployment.challenges.artifact.codec.encode_call("open_table", ch.opening.args())
                ),
            }
        row["commit_gas"] = ch.commit(net.deployment.challenges, challenger).gas_used
        net.chain.mine(1)
        rc = net.deployment.challenges.tx(ch.fn, *ch.args(), sender=challenger)
        return row | {
            "success": rc.event("Challenged").args["success"],
            "calldata_bytes": len(net.deployment.challenges.artifact.codec.encode_call(ch.fn, ch.args())),
            "challenge_gas": rc.gas_used,
        }


def quadratic_fit(points: list[tuple[int, int]]) -> dict:
    """gas = a + b n + c n^2 through three points; the largest n under 5M gas."""
    c, b, a = np.polyfit([x for x, _ in points], [y for _, y in points], 2)  # exact through three points
    n = 0
    while n < 10_000 and a + b * (n + 1) + c * (n + 1) ** 2 < LIMIT:
        n += 1
    return {"a": round(float(a)), "b": round(float(b), 1), "c": round(float(c), 2), "max_updates_under_5M": n}


def costliest(row: dict) -> int:
    """The dearer of a row's steps (a value check's row also holds its open_table)."""
    return max(row["challenge_gas"], row.get("open_table_gas", 0))


def krum(args: argparse.Namespace) -> dict:
    rows = [measure_krum(n, rule, c) for rule, n in KRUM_CASES for c in KRUM_STEPS]
    # open_table (the root's sums and the selection) is a step of its own before the value check
    rows += [
        {
            **{k: r[k] for k in ("rule", "updates", "reveals", "pairs", "collusion")},
            "function": "open_table",
            "success": True,
            "calldata_bytes": r["open_table_calldata_bytes"],
            "challenge_gas": r["open_table_gas"],
        }
        for r in rows
        if "open_table_gas" in r
    ]
    # Bulyan's selection (repeated Krum) grows about as N^3: its limit is searched, not fitted
    lo, hi = 20, 50
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if costliest(measure_krum(mid, "bulyan", "model")) < LIMIT else (lo, mid)
    bulyan_limit = [measure_krum(n, "bulyan", "model") for n in (lo, hi)]
    fits = {
        fn: quadratic_fit(
            [(r["updates"], r["challenge_gas"]) for r in rows if r["rule"] == "multikrum" and r["function"] == fn]
        )
        for fn in STEP_FNS
    }
    fitted = min(f["max_updates_under_5M"] for f in fits.values())
    binding = next(fn for fn in STEP_FNS if fits[fn]["max_updates_under_5M"] == fitted)
    collusion = next((c for c, fn in KRUM_STEPS.items() if fn == binding), "model")
    limit = min(fitted, MAX_TABLE)  # a table covers at most 64 reveals, whatever the gas
    # the fit checked where it matters: the binding step measured at the limit (and one past it)
    boundary = [measure_krum(n, "multikrum", collusion) for n in (limit, limit + 1) if n <= MAX_TABLE]
    result = {
        "rule_params": KRUM_PARAMS,
        "fit_kind": "quadratic in N through the three multikrum points",
        "rows": rows,
        "fit": fits,
        "max_updates_every_step_under_5M": limit,
        "binding_step": binding,
        "boundary": boundary,
        "bulyan_boundary": bulyan_limit,
        "bulyan_max_updates_under_5M": lo,
    }
    print("krum rules (f = 2; Bulyan needs n >= 4f + 3 = 11), one step each (embedded EVM):")
    for r in rows:
        print(
            f"  {r['rule']:>9} {r['updates']:3d} updates {r['function']:>24}: {r['challenge_gas']:>10,} gas "
            f"({r['challenge_gas'] / LIMIT:.2f} of 5M), calldata {r['calldata_bytes']:,} B "
            f"(success={r['success']})"
        )
    for fn, f in fits.items():
        print(
            f"  {fn}: {f['a']:,} + {f['b']} N + {f['c']} N^2 -> at most {f['max_updates_under_5M']} updates "
            f"under 5M gas"
        )
    print(
        f"  every MultiKrum step under 5M gas up to N = {limit} (fit: {fitted}, {binding} binds; a table holds "
        f"at most {MAX_TABLE}); measured there: " + ", ".join(f"{r['updates']}: {costliest(r):,}" for r in boundary)
    )
    print(
        f"  every Bulyan step under 5M gas up to N = {lo}; its dearest step there and one past: "
        + ", ".join(f"{r['updates']}: {costliest(r):,}" for r in bulyan_limit)
    )
    sys.stdout.flush()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "challenge.json")
    p.add_argument(
        "--krum-only", action="store_true", help="measure only the Krum rules and merge them into the existing json"
    )
    args = p.parse_args()
    if args.krum_only:
        result = json.loads(args.out.read_text()) if args.out.exists() else {}
        result["krum"] = krum(args)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return
    rows = [measure(n, 3, rule) for rule in RULES for n in (10, 20, 50)]
    failed = measure(20, 0)
    scores = [measure_scores(n, c) for c in ("score", "total") for n in (10, 20, 50)]
    fits = {}
    for rule in RULES:
        (x0, y0), (x1, y1) = [(r["updates"], r["challenge_gas"]) for r in rows if r["rule"] == rule][::2]
        per_update = (y1 - y0) / (x1 - x0)
        base = y0 - per_update * x0
        fits[rule] = {
            "base_gas": round(base),
            "gas_per_update": round(per_update),
            "max_updates_under_5M": int((LIMIT - base) // per_update),
        }
    result = {
        "backend": "embedded",
        "chunk_size": fp.CHUNK_SIZE,
        "rows": rows,
        "failed_challenge": failed,
        "fit": fits,
        "scores": scores,
        "krum": krum(args),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"challenge gas (embedded EVM = anvil receipts; chunk of {fp.CHUNK_SIZE} values, "
        f"{rows[0]['parameters']} parameters, proof depth {rows[0]['depth']}):"
    )
    for r in rows:
        print(
            f"  {r['rule']:>13} {r['updates']:3d} updates: challenge {r['challenge_gas']:>9,} gas "
            f"({r['challenge_gas'] / LIMIT:.2f} of 5M), calldata {r['calldata_bytes']:,} B, "
            f"slash_wrong_vote {r.get('slash_wrong_vote_gas', 0):,}"
        )
    print(
        f"  failed challenge (fedavg, {failed['updates']} updates): {failed['challenge_gas']:,} gas "
        f"(success={failed['success']})"
    )
    for r in scores:
        print(
            f"  {r['function']:>15} {r['updates']:3d} updates: {r['challenge_gas']:>9,} gas "
            f"({r['challenge_gas'] / LIMIT:.2f} of 5M), calldata {r['calldata_bytes']:,} B (success={r['success']})"
        )
    for rule, f in fits.items():
        print(
            f"  {rule}: {f['base_gas']:,} + {f['gas_per_update']:,} per update -> at most "
            f"{f['max_updates_under_5M']} updates in one step under 5M gas (a round allows 256 reveals)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
