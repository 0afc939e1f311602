"""The gas snapshot as a regression gate (issue 16): a fresh measurement of every function
(benchmarks/gas/run.py's own, on the backend the snapshot records) may not exceed
benchmarks/gas/snapshot.json by more than 10% in any function."""

import importlib.util
import json
from pathlib import Path

import pytest

GAS = Path(__file__).resolve().parents[2] / "benchmarks" / "gas"


def _run_module():
    """benchmarks/gas/run.py, imported from its file (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gas_run", GAS / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _run_module()
SNAPSHOT = json.loads((GAS / "snapshot.json").read_text())
# like with like: the fresh measurement runs on the backend the snapshot records (~10 s on either)
MEASURED = [pytest.mark.slow, *([pytest.mark.anvil] if SNAPSHOT["backend"] == "anvil" else [])]


def test_regressions_name_the_function_and_both_figures():
    snapshot = {"claim": 100_000, "commit": 50_000, "vote": 90_000, "gone": 1_000}
    fresh = {"claim": 110_000, "commit": 55_001, "vote": 60_000, "new": 2_000}
    assert run.regressions(snapshot, fresh) == [
        "commit: 55,001 gas against 50,000 in the snapshot (+10.0%, more than +10%)",
        "gone: in the snapshot (1,000) but not measured",
        "new: measured (2,000) but not in the snapshot",
    ]  # claim at exactly +10% passes; vote got cheaper
    assert run.regressions(snapshot, fresh, tolerance_pct=0)[:2] == [
        "claim: 110,000 gas against 100,000 in the snapshot (+10.0%, more than +0%)",
        "commit: 55,001 gas against 50,000 in the snapshot (+10.0%, more than +0%)",
    ]
    assert run.regressions(snapshot, dict(snapshot)) == []


@pytest.mark.parametrize("backend", [pytest.param(SNAPSHOT["backend"], marks=MEASURED)])
def test_no_function_more_than_10_percent_above_the_snapshot(backend):
    found = run.regressions(SNAPSHOT["functions"], run.measure_snapshot_functions(backend))
    assert not found, "\n".join(
        [
            "gas against benchmarks/gas/snapshot.json (if intended, re-measure it with "
            "benchmarks/gas/run.py and say why in docs/gas.md):",
            *found,
        ]
    )
