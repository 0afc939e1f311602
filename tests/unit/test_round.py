"""protocol/round.py's records: a Reveal is its Revealed event, a Vote goes through the
contracts and comes back unchanged, a Lineage's JSON is the one model blobs have always
carried and a malformed one says so."""

import json

import numpy as np
import pytest

from fedchain.chain.layout import Record
from fedchain.errors import CodecError, LineageError
from fedchain.protocol.round import Lineage, Reveal, Vote
from fedchain.storage.codec import encode_tensors


def test_a_reveal_is_its_revealed_event_and_the_contracts_record(net):
    task = net.create_task()
    trainers = net.trainers[:2]
    updates = [net.commit(task, 0, t) for t in trainers]
    net.to_reveal_phase(task, 0)
    for i, (t, upd) in enumerate(zip(trainers, updates)):
        rev = Reveal.from_event(net.reveal(task, 0, t, upd).event("Revealed"))
        assert rev == Reveal(task, 0, t.address, i, upd.root, upd.cid, upd.samples, upd.salt, 10_000)
        assert rev.cid.startswith("b")  # the blob's name, from the digest on chain
        # the record the contract keeps for it, unpacked by layout.py
        assert Record.unpack(net.fc.call("record", task, 0, t.address)) == Record(i, upd.samples, 10_000, False)


def test_a_reveal_is_read_from_a_revealed_event_only(net):
    task_created = net.fc.tx("create_task", net.task_config(), sender=net.owner).event("TaskCreated")
    with pytest.raises(ValueError, match="not TaskCreated"):
        Reveal.from_event(task_created)


def test_a_vote_goes_through_the_contracts_unchanged(net):
    task = net.create_task()
    result = net.play_round(task, 0, joiners=net.validators, voters=[], finalize=False)  # revealed, joined
    vote = Vote(*result.args)  # the three revealers' scores, nothing rejected
    for v in net.validators:
        voted = net.fc.tx("vote", task, 0, *vote.args(), sender=v).event("Voted")
        assert Vote.from_event(voted) == vote
        assert voted.args["vote_hash"] == vote.hash() == net.fc.call("vote_of", task, 0, v.address)
    net.to_finalizable(task, 0)
    finalized = net.fc.tx("finalize", task, *vote.args(), sender=net.owner).event("RoundFinalized")
    assert Vote.from_event(finalized) == vote
    entry = {
        "model_root": vote.model_root.hex(),
        "model_cid": vote.cid,
        "scores_root": vote.scores_root.hex(),
        "total_score": vote.total_score,
        "rejected": vote.rejected,
    }  # as the validator journals it
    assert Vote.from_journal(entry) == vote


ROUND = Lineage(
    3,
    "bafkparent",
    (("0xa", 5), ("0xb", 0)),
    {"0xb": "update root does not match the blob"},
    task=1,
    rule="krum",
    distances={"cid": "bafktable", "root": "ab" * 32},
)
INITIAL = Lineage(-1, None, recipe='{"rule": "fedavg"}')


def test_a_lineage_is_the_json_model_blobs_have_always_carried():
    # the dicts validators and sponsors wrote before Lineage: the same bytes, so the same model CIDs
    before = {
        "task": 1,
        "round": 3,
        "parent": "bafkparent",
        "rule": "krum",
        "scores": [("0xa", 5), ("0xb", 0)],
        "rejected": {"0xb": "update root does not match the blob"},
        "distances": {"cid": "bafktable", "root": "ab" * 32},
    }
    assert ROUND.to_json() == json.dumps(before, sort_keys=True)
    initial = {"round": -1, "parent": None, "scores": [], "rejected": {}, "recipe": '{"rule": "fedavg"}'}
    assert INITIAL.to_json() == json.dumps(initial, sort_keys=True)
    without_table = Lineage(0, "bafkparent", (("0xa", 1),), {}, task=1, rule="fedavg")
    assert "distances" not in json.loads(without_table.to_json())


@pytest.mark.parametrize("lineage", [ROUND, INITIAL], ids=["round", "initial"])
def test_a_lineage_round_trips_through_json_and_a_blob(lineage):
    assert Lineage.from_json(lineage.to_json()) == lineage
    blob = encode_tensors({"w": np.zeros(3, np.float32)}, {"fedchain": lineage.to_json()})
    assert Lineage.from_blob(blob) == lineage


@pytest.mark.parametrize(
    "text, why",
    [
        ("not json", "JSONDecodeError"),
        ("[1, 2]", "a JSON object, not list"),
        ('{"round": 0, "parent": null, "rejected": {}}', "KeyError: 'scores'"),
        ('{"round": 0, "parent": null, "scores": [["0xa", "five"]], "rejected": {}}', "ValueError"),
        ('{"round": 0, "parent": 7, "scores": [], "rejected": {}}', "parent is not a CID"),
        ('{"round": 0, "parent": null, "scores": [], "rejected": []}', "rejected and distances must be objects"),
    ],
)
def test_a_malformed_lineage_says_what_is_wrong(text, why):
    with pytest.raises(LineageError, match="malformed model lineage") as err:
        Lineage.from_json(text)
    assert why in str(err.value)
    assert isinstance(err.value, CodecError)  # a bad blob, to every caller that catches those


def test_a_blob_without_a_lineage_says_so():
    with pytest.raises(LineageError, match="no fedchain lineage"):
        Lineage.from_blob(encode_tensors({"w": np.zeros(3, np.float32)}, {}))
