"""Krum and MultiKrum on chain: the distance table a vote commits to, the contract's
recomputation of Krum's selection, and the bisection steps that dispute a wrong table.

Unit tests check the Python tree against the contract's hashing and selection (the
contract's internal functions, through titanoboa); network tests run real rounds
(trained logistic-regression updates, the blob store, both contracts) with a colluding
committee and one watcher, and challenge every part of an honest round, which must fail.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import boa
import numpy as np
import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import committed, reverts
from fedchain.chain.deploy import TOKEN
from fedchain.chain.interface import CONTRACTS_DIR, account_from_seed
from fedchain.learning import aggregate
from fedchain.learning import fixedpoint as fp
from fedchain.learning.aggregate.bulyan import bulyan_selection, closest_to_median_mean
from fedchain.learning.aggregate.common import pairwise_sq_distances, stack
from fedchain.learning.aggregate.fedmedian import coordinate_median, fedmedian
from fedchain.learning.aggregate.fedtrimmedavg import fedtrimmedavg
from fedchain.learning.aggregate.krum import krum_scores, neighbour_order, select_multikrum
from fedchain.protocol.audit import Auditor, ContractEvents
from fedchain.protocol.challenge import DistanceLeafChallenge, DistanceSumChallenge, OpenTable, Unchallengeable
from fedchain.protocol.distances import (
    DistanceTable,
    TableError,
    digest,
    first_fault,
    leaf_hash,
    node_hash,
    pair_index,
    pair_of,
)
from fedchain.protocol.node import FAILED, OPEN
from fedchain.sim.network import SimConfig, build_network, leading_evidence, play_round, play_to_vote
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.codec import decode_metadata

SLASH_WRONG_VOTE = 4
MULTIKRUM = dict(rule="multikrum", rule_params={"num_malicious_nodes": 1})


def config(tmp_path, **kw) -> SimConfig:
    base = dict(trainers=6, validators=3, rounds=2, model="logreg", epochs=1, batch_size=32, seed=3, out=tmp_path)
    return SimConfig(**base | MULTIKRUM | kw)


def funded(net, tokens=100 * TOKEN):
    acct = account_from_seed("challenger")
    net.chain.fund(acct.address, 10**20)
    net.deployment.token.tx("mint", acct.address, tokens, sender=account_from_seed(f"{net.cfg.seed}:sponsor"))
    return acct


def approve_bond(net, acct):
    ch = net.deployment.challenges
    net.deployment.token.tx("approve", ch.address, ch.call("bond"), sender=acct)


# ---------------------------------------------------------------- the table, in Python and in the contract


@pytest.fixture(scope="module")
def selector():
    return boa.load(str(CONTRACTS_DIR / "krum.vy"))


@pytest.fixture(scope="module")
def contract():
    """The judge of a model's values (challenges.vy's `challenge` calls it): its median and Bulyan helpers."""
    return boa.load(str(CONTRACTS_DIR / "model_judge.vy"))


def random_vectors(rng, n, size, rejected=()):
    return [None if i in rejected else rng.integers(-(2**23), 2**23, size) for i in range(n)]


def test_the_table_holds_the_exact_distances_and_survives_its_blob():
    rng = np.random.default_rng(0)
    vectors = random_vectors(rng, 5, 200, rejected={2})  # 4 chunks, the last one short
    table = DistanceTable.of_round(vectors, 200, fp.CHUNK_SIZE)
    accepted = [i for i, v in enumerate(vectors) if v is not None]
    exact = pairwise_sq_distances(stack([vectors[i] for i in accepted]))
    for b, j in enumerate(accepted):
        for a, i in enumerate(accepted[:b]):
            assert table.totals[pair_index(i, j)] == exact[a][b]
    assert all(table.totals[pair_index(i, 2)] == 0 for i in range(2))
    assert all(table.totals[pair_index(2, j)] == 0 for j in range(3, 5))
    assert table.depth == 2 and len(table.totals) == 10
    again = DistanceTable.from_bytes(table.to_bytes())
    assert again.hashes == table.hashes and again.sums == table.sums
    blob = table.to_bytes()
    for bad in (blob[:-1], blob[:40], blob[:32] + (10**6).to_bytes(32, "big") + blob[64:]):
        with pytest.raises(TableError):
            DistanceTable.from_bytes(bad)


def test_pairs_are_numbered_row_by_row():
    assert [pair_of(e) for e in range(6)] == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert all(pair_index(*pair_of(e)) == e for e in range(2016))
    with pytest.raises(ValueError):
        pair_index(2, 2)


def test_the_contract_hashes_the_table_as_python_does():
    tree = boa.load(str(CONTRACTS_DIR / "sumtree.vy"))  # the module challenges.vy and availability.vy share
    sums = [0, 1, 2**200, 7]
    assert digest(sums) == keccak(encode(["uint256[]"], [sums]))
    assert tree.internal._leaf(3, sums) == leaf_hash(3, sums)
    a, b = keccak(b"a"), keccak(b"b")
    assert tree.internal._node(a, b, sums) == node_hash(a, b, sums)


def test_bisection_finds_a_bad_node_or_a_bad_leaf():
    rng = np.random.default_rng(1)
    honest = DistanceTable.of_round(random_vectors(rng, 4, 300), 300, fp.CHUNK_SIZE)  # 5 chunks: depth 3
    assert first_fault(honest, honest) is None
    leaves = [list(s) for s in honest.sums[0]]
    leaves[5][4] += 1  # a padding leaf (chunk 5 of 5): a distance where there are no values
    assert first_fault(DistanceTable.build(leaves), honest) == ("leaf", 5, *pair_of(4))

    def lie(*nodes):
        sums = [[list(n) for n in level] for level in honest.sums]
        for h, p in nodes:
            sums[h][p][0] += 1
        return DistanceTable.from_bytes(DistanceTable(sums, honest.hashes).to_bytes())

    assert first_fault(lie((3, 0)), honest) == ("sum", 3, 0)  # the root's sums alone
    assert first_fault(lie((1, 1), (2, 0), (3, 0)), honest) == ("sum", 1, 1)  # consistent above (1, 1)
    assert first_fault(lie((1, 1)), honest) == ("sum", 2, 0)  # right distances, a wrong tree: its parent
    assert first_fault(DistanceTable.build(honest.sums[0][:4]), honest) == ("depth",)


@st.composite
def krum_cases(draw):
    reveals = draw(st.integers(2, 14))
    rejected = draw(st.integers(0, 2**reveals - 1)) if draw(st.booleans()) else 0
    f = draw(st.integers(0, 4))
    m = draw(st.integers(0, reveals))
    # small distances so that equal Krum scores (ties) are common
    d = draw(st.lists(st.integers(0, 6), min_size=reveals * (reveals - 1) // 2, max_size=reveals * (reveals - 1) // 2))
    return reveals, rejected, f, m, d


@settings(deadline=None)
@given(krum_cases(), st.data())
def test_the_contract_selects_what_krum_selects(selector, case, data):
    # seats in basis points: one each, or whole and part seats (a stake above the sortition cap)
    reveals, rejected, f, m, d = case
    seats = data.draw(
        st.one_of(
            st.just([10_000] * reveals),
            st.lists(st.integers(10_000, 35_000), min_size=reveals, max_size=reveals),
            st.lists(st.sampled_from([10_000, 20_000, 30_000]), min_size=reveals, max_size=reveals),
        )
    )
    accepted = [i for i in range(reveals) if not (rejected >> i) & 1]
    mask = (2**reveals - 1) & ~rejected
    got = selector.krum_selection(mask, reveals, d, f, m, seats)
    want = 0
    seats_in = sum(seats[i] for i in accepted)  # the validity checks count seats, as copies would
    if seats_in >= (2 * f + 3) * 10_000 and seats_in >= m * 10_000:
        dist = [
            [0 if a == b else d[pair_index(min(i, j), max(i, j))] for b, j in enumerate(accepted)]
            for a, i in enumerate(accepted)
        ]
        kept = select_multikrum(dist, f, m or None, [seats[i] for i in accepted])
        want = sum(1 << accepted[k] for k in kept)
        for k, take in kept.items():
            if take < seats[accepted[k]]:  # the update kept in part: its seats kept and index + 1
                want |= (take << 64) | ((accepted[k] + 1) << 128)
    assert got == want


@settings(deadline=None)
@given(krum_cases())
def test_krum_with_whole_seats_selects_as_copies_would(case):
    # one update with k seats is scored and kept as k one-seat copies of it: splitting a stake
    # over identities that send one update changes nothing (copies: distance 0 to each other)
    reveals, _, f, _, d = case
    k = [1 + (i % 3 == 0) for i in range(reveals)]
    dist = [[0 if i == j else d[pair_index(min(i, j), max(i, j))] for j in range(reveals)] for i in range(reveals)]
    copy_of = [i for i in range(reveals) for _ in range(k[i])]
    copies = [
        [0 if copy_of[a] == copy_of[b] else dist[copy_of[a]][copy_of[b]] for b in range(len(copy_of))]
        for a in range(len(copy_of))
    ]
    seats = [10_000 * m for m in k]
    order = neighbour_order(dist)
    by_copies = krum_scores(neighbour_order(copies), copies, f)
    assert krum_scores(order, dist, f, seats=seats) == {i: by_copies[copy_of.index(i)] for i in range(reveals)}
    kept = select_multikrum(dist, f, None, seats)
    kept_copies = select_multikrum(copies, f, None)
    assert {i: sum(10_000 for c in kept_copies if copy_of[c] == i) for i in kept} == kept
    assert sum(kept.values()) == sum(kept_copies.values())


@settings(deadline=None)
@given(krum_cases(), st.data())
def test_the_contract_selects_what_bulyan_selects(selector, case, data):
    reveals, rejected, f, _, d = case
    f = f // 2
    seats = data.draw(
        st.one_of(
            st.just([10_000] * reveals), st.lists(st.integers(10_000, 25_000), min_size=reveals, max_size=reveals)
        )
    )
    accepted = [i for i in range(reveals) if not (rejected >> i) & 1]
    mask = (2**reveals - 1) & ~rejected
    got = selector.bulyan_selection(mask, reveals, d, f, seats)
    want = []
    if sum(seats[i] for i in accepted) >= (4 * f + 3) * 10_000:
        dist = [
            [0 if a == b else d[pair_index(min(i, j), max(i, j))] for b, j in enumerate(accepted)]
            for a, i in enumerate(accepted)
        ]
        chosen = bulyan_selection(dist, f, [seats[i] for i in accepted])
        want = [0] * reveals
        for k, take in chosen.items():
            want[accepted[k]] = take
    assert got == want


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.integers(-8, 8), st.integers(10_000, 40_000)), min_size=1, max_size=12),
    st.sampled_from([(0, 1), (1, 5), (1, 4), (3, 10), (2, 5)]),
)
def test_the_contract_counts_seats_as_the_median_and_trimmed_mean_do(contract, col, beta):
    # seats in basis points, whole or not (a stake above the sortition cap); small values: ties
    x = [np.array([v], np.int64) for v, _ in col]
    seats = [w for _, w in col]
    total = sum(seats)
    cut = beta[0] * total // (beta[1] * 10_000) * 10_000  # the challenge's trim
    med, kept = contract.internal._seated_median([v * 2**64 + w for v, w in col], total, cut)
    assert med == int(fedmedian(stack(x), seats)[0])
    if 2 * cut < total:
        want = int(fedtrimmedavg(stack(x), Fraction(*beta), seats)[0])
        assert kept // (total - 2 * cut) == want


@settings(deadline=None)
@given(st.lists(st.integers(-8, 8), min_size=1, max_size=12), st.data())
def test_the_contract_keeps_the_values_bulyan_keeps(contract, col, data):
    # small values: ties around the median are common; one seat each, or seats in part
    seats = data.draw(
        st.one_of(st.just([10_000] * len(col)), st.lists(st.integers(1, 30_000), min_size=len(col), max_size=len(col)))
    )
    beta = data.draw(st.integers(1, sum(seats)))
    s = np.array(col, dtype=np.int64).reshape(-1, 1)
    want = int(closest_to_median_mean(s, beta, seats)[0])
    med = int(fedmedian(s, seats)[0]) if min(seats) > 0 else None
    packed = [v * 2**64 + w for v, w in zip(col, seats)]  # the challenge packs each value with its seats
    assert contract.internal._closest_to_median_sum(packed, med, beta) // beta == want
    if seats == [10_000] * len(col) and beta % 10_000 == 0:  # one seat each: Bulyan's beta rows
        rows = np.argsort(np.abs(s - coordinate_median(s)), axis=0, kind="stable")[: beta // 10_000, 0]
        assert want == int(s[rows, 0].sum()) // (beta // 10_000)


# ---------------------------------------------------------------- a colluding committee, one watcher


@pytest.mark.parametrize("collusion,kind", [("model", 1), ("distance-sum", 4), ("distance-leaf", 5), ("score", 2)])
def test_one_watcher_proves_a_krum_committee_wrong(tmp_path, collusion, kind):
    net = build_network(config(tmp_path, colluders=3, collusion=collusion, watchers=1))
    fc, t = net.deployment.fedchain, net.task_id
    stakes = {n.address: fc.call("stakes", n.address)["active"] for n in net.validators}
    outcome = play_round(net)
    # the step that proved it: the Krum value check, a table node, a table leaf, a score
    assert [e.args["kind"] for e in net.deployment.challenges.events() if e.name == "Challenged"] == [kind]
    assert not outcome.finalized
    assert net.watchers[0].challenged == [(t, 0, True)]
    assert fc.call("rounds", t, 0)["status"] == FAILED
    slashes = [e.args for e in fc.events() if e.name == "Slashed"]
    assert sorted(s["node"] for s in slashes) == sorted(n.address for n in net.validators)
    assert all(s["reason"] == SLASH_WRONG_VOTE for s in slashes)
    assert all(fc.call("stakes", n.address)["active"] == stakes[n.address] // 2 for n in net.validators)
    assert net.conservation_gap() == 0
    report = Auditor(ContractEvents(fc, net.deployment.block), net.store, t).run()
    assert report.versions[0].status == "failed: challenged: the leading result was proven wrong or its data withheld"


@pytest.mark.parametrize("collusion,kind", [("model", 1), ("distance-leaf", 5)])
def test_one_watcher_proves_a_bulyan_committee_wrong(tmp_path, collusion, kind):
    net = build_network(config(tmp_path, trainers=7, rule="bulyan", colluders=3, collusion=collusion, watchers=1))
    outcome = play_round(net)
    assert not outcome.finalized and net.watchers[0].challenged == [(net.task_id, 0, True)]
    assert [e.args["kind"] for e in net.deployment.challenges.events() if e.name == "Challenged"] == [kind]
    assert len([e for e in net.deployment.fedchain.events() if e.name == "Slashed"]) == 3
    assert net.conservation_gap() == 0


def test_every_value_of_an_honest_bulyan_round_checks_out(tmp_path):
    net = build_network(config(tmp_path, trainers=8, rule="bulyan"))
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    assert len(ev.averaged()) == len(ev.accepted) - 2 and ev.model_fault() is None
    steps = [ev.challenge(0, j) for j in range(fp.CHUNK_SIZE)]
    steps += [ev.challenge(c, c % fp.CHUNK_SIZE) for c in range(1, fp.chunks(ev.parent).shape[0])]
    acct = funded(net, tokens=len(steps) * 10 * TOKEN)
    assert not any(send_all(net, acct, steps))  # Bulyan's selection and trimmed values, bit for bit


def test_a_lying_table_is_proven_wrong_on_anvil_too(chain, tmp_path):
    net = build_network(
        config(tmp_path, colluders=3, collusion="distance-leaf", watchers=1, phase_blocks=12), chain=chain
    )
    outcome = play_round(net)
    assert not outcome.finalized and net.watchers[0].challenged == [(net.task_id, 0, True)]
    assert net.conservation_gap() == 0


def test_an_honest_krum_round_finalizes_and_pays_with_the_longer_proof(tmp_path):
    net = build_network(config(tmp_path, watchers=1, rule="krum"))
    outcomes = [play_round(net) for _ in range(2)]
    assert all(o.finalized for o in outcomes)
    assert net.watchers[0].challenged == [] and net.watchers[0].unprovable == {}
    claims = [e for e in net.deployment.fedchain.events() if e.name == "RewardClaimed"]
    assert len(claims) >= 2  # trainers' claims carry the table root as one more proof sibling
    assert net.conservation_gap() == 0


@pytest.mark.parametrize(
    "rule,params,trainers,seed,in_part",
    [
        ("multikrum", {"num_malicious_nodes": 1, "num_nodes_to_select": 2}, 6, 3, False),
        ("multikrum", {"num_malicious_nodes": 1, "num_nodes_to_select": 3}, 6, 3, False),
        ("multikrum", {"num_malicious_nodes": 0, "num_nodes_to_select": 2}, 6, 3, True),
        ("bulyan", {"num_malicious_nodes": 1}, 8, 3, False),
        ("bulyan", {"num_malicious_nodes": 1}, 8, 4, True),
    ],
)
def test_krum_rules_count_seats_on_chain_as_the_validators_do(
    tmp_path, monkeypatch, rule, params, trainers, seed, in_part
):
    # one identity holds two stakes: seats 1, ..., 1, 2. Honest validators keep the best m seats
    # (MultiKrum; with f = 0, m = 2 the two-seat update is second and kept in part, at half its
    # weight) or Bulyan's theta = S - 2f seats (seed 4: one of the two-seat update's), and every
    # value checks out; validators that count identities instead are proven wrong.
    cfg = config(
        tmp_path,
        trainers=trainers,
        attack="sybil",
        byzantine=2 / trainers + 0.01,
        sybil_split=False,
        rule=rule,
        rule_params=params,
        seed=seed,
    )
    net = build_network(cfg)
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    seats = [e.seats_bps for e in ev.accepted]
    assert sorted(seats) == [10_000] * (trainers - 2) + [20_000]
    assert ev.model_fault() is None
    acct = funded(net, tokens=100 * TOKEN)
    rc = net.deployment.challenges.tx("open_table", *ev.open_table().args(), sender=acct)
    sel = rc.event("TableOpened").args["selection"]
    d = pairwise_sq_distances(stack(ev.updates))
    f = params["num_malicious_nodes"]
    kept = (
        select_multikrum(d, f, params["num_nodes_to_select"], seats)
        if rule == "multikrum"
        else bulyan_selection(d, f, seats)
    )
    assert sel & (2**64 - 1) == sum(1 << ev.accepted[k].index for k in kept)
    whale = seats.index(20_000)
    if rule == "multikrum":
        assert (sel >> 128 == ev.accepted[whale].index + 1 and (sel >> 64) & (2**64 - 1) == 10_000) == in_part
    else:
        assert (kept[whale] == 10_000) == in_part
    assert not any(send_all(net, acct, [ev.challenge(0, j) for j in range(0, fp.CHUNK_SIZE, 7)]))
    # the same round voted by validators that leave out the seats
    net2 = build_network(dataclasses.replace(cfg, out=tmp_path / "identities"))
    seated = aggregate.RULES[rule]
    with monkeypatch.context() as mp:
        mp.setitem(
            aggregate.RULES,
            rule,
            dataclasses.replace(seated, run=lambda x, s, p, e: seated.run(x, s, p, dataclasses.replace(e, seats=None))),
        )
        v2 = play_to_vote(net2)
    fault = leading_evidence(net2, v2).model_fault()
    assert fault is not None and send(net2, funded(net2), fault)
    assert net2.deployment.fedchain.call("rounds", net2.task_id, v2.round_id)["status"] == FAILED


# ---------------------------------------------------------------- every step against an honest round fails


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """An honest MultiKrum round at its leading vote, one garbage update rejected."""
    net = build_network(config(tmp_path_factory.mktemp("honest"), trainers=7, adversaries={"garbage": 1}))
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    assert ev.vote.rejected != 0 and len(ev.accepted) == 6 and ev.model_fault() is None
    return net, v, ev


def send(net, acct, ch):
    return send_all(net, acct, [ch])[0]


def send_all(net, acct, steps):
    """Commit to every step, mine a block, then send each (its table opened first where it needs
    it): whether each proved the vote wrong."""
    committed(net.chain, net.deployment.challenges, acct, *[(ch.fn, ch.args()) for ch in steps])
    out = []
    for ch in steps:
        if getattr(ch, "opening", None) is not None:
            net.deployment.challenges.tx("open_table", *ch.opening.args(), sender=acct)
        approve_bond(net, acct)
        out.append(net.deployment.challenges.tx(ch.fn, *ch.args(), sender=acct).event("Challenged").args["success"])
    return out


def test_every_step_against_an_honest_krum_round_fails(honest):
    (
        net,
        v,
        ev,
    ) = honest
    table = ev.table
    n, chunks = len(ev.revealed), fp.chunks(ev.parent).shape[0]
    bad = next(e.index for e in ev.revealed if (ev.vote.rejected >> e.index) & 1)
    steps = [ev.challenge(0, j) for j in range(fp.CHUNK_SIZE)]  # Krum's selection, then the mean's values
    steps += [ev.challenge(c, c % fp.CHUNK_SIZE) for c in range(1, chunks)]
    steps += [ev._leaf_challenge(0, *pair_of(e)) for e in range(n * (n - 1) // 2)]  # every pair, rejected ones too
    steps += [ev._leaf_challenge(c, 0, 1) for c in range(1, 2**table.depth)]  # every chunk, padding ones too
    for h in range(1, table.depth + 1):
        for p in range(2 ** (table.depth - h)):
            child = lambda q: (*table.children(h - 1, q), table.sums[h - 1][q])  # noqa: E731, B023 - used in this iteration only
            steps.append(
                DistanceSumChallenge(
                    ev.task_id,
                    ev.round_id,
                    ev.vote_tuple,
                    *ev._rule_args,
                    ev._scores_tree_root(),
                    h,
                    p,
                    table.sums[h][p],
                    child(2 * p),
                    child(2 * p + 1),
                    *table.path(h, p),
                )
            )
    assert any(s.fn == "challenge_distance_leaf" and bad in (s.i, s.j) for s in steps)
    acct = funded(net, tokens=len(steps) * 10 * TOKEN)
    results = send_all(net, acct, steps)
    assert not any(results)  # the contract's distances, sums and Krum selection equal the validators'
    assert net.deployment.fedchain.call("rounds", net.task_id, v.round_id)["status"] == OPEN


def test_every_malformed_table_step_is_refused(honest):
    net, v, ev = honest
    acct = funded(net)
    approve_bond(net, acct)
    ch = net.deployment.challenges
    rep = dataclasses.replace
    table = ev.table
    leaf = ev._leaf_challenge(0, 0, 1)
    h = table.depth
    child = lambda q: (*table.children(h - 1, q), table.sums[h - 1][q])  # noqa: E731
    node = DistanceSumChallenge(
        ev.task_id,
        ev.round_id,
        ev.vote_tuple,
        *ev._rule_args,
        ev._scores_tree_root(),
        h,
        0,
        table.sums[h][0],
        child(0),
        child(1),
        *table.path(h, 0),
    )
    opening = ev.open_table()
    a = leaf.a
    cases = [
        (
            "challenges: not the vote's distance table",
            opening,
            dict(distances=(*opening.distances[:3], [x + 1 for x in opening.distances[3]])),
        ),
        ("challenges: not the vote's distance table", node, dict(sums=[x + 1 for x in node.sums])),
        ("challenges: not the vote's distance table", leaf, dict(chunk=1)),
        ("challenges: bad node", node, dict(height=0)),
        ("challenges: ragged inputs", leaf, dict(digests=leaf.digests[:-1])),
        ("challenges: no such pair", leaf, dict(i=1, j=1)),
        ("challenges: no such pair", leaf, dict(j=len(ev.revealed))),
        ("challenges: not that reveal", leaf, dict(a=leaf.b)),
        ("challenges: root does not match commitment", leaf, dict(a=(a[0], a[1], keccak(b"salt"), a[3], a[4]))),
        ("challenges: bad update proof", leaf, dict(a=(*a[:3], bytes([a[3][0] ^ 1]) + a[3][1:], a[4]))),
        ("challenges: bad chunk length", leaf, dict(a=(*a[:3], a[3][:100], a[4]))),
        ("challenges: ragged inputs", leaf, dict(a=(*a[:4], a[4][:-1]))),
        ("challenges: bad update proof", leaf, dict(a=(*a[:3], b"", a[4]))),  # a chunk passed off as padding
        ("challenges: ragged inputs", opening, dict(nodes=opening.nodes[:-1])),
        ("challenges: not that reveal", opening, dict(nodes=opening.nodes[::-1])),
    ]
    for reason, good, change in cases:
        with reverts(reason):
            ch.tx(good.fn, *rep(good, **change).args(), sender=acct)


def test_distance_steps_are_refused_for_other_rules(tmp_path):
    net = build_network(config(tmp_path, rule="fedavg", rule_params={}, colluders=3, collusion="model"))
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    assert ev.table is None
    acct = funded(net)
    approve_bond(net, acct)
    tree = ev._scores_tree_root()
    fake = DistanceLeafChallenge(
        ev.task_id,
        ev.round_id,
        ev.vote_tuple,
        *ev._rule_args,
        tree,
        0,
        [0],
        [],
        [],
        0,
        1,
        ("0x" + "00" * 20, bytes(32), bytes(32), b"", []),
        ("0x" + "00" * 20, bytes(32), bytes(32), b"", []),
    )
    with reverts("challenges: no distance table"):
        net.deployment.challenges.tx(fake.fn, *fake.args(), sender=acct)
    opening = OpenTable(
        ev.task_id,
        ev.round_id,
        ev.vote_tuple,
        *ev._rule_args,
        [e.node for e in ev.revealed],
        (tree, bytes(32), bytes(32), []),
    )
    node = DistanceSumChallenge(
        ev.task_id,
        ev.round_id,
        ev.vote_tuple,
        *ev._rule_args,
        tree,
        1,
        0,
        [],
        (bytes(32), bytes(32), []),
        (bytes(32), bytes(32), []),
        [],
        [],
    )
    for step in (opening, node):
        with reverts("challenges: no distance table"):
            net.deployment.challenges.tx(step.fn, *step.args(), sender=acct)


def test_a_krum_value_check_needs_the_table_opened_first(tmp_path):
    net = build_network(config(tmp_path, colluders=3, collusion="model"))
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    ch = ev.model_fault()
    assert ch.fn == "challenge" and ch.opening is not None
    acct = funded(net)
    approve_bond(net, acct)
    with reverts("challenges: table not opened"):
        net.deployment.challenges.tx(ch.fn, *ch.args(), sender=acct)
    rc = net.deployment.challenges.tx("open_table", *ch.opening.args(), sender=acct)
    assert rc.event("TableOpened").args["selection"] == sum(1 << ev.accepted[k].index for k in ev.averaged())
    net.deployment.challenges.tx("open_table", *ch.opening.args(), sender=acct)  # again: the same record
    committed(net.chain, net.deployment.challenges, acct, (ch.fn, ch.args()))
    assert net.deployment.challenges.tx(ch.fn, *ch.args(), sender=acct).event("Challenged").args["success"] is True


def test_a_withheld_table_cannot_be_proven_wrong(tmp_path):
    """The data-availability assumption, shown: without the committee's table no step can be built."""
    net = build_network(config(tmp_path, colluders=3, collusion="distance-leaf"))
    v = play_to_vote(net)
    ev = leading_evidence(net, v)
    blob = net.store.get(cid_from_digest(ev.vote.model_cid))
    cid = json.loads(decode_metadata(blob)["fedchain"])["distances"]["cid"]
    net.store._path(cid).unlink()  # the committee never published it
    with pytest.raises(Unchallengeable, match="distance table cannot be used"):
        leading_evidence(net, v)
