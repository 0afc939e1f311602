"""How much of a validator committee can one identity hold? Monte-Carlo over sortition seeds.

Finding H-1 (SECURITY-REVIEW.md): a validator is selected with probability
min(1, k*w/T) and then counts with its whole stake w, so its expected committee weight
grows with w**2. This script measures, for one attacker identity holding a share x of the
validator stake, against ``--honest`` honest validators of 100 tokens each, over
``--seeds`` round seeds, under two committee rules:

- ``stake`` (fedchain.vy before the fix): a joined validator weighs its full stake and a
  result has a quorum when 3 * tally >= 2 * committee stake;
- ``seats`` (the fix): a joined validator weighs ``seats_bps`` and a result has a quorum
  when ``has_quorum`` (3 * tally >= 2 * max(committee seats, k * BPS // 3)).

Selection is the contract's own sortition through its Python twin
``fedchain.chain.commitments.is_selected``, with round seed keccak(uint256(seed number)).
Every selected validator joins; the attacker never votes with the honest validators, who
all vote the same result. Per share and rule it counts the rounds in which

- ``blocks``: the honest seats alone cannot reach quorum (the attacker, by staying silent,
  fails the round; it is not slashed for that);
- ``alone``: the attacker's seats alone are a quorum;

and the attacker's mean share of the committee's seats (0 in a round it is not selected).
It also counts ``base``: the rounds in which the honest seats would miss quorum even with
no attacker in the committee (too few honest validators drawn: the seats rule's floor), the
part of ``blocks`` that is not the attacker's doing.
Beside the Monte-Carlo counts it gives ``exact``: the same three figures computed from
the binomial law of the honest draws (the draws taken as uniform, i.e. keccak as a random
oracle), the value the Monte-Carlo estimates.

    .venv/bin/python benchmarks/committee/montecarlo.py              # what results.json holds
    .venv/bin/python benchmarks/committee/montecarlo.py --seeds 100  # quicker

Results and what they mean: docs/security-committee.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

from fedchain.chain.commitments import BPS, has_quorum, seats_bps

# --- the committee rules ------------------------------------------------------------------
# seats_bps and has_quorum are fedchain.vy's `_seats` (a joined validator's committee weight)
# and `_has_quorum` (when a tally leads the round), twinned in fedchain.chain.commitments and
# checked against the contract by tests/security/test_review_fixes_rounds.py.


def stake_weight(k: int, weight: int, total: int) -> int:
    """Today's rule (before the fix): a joined validator counts its full stake."""
    return weight


def stake_quorum(tally: int, committee: int, k: int) -> bool:
    """Today's rule (before the fix): 3 * tally >= 2 * committee stake, no floor."""
    return 3 * tally >= 2 * committee


RULES = {  # name -> (committee weight of a joined validator, quorum test)
    "stake": (stake_weight, stake_quorum),
    "seats": (seats_bps, has_quorum),
}

# ------------------------------------------------------------------------------------------

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOKEN = 10**18
HONEST_STAKE = 100 * TOKEN


def quorum(rule: str, tally: int, committee: int, k: int) -> bool:
    """A result needs at least one vote behind it, then the rule's test."""
    return tally > 0 and RULES[rule][1](tally, committee, k)


def outcome(
    rule: str, k: int, total: int, attacker_stake: int, attacker_in: bool, honest_in: int
) -> tuple[bool, bool, float, bool]:
    """(blocks, alone, attacker's share of committee weight, base) for one committee."""
    weigh = RULES[rule][0]
    a = weigh(k, attacker_stake, total) if attacker_in else 0
    h = honest_in * weigh(k, HONEST_STAKE, total)
    committee = a + h
    blocks = not quorum(rule, h, committee, k)
    alone = quorum(rule, a, committee, k)
    share = a / committee if committee else 0.0
    base = not quorum(rule, h, h, k)
    return blocks, alone, share, base


def attacker_stake_for(share: Fraction, honest: int) -> int:
    """The attacker's stake (wei) for it to hold ``share`` of the validator stake."""
    return int(honest * HONEST_STAKE * share / (1 - share))


def monte_carlo(shares: list[Fraction], seeds: int, honest: int, k: int) -> dict:
    from eth_utils import keccak

    from fedchain.chain.commitments import is_selected
    from fedchain.chain.interface import account_from_seed

    honest_nodes = [account_from_seed(f"validator{i}").address for i in range(honest)]
    attacker = account_from_seed("attacker").address
    out = {}
    for x in shares:
        stake = attacker_stake_for(x, honest)
        total = honest * HONEST_STAKE + stake
        acc = {r: {"blocks": 0, "alone": 0, "share_sum": 0.0, "base": 0} for r in RULES}
        selected_rounds = 0
        honest_sum = 0
        for s in range(seeds):
            seed = keccak(s.to_bytes(32, "big"))
            a_in = is_selected(seed, attacker, stake, total, k)
            h_in = sum(is_selected(seed, n, HONEST_STAKE, total, k) for n in honest_nodes)
            selected_rounds += a_in
            honest_sum += h_in
            for r in RULES:
                blocks, alone, sh, base = outcome(r, k, total, stake, a_in, h_in)
                acc[r]["blocks"] += blocks
                acc[r]["alone"] += alone
                acc[r]["share_sum"] += sh
                acc[r]["base"] += base
        out[str(x)] = {
            "attacker_stake_tokens": stake / TOKEN,
            "total_stake_tokens": total / TOKEN,
            "attacker_selected": selected_rounds / seeds,
            "mean_honest_selected": honest_sum / seeds,
            "rules": {
                r: {
                    "blocks": a["blocks"] / seeds,
                    "blocks_rounds": a["blocks"],
                    "blocks_upper95": wilson_upper(a["blocks"], seeds),
                    "alone": a["alone"] / seeds,
                    "alone_rounds": a["alone"],
                    "alone_upper95": wilson_upper(a["alone"], seeds),
                    "mean_share": a["share_sum"] / seeds,
                    "base": a["base"] / seeds,
                }
                for r, a in acc.items()
            },
        }
    return out


