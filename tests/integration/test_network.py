"""Networks of separate OS processes on 127.0.0.1: anvil, a sponsor, trainers
and validators, talking only through the chain (JSON-RPC) and each other's blob
servers (HTTP). One network trains for three rounds and pays everyone; the others
meet a fault each: nodes killed with SIGKILL (restarted or not), a peer that
serves corrupt blobs, the chain stopped and restarted from its saved state.

Every test starts its own processes and kills them by PID (see procnet.py). The
tests live in one file on purpose: pytest-xdist (--dist loadfile) then runs them
one after another, so two networks never compete for the CPU while their phase
deadlines run.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from procnet import PASSWORD, ProcessNetwork, accuracy, status_json

from fedchain.chain.anvil import anvil_binary, free_port
from fedchain.chain.keys import dev_account
from fedchain.errors import ChainError
from fedchain.learning.secagg import MaskedInput
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_metadata, decode_tensors
from fedchain.storage.http import BlobServer
from fedchain.storage.store import LocalBlobStore

pytestmark = pytest.mark.anvil


@pytest.fixture
def procnet(tmp_path):
    """A ``ProcessNetwork`` whose processes are all stopped, by PID, when the test
    ends, and whose files are then checked for leaked private keys and passwords.
    (Defined here, not in a conftest.py: other test folders import the root
    conftest by name, and a second conftest module would shadow it.)"""
    try:
        anvil_binary()
    except ChainError as e:
        pytest.skip(f"anvil not installed: {e}")
    net = ProcessNetwork(tmp_path)
    try:
        yield net
    finally:
        net.stop_all()
        net.assert_no_secrets()


TRAINERS, VALIDATORS, ROUNDS = 5, 3, 3


def test_processes_train_for_three_rounds_and_everyone_is_paid(procnet):
    net = procnet
    net.chain_up()
    # setup steps that do not depend on each other run side by side
    net.start("data", "data", "split", "--trainers", str(TRAINERS), "--out", "data")
    # the sponsor and trainer-0 sign with keystore accounts (password from the environment);
    # the other nodes use anvil's dev accounts. trainer-0 is on "another machine" (README, "A
    # network across machines"): its own folder, keystore and copy of deployment.json, no shared
    # peers file, its blob server on a port of its choosing; the others find it on chain only.
    # Its three commands (account new, fund, node run) are the README's, word for word.
    machine_b = net.root / "machine-b"
    machine_b.mkdir()
    on_b = {"cwd": machine_b, "env": {"FEDCHAIN_KEYSTORE": str(machine_b / "keystore")}}
    net.start("new-sponsor", "account", "new", "sponsor", "--light-kdf", password=True)
    net.start("new-trainer", "account", "new", "bob", password=True, **on_b)
    net.deploy(cli=True)
    net.wait_exit("data")
    for i in range(1, TRAINERS):
        net.trainer(i, dev=1 + i)
    validator_port, sponsor_port, bob_port = free_port(), free_port(), free_port()
    net.validator(0, 1 + TRAINERS, *cross_machine(validator_port))
    for j in range(1, VALIDATORS):
        net.validator(j, dev=1 + TRAINERS + j)
    # a watcher: no stake, no data; it recomputes every round as it reaches a quorum
    net.start(
        "watcher",
        "node",
        "run",
        "--role",
        "watcher",
        "--dev-account",
        str(2 + TRAINERS + VALIDATORS),
        "--home",
        "watcher",
        "--name",
        "watcher",
    )

    sponsor = re.search(r"0x[0-9a-fA-F]{40}", net.wait_exit("new-sponsor"))[0]
    keyed = re.search(r"0x[0-9a-fA-F]{40}", net.wait_exit("new-trainer"))[0]
    assert sponsor in net.run("account", "list") and keyed not in net.run("account", "list")
    net.run("fund", sponsor, "--tokens", "2000", "--eth", "10", "--dev-account", "0")
    net.run("fund", keyed, "--dev-account", "0")  # as the README has the deployer fund a participant
    net.data["trainer-0"] = keyed
    shutil.copy(net.root / "deployment.json", machine_b)
    shutil.copy(net.root / "data" / "trainer-0.npz", machine_b)
    net.start(
        "trainer-0",
        *("node", "run", "--role", "trainer", "--account", "bob", "--data", "trainer-0.npz", "--home", "bob"),
        *("--rpc", net.url, *cross_machine(bob_port)),
        password=True,
        **on_b,
    )
    nodes = [f"trainer-{i}" for i in range(TRAINERS)] + [f"validator-{j}" for j in range(VALIDATORS)]

    # the sponsor starts now and creates the task once every node is staked
    # MultiKrum (f = 1: 4 of 5 updates averaged): validators in separate processes must agree on the
    # distance table their votes commit to, and claims carry its root as one more proof sibling
    task = net.create_task(
        "--rounds",
        str(ROUNDS),
        "--pool",
        "300",
        "--trainers-per-round",
        str(TRAINERS),
        "--rule",
        "multikrum",
        "--rule-params",
        '{"num_malicious_nodes": 1}',
        "--validators-per-round",
        str(VALIDATORS),
        "--wait-for-trainers",
        str(TRAINERS),
        "--wait-for-validators",
        str(VALIDATORS),
        "--commit-blocks",
        "8",
        "--reveal-blocks",
        "4",
        "--validate-blocks",
        "6",
        "--challenge-blocks",
        "1",
        "--epochs",
        "1",
        "--lr",
        "0.1",
        "--batch-size",
        "16",
        "--test",
        "data/test.npz",
        *cross_machine(sponsor_port),
        signer=("--account", "sponsor"),
        password=True,
        timeout=180,
    )
    for n in nodes:
        assert net.alive(n), net.log(n)
    net.wait_finished(timeout=40 * ROUNDS)
    fc = net.dep.fedchain
    for r in range(ROUNDS):
        assert net.outcome(r).name == "RoundFinalized", f"round {r}: {net.outcome(r)}\n{net.tails()}"

    # everyone claims and withdraws after the task finished
    addresses = {net.address(n) for n in nodes}
    net.wait_for(
        lambda: addresses <= {e.args["node"] for e in net.events("PayoutWithdrawn")},
        60,
        "every node to withdraw its rewards",
    )
    assert not net.events("Slashed") and not net.events("Equivocated")

    # the model improved
    created = net.events("TaskCreated")[0].args
    net.wait_for(lambda: "final model" in net.log("sponsor"), 30, "the sponsor to fetch the final model")
    before = accuracy(net, created["model_cid"])
    after = accuracy(net, fc.call("tasks", task)["model_cid"])
    assert after > before + 0.3, (before, after)
    # the final model's lineage names the distance table its round committed to, and a node holds it
    final = next(net.root.glob(f"*/blobs/{cid_from_digest(fc.call('tasks', task)['model_cid'])}")).read_bytes()
    lineage = json.loads(decode_metadata(final)["fedchain"])
    assert lineage["rule"] == "multikrum" and list(net.root.glob(f"*/blobs/{lineage['distances']['cid']}"))

    # status shows the finished task, its rounds and everyone's rewards
    st = status_json(net)
    assert st["task"]["id"] == task and st["task"]["finished"]
    assert [r["status"] for r in st["rounds"]] == ["finalized"] * ROUNDS
    by_address = {n["address"]: n for n in st["nodes"]}
    for a in addresses:
        assert by_address[a]["rewards"] > 0 and by_address[a]["withdrawn"] == by_address[a]["rewards"]
    table = net.run("status")
    assert "finalized" in table and "Nodes" in table and "accuracy" in table

    # the sponsor evaluated every finalized model on the held-out data: in its log, on chain
    # (status reads the reports), and in its History; the last one is the final model's accuracy
    logged = [float(a) for a in re.findall(r"round \d: accuracy (0\.\d+), loss", net.log("sponsor"))]
    assert len(logged) == ROUNDS and all(a > 0.3 for a in logged), logged  # chance is 0.1
    assert [r["report"] for r in st["rounds"]] == ["published"] * ROUNDS
    assert [round(r["accuracy"], 3) for r in st["rounds"]] == logged
    assert abs(st["rounds"][-1]["accuracy"] - after) < 1e-6
    history = json.loads((net.root / "sponsor" / "history.json").read_text())
    assert [r["accuracy"] for r in history["rounds"]] == [r["accuracy"] for r in st["rounds"]]
    assert history["initial"]["accuracy"] == pytest.approx(before, abs=1e-6)
    assert "History of task" in net.log("sponsor")

    # the logs say what each node saw and did
    assert "committed update" in net.log("trainer-1") and "revealed" in net.log("trainer-1")
    assert "training loss" in net.log("trainer-1")
    assert "voted model" in net.log("validator-0") and "finalized at block" in net.log("validator-0")
    assert "claimed" in net.log("trainer-0")
    # the trainer on machine B was found through the chain alone, and every round accepted its update
    bob_url = f"http://127.0.0.1:{bob_port}"
    assert f"blob endpoint {bob_url}: announced on chain" in net.log("trainer-0")
    assert bob_url not in (net.root / "peers.txt").read_text() and not (net.root / "bob").exists()
    assert net.dep.endpoints.call("endpoint", keyed) == bob_url
    bob_reveals = [e.args["index"] for e in net.events("Revealed") if e.args["node"] == keyed]
    assert len(bob_reveals) == ROUNDS
    for r, index in enumerate(bob_reveals):
        assert not net.outcome(r).args["rejected"] >> index & 1, f"round {r} rejected the update from machine B"
    assert "rejected this trainer's update" not in net.log("trainer-0")
    for r in range(ROUNDS):  # an honest committee: every result checks out, nothing is challenged
        assert f"round {r}: the leading result checks out" in net.log("watcher"), net.log("watcher")
    assert "wrong" not in net.log("watcher") and "challenge of" not in net.log("watcher")


def cross_machine(port: int) -> tuple[str, ...]:
    """A blob server as the README's cross-machine section has every participant run it
    (127.0.0.1 standing for the machine's address)."""
    return ("--listen", f"0.0.0.0:{port}", "--public-url", f"http://127.0.0.1:{port}")


# ---------------------------------------------------------------- faults


FAST = ("--validate-blocks", "6", "--challenge-blocks", "1", "--epochs", "1", "--lr", "0.1", "--batch-size", "16")


def start_network(net, trainers: int, validators: int, *trainer_extra) -> list[str]:
    net.chain_up()
    net.deploy(cli=False)
    net.write_data(trainers)
    for i in range(trainers):
        net.trainer(i, 2 + i, *trainer_extra)
    for j in range(validators):
        net.validator(j, 2 + trainers + j)
    return [f"trainer-{i}" for i in range(trainers)] + [f"validator-{j}" for j in range(validators)]


def task_args(trainers: int, validators: int, rounds: int, commit: int, reveal: int) -> tuple[str, ...]:
    return (
        "--rounds",
        str(rounds),
        "--pool",
        "100",
        "--trainers-per-round",
        str(trainers),
        "--validators-per-round",
        str(validators),
        "--wait-for-trainers",
        str(trainers),
        "--wait-for-validators",
        str(validators),
        "--commit-blocks",
        str(commit),
        "--reveal-blocks",
        str(reveal),
        *FAST,
    )


def test_trainer_killed_after_commit_reveals_when_restarted_and_is_slashed_when_not(procnet):
    net = procnet
    nodes = start_network(net, 4, 2)
    # a reveal phase of 40 blocks (20 s): time enough for a restarted process to start and reveal
    # on a loaded machine (20 blocks was too short with other test processes running)
    net.create_task(*task_args(4, 2, rounds=1, commit=8, reveal=40), timeout=180)
    back, gone = net.address("trainer-0"), net.address("trainer-1")
    for who in (back, gone):
        net.wait_event("Committed", 60, f"{who} to commit", node=who)
    net.kill("trainer-0")
    net.kill("trainer-1")
    reveal_end = net.events("RoundOpened")[0].args["reveal_end"]
    assert net.chain.block_number() < reveal_end
    net.trainer(0, 2)  # same home folder: its journal and blobs

    net.wait_finished(90)
    assert net.outcome(0).name == "RoundFinalized", net.tails()
    revealed = {e.args["node"] for e in net.events("Revealed")}
    assert back in revealed and gone not in revealed
    slashed = [e.args for e in net.events("Slashed")]
    assert [(s["node"], s["reason"]) for s in slashed] == [(gone, 1)], slashed  # 1: commit not revealed
    net.wait_event("RewardClaimed", 60, "the restarted trainer's claim", node=back)
    net.wait_event("PayoutWithdrawn", 30, "the restarted trainer's withdrawal", node=back)
    # exactly one of each: approve, stake, announce, commit (before the crash); announce (a new
    # free port: its URL changed), reveal, claim, withdraw (after)
    assert [e.args["node"] for e in net.events("Committed")].count(back) == 1
    assert net.chain.w3.eth.get_transaction_count(back) == 8
    assert len([e for e in net.dep.endpoints.events() if e.args["node"] == back]) == 2
    log = net.log("trainer-0")
    assert "round 0: revealed" in log and "claimed" in log
    assert all(net.alive(n) for n in nodes if n != "trainer-1")
    # trainer-1, started again after the round, is told what it lost, why and what to do
    net.trainer(1, 3)
    told = net.wait_for(lambda: "slashed" in net.log("trainer-1").split("stake: ")[-1], 60, "trainer-1 to be told")
    assert told and "for commit not revealed" in net.log("trainer-1") and "reveal phase" in net.log("trainer-1")
    st = status_json(net)
    assert next(n for n in st["nodes"] if n["address"] == gone)["slashed_for"] == ["commit not revealed"]


def test_validator_killed_mid_round_leaves_a_quorum_and_the_next_round_proceeds(procnet):
    net = procnet
    start_network(net, 2, 3)
    net.create_task(*task_args(2, 3, rounds=2, commit=8, reveal=4), timeout=180)
    victim = net.address("validator-2")
    net.wait_event("Joined", 60, "validator-2 to join round 0", validator=victim, round_id=0)
    net.kill("validator-2")  # joined, so the committee counts its seat, but it will never vote

    net.wait_for(lambda: net.outcome(0), 60, "round 0 to end")
    assert net.outcome(0).name == "RoundFinalized", net.tails()
    votes0 = [e.args["validator"] for e in net.events("Voted") if e.args["round_id"] == 0]
    assert sorted(votes0) == sorted([net.address("validator-0"), net.address("validator-1")])

    net.wait_finished(60)  # round 1: validator-2 is still gone, its stake is simply not in the committee
    assert net.outcome(1).name == "RoundFinalized", net.tails()
    assert len([e for e in net.events("Voted") if e.args["round_id"] == 1]) == 2
    assert not net.events("Equivocated")
    # joined and never voted: a liveness fault the other validators report (review H-1), once
    slashed = [(e.args["node"], e.args["reason"]) for e in net.events("Slashed")]
    assert slashed == [(victim, 5)], slashed
    assert all(net.alive(n) for n in ("validator-0", "validator-1", "trainer-0", "trainer-1", "sponsor"))


def test_a_peer_serving_corrupt_blobs_is_caught_and_nothing_crashes(procnet):
    net = procnet
    net.chain_up()
    net.deploy(cli=False)
    net.write_data(2)
    # trainer-1 keeps its server out of the peers file; the only copy of its update
    # that validators can reach is at a peer that flips a byte of everything it serves
    evil = BlobServer(
        LocalBlobStore(net.root / "trainer-1" / "blobs"), transform=lambda cid, data: bytes([data[0] ^ 0xFF]) + data[1:]
    ).start()
    try:
        net.trainer(0, 2)
        net.trainer(1, 3, "--no-announce")
        net.validator(0, 4, "--peer", evil.url)
        net.create_task(*task_args(2, 1, rounds=1, commit=8, reveal=4), timeout=180)
        net.wait_finished(90)
    finally:
        evil.stop()
    done = net.outcome(0)
    assert done.name == "RoundFinalized", net.tails()
    bad = next(e.args for e in net.events("Revealed") if e.args["node"] == net.address("trainer-1"))
    assert done.args["rejected"] == 1 << bad["index"]
    cid = cid_from_digest(bad["update_cid"])
    log = net.log("validator-0")
    assert f"rejected blob {cid} from peer {evil.url}" in log and "do not hash to the CID" in log
    assert f"rejected update of {net.address('trainer-1')}" in log
    assert all(net.alive(n) for n in ("trainer-0", "trainer-1", "validator-0", "sponsor", "chain"))
    net.wait_event("RewardClaimed", 30, "the honest trainer's reward", node=net.address("trainer-0"))
    # the trainer whose update nobody could fetch intact is told so, and what to check
    told = net.wait_for(lambda: "rejected this trainer's update" in net.log("trainer-1"), 30, "trainer-1 to be told")
    assert told and "round 0" in net.log("trainer-1") and "--public-url" in net.log("trainer-1")
    # and `fedchain status` shows why, by node, from the round's model blob (read from the sponsor)
    st = status_json(net)
    why = st["rounds"][0]["rejections"][net.address("trainer-1")]
    assert why.startswith("unavailable") or "CID" in why, why
    node = next(n for n in st["nodes"] if n["address"] == net.address("trainer-1"))
    assert node["rejected"] == [{"round": 0, "reason": why}]
    assert "Rejected updates" in net.run("status")


def test_nodes_ride_out_a_chain_restart_from_saved_state(procnet):
    net = procnet
    start_network(net, 2, 1)
    net.create_task(*task_args(2, 1, rounds=1, commit=8, reveal=6), timeout=180)
    for n in ("trainer-0", "trainer-1"):
        net.wait_event("Committed", 60, f"{n} to commit", node=net.address(n))
    before = net.chain.block_number()
    net.kill("chain", sig=15)  # SIGTERM: anvil saves its state and exits
    time.sleep(3)
    assert net.state.exists()
    net.chain_up()  # same port, same state file
    assert net.chain.block_number() >= before
    said = net.log("chain").split("anvil: JSON-RPC")[-1]  # what this start printed
    assert f"loaded from {net.state.resolve()}" in said and "fedchain deploy" not in said, said

    net.wait_finished(90)
    assert net.outcome(0).name == "RoundFinalized", net.tails()
    net.wait_event("RewardClaimed", 30, "a reward claimed after the restart", node=net.address("trainer-0"))
    for n in ("trainer-0", "trainer-1", "validator-0"):
        log = net.log(n)
        assert "chain unreachable" in log and "chain reachable again" in log, log[-2000:]
        assert net.alive(n)


# ---------------------------------------------------------------- the secret scan itself


def test_the_secret_scan_finds_keys_and_passwords(tmp_path):
    from fedchain.chain.keys import dev_account

    net = ProcessNetwork(tmp_path)
    net.assert_no_secrets()
    for leak in (dev_account(3).key.hex().removeprefix("0x").upper(), PASSWORD):
        (tmp_path / "node.log").write_text(f"12:00:00 INFO something {leak} happened\n")
        with pytest.raises(AssertionError, match="secrets found"):
            net.assert_no_secrets()


def test_flower_clients_train_as_trainer_processes(procnet):
    """`fedchain node run --role trainer --flower-client`: two NumPyClients, unchanged, as trainer
    processes on anvil; the sponsor's `task create --flower-client` takes the initial model from the
    client's own get_parameters, and the model the network learns improves on the clients' own data."""
    from fedchain import flower
    from fedchain.protocol.recipe import param_names

    net = procnet
    net._env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # the clients live in tests/flower
    spec = "tests.flower.numpy_client_app:client_fn"
    net.chain_up()
    net.deploy(cli=False)
    for i in range(2):
        net.data[f"trainer-{i}"] = dev_account(2 + i).address
        net.start(
            f"trainer-{i}",
            *("node", "run", "--role", "trainer", "--dev-account", str(2 + i), "--home", f"trainer-{i}"),
            *("--name", f"trainer-{i}", "--flower-client", spec, "--partition-id", str(i), "--num-partitions", "2"),
        )
    for j in range(2):
        net.validator(j, 4 + j)
    task = net.create_task(*task_args(2, 2, rounds=2, commit=8, reveal=4), "--flower-client", spec, timeout=180)
    # a trainer whose installed client differs by one comment refuses the task, naming both hashes
    pinned = flower.source_hash([spec])
    other = net.root / "other-machine"
    (other / "tests" / "flower").mkdir(parents=True)
    source = Path(__file__).resolve().parents[1] / "flower" / "numpy_client_app.py"
    (other / "tests" / "flower" / "numpy_client_app.py").write_text(source.read_text() + "# a local edit\n")
    impostor = net.start(
        "impostor",
        *("node", "run", "--role", "trainer", "--dev-account", "7", "--home", "impostor", "--name", "impostor"),
        *("--flower-client", spec, "--task", str(task), "--partition-id", "0", "--num-partitions", "2"),
        env={"PYTHONPATH": str(other)},
    )
    assert impostor.wait(timeout=120) == 2, net.log("impostor")[-3000:]
    refusal = net.log("impostor")
    mine = re.search(r"hashes to ([0-9a-f]{64})", refusal)
    assert f"pins {spec}'s source at sha256 {pinned}" in refusal and mine and mine.group(1) != pinned, refusal
    assert net.dep.fedchain.call("stakes", dev_account(7).address)["active"] == 0  # refused before staking
    net.wait_finished(timeout=120)
    for r in range(2):
        assert net.outcome(r).name == "RoundFinalized", f"round {r}: {net.outcome(r)}\n{net.tails()}"
    assert "Flower fit on" in (net.root / "trainer-0" / "node.log").read_text()

    clients = [flower.FlowerClient(flower.load(spec), i, 2) for i in range(2)]
    shapes = [(32, 64), (32,), (10, 32), (10,)]
    names = param_names(len(shapes))

    def federated(model_cid: bytes) -> float:
        blob = next(net.root.glob(f"*/blobs/{cid_from_digest(model_cid)}")).read_bytes()
        params = decode_tensors(blob, dict(zip(names, shapes)))
        return flower.federated_accuracy(clients, [params[k] for k in names])

    for i in range(2):  # both Flower trainers are paid
        net.wait_event("RewardClaimed", 60, f"trainer-{i}'s reward", node=dev_account(2 + i).address)
    before = federated(net.events("TaskCreated")[0].args["model_cid"])
    after = federated(net.dep.fedchain.call("tasks", task)["model_cid"])
    assert after > before + 0.3, (before, after)


def test_secure_aggregation_over_processes_with_a_trainer_killed_after_masking(procnet):
    # four trainer processes agree keys, share seeds and send masked updates through the board
    # and each other's blob servers; one is killed once its masked update is revealed (it never
    # answers the unmasking request); the validators unmask the sum and the round finalizes
    net = procnet
    start_network(net, 4, 2)
    # commit 36 blocks = advertise, share and mask windows of 12 blocks (6 s) each; the answer
    # window is the first half of a 16-block vote phase
    net.create_task(*task_args(4, 2, rounds=1, commit=36, reveal=8), "--validate-blocks", "16", "--secagg", timeout=180)
    gone = net.address("trainer-3")
    ev = net.wait_event("Revealed", 120, "trainer-3's masked update", node=gone)
    # "sent": another node has fetched it (and serves it on) once it was revealed
    others = [LocalBlobStore(net.root / f"trainer-{i}" / "blobs") for i in range(3)]
    cid = cid_from_digest(ev.args["update_cid"])
    net.wait_for(lambda: any(s.has(cid) for s in others), 30, "another trainer to receive it")
    net.kill("trainer-3")
    net.wait_finished(120)
    assert net.outcome(0).name == "RoundFinalized", net.tails()
    board = [e for e in net.dep.secagg.events(net.dep.block) if e.args["task_id"] == net.task_id]
    by_kind = {k: {e.args["trainer"] for e in board if e.name == k} for k in ("KeysAdvertised", "SharesPosted")}
    assert len(by_kind["KeysAdvertised"]) == len(by_kind["SharesPosted"]) == 4
    answered = {e.args["trainer"] for e in board if e.name == "UnmaskAnswered"}
    assert len(answered) == 3 and gone not in answered
    revealed = [e.args for e in net.events("Revealed")]
    assert len(revealed) == 4
    store = LocalBlobStore(net.root / "trainer-0" / "blobs")
    own = next(a for a in revealed if a["node"] == net.address("trainer-0"))
    masked = MaskedInput.from_bytes(store.get(cid_from_digest(own["update_cid"])))  # what went public
    assert masked.trainer == net.address("trainer-0").lower()
    assert not net.events("Slashed")
