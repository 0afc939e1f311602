"""Unit tests for fedchain.protocol.journal: the write-ahead journal a node replays on restart."""

import json

import pytest

from fedchain.protocol.journal import Journal

SALT = "0x" + "ab" * 32


def test_write_then_reload_gives_the_same_entries(tmp_path):
    path = tmp_path / "node" / "journal.jsonl"  # parent directories are created
    j = Journal(path)
    commit = j.write("commit", 1, 0, salt=SALT, root="0x01", samples=12)
    vote = j.write("vote", 1, 0, model_root="0x02", rejected=[3, 5])
    other = j.write("commit", 2, 0, salt=SALT)
    assert commit == {"kind": "commit", "task": 1, "round": 0, "salt": SALT, "root": "0x01", "samples": 12}

    again = Journal(path)
    assert again.get("commit", 1, 0) == commit
    assert again.get("vote", 1, 0) == vote
    assert again.get("commit", 2, 0) == other
    assert again.get("commit", 1, 1) is None
    assert again.get("reveal", 1, 0) is None


def test_one_json_object_per_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    j.write("commit", 1, 0, salt=SALT)
    j.write("reveal", 1, 0, cid="bafk")
    lines = path.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["commit", "reveal"]
    assert path.read_text().endswith("\n")


def test_reloaded_journal_appends_and_keeps_old_entries(tmp_path):
    path = tmp_path / "journal.jsonl"
    Journal(path).write("commit", 1, 0, salt=SALT)
    Journal(path).write("commit", 1, 1, salt=SALT)
    j = Journal(path)
    assert j.get("commit", 1, 0) and j.get("commit", 1, 1)
    assert len(path.read_text().splitlines()) == 2


def test_duplicate_kind_task_round_is_refused(tmp_path):
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    first = j.write("vote", 3, 2, model_root="0xaa")
    with pytest.raises(ValueError, match="already holds vote for task 3 round 2"):
        j.write("vote", 3, 2, model_root="0xbb")  # an equivocating second vote
    # ... also after a restart, and the refused entry never reached the disk
    with pytest.raises(ValueError):
        Journal(path).write("vote", 3, 2, model_root="0xbb")
    assert Journal(path).get("vote", 3, 2) == first
    assert len(path.read_text().splitlines()) == 1
    # another kind, task or round is a different key
    j.write("commit", 3, 2)
    j.write("vote", 4, 2)
    j.write("vote", 3, 3)


def test_blank_lines_are_ignored(tmp_path):
    path = tmp_path / "journal.jsonl"
    Journal(path).write("commit", 1, 0, salt=SALT)
    with open(path, "a") as f:
        f.write("\n   \n")
    assert Journal(path).get("commit", 1, 0)["salt"] == SALT


def test_torn_last_line_is_ignored_with_a_warning(tmp_path):
    # A crash during write() can leave a partial last line. That write was never
    # acknowledged (write() had not returned, nothing was sent), so the journal must
    # drop it, warn, and stay appendable.
    path = tmp_path / "journal.jsonl"
    Journal(path).write("commit", 1, 0, salt=SALT)
    full = json.dumps({"kind": "reveal", "task": 1, "round": 0, "cid": "bafk"}, sort_keys=True)
    with open(path, "a") as f:
        f.write(full[: len(full) // 2])
    with pytest.warns(UserWarning):
        j = Journal(path)
    assert j.get("commit", 1, 0)["salt"] == SALT
    assert j.get("reveal", 1, 0) is None
    j.write("reveal", 1, 0, cid="bafk")  # the re-sent entry lands on a line of its own
    assert Journal(path).get("reveal", 1, 0)["cid"] == "bafk"


def test_corrupt_line_in_the_middle_is_an_error(tmp_path):
    # unlike a torn tail, a bad line followed by good ones is corruption: never skip it
    path = tmp_path / "journal.jsonl"
    path.write_text(
        '{"kind": "commit", "task": 1, "round": 0}\n{"kind": "vo\n{"kind": "vote", "task": 1, "round": 0}\n'
    )
    with pytest.raises(ValueError):
        Journal(path)
