"""The auditor replays a task from events and blobs alone: an honest history verifies
(from the live chain and from the saved event log alike), and every kind of tampering
-- a blob, a commitment, a vote, the finalized result, a reward -- fails with the
round, the node and the quantity named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedchain.chain.interface import artifact
from fedchain.cli import app
from fedchain.protocol.audit import (
    AuditError,
    Auditor,
    ContractEvents,
    EventFile,
    event_from_json,
    event_to_json,
    save_chain,
)
from fedchain.sim.network import SimConfig, build_network, play_round, settle
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.store import LocalBlobStore

ROUNDS = 3


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A finished small network (two of its trainers misbehave) and its saved chain."""
    out = tmp_path_factory.mktemp("sim")
    cfg = SimConfig(
        trainers=6,
        validators=2,
        rounds=ROUNDS,
        model="mlp",
        epochs=1,
        lr=0.1,
        seed=5,
        out=out,
        adversaries={"garbage": 1, "cid_mismatch": 1},
    )
    net = build_network(cfg)
    assert all(play_round(net).finalized for _ in range(ROUNDS))
    settle(net)
    save_chain(net.deployment, out / "chain", net.task_id)
    return net


def events_of(net, name: str, round_id: int | None = None) -> list:
    return [
        e
        for e in net.deployment.fedchain.events()
        if e.name == name and (round_id is None or e.args.get("round_id") == round_id)
    ]


def audit_file(net, chain_dir: Path, blobs: Path | None = None):
    store = LocalBlobStore(blobs) if blobs else net.store
    return Auditor(EventFile(chain_dir), store, net.task_id).run()


