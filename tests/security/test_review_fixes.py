"""Regression tests for the 2026-12 security review's findings in challenges.vy.

* C-1 (critical): ``challenge_total`` took a "table root" for every rule, so anyone could pass
  the left half of an honest plain scores tree off as the whole tree (with the right half's root
  as the table root) and "prove" its total wrong: the round was reverted and the whole honest
  committee slashed. The table root is now required for the Krum rules (4, 5, 6) and refused
  for every other rule, rule 0 included.
* L-1 (low): nothing tied a scores tree's leaf count to the round's reveals, so a quorum could
  leave a revealer out or add a phantom leaf. With the table root fixed by the rule the leaves
  under a vote's scores root are unique, and ``challenge_total`` counts a leaf list that is not
  one leaf per reveal as wrong.
* L-2 (low, the challenges.vy half): a Krum-rule round with no reveal could not be challenged
  (``reveals * (reveals - 1) // 2`` underflowed in ``open_table`` and the bisection steps).

Each test runs the attack as the review describes it, on the conftest network (tasks whose
recipe hash names the rule directly) or, for the honest Krum vote, on a simulated network.
"""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi import encode
from eth_utils import keccak

from conftest import MAX_UINT, STAKE, TOKEN, ZERO32, committed, h32, reverts
from fedchain.chain import commitments as cm
from fedchain.chain.interface import account_from_seed, artifact
from fedchain.protocol.distances import combined_scores_root, digest, leaf_hash, node_hash
from fedchain.protocol.node import FAILED, FINALIZED, OPEN
from fedchain.sim.network import SimConfig, build_network, leading_evidence, play_to_vote
from fedchain.storage.merkle import merkle_root

JSON_HASH = keccak(b"recipe")
FEDAVG, FEDMEDIAN, NOT_RECOMPUTABLE, KRUM = 1, 2, 0, 4


def rule_of(rule: int, param1: int = 0, param2: int = 1, score: int = 1) -> tuple:
    """The RecipeRule a challenge sends: the preimage of the task's recipe hash."""
    return (rule, param1, param2, score, JSON_HASH)


def rule_hash(rule: tuple) -> bytes:
    return keccak(encode(["uint256"] * 4 + ["bytes32"], list(rule)))


@pytest.fixture
def ch(net):
    return net.chain.at(artifact("challenges"), net.fc.call("challenges"))


@pytest.fixture
def attacker(net, ch):
    """An outsider with tokens (conftest) that approves the challenge contract for its bonds."""
    acct = net.outsiders[0]
    net.token.tx("approve", ch.address, MAX_UINT, sender=acct)
    return acct


def halves(leaves: list[bytes]) -> tuple[int, bytes]:
    """How many leaves the left half of a plain tree over ``leaves`` holds, and the right
    half's root: the tree's root is keccak256(left root ++ right root)."""
    width = 1 << (len(leaves) - 1).bit_length()
    padded = leaves + [ZERO32] * (width - len(leaves))
    return width // 2, merkle_root(padded[width // 2 :])


def total_args(t: int, vote: tuple, rule: tuple, nodes, scores, table_root: bytes = ZERO32) -> tuple:
    return (t, 0, vote, rule, list(nodes), list(scores), table_root)


def success(receipt) -> bool:
    return receipt.event("Challenged").args["success"]


def judged(net, ch, acct, fn: str, *args) -> bool:
    """Commit to the challenge, then send it a block later: whether it proved the vote wrong."""
    committed(net.chain, ch, acct, (fn, args))
    return success(ch.tx(fn, *args, sender=acct))


def assert_untouched(net, t: int, rnd: int, leader: bytes) -> None:
    """No validator lost stake or can be slashed for the round, which is still open with its leader."""
    for v in net.validators:
        assert net.stake_of(v)["active"] == STAKE
        with reverts("slashing: round not challenged"):
            net.slashing.tx("slash_wrong_vote", t, rnd, v.address, sender=net.outsiders[1])
    r = net.fc.call("rounds", t, rnd)
    assert (r["status"], r["leader"]) == (OPEN, leader)
    net.assert_conserved()


# ---------------------------------------------------------------- C-1