def exact(shares: list[Fraction], honest: int, k: int) -> dict:
    """The figures the Monte-Carlo estimates, from the binomial law of the honest draws."""
    out = {}
    for x in shares:
        stake = attacker_stake_for(x, honest)
        total = honest * HONEST_STAKE + stake
        pa = min(1.0, k * stake / total)
        ph = min(1.0, k * HONEST_STAKE / total)
        pmf = [math.comb(honest, j) * ph**j * (1 - ph) ** (honest - j) for j in range(honest + 1)]
        res = {}
        for r in RULES:
            b = al = sh = bs = 0.0
            for a_in, pa_in in ((True, pa), (False, 1 - pa)):
                if pa_in == 0:
                    continue
                for j, pj in enumerate(pmf):
                    blocks, alone, share, base = outcome(r, k, total, stake, a_in, j)
                    w = pa_in * pj
                    b += w * blocks
                    al += w * alone
                    sh += w * share
                    bs += w * base
            res[r] = {"blocks": b, "alone": al, "mean_share": sh, "base": bs}
        out[str(x)] = res
    return out


def wilson_upper(hits: int, n: int, z: float = 1.96) -> float:
    """Upper end of the 95% Wilson interval for a rate of hits/n."""
    if n == 0:
        return 1.0
    p = hits / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    m = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (c + m) / d


def pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def print_table(res: dict, ex: dict, seeds: int) -> None:
    head = ["share", "rule", "sel", "blocks", "exact", "base", "alone", "exact", "seat share", "exact"]
    rows = []
    for x, m in res.items():
        for r in RULES:
            mr, er = m["rules"][r], ex[x][r]
            rows.append(
                [
                    pct(float(Fraction(x))),
                    r,
                    pct(m["attacker_selected"]),
                    pct(mr["blocks"]),
                    pct(er["blocks"]),
                    pct(mr["base"]),
                    pct(mr["alone"]),
                    pct(er["alone"]),
                    pct(mr["mean_share"]),
                    pct(er["mean_share"]),
                ]
            )
    title = f"one attacker identity vs honest validators, {seeds} seeds"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
        print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        for row in rows:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        return
    t = Table(title=title)
    for h in head:
        t.add_column(h, justify="right")
    for row in rows:
        t.add_row(*row)
    Console(width=max(100, Console().width)).print(t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=1000, help="round seeds per share (default 1000)")
    p.add_argument("--honest", type=int, default=90, help="honest validators of 100 tokens (default 90)")
    p.add_argument("--k", type=int, default=10, help="validators_per_round (default 10)")
    p.add_argument(
        "--shares", default="0.05,0.10,0.15,0.20", help="attacker shares of the validator stake, comma-separated"
    )
    p.add_argument(
        "--out",
        default="benchmarks/committee/results.json",
        help="JSON output; a relative path is taken from the repository root",
    )
    args = p.parse_args(argv)
    shares = [Fraction(s.strip()) for s in args.shares.split(",") if s.strip()]
    if not all(0 < x < 1 for x in shares):
        p.error("shares must lie strictly between 0 and 1")

    t0 = time.perf_counter()
    res = monte_carlo(shares, args.seeds, args.honest, args.k)
    ex = exact(shares, args.honest, args.k)
    elapsed = time.perf_counter() - t0
    for x in res:
        for r in RULES:
            res[x]["rules"][r]["exact"] = ex[x][r]

    print_table(res, ex, args.seeds)
    print(f"{elapsed:.1f} s")
    out = Path(args.out)
    if not out.is_absolute():
        out = ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "config": {
            "seeds": args.seeds,
            "honest": args.honest,
            "honest_stake_tokens": HONEST_STAKE // TOKEN,
            "k": args.k,
            "shares": [str(x) for x in shares],
            "round_seed": "keccak(uint256(seed number)), seed number in range(seeds)",
            "nodes": "account_from_seed('validator{i}'), account_from_seed('attacker')",
            "quorum_floor_bps": args.k * BPS // 3,
        },
        "rules": {
            "stake": "weight = stake; quorum: 3 * tally >= 2 * committee_stake",
            "seats": "weight = max(BPS, k*w*BPS//T); quorum: 3 * tally >= 2 * max(committee_seats, k*BPS//3)",
        },
        "elapsed_s": round(elapsed, 2),
        "command": " ".join(
            [".venv/bin/python benchmarks/committee/montecarlo.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "results": res,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
