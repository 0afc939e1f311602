"""``fedchain bench``: benchmarks whose results are committed under benchmarks/."""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Benchmarks (results under benchmarks/).", no_args_is_help=True, add_completion=False)


def _names(value: str | None, known, what: str) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise typer.BadParameter(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


@app.command()
def robustness(
    quick: Annotated[
        bool,
        typer.Option(
            help="A small grid for CI: digits, FedAvg and median, sign flip and "
            "backdoor at 30%, 1 seed, 2 rounds, one process; one withholder run "
            "on the chain."
        ),
    ] = False,
    out: Annotated[Path, typer.Option(help="Where README.md, heatmap.png and results.json go.")] = Path(
        "benchmarks/robustness"
    ),
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0,1,2",
    datasets: Annotated[
        str, typer.Option(help="Comma-separated datasets (digits, mnist1d, mnist).")
    ] = "digits,mnist1d",
    rules: Annotated[str | None, typer.Option(help="Comma-separated aggregation rules (default: all).")] = None,
    attacks: Annotated[str | None, typer.Option(help="Comma-separated update attacks (default: all).")] = None,
    fractions: Annotated[str, typer.Option(help="Comma-separated Byzantine shares (0 is always run).")] = "0.2,0.3",
    rounds: Annotated[int, typer.Option(help="Rounds per run.")] = 8,
    workers: Annotated[int, typer.Option(help="Worker processes (one torch thread each).")] = 2,
    add: Annotated[
        bool,
        typer.Option(
            help="Add this run's datasets to the results already in --out (same rounds, "
            "seeds and rules), e.g. one dataset per invocation."
        ),
    ] = False,
    chain_attacks: Annotated[
        str | None,
        typer.Option(
            help="Attacks run as full simulations on the chain for rewards and slashes (default: copier, withholder, "
            "sybil, free-rider, ALIE); '' for none."
        ),
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated rule variants (VARIANTS in fedchain.bench.robustness: NNM, client momentum, f "
            "matched to the attack share) instead of --rules, with no-attack FedAvg as the reference; no chain "
            "runs; the report says each variant's worst case."
        ),
    ] = None,
) -> None:
    """Every aggregation rule against every attack at 0% and the given Byzantine shares.

    The accuracy grid runs the learning path without the chain, through the
    validators' own aggregate_round (rule and scores); the protocol attacks and
    the on-chain reward check are whole simulations on the embedded chain.
    """
    from fedchain.bench import robustness as rb
    from fedchain.learning.aggregate import RULES
    from fedchain.learning.data import DATASETS
    from fedchain.sim.attacks import ATTACKS, UPDATE_ATTACKS

    console = Console()
    if quick:
        q = rb.QUICK
        ds, rl, at, fr, sd, rounds = q["datasets"], q["rules"], q["attacks"], q["fractions"], q["seeds"], q["rounds"]
        chain, workers = q["chain_attacks"], q["workers"]
    else:
        ds = _names(datasets, DATASETS, "dataset")
        rl = _names(rules, list(RULES), "rule") or list(RULES)
        at = _names(attacks, UPDATE_ATTACKS, "update attack") or list(UPDATE_ATTACKS)
        fr = [float(f) for f in fractions.split(",") if f.strip()]
        sd = [int(s) for s in seeds.split(",") if s.strip()]
        chain = (
            _names(chain_attacks, list(ATTACKS), "attack")
            if chain_attacks is not None
            else ["copier", "withholder", "sybil", "freerider", "alie"]
        )
    use_variants = variants is not None and not quick
    if use_variants:
        rl, chain = _names(variants, list(rb.VARIANTS), "variant"), []
    setup = rb.Setup(rounds=rounds)
    # the exact command, every choice spelled out, whatever defaults were used
    command = (
        shlex.join(["fedchain", "bench", "robustness", "--quick", "--out", str(out)])
        if quick
        else shlex.join(
            [
                "fedchain",
                "bench",
                "robustness",
                "--out",
                str(out),
                "--seeds",
                ",".join(map(str, sd)),
                "--datasets",
                ",".join(ds),
                *(["--variants" if use_variants else "--rules", ",".join(rl)]),
                "--attacks",
                ",".join(at),
                "--fractions",
                ",".join(map(str, fr)),
                "--rounds",
                str(rounds),
                "--workers",
                str(workers),
                *([] if use_variants else ["--chain-attacks", ",".join(chain)]),
            ]
        )
    )
    cells = rb.variant_cells(ds, rl, at, fr, sd) if use_variants else rb.grid(ds, rl, at, fr, sd)
    console.print(
        f"[bold]fedchain bench robustness[/]: {len(cells)} runs ({', '.join(ds)}; {len(rl)} rules; "
        f"{len(at)} attacks at {fr}; seeds {sd}; {rounds} rounds of {setup.epochs} local epochs) "
        f"in {workers} processes, then {len(chain) * len(fr)} runs on the chain"
    )
    start, done = time.perf_counter(), [0]

    out.mkdir(parents=True, exist_ok=True)
    partial = out / "runs.partial.jsonl"  # every finished run at once: a crash loses nothing

    def on_cell(row: dict) -> None:
        with partial.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        done[0] += 1
        extra = f", attack success {row['attack_success_rate']:.3f}" if "attack_success_rate" in row else ""
        share = row["honest_reward_share"]
        console.print(
            f"[{done[0]:>4}/{len(cells)}] {row['dataset']} seed {row['seed']} {row['rule']:<16} "
            f"{row['attack']:<10} {row['byzantine_fraction']:.0%}: accuracy {row['accuracy']:.3f}"
            f"{extra}, honest reward share {'–' if share is None else f'{share:.3f}'}, "
            f"{row['seconds']:.1f} s",
            highlight=False,
        )

    rows = rb.run_cells(cells, setup, workers=workers, on_cell=on_cell)
    chain_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, attack in enumerate(chain):
            for f in fr:
                row = rb.chain_run(ds[0], "fedavg", attack, f, sd[0], setup, Path(tmp) / f"{k}-{f}")
                chain_rows.append(row)
                console.print(
                    f"on chain: {attack} {f:.0%}: honest reward share {row['honest_reward_share']}, "
                    f"honest slashed {row['honest_slashed']}, attackers slashed {row['attackers_slashed']}, "
                    f"{row['seconds']:.0f} s",
                    highlight=False,
                )
    result = {
        "commands": [command],
        "setup": asdict(setup),
        "datasets": ds,
        "rules": rl,
        "attacks": at,
        "fractions": fr,
        "seeds": sd,
        "workers": workers,
        "models": {d: rb.MODELS[d] for d in ds},
        "seconds": time.perf_counter() - start,
        "cpu_count": rb.cpu_count(),
        "chain_runs": chain_rows,
        "runs": [r | {"accuracy_curve": [round(a, 4) for a in r["accuracy_curve"]]} for r in rows],
    }
    if add and (out / "results.json").exists():
        result = rb.merge(json.loads((out / "results.json").read_text()), result)
    if use_variants:
        result["variants"] = {name: asdict(rb.VARIANTS[name]) for name in rl}
        result["cells"] = rb.summarize_variants(result["runs"])
        result["worst_cases"] = rb.worst_cases(result["cells"])
        rb.write_variants_report(result, out)
    else:
        result["cells"] = rb.summarize(result["runs"])
        result["worst_cases"] = rb.worst_cases(result["cells"])
        rb.write_report(result, out)
    partial.unlink(missing_ok=True)
    heat = "" if use_variants else f"{out / 'heatmap.png'}, "
    console.print(f"written {out / 'README.md'}, {heat}{out / 'results.json'} in {result['seconds'] / 60:.1f} min")