@pytest.mark.parametrize(
    "rule,revealers",
    [(FEDAVG, 3), (FEDAVG, 4), (FEDMEDIAN, 3), (NOT_RECOMPUTABLE, 3)],
    ids=["fedavg-3", "fedavg-4", "fedmedian-3", "rule0-3"],
)
def test_half_an_honest_scores_tree_cannot_pass_for_the_whole_one(net, ch, attacker, rule, revealers):
    recipe = rule_of(rule)
    t = net.create_task(recipe_hash=rule_hash(recipe))
    res = net.play_round(t, revealers=net.trainers[:revealers], finalize=False)  # scores 1, 2, 3(, 4)
    s = res.scores
    half, right = halves(s.leaves)
    held = net.balance(attacker)
    # the review's attack: the left half's leaves, the right half's root as the "table root"
    with reverts("challenges: table root only for Krum rules"):
        ch.tx(
            "challenge_total", *total_args(t, res.args, recipe, s.nodes[:half], s.scores[:half], right), sender=attacker
        )
    # nor with the honest leaves and any table root, nor with the left half alone
    with reverts("challenges: table root only for Krum rules"):
        ch.tx("challenge_total", *total_args(t, res.args, recipe, s.nodes, s.scores, right), sender=attacker)
    with reverts("challenges: not the scores tree"):
        ch.tx("challenge_total", *total_args(t, res.args, recipe, s.nodes[:half], s.scores[:half]), sender=attacker)
    assert net.balance(attacker) == held
    assert_untouched(net, t, 0, res.hash)
    # the honest leaves: a sound challenge of the total, also for rule 0; it fails and costs the bond
    bond = ch.call("bond")
    assert judged(net, ch, attacker, "challenge_total", *total_args(t, res.args, recipe, s.nodes, s.scores)) is False
    assert net.balance(attacker) == held - bond
    assert_untouched(net, t, 0, res.hash)
    net.to_finalizable(t, 0)
    net.finalize(t, res)
    assert net.fc.call("rounds", t, 0)["status"] == FINALIZED
    net.claim(t, 0, net.trainers[0], res)


def test_a_krum_vote_needs_its_table_root_and_cannot_be_split_either(net, ch, attacker):
    recipe = rule_of(KRUM)
    t = net.create_task(recipe_hash=rule_hash(recipe))
    revealers = net.trainers[:3]
    for tr in revealers:
        net.commit(t, 0, tr)
    net.join(t, 0)
    net.to_reveal_phase(t, 0)
    for tr in revealers:
        net.reveal(t, 0, tr)
    s = net.result(t, 0, dict(zip(revealers, [1, 2, 3]))).scores
    table = leaf_hash(0, [4, 5, 6])  # one chunk: the root is leaf 0
    vote = (h32("model", t, 0), h32("model-cid", t, 0), combined_scores_root(s.root, table), s.total, 0)
    net.to_vote_phase(t, 0)
    for v in net.validators:
        net.fc.tx("vote", t, 0, *vote, sender=v)
    with reverts("challenges: Krum rules need the table root"):
        ch.tx("challenge_total", *total_args(t, vote, recipe, s.nodes, s.scores), sender=attacker)
    half, right = halves(s.leaves)
    with reverts("challenges: not the scores tree"):
        ch.tx("challenge_total", *total_args(t, vote, recipe, s.nodes[:half], s.scores[:half], right), sender=attacker)
    assert judged(net, ch, attacker, "challenge_total", *total_args(t, vote, recipe, s.nodes, s.scores, table)) is False
    assert_untouched(net, t, 0, cm.vote_hash(*vote))


def test_an_honest_krum_vote_survives_its_total_challenge_with_the_table_root(tmp_path):
    net = build_network(
        SimConfig(
            trainers=6,
            validators=3,
            rounds=1,
            model="logreg",
            epochs=1,
            batch_size=32,
            seed=3,
            out=tmp_path,
            rule="krum",
            rule_params={"num_malicious_nodes": 1},
        )
    )
    fc, ch, t = net.deployment.fedchain, net.deployment.challenges, net.task_id
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    total = ev.total_challenge()
    assert total.table_root == ev.table.root != ZERO32
    acct = account_from_seed("challenger")
    net.chain.fund(acct.address, 10**20)
    net.deployment.token.tx("mint", acct.address, 100 * TOKEN, sender=account_from_seed(f"{net.cfg.seed}:sponsor"))
    net.deployment.token.tx("approve", ch.address, MAX_UINT, sender=acct)
    with reverts("challenges: Krum rules need the table root"):
        ch.tx(total.fn, *dataclasses.replace(total, table_root=ZERO32).args(), sender=acct)
    assert judged(net, ch, acct, total.fn, *total.args()) is False
    assert fc.call("rounds", t, v.round_id)["status"] == OPEN
    assert not [e for e in fc.events() if e.name == "Slashed"]
    assert net.conservation_gap() == 0


# ---------------------------------------------------------------- L-1


