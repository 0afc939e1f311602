"""The secure-aggregation board (secagg.vy): who may advertise, share and answer, when, and
once each; every revert reason and every window boundary at b and b+1 (``mine_to(b)`` puts
the next transaction in block b)."""

import pytest

from conftest import ZERO32, h32, reverts
from fedchain.protocol.node import RoundView
from fedchain.protocol.secagg_round import Windows

ROLE_TRAINER = 1


@pytest.fixture
def task(net):
    return net.create_task(commit_blocks=6, reveal_blocks=4, validate_blocks=6)


@pytest.fixture
def board(net):
    return net.secagg


def windows(net, task, rnd=0) -> Windows:
    return Windows(*net.secagg.call("windows", task, rnd))


def selected(net, task, rnd=0):
    net.to_seed(task, rnd)
    chosen = [t for t in net.trainers if net.fc.call("is_selected", task, rnd, t.address, ROLE_TRAINER)]
    assert len(chosen) >= 2
    return chosen


def advertise(net, task, t, rnd=0):
    return net.secagg.tx("advertise", task, rnd, h32("c", t.address), h32("s", t.address), sender=t)


def test_windows_split_the_rounds_phases_as_python_does(net, task):
    opened, commit_end, reveal_end, validate_end = net.schedule(task, 0)
    view = RoundView(task, 0, opened, commit_end, reveal_end, validate_end, 0, 0, 0)
    assert windows(net, task) == Windows.of(view) == Windows(opened + 2, opened + 4, reveal_end + 3)
    assert net.secagg.call("windows", task, 5) == (0, 0, 0)


def test_one_round_on_the_board(net, task, board):
    a, b = selected(net, task)[:2]
    r = advertise(net, task, a)
    assert r.event("KeysAdvertised").args == {
        "task_id": task,
        "round_id": 0,
        "trainer": a.address,
        "c_pk": h32("c", a.address),
        "s_pk": h32("s", a.address),
    }
    advertise(net, task, b)
    assert board.call("advertised", task, 0) == 2 and board.call("step", task, 0, a.address) == 1
    w = windows(net, task)
    net.chain.mine_to(w.advertise_end + 1)
    r = board.tx("share", task, 0, h32("bundle"), h32("b"), sender=a)
    assert r.event("SharesPosted").args["bundle_cid"] == h32("bundle")
    assert r.event("SharesPosted").args["self_mask"] == h32("b") == board.call("self_mask", task, 0, a.address)
    assert board.call("shared", task, 0) == 1 and board.call("step", task, 0, a.address) == 2
    net.to_vote_phase(task, 0)
    r = board.tx("answer", task, 0, h32("answer"), sender=a)
    assert r.event("UnmaskAnswered").args == {
        "task_id": task,
        "round_id": 0,
        "trainer": a.address,
        "answer_cid": h32("answer"),
    }
    assert board.call("step", task, 0, a.address) == 3
    with reverts("secagg: already answered"):
        board.tx("answer", task, 0, h32("again"), sender=a)
    with reverts("secagg: not a sharer"):  # advertised, never shared
        board.tx("answer", task, 0, h32("answer"), sender=b)


def test_advertise_reverts(net, task, board):
    with reverts("secagg: no such round"):
        advertise(net, task, net.trainers[0], rnd=1)
    a = selected(net, task)[0]
    with reverts("secagg: empty key"):
        board.tx("advertise", task, 0, ZERO32, h32("s"), sender=a)
    with reverts("secagg: empty key"):
        board.tx("advertise", task, 0, h32("c"), ZERO32, sender=a)
    with reverts("secagg: not selected"):
        advertise(net, task, net.outsiders[0])
    advertise(net, task, a)
    with reverts("secagg: already advertised"):
        advertise(net, task, a)
    assert board.call("advertised", task, 0) == 1


@pytest.mark.parametrize("offset, ok", [(0, True), (1, False)])
def test_advertise_window_ends_at_advertise_end(net, task, offset, ok):
    a = selected(net, task)[0]
    net.chain.mine_to(windows(net, task).advertise_end + offset)
    if ok:
        advertise(net, task, a)
    else:
        with reverts("secagg: advertise phase over"):
            advertise(net, task, a)


def test_share_reverts_and_window(net, task, board):
    a, b = selected(net, task)[:2]
    advertise(net, task, a)
    advertise(net, task, b)
    w = windows(net, task)
    with reverts("secagg: share phase not started"):
        board.tx("share", task, 0, h32("bundle"), h32("b"), sender=a)
    net.chain.mine_to(w.advertise_end + 1)
    with reverts("secagg: empty bundle"):
        board.tx("share", task, 0, ZERO32, h32("b"), sender=a)
    with reverts("secagg: empty bundle"):  # and the self-mask hash
        board.tx("share", task, 0, h32("bundle"), ZERO32, sender=a)
    with reverts("secagg: not advertised"):
        board.tx(
            "share",
            task,
            0,
            h32("bundle"),
            h32("b"),
            sender=net.trainers[-1] if net.trainers[-1] not in (a, b) else net.outsiders[0],
        )
    board.tx("share", task, 0, h32("bundle"), h32("b"), sender=a)
    with reverts("secagg: already shared"):
        board.tx("share", task, 0, h32("bundle2"), h32("b"), sender=a)
    net.chain.mine_to(w.share_end)
    board.tx("share", task, 0, h32("bundle-b"), h32("b"), sender=b)  # the last block of the window
    net.chain.mine_to(w.share_end + 1)
    with reverts("secagg: share phase over"):
        board.tx("share", task, 0, h32("late"), h32("b"), sender=net.outsiders[0])
    assert board.call("shared", task, 0) == 2


def test_answer_reverts_and_window(net, task, board):
    a, b = selected(net, task)[:2]
    for t in (a, b):
        advertise(net, task, t)
    w = windows(net, task)
    net.chain.mine_to(w.advertise_end + 1)
    for t in (a, b):
        board.tx("share", task, 0, h32("bundle", t.address), h32("b"), sender=t)
    reveal_end = net.schedule(task, 0)[2]
    net.chain.mine_to(reveal_end)
    with reverts("secagg: answer phase not started"):
        board.tx("answer", task, 0, h32("answer"), sender=a)
    net.chain.mine_to(reveal_end + 1)
    with reverts("secagg: empty answer"):
        board.tx("answer", task, 0, ZERO32, sender=a)
    with reverts("secagg: not a sharer"):
        board.tx("answer", task, 0, h32("answer"), sender=net.outsiders[0])
    net.chain.mine_to(w.answer_end)
    board.tx("answer", task, 0, h32("answer"), sender=a)  # the last block of the window
    net.chain.mine_to(w.answer_end + 1)
    with reverts("secagg: answer phase over"):
        board.tx("answer", task, 0, h32("answer"), sender=b)
