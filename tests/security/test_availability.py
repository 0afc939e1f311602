"""The data-availability game (availability.vy; SECURITY-REVIEW H-3).

Without it a colluding quorum that withholds the data a fraud proof needs (the voted
model, an accepted update, a Krum vote's distance table) escapes every challenge. Now
anyone may request one node of those trees in the challenge window; the round waits for
the answer, and an unanswered request reverts the round and makes its voters slashable.
An honest quorum can answer every request (any level, any position, padding and
past-the-leaves included), so the game never slashes it.

Rounds here are scripted on the conftest network with real trees: fixed-point vectors
chunked as the protocol chunks them, and distance tables built by ``protocol.distances``.
"""

from __future__ import annotations

import numpy as np
import pytest
from eth_abi import encode
from eth_utils import keccak

from conftest import MAX_UINT, STAKE, ZERO32, Result, Scores, Update, h32, make_net, reverts
from fedchain.chain.embedded import EmbeddedChain
from fedchain.learning import fixedpoint as fp
from fedchain.protocol.availability import (
    KIND_MODEL,
    KIND_TABLE,
    KIND_UPDATE,
    NO_OPENING,
    request_id,
    table_node,
    vector_node,
)
from fedchain.protocol.distances import DistanceTable, combined_scores_root
from fedchain.protocol.node import FAILED, FINALIZED, OPEN
from fedchain.protocol.round import Vote

CHUNK = fp.CHUNK_SIZE
SIZE = 300  # five chunks: a depth-3 tree with three padding leaves
FAIL_CHALLENGED = 3
FEDAVG = (1, 0, 1, 1, keccak(b"recipe"))
KRUM = (4, 0, 1, 1, keccak(b"recipe"))


def rule_hash(rule: tuple) -> bytes:
    return keccak(encode(["uint256"] * 4 + ["bytes32"], list(rule)))


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-(2**20), 2**20, SIZE)


class Round:
    """Round 0 of a task, voted by every validator and sitting in its challenge window."""

    def __init__(self, net, rule=FEDAVG, *, model_root=None, withheld_update=False, table_root=None):
        self.net, self.rule = net, rule
        # ten-block phases: on anvil every transaction mines a block
        self.task = net.create_task(
            recipe_hash=rule_hash(rule), commit_blocks=10, reveal_blocks=10, validate_blocks=10, challenge_blocks=10
        )
        self.trainers = net.trainers[:3]
        self.updates = [vector(10 + i) for i in range(3)]
        self.model = vector(1)
        for t in self.trainers:
            net.commit(self.task, 0, t, self.update_of(t))
        net.join(self.task, 0)
        net.to_reveal_phase(self.task, 0)
        for t in self.trainers:
            net.reveal(self.task, 0, t, self.update_of(t))
        if withheld_update:  # trainer 0's update: a root nobody knows a tree for
            self.updates[0] = None
        scores = Scores(tuple(t.address for t in self.trainers), (1, 2, 3))
        self.table = DistanceTable.of_round(self.updates, SIZE, CHUNK) if rule[0] >= 4 and table_root is None else None
        scores_root = scores.root
        if rule[0] >= 4:
            scores_root = combined_scores_root(scores.root, table_root or self.table.root)
        self.scores = scores
        self.vote = (model_root or fp.vector_root(self.model, CHUNK), h32("model-cid"), scores_root, scores.total, 0)
        net.to_vote_phase(self.task, 0)
        for v in net.validators:
            net.fc.tx("vote", self.task, 0, *self.vote, sender=v)
        net.chain.mine_to(net.schedule(self.task, 0)[3] + 1)  # the first block of the challenge window
        self.av = net.availability
        self.requester = net.outsiders[0]
        net.token.tx("approve", self.av.address, MAX_UINT, sender=self.requester)

    def update_of(self, t) -> Update:
        i = self.trainers.index(t)
        return Update(fp.vector_root(vector(10 + i), CHUNK), h32("salt", t.address), h32("cid", t.address))

    def request(self, kind=KIND_MODEL, index=0, level=0, position=0, sender=None) -> bytes:
        r = self.av.tx(
            "request", self.task, 0, self.vote, self.rule, kind, index, level, position, sender=sender or self.requester
        )
        rid = r.event("Requested").args["request_id"]
        assert rid == request_id(self.task, 0, kind, index, level, position)
        return rid

    def answer(self, rid: bytes, sender=None):
        req = self.av.call("requests", rid)
        level, position = req["level"], req["position"]
        sender = sender or self.net.validators[0]
        if req["kind"] == KIND_TABLE:
            node = table_node(self.table, self.scores.root, level, position)
            return self.av.tx("answer_table", rid, self.vote, node, sender=sender)
        if req["kind"] == KIND_MODEL:
            return self.av.tx(
                "answer", rid, self.vote, vector_node(self.model, CHUNK, level, position), NO_OPENING, sender=sender
            )
        t = self.trainers[req["index"]]
        u = self.update_of(t)
        node = vector_node(self.updates[req["index"]], CHUNK, level, position)
        return self.av.tx("answer", rid, self.vote, node, (t.address, u.root, u.salt), sender=sender)

    def past_deadline(self, rid: bytes) -> None:
        self.net.chain.mine_to(self.av.call("requests", rid)["deadline"] + 1)

    @property
    def result(self) -> Result:
        return Result(self.vote[0], self.vote[1], self.scores, 0)


