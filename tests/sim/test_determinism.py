"""Same seed, same aggregate root, bit for bit: across runs and across numpy's
CPU dispatch paths (the consensus arithmetic is integer and must not care)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json, sys
from numpy.lib.introspect import opt_func_info
from fedchain.sim.network import SimConfig
from fedchain.sim.simulate import run
report = run(SimConfig(trainers=5, validators=2, rounds=2, model="mlp", epochs=2, lr=0.1, seed=7,
                       out=sys.argv[1]), baselines=False)
kernel = opt_func_info(func_name="add", signature="int64")["add"]["qqq"]["current"]
print(json.dumps({"root": report["aggregate_root"], "kernel": kernel}))
"""


def run_sim(tmp_path, name: str, **env) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / name)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_aggregate_root_is_identical_across_runs_and_cpu_dispatch(tmp_path):
    a = run_sim(tmp_path, "a")
    b = run_sim(tmp_path, "b")
    restricted = run_sim(tmp_path, "c", NPY_DISABLE_CPU_FEATURES="X86_V4 X86_V3")
    assert restricted["kernel"].startswith("baseline"), restricted  # the restriction took effect
    assert a["root"] == b["root"] == restricted["root"]
