"""The chain-free robustness grid is the on-chain simulation without the chain:
same model, bit for bit, and the same rewards, to the wei. And the quick
benchmark writes what the issue asks for."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fedchain.bench import robustness as rb
from fedchain.cli import app

TINY = rb.Setup(trainers=6, rounds=2, epochs=1, lr=0.1, model="mlp")


@pytest.mark.parametrize(
    "rule,attack", [("fedmedian", "alie"), ("fedavg", "backdoor"), ("centeredclipping", "signflip")]
)
def test_a_grid_cell_equals_a_full_run_on_the_chain(tmp_path, rule, attack):
    cell = rb.run_cell(rb.Cell("digits", rule, attack, 2 / 6, 2), TINY)
    chain = rb.chain_run("digits", rule, attack, 2 / 6, 2, TINY, tmp_path)
    assert chain["rounds_finalized"] == TINY.rounds
    assert cell["model_root"] == chain["model_root"]
    assert cell["rewards_wei"] == chain["rewards_wei"]
    assert cell["honest_reward_share"] == pytest.approx(chain["honest_reward_share"], abs=1e-12)
    assert sum(cell["rewards_wei"]) > 0


def test_rule_parameters_fit_each_rule_at_twenty_trainers():
    assert rb.rule_params("krum", 20) == {"num_malicious_nodes": 6}
    assert rb.rule_params("bulyan", 20) == {"num_malicious_nodes": 4}  # n >= 4f + 3
    assert rb.rule_params("fedtrimmedavg", 20) == {"beta": 0.3}
    assert rb.uses_root_set("fltrust") and not rb.uses_root_set("fedmedian")


def test_quick_benchmark_writes_markdown_heatmap_and_results(tmp_path):
    out = tmp_path / "robustness"
    r = CliRunner().invoke(app, ["bench", "robustness", "--quick", "--out", str(out)])
    assert r.exit_code == 0, r.output
    result = json.loads((out / "results.json").read_text())
    q = rb.QUICK
    assert len(result["cells"]) == len(q["rules"]) * (1 + len(q["attacks"]))
    keys = {
        "dataset",
        "rule",
        "attack",
        "byzantine_fraction",
        "accuracy_mean",
        "accuracy_std",
        "honest_reward_share",
        "uses_root_set",
    }
    for c in result["cells"]:
        assert keys <= set(c)
        assert ("attack_success_rate" in c) == (c["attack"] == "backdoor")
        assert 0 <= c["accuracy_mean"] <= 1
    [w] = result["chain_runs"]
    assert w["attack"] == "withholder" and w["honest_slashed"] == 0 and w["attackers_slashed"] == 6
    assert w["honest_reward_share"] == 1.0 and w["conservation_gap_wei"] == 0
    md = (out / "README.md").read_text()
    assert "fedchain bench robustness --quick" in md and "### Worst case per rule" in md
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_of_two_invocations_merge_only_with_the_same_setup():
    base = {
        "setup": {"rounds": 8},
        "seeds": [0],
        "rules": ["fedavg"],
        "fractions": [0.3],
        "attacks": ["alie"],
        "models": {"digits": "cnn"},
        "seconds": 1.0,
        "chain_runs": [],
        "runs": [{"dataset": "digits", "seed": 0}],
        "commands": ["a"],
        "datasets": ["digits"],
    }
    other = base | {
        "models": {"mnist1d": "mlp"},
        "runs": [{"dataset": "mnist1d", "seed": 0}],
        "commands": ["b"],
        "datasets": ["mnist1d"],
    }
    merged = rb.merge(base, other)
    assert merged["datasets"] == ["digits", "mnist1d"] and merged["commands"] == ["a", "b"]
    assert len(merged["runs"]) == 2 and merged["seconds"] == 2.0
    more = rb.merge(base, base | {"seeds": [1], "runs": [{"dataset": "digits", "seed": 1}]})  # another seed
    assert more["seeds"] == [0, 1] and more["datasets"] == ["digits"] and len(more["runs"]) == 2
    with pytest.raises(ValueError, match="rounds"):
        rb.merge(base, other | {"setup": {"rounds": 20}})
    with pytest.raises(ValueError, match="already"):
        rb.merge(base, base)