# ---------------------------------------------------------------- an honest quorum answers


def test_a_round_waits_for_its_open_request_and_finalizes_once_it_is_answered(net):
    r = Round(net)
    rid = r.request()
    held = net.balance(r.requester)
    assert net.availability.call("open_requests", r.task, 0) == 1
    net.to_finalizable(r.task, 0)
    with reverts("rounds: availability request open"):
        net.finalize(r.task, r.result)
    answerer = net.validators[1]
    before = net.balance(answerer)
    rc = r.answer(rid, sender=answerer)
    ev = rc.event("Answered").args
    layers_root = fp.vector_root(r.model, CHUNK)
    assert ev["inner"] and keccak(ev["left"] + ev["right"]) == layers_root  # the root's children, on chain
    assert net.balance(answerer) == before + net.params.request_bond  # the bond pays the answer
    assert net.balance(r.requester) == held
    assert net.availability.call("open_requests", r.task, 0) == 0
    with reverts("availability: no open request"):
        r.answer(rid)
    net.finalize(r.task, r.result)
    assert net.fc.call("rounds", r.task, 0)["status"] == FINALIZED
    net.assert_conserved()


# level 0 is the root; the model has five chunks, so level 3 holds its leaves (positions 5-7 pad)
NODES = [(0, 0), (1, 1), (2, 2), (3, 0), (3, 4), (3, 5), (3, 7), (5, 19), (20, 2**20 - 1)]


@pytest.mark.parametrize("kind", [KIND_MODEL, KIND_UPDATE])
def test_an_honest_quorum_can_answer_any_node_of_its_trees(kind):
    net = make_net(EmbeddedChain())
    r = Round(net)
    for level, position in NODES:
        rid = r.request(kind, 1 if kind == KIND_UPDATE else 0, level, position)
        r.answer(rid)
    assert net.availability.call("open_requests", r.task, 0) == 0
    net.assert_conserved()


def test_an_honest_quorum_can_answer_any_node_of_its_distance_table():
    net = make_net(EmbeddedChain())
    r = Round(net, KRUM)
    for level, position in NODES:
        rc = r.answer(r.request(KIND_TABLE, 0, level, position))
        assert list(rc.event("TableAnswered").args["sums"]) == table_node(r.table, r.scores.root, level, position)[4]
    net.assert_conserved()


# ---------------------------------------------------------------- a withholding quorum is reverted


def withheld_round(net, what: str) -> Round:
    if what == "model":
        return Round(net, model_root=h32("a model nobody can open"))
    if what == "update":
        return Round(net, withheld_update=True)
    return Round(net, KRUM, table_root=h32("a table nobody can open"))


REQUEST = {"model": (KIND_MODEL, 0), "update": (KIND_UPDATE, 0), "table": (KIND_TABLE, 0)}