def tampered(net, tmp_path: Path, name: str, round_id: int, field: str, value, nth: int = 0) -> tuple[Path, object]:
    """A copy of the saved chain whose ``nth`` ``name`` event of ``round_id`` has ``field``
    set to ``value``; returns (folder, the original value)."""
    src, dst = Path(net.cfg.out) / "chain", tmp_path / "chain"
    dst.mkdir()
    shutil.copy(src / "deployment.json", dst / "deployment.json")
    lines, seen, original = [], 0, None
    for line in (src / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e["name"] == name and e["args"].get("round_id") == round_id:
            if seen == nth:
                original = event_from_json(e).args[field]
                e["args"][field] = event_to_json(event_from_json({**e, "args": {field: value}}))["args"][field]
            seen += 1
        lines.append(json.dumps(e))
    assert original is not None, f"no {name} event #{nth} in round {round_id}"
    (dst / "events.jsonl").write_text("\n".join(lines) + "\n")
    return dst, original


def fails(net, chain_dir: Path, blobs: Path | None = None) -> AuditError:
    with pytest.raises(AuditError) as e:
        audit_file(net, chain_dir, blobs)
    return e.value


# ---------------------------------------------------------------- an honest history


def test_an_honest_history_verifies_from_the_live_chain(sim):
    dep = sim.deployment
    report = Auditor(ContractEvents(dep.fedchain, dep.block), sim.store, sim.task_id).run()
    assert report.rounds == ROUNDS
    assert report.updates == len(events_of(sim, "Revealed"))
    assert report.claims == len(events_of(sim, "RewardClaimed")) > 0
    assert report.notes == []  # budgets recomputed too
    finalized = events_of(sim, "RoundFinalized")
    assert [v.model_cid for v in report.versions] == [cid_from_digest(e.args["model_cid"]) for e in finalized]
    assert [v.parent_cid for v in report.versions[1:]] == [v.model_cid for v in report.versions[:-1]]
    bad = {t.address for t in sim.trainers if "(" in t.name}
    for v in report.versions:
        assert set(v.rejected) == bad
        assert "CID mismatch" in " ".join(v.rejected.values())
        assert sorted(v.voters) == sorted(x.address for x in sim.validators)


def test_the_saved_event_log_verifies_like_the_live_chain(sim):
    dep = sim.deployment
    live = Auditor(ContractEvents(dep.fedchain, dep.block), sim.store, sim.task_id).run()
    saved = audit_file(sim, Path(sim.cfg.out) / "chain")
    assert saved == live


def test_saved_events_decode_to_the_chain_events(sim):
    saved = EventFile(Path(sim.cfg.out) / "chain")
    assert saved.events() == sim.deployment.fedchain.events(sim.deployment.block)
    assert saved.facts(sim.task_id) == ContractEvents(sim.deployment.fedchain).facts(sim.task_id)


def test_every_bytes_field_of_an_event_is_bytes32():
    """The event log stores bytes as 0x-hex and reads back 66-character strings as bytes32:
    right only while no event has another bytes type."""
    for item in artifact("fedchain").abi:
        if item["type"] == "event":
            types = {i["type"] for i in item["inputs"]}
            assert not {t for t in types if t.startswith("bytes")} - {"bytes32"}, item["name"]


def test_the_cli_audits_a_saved_simulation(sim):
    result = CliRunner().invoke(app, ["audit", "--sim", str(sim.cfg.out)])
    assert result.exit_code == 0, result.output
    assert f"verified {ROUNDS} rounds" in result.output
    assert "model lineage" in result.output


def test_availability_is_the_committees_judgment(sim, tmp_path):
    """The committee rejected an update whose stored copy was corrupt; an auditor that
    finds an intact copy notes it, and the history still verifies."""
    liar = next(t for t in sim.trainers if "cid_mismatch" in t.name)
    rev = next(e for e in events_of(sim, "Revealed", 0) if e.args["node"] == liar.address)
    blobs = copy_blobs(sim, tmp_path)
    path = blobs / cid_from_digest(rev.args["update_cid"])
    path.write_bytes(path.read_bytes()[::-1])  # the adversary reversed its stored bytes
    report = audit_file(sim, Path(sim.cfg.out) / "chain", blobs)
    assert report.rounds == ROUNDS
    assert report.versions[0].rejected[liar.address].startswith("CID mismatch")
    assert report.versions[0].notes == [
        f"{liar.address} was rejected ({report.versions[0].rejected[liar.address]}), but the auditor fetched it"
    ]


# ---------------------------------------------------------------- tampering


def copy_blobs(net, tmp_path: Path) -> Path:
    return Path(shutil.copytree(net.store.root, tmp_path / "blobs"))


def test_a_tampered_update_blob_is_named_by_its_cid(sim, tmp_path):
    rev = next(e for e in events_of(sim, "Revealed", 1) if "(" not in _name(sim, e.args["node"]))
    cid = cid_from_digest(rev.args["update_cid"])
    blobs = copy_blobs(sim, tmp_path)
    (blobs / cid).write_bytes((blobs / cid).read_bytes()[:-1] + b"\0")
    err = fails(sim, Path(sim.cfg.out) / "chain", blobs)
    assert (err.round_id, err.node, err.quantity, err.expected) == (1, rev.args["node"], "update blob", cid)
    assert str(err).startswith(f"round 1, node {rev.args['node']}: update blob: expected {cid}, found blob {cid}")


def test_a_tampered_model_blob_is_named_by_its_cid(sim, tmp_path):
    cid = cid_from_digest(events_of(sim, "RoundFinalized", 2)[0].args["model_cid"])
    blobs = copy_blobs(sim, tmp_path)
    (blobs / cid).write_bytes(b"not the model")
    err = fails(sim, Path(sim.cfg.out) / "chain", blobs)
    assert (err.round_id, err.node, err.quantity, err.expected) == (2, "finalized result", "model blob", cid)


def test_a_reveal_that_does_not_open_its_commitment(sim, tmp_path):
    chain, salt = tampered(sim, tmp_path, "Revealed", 0, "salt", b"\1" * 32)
    err = fails(sim, chain)
    node = events_of(sim, "Revealed", 0)[0].args["node"]
    committed = next(e for e in events_of(sim, "Committed", 0) if e.args["node"] == node).args["commitment"]
    assert (err.round_id, err.node, err.quantity, err.expected) == (0, node, "commitment", committed)


def test_a_tampered_scores_root_in_a_vote(sim, tmp_path):
    chain, root = tampered(sim, tmp_path, "Voted", 1, "scores_root", b"\7" * 32, nth=1)
    err = fails(sim, chain)
    voter = events_of(sim, "Voted", 1)[1].args["validator"]
    assert (err.round_id, err.node, err.quantity, err.expected, err.found) == (
        1,
        voter,
        "scores root",
        root,
        b"\7" * 32,
    )
    assert str(err) == f"round 1, node {voter}: scores root: expected 0x{root.hex()}, found 0x{'07' * 32}"


def test_a_tampered_scores_root_in_the_finalized_result(sim, tmp_path):
    chain, root = tampered(sim, tmp_path, "RoundFinalized", 0, "scores_root", b"\7" * 32)
    err = fails(sim, chain)
    assert (err.round_id, err.node, err.quantity, err.expected) == (0, "finalized result", "scores root", root)


def test_a_wrong_aggregate(sim, tmp_path):
    chain, root = tampered(sim, tmp_path, "RoundFinalized", 2, "model_root", b"\5" * 32)
    err = fails(sim, chain)
    assert (err.round_id, err.node, err.quantity, err.expected, err.found) == (
        2,
        "finalized result",
        "model root",
        root,
        b"\5" * 32,
    )
    assert str(err) == f"round 2, finalized result: model root: expected 0x{root.hex()}, found 0x{'05' * 32}"


def test_a_valid_update_in_the_rejected_set(sim, tmp_path):
    rejected = events_of(sim, "RoundFinalized", 1)[0].args["rejected"]
    honest = next(e for e in events_of(sim, "Revealed", 1) if not rejected >> e.args["index"] & 1)
    chain, _ = tampered(sim, tmp_path, "RoundFinalized", 1, "rejected", rejected | 1 << honest.args["index"])
    err = fails(sim, chain)
    assert (err.round_id, err.node, err.quantity, err.expected) == (1, honest.args["node"], "rejected set", "accepted")


def test_a_wrong_reward(sim, tmp_path):
    claim = events_of(sim, "RewardClaimed", 1)[0]
    chain, amount = tampered(sim, tmp_path, "RewardClaimed", 1, "amount", claim.args["amount"] + 1)
    err = fails(sim, chain)
    assert (err.round_id, err.node, err.quantity, err.expected, err.found) == (
        1,
        claim.args["node"],
        "reward",
        amount,
        amount + 1,
    )


def test_the_cli_exits_40_with_one_line_naming_the_mismatch(sim, tmp_path):
    chain, _ = tampered(sim, tmp_path, "RoundFinalized", 2, "model_root", b"\5" * 32)
    result = CliRunner().invoke(app, ["audit", "--events", str(chain / "events.jsonl"), "--blobs", str(sim.store.root)])
    assert result.exit_code == 40, result.output
    assert "audit failed: round 2, finalized result: model root: expected 0x" in result.output


def _name(net, address: str) -> str:
    return next(n.name for n in net.nodes if n.address == address)


@pytest.mark.anvil
def test_the_cli_audits_a_live_chain_over_rpc(tmp_path):
    from fedchain.chain.anvil import Anvil
    from fedchain.chain.rpc import RpcChain
    from fedchain.errors import ChainError

    try:
        anvil = Anvil()
    except ChainError as e:
        pytest.skip(str(e))
    with anvil:
        # on anvil every transaction mines a block: phases must outlast a round's transactions
        cfg = SimConfig(
            trainers=3, validators=2, rounds=2, model="mlp", epochs=1, lr=0.1, seed=6, out=tmp_path, phase_blocks=19
        )  # 4 x 19 + the slash grace (20) < the unbonding delay (100)
        net = build_network(cfg, chain=RpcChain(anvil.url))
        assert all(play_round(net).finalized for _ in range(cfg.rounds))
        settle(net)
        result = CliRunner().invoke(
            app,
            [
                "audit",
                "--rpc",
                anvil.url,
                "--fedchain",
                net.deployment.fedchain.address,
                "--blobs",
                str(tmp_path / "blobs"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "verified 2 rounds (2 finalized), 6 updates" in result.output
