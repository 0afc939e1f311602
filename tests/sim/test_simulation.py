"""End to end: a small network learns, pays by score, conserves tokens, and
rejects every kind of bad update with a reason while the round still finalizes."""

from __future__ import annotations

import json

import pytest

from fedchain.sim.network import SimConfig, build_network, play_round, settle
from fedchain.sim.simulate import model_accuracy
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_metadata

BAD = {"garbage": "malformed tensor file", "nan": "NaN/Inf", "wrong_shape": "shape", "cid_mismatch": "CID mismatch"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cfg = SimConfig(
        trainers=14,
        validators=3,
        rounds=3,
        model="mlp",
        epochs=5,
        lr=0.1,
        seed=1,
        out=tmp_path_factory.mktemp("sim"),
        adversaries={**{k: 1 for k in BAD}, "silent": 1, "withholder": 1},
    )
    net = build_network(cfg)
    initial = model_accuracy(net)
    outcomes = [play_round(net) for _ in range(cfg.rounds)]
    settle(net)
    return net, initial, outcomes


def lineage(net, round_id):
    ev = next(
        e for e in net.deployment.fedchain.events() if e.name == "RoundFinalized" and e.args["round_id"] == round_id
    )
    meta = decode_metadata(net.store.get(cid_from_digest(ev.args["model_cid"])))
    return ev.args, json.loads(meta["fedchain"])


def test_every_round_finalizes_and_the_model_learns(finished):
    net, initial, outcomes = finished
    assert all(o.finalized for o in outcomes)
    acc = model_accuracy(net)
    assert acc > initial + 0.2
    assert acc > 0.5  # 10 classes: chance is 0.1


def test_bad_updates_are_rejected_with_a_reason_and_earn_nothing(finished):
    net, _, _ = finished
    for r in range(net.cfg.rounds):
        result, lin = lineage(net, r)
        reasons = lin["rejected"]
        by_kind = {t.name.split("(")[1].rstrip(")"): t for t in net.trainers if "(" in t.name}
        for kind, needle in BAD.items():
            assert needle in reasons[by_kind[kind].address], (kind, reasons)
        revealed = [a for a, _ in lin["scores"]]
        assert by_kind["silent"].address not in revealed  # never committed: simply not counted
        assert by_kind["withholder"].address not in revealed
        assert len(reasons) == len(BAD)
        # the rejected bitmap on chain names exactly the rejected reveal indices
        rejected_idx = {i for i, (a, _) in enumerate(lin["scores"]) if a in reasons}
        assert result["rejected"] == sum(1 << i for i in rejected_idx)
    for t in net.trainers:
        if "(" in t.name:
            assert t.rewards == 0, t.name


def test_rewards_are_paid_in_proportion_to_scores(finished):
    net, _, _ = finished
    fc = net.deployment.fedchain
    claims = {(e.args["round_id"], e.args["node"]): e.args["amount"] for e in fc.events() if e.name == "RewardClaimed"}
    trainers = {t.address for t in net.trainers}
    for r in range(net.cfg.rounds):
        result, lin = lineage(net, r)
        total = sum(s for _, s in lin["scores"])
        assert total == result["total_score"] > 0
        for addr, score in lin["scores"]:
            expected = result["trainer_budget"] * score // total
            assert claims.get((r, addr), 0) == expected
        paid = sum(a for (rr, node), a in claims.items() if rr == r and node in trainers)
        assert result["trainer_budget"] - paid < len(lin["scores"])  # only rounding dust stays


def test_only_the_withholder_is_slashed_and_tokens_are_conserved(finished):
    net, _, _ = finished
    assert net.conservation_gap() == 0
    fc = net.deployment.fedchain
    withholder = next(t for t in net.trainers if "withholder" in t.name)
    slashes = [e.args for e in fc.events() if e.name == "Slashed"]
    # slashed in round 0; its stake then sits below the minimum, so it is never selected again
    assert [s["node"] for s in slashes] == [withholder.address]
    penalty = fc.call("liveness_penalty")
    assert slashes[0]["amount"] == penalty and slashes[0]["reason"] == 1
    assert fc.call("stakes", withholder.address)["active"] == net.cfg.stake - penalty < fc.call("min_stake")
    later = [e for e in fc.events() if e.name == "Committed" and e.args["round_id"] > 0]
    assert later and withholder.address not in {e.args["node"] for e in later}
    share = penalty * fc.call("reporter_bps") // 10_000
    reporters = [s["reporter"] for s in slashes]
    for node in net.nodes:
        assert fc.call("payouts", node.address) == 0  # everything credited was withdrawn
        earned = node.rewards + share * reporters.count(node.address)
        assert net.deployment.token.call("balanceOf", node.address) == earned


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rule", "zeno", "--rule-params", '{"clip": 1}'], "'clip' must be true or false"),
        (["--rule", "zeno", "--rule-params", "[6]"], "not a JSON object"),
        (["--rule", "fedavg", "--rule-params", '{"beta": 0.1}'], "has no parameter beta"),
        (["--score", "accuracy"], "--score: 'accuracy' is not one of"),
    ],
)
def test_simulate_refuses_bad_rule_params_and_scores_before_running(args, message, tmp_path):
    from typer.testing import CliRunner

    from fedchain.cli import app

    r = CliRunner().invoke(app, ["simulate", "--rounds", "1", "--out", str(tmp_path), *args])
    assert r.exit_code == 2, r.output

    def squeeze(text):  # rich wraps the error panel: compare without its borders and whitespace
        return "".join(text.replace("│", "").split())

    assert squeeze(message) in squeeze(r.output), r.output
    assert not (tmp_path / "report.json").exists()