@pytest.mark.parametrize("what", ["model", "update", "table"])
def test_a_quorum_that_withholds_data_is_reverted_and_slashed(chain, what):
    net = make_net(chain)
    r = withheld_round(net, what)
    kind, index = REQUEST[what]
    rid = r.request(kind, index)
    with reverts("availability: answer not due yet"):
        net.availability.tx("settle", rid, sender=net.outsiders[1])
    held = net.balance(r.requester)
    r.past_deadline(rid)
    rc = net.availability.tx("settle", rid, sender=net.outsiders[1])  # anyone may settle
    assert rc.event("Unanswered").args["reverted"] is True
    assert rc.event("RoundFailed").args["reason"] == FAIL_CHALLENGED
    rnd = net.fc.call("rounds", r.task, 0)
    assert (rnd["status"], rnd["challenger"]) == (FAILED, r.requester.address)
    assert net.balance(r.requester) == held + net.params.request_bond
    for v in net.validators:
        taken = net.slashing.tx("slash_wrong_vote", r.task, 0, v.address, sender=net.outsiders[2])
        assert taken.event("Slashed").args["amount"] == STAKE * net.params.safety_penalty_bps // 10_000
    share = STAKE // 2 * net.params.reporter_bps // 10_000
    assert net.fc.call("payouts", r.requester.address) == 3 * share
    assert net.fc.call("tasks", r.task)["round"] == 1  # the next round starts from the last good model
    # the trainer of a withheld update is slashed too (liveness); nobody else's update was withheld
    withheld = r.trainers[:1] if what == "update" else []
    for t in r.trainers:
        if t in withheld:
            with reverts("slashing: cannot report yourself"):
                net.slashing.tx("slash_withheld", r.task, 0, t.address, sender=t)
            ev = net.slashing.tx("slash_withheld", r.task, 0, t.address, sender=net.outsiders[2]).event("Slashed")
            assert (ev.args["node"], ev.args["reason"], ev.args["amount"]) == (
                t.address,
                6,
                net.params.liveness_penalty,
            )
            with reverts("slashing: already slashed"):
                net.slashing.tx("slash_withheld", r.task, 0, t.address, sender=net.outsiders[2])
        else:
            with reverts("slashing: not withheld"):
                net.slashing.tx("slash_withheld", r.task, 0, t.address, sender=net.outsiders[2])
    with reverts("slashing: no reveal"):
        net.slashing.tx("slash_withheld", r.task, 0, net.outsiders[1].address, sender=net.outsiders[2])
    with reverts("availability: no open request"):
        net.availability.tx("settle", rid, sender=net.outsiders[1])
    net.assert_conserved()


def test_a_withheld_update_can_still_be_answered_by_its_trainer(net):
    r = Round(net)
    rid = r.request(KIND_UPDATE, 2, 3, 1)
    r.answer(rid, sender=r.trainers[2])  # anyone holding the data may answer
    with reverts("slashing: not withheld"):  # an answered request slashes nobody
        net.slashing.tx("slash_withheld", r.task, 0, r.trainers[2].address, sender=net.outsiders[2])
    net.to_finalizable(r.task, 0)
    net.finalize(r.task, r.result)
    net.assert_conserved()


def test_a_settle_after_another_revert_marks_no_update_withheld(net):
    """Only the request that reverts the round withholds: one settled after a revert
    (by another request or a challenge) slashes no trainer."""
    r = Round(net, withheld_update=True)
    first, second = r.request(KIND_MODEL, 0, 0, 0), r.request(KIND_UPDATE, 0, 0, 0)
    r.past_deadline(second)
    net.availability.tx("settle", first, sender=net.outsiders[1])  # the model request reverts the round
    assert net.availability.tx("settle", second, sender=net.outsiders[1]).event("Unanswered").args["reverted"] is False
    assert net.availability.call("withheld", r.task, 0) == 0
    with reverts("slashing: not withheld"):
        net.slashing.tx("slash_withheld", r.task, 0, r.trainers[0].address, sender=net.outsiders[2])