@pytest.mark.parametrize("rule", [FEDAVG, NOT_RECOMPUTABLE], ids=["fedavg", "rule0"])
@pytest.mark.parametrize("shape", ["omitted", "phantom"])
def test_a_scores_tree_without_one_leaf_per_reveal_is_proven_wrong(net, ch, attacker, rule, shape):
    recipe = rule_of(rule)
    t = net.create_task(recipe_hash=rule_hash(recipe))
    revealers = net.trainers[:3]
    for tr in revealers:
        net.commit(t, 0, tr)
    net.join(t, 0)
    net.to_reveal_phase(t, 0)
    for tr in revealers:
        net.reveal(t, 0, tr)
    # the last revealer left out, or a phantom leaf after the last reveal; the total matches the leaves
    scored = (
        dict(zip(revealers[:2], [1, 2]))
        if shape == "omitted"
        else {**dict(zip(revealers, [1, 2, 3])), net.outsiders[2]: 4}
    )
    res = net.result(t, 0, scored)
    net.to_vote_phase(t, 0)
    for v in net.validators:
        net.vote(t, 0, v, res)
    assert net.fc.call("rounds", t, 0)["reveals"] == 3 and res.scores.total == sum(scored.values())
    held = net.balance(attacker)
    s = res.scores
    assert judged(net, ch, attacker, "challenge_total", *total_args(t, res.args, recipe, s.nodes, s.scores)) is True
    r = net.fc.call("rounds", t, 0)
    assert (r["status"], r["challenger"]) == (FAILED, attacker.address)
    assert net.balance(attacker) == held  # the bond came back
    for v in net.validators:
        net.slashing.tx("slash_wrong_vote", t, 0, v.address, sender=attacker)
        assert net.stake_of(v)["active"] == STAKE - STAKE // 2


# ---------------------------------------------------------------- L-2


def vote_without_reveals(net, t: int, rnd: int, table: bytes) -> tuple:
    """A quorum votes a Krum-shaped result (empty scores tree, distance table ``table``) in a
    round where nobody revealed."""
    net.join(t, rnd)
    net.to_vote_phase(t, rnd)
    vote = (h32("model", t, rnd), h32("model-cid", t, rnd), combined_scores_root(ZERO32, table), 0, 0)
    for v in net.validators:
        net.fc.tx("vote", t, rnd, *vote, sender=v)
    r = net.fc.call("rounds", t, rnd)
    assert r["reveals"] == 0 and r["leader"] == cm.vote_hash(*vote)
    return vote


def test_a_krum_round_without_reveals_can_be_challenged(net, ch, attacker):
    recipe = rule_of(KRUM)
    t = net.create_task(recipe_hash=rule_hash(recipe))
    # round 0: a table with one pair's entries, where 0 reveals have none
    lo, hi = leaf_hash(0, [7]), leaf_hash(1, [0])
    vote = vote_without_reveals(net, t, 0, node_hash(lo, hi, [7]))
    opened = ch.tx("open_table", t, 0, vote, recipe, [], (ZERO32, lo, hi, [7]), sender=attacker).event("TableOpened")
    assert (opened.args["malformed"], opened.args["selection"]) == (True, 0)
    no_chunk = (attacker.address, ZERO32, ZERO32, b"", [])
    with reverts("challenges: no such pair"):  # a leaf step needs a pair: refused with a reason
        ch.tx(
            "challenge_distance_leaf",
            t,
            0,
            vote,
            recipe,
            ZERO32,
            0,
            [7],
            [hi],
            [digest([0])],
            0,
            1,
            no_chunk,
            no_chunk,
            sender=attacker,
        )
    # the root (height 1, position 0) is the sum of its children, but of the wrong size
    assert (
        judged(
            net,
            ch,
            attacker,
            "challenge_distance_sum",
            t,
            0,
            vote,
            recipe,
            ZERO32,
            1,
            0,
            [7],
            (ZERO32, ZERO32, [7]),
            (ZERO32, ZERO32, [0]),
            [],
            [],
        )
        is True
    )
    assert net.fc.call("rounds", t, 0)["status"] == FAILED
    # round 1 (opened by the revert): a table of the right size, no pairs; the bisection judges it right
    table = node_hash(leaf_hash(0, []), leaf_hash(1, []), [])
    vote = vote_without_reveals(net, t, 1, table)
    empty_node = (ZERO32, ZERO32, [])
    opened = ch.tx(
        "open_table", t, 1, vote, recipe, [], (ZERO32, leaf_hash(0, []), leaf_hash(1, []), []), sender=attacker
    ).event("TableOpened")
    assert (opened.args["malformed"], opened.args["selection"]) == (False, 0)
    assert (
        judged(
            net,
            ch,
            attacker,
            "challenge_distance_sum",
            t,
            1,
            vote,
            recipe,
            ZERO32,
            1,
            0,
            [],
            empty_node,
            empty_node,
            [],
            [],
        )
        is False
    )
    assert net.fc.call("rounds", t, 1)["status"] == OPEN