def test_other_requests_of_a_reverted_round_are_settled_without_effect(net):
    r = withheld_round(net, "model")
    first, second = r.request(KIND_MODEL, 0, 0, 0), r.request(KIND_MODEL, 0, 1, 0)
    r.past_deadline(second)
    net.availability.tx("settle", first, sender=net.outsiders[1])
    rc = net.availability.tx("settle", second, sender=net.outsiders[1])
    assert rc.event("Unanswered").args["reverted"] is False
    assert net.availability.call("open_requests", r.task, 0) == 0
    net.assert_conserved()


# ---------------------------------------------------------------- requests that cannot be made


def test_requests_come_after_the_vote_phase_and_within_the_window(net):
    task = net.create_task(recipe_hash=rule_hash(FEDAVG))
    res = net.play_round(task, 0, finalize=False)
    av, who = net.availability, net.outsiders[0]
    net.token.tx("approve", av.address, MAX_UINT, sender=who)
    args = (task, 0, res.args, FEDAVG, KIND_MODEL, 0, 0, 0)
    with reverts("availability: vote phase open"):
        av.tx("request", *args, sender=who)
    net.chain.mine_to(net.schedule(task, 0)[3] + net.fc.call("tasks", task)["challenge_blocks"] + 1)
    with reverts("availability: window closed"):
        av.tx("request", *args, sender=who)
    other = net.result(task, 0, tag="other")
    with reverts("availability: not the leading vote"):
        av.tx("request", task, 0, other.args, FEDAVG, KIND_MODEL, 0, 0, 0, sender=who)
    with reverts("availability: no leading vote"):
        av.tx("request", task, 1, res.args, FEDAVG, KIND_MODEL, 0, 0, 0, sender=who)


@pytest.mark.parametrize(
    "kind, index, level, position, rule, reason",
    [
        (KIND_MODEL, 0, 21, 0, FEDAVG, "availability: bad node"),
        (KIND_MODEL, 0, 2, 4, FEDAVG, "availability: bad node"),
        (KIND_UPDATE, 3, 0, 0, FEDAVG, "availability: not an accepted update"),
        (KIND_TABLE, 0, 0, 0, FEDAVG, "availability: no distance table"),
        (KIND_TABLE, 0, 0, 0, KRUM, "availability: not the task's rule"),
        (4, 0, 0, 0, FEDAVG, "availability: unknown kind"),
    ],
)
def test_a_request_for_data_that_does_not_exist_is_refused(net, kind, index, level, position, rule, reason):
    r = Round(net)
    with reverts(reason):
        r.av.tx("request", r.task, 0, r.vote, rule, kind, index, level, position, sender=r.requester)


def test_a_rejected_update_cannot_be_requested_and_a_node_only_once(net):
    task = net.create_task(recipe_hash=rule_hash(FEDAVG))
    trainers = net.trainers[:2]
    for t in trainers:
        net.commit(task, 0, t)
    net.join(task, 0)
    net.to_reveal_phase(task, 0)
    for t in trainers:
        net.reveal(task, 0, t)
    res = net.result(task, 0, dict(zip(trainers, (0, 1))), rejected=1)
    net.to_vote_phase(task, 0)
    for v in net.validators:
        net.vote(task, 0, v, res)
    net.chain.mine_to(net.schedule(task, 0)[3] + 1)
    av, who = net.availability, net.outsiders[0]
    net.token.tx("approve", av.address, MAX_UINT, sender=who)
    with reverts("availability: not an accepted update"):
        av.tx("request", task, 0, res.args, FEDAVG, KIND_UPDATE, 0, 0, 0, sender=who)
    av.tx("request", task, 0, res.args, FEDAVG, KIND_UPDATE, 1, 0, 0, sender=who)
    with reverts("availability: already requested"):
        av.tx("request", task, 0, res.args, FEDAVG, KIND_UPDATE, 1, 0, 0, sender=net.outsiders[1])


def test_a_round_takes_at_most_64_requests(net):
    r = Round(net)
    net.token.tx("mint", r.requester.address, 64 * net.params.request_bond, sender=net.owner)
    for p in range(64):
        r.request(KIND_MODEL, 0, 7, p)
    with reverts("availability: too many requests"):
        r.request(KIND_MODEL, 0, 7, 64)
    assert net.availability.call("held") == 64 * net.params.request_bond
    net.assert_conserved()


# ---------------------------------------------------------------- answers that prove nothing


def test_an_answer_must_be_the_requested_node_of_the_voted_tree(net):
    r = Round(net)
    rid = r.request(KIND_MODEL, 0, 3, 2)
    av, v = r.av, net.validators[0]
    wrong_leaf = vector_node(r.model, CHUNK, 3, 3)  # the neighbour's chunk and path
    with reverts("availability: bad proof"):
        av.tx("answer", rid, r.vote, wrong_leaf, NO_OPENING, sender=v)
    inner = vector_node(r.model, CHUNK, 2, 1)  # an inner node above the requested leaf
    with reverts("availability: not the requested node"):
        av.tx("answer", rid, r.vote, inner, NO_OPENING, sender=v)
    other = vector_node(vector(99), CHUNK, 3, 2)  # another model's chunk 2
    with reverts("availability: bad proof"):
        av.tx("answer", rid, r.vote, other, NO_OPENING, sender=v)
    right = vector_node(r.model, CHUNK, 3, 2)
    with reverts("availability: not the request's vote"):
        av.tx("answer", rid, (h32("x"), *r.vote[1:]), right, NO_OPENING, sender=v)
    short = (False, ZERO32, ZERO32, right[3][:100], right[4])
    with reverts("availability: bad chunk length"):
        av.tx("answer", rid, r.vote, short, NO_OPENING, sender=v)
    with reverts("availability: not a table request"):
        av.tx("answer_table", rid, r.vote, (ZERO32, False, ZERO32, ZERO32, [], [], []), sender=v)
    av.tx("answer", rid, r.vote, right, NO_OPENING, sender=v)
    assert av.call("requests", rid)["open"] is False
    net.assert_conserved()


def test_an_update_answer_must_open_the_requested_reveal(net):
    r = Round(net)
    rid = r.request(KIND_UPDATE, 1, 0, 0)
    node = vector_node(r.updates[1], CHUNK, 0, 0)
    t0, t1 = r.trainers[0], r.trainers[1]
    u0, u1 = r.update_of(t0), r.update_of(t1)
    with reverts("availability: not that reveal"):
        r.av.tx("answer", rid, r.vote, node, (t0.address, u0.root, u0.salt), sender=t1)
    with reverts("availability: root does not match commitment"):
        r.av.tx("answer", rid, r.vote, node, (t1.address, u1.root, h32("other salt")), sender=t1)
    r.av.tx("answer", rid, r.vote, node, (t1.address, u1.root, u1.salt), sender=t1)
    assert r.av.call("open_requests", r.task, 0) == 0


def test_only_fedchain_binds_and_only_the_game_or_a_challenge_reverts(net):
    av = net.availability
    with reverts("availability: not the deployer"):
        av.tx("bind", net.outsiders[0].address, sender=net.outsiders[0])
    with reverts("availability: already bound"):
        av.tx("bind", net.outsiders[0].address, sender=net.owner)
    with reverts("challenges: not allowed"):
        net.fc.tx("revert_round", 1, 0, net.outsiders[0].address, sender=net.outsiders[0])
    assert net.fc.call("rounds", 1, 0)["status"] == OPEN


# ---------------------------------------------------------------- the whole network


MULTIKRUM = dict(rule="multikrum", rule_params={"num_malicious_nodes": 1, "num_nodes_to_select": 3})


@pytest.mark.parametrize(
    "collusion, extra, kind", [("withhold-model", {}, KIND_MODEL), ("withhold-table", MULTIKRUM, KIND_TABLE)]
)
def test_a_watcher_makes_a_withholding_quorum_answer_or_be_slashed(tmp_path, collusion, extra, kind):
    """Three colluders vote a sabotaged result and publish nothing of it: without the game no
    proof could be built. The watcher requests what it cannot fetch; nobody answers; it
    settles the request, the round is reverted and every colluder is slashed."""
    from fedchain.sim.network import SimConfig, build_network, play_round

    cfg = SimConfig(
        trainers=6,
        validators=3,
        rounds=2,
        model="logreg",
        epochs=1,
        batch_size=32,
        seed=3,
        out=tmp_path,
        colluders=3,
        collusion=collusion,
        watchers=1,
        **extra,
    )
    net = build_network(cfg)
    outcome = play_round(net)
    watcher, fc = net.watchers[0], net.deployment.fedchain
    assert not outcome.finalized
    assert list(watcher.requested) == [(net.task_id, 0)] and watcher.challenged == [(net.task_id, 0, True)]
    assert [e.args["kind"] for e in net.deployment.availability.events() if e.name == "Requested"] == [kind]
    failed = [e.args["reason"] for e in fc.events() if e.name == "RoundFailed"]
    assert failed == [FAIL_CHALLENGED]
    slashed = sorted(e.args["node"] for e in fc.events() if e.name == "Slashed" and e.args["reason"] == 4)
    assert slashed == sorted(v.address for v in net.validators)
    assert net.conservation_gap() == 0


def test_an_honest_trainer_answers_a_request_for_its_update_and_the_round_finalizes(tmp_path):
    """A request for an accepted update is answered by its trainer (the first node stepped
    that holds it; its validators would answer too), so an honest trainer is never slashed
    for a withheld update whatever its quorum does."""
    from fedchain.sim.network import SimConfig, build_network, play_round, play_to_vote

    net = build_network(
        SimConfig(
            trainers=4,
            validators=3,
            rounds=2,
            model="logreg",
            epochs=1,
            batch_size=32,
            seed=3,
            out=tmp_path,
            watchers=1,
        )
    )
    v = play_to_vote(net)
    net.chain.mine_to(v.validate_end + 1)
    asker = net.watchers[0]  # any party may ask, even about a right result
    fc, t = net.deployment.fedchain, net.task_id
    leader = fc.call("rounds", t, v.round_id)["leader"]
    vote = Vote.from_event(next(e for e in asker.task(t).votes[v.round_id] if e.args["vote_hash"] == leader))
    from fedchain.protocol.availability import request_args

    net.deployment.token.tx("approve", net.deployment.availability.address, MAX_UINT, sender=asker.account)
    asker.send(
        "request", *request_args(t, v.round_id, vote, net.recipe, KIND_UPDATE, 1, 2, 1), to=net.deployment.availability
    )
    owner = next(e.node for e in asker.task(t).reveals[v.round_id] if e.index == 1)
    outcome = play_round(net)  # the trainer answers it in the challenge window, then the round finalizes
    assert outcome.finalized and outcome.round_id == v.round_id
    answered = [e for e in net.deployment.availability.events() if e.name == "Answered"]
    assert len(answered) == 1 and answered[0].args["answerer"] == owner
    assert not [e for e in fc.events() if e.name == "Slashed"]
    assert net.conservation_gap() == 0


def test_a_watcher_walks_down_a_hidden_model_and_proves_it_wrong(tmp_path):
    """The colluders hold their sabotaged model but publish it nowhere, and answer every
    request: the watcher goes down the model's tree one answered node a block, towards the
    child that differs from the honest tree, and proves the wrong chunk it reaches."""
    from fedchain.sim.network import SimConfig, build_network, play_round

    cfg = SimConfig(
        trainers=4,
        validators=3,
        rounds=2,
        model="logreg",
        epochs=1,
        batch_size=32,
        seed=3,
        out=tmp_path,
        colluders=3,
        collusion="hide-model",
        watchers=1,
        phase_blocks=12,
    )
    net = build_network(cfg)
    outcome = play_round(net)
    watcher, av, fc = net.watchers[0], net.deployment.availability, net.deployment.fedchain
    assert not outcome.finalized and watcher.challenged == [(net.task_id, 0, True)], watcher.unprovable
    chunks = -(-sum(a.size for a in net.initial_params.values()) // CHUNK)  # the model's chunks (leaves)
    levels = [e.args["level"] for e in av.events() if e.name == "Requested"]
    answered = [e for e in av.events() if e.name == "Answered"]
    assert levels == list(range(len(levels))) and len(answered) == len(levels)  # root to leaf, each answered
    assert not answered[-1].args["inner"] and len(answered[-1].args["data"]) == 4 * CHUNK
    assert 2 ** (len(levels) - 2) < chunks <= 2 ** (len(levels) - 1)  # one request a level, the root's too
    challenged = [e.args for e in net.deployment.challenges.events() if e.name == "Challenged"]
    assert [c["kind"] for c in challenged] == [1] and challenged[0]["success"]
    slashed = sorted(e.args["node"] for e in fc.events() if e.name == "Slashed" and e.args["reason"] == 4)
    assert slashed == sorted(v.address for v in net.validators)
    assert net.conservation_gap() == 0


def test_a_watcher_reports_the_trainer_of_an_update_nobody_can_produce(tmp_path):
    """An accepted update's blob is lost after the vote, to its trainer and its voters alike
    (deleted from the network's one blob store): the watcher cannot recompute the round,
    requests the update, nobody answers, it settles, and reports the voters and the trainer."""
    from fedchain.sim.network import SimConfig, build_network, play_round, play_to_vote

    net = build_network(
        SimConfig(
            trainers=4,
            validators=3,
            rounds=2,
            model="logreg",
            epochs=1,
            batch_size=32,
            seed=3,
            out=tmp_path,
            watchers=1,
        )
    )
    v = play_to_vote(net)
    fc, t, watcher = net.deployment.fedchain, net.task_id, net.watchers[0]
    lost = next(e for e in watcher.task(t).reveals[v.round_id] if e.index == 1)
    net.store._path(lost.cid).unlink()
    outcome = play_round(net)
    assert not outcome.finalized and watcher.challenged == [(t, v.round_id, True)]
    requested = [e.args for e in net.deployment.availability.events() if e.name == "Requested"]
    assert [(e["kind"], e["index"]) for e in requested] == [(KIND_UPDATE, 1)]
    slashed = {(e.args["node"], e.args["reason"]) for e in fc.events() if e.name == "Slashed"}
    assert slashed == {(x.address, 4) for x in net.validators} | {(lost.node, 6)}
    assert net.conservation_gap() == 0


def test_a_watcher_answers_for_a_right_result_its_validators_do_not_defend(tmp_path):
    """A request about an honest round whose validators are offline: the watcher, having
    recomputed the round and found it right, answers from the blobs it fetched, so the
    round finalizes and no honest voter is slashed ("one honest watcher is enough")."""
    from fedchain.protocol.availability import request_args
    from fedchain.sim.network import SimConfig, build_network, play_round, play_to_vote

    net = build_network(
        SimConfig(
            trainers=4,
            validators=3,
            rounds=2,
            model="logreg",
            epochs=1,
            batch_size=32,
            seed=3,
            out=tmp_path,
            watchers=1,
        )
    )
    v = play_to_vote(net)
    net.chain.mine_to(v.validate_end + 1)
    fc, av, t, watcher = net.deployment.fedchain, net.deployment.availability, net.task_id, net.watchers[0]
    asker = net.trainers[0]
    leader = fc.call("rounds", t, v.round_id)["leader"]
    vote = Vote.from_event(next(e for e in asker.task(t).votes[v.round_id] if e.args["vote_hash"] == leader))
    from fedchain.chain.interface import account_from_seed

    sponsor = account_from_seed(f"{net.cfg.seed}:sponsor")  # the test token's minter in a simulation
    net.deployment.token.tx("mint", asker.address, av.call("bond"), sender=sponsor)
    net.deployment.token.tx("approve", av.address, MAX_UINT, sender=asker.account)
    asker.send("request", *request_args(t, v.round_id, vote, net.recipe, KIND_MODEL, 0, 1, 1), to=av)
    watcher.step(t)  # only the watcher is online
    answered = [e.args for e in av.events() if e.name == "Answered"]
    assert [a["answerer"] for a in answered] == [watcher.address]
    outcome = play_round(net)
    assert outcome.finalized and outcome.round_id == v.round_id
    assert not [e for e in fc.events() if e.name == "Slashed"]
    assert net.conservation_gap() == 0
