"""Secure aggregation in rounds on the embedded chain: trainers advertise keys, share seeds and
send masked updates through the board (secagg.vy); validators unmask only the sum, which is
FedAvg of the masked updates that arrived, bit for bit, whoever dropped out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import reverts
from fedchain.cli import app
from fedchain.errors import BlobNotFound
from fedchain.learning import fixedpoint as fp
from fedchain.learning import secagg
from fedchain.learning.aggregate.fedavg import aggregate_update
from fedchain.protocol.audit import AuditError, Auditor, EventFile, save_chain
from fedchain.protocol.challenge import _chunk_and_proof
from fedchain.protocol.round import Lineage, Vote
from fedchain.protocol.secagg_round import (
    SCORE,
    Board,
    SecAggRoundError,
    TrainerSession,
    node_unmasking,
    survivors,
    trainer_id,
    unmasking_challenge,
)
from fedchain.sim.network import SimConfig, build_network, play_round, play_to_vote
from fedchain.sim.simulate import run
from fedchain.storage.cid import cid_from_digest

pytestmark = pytest.mark.slow

CFG = SimConfig(trainers=10, validators=3, rounds=2, model="mlp", epochs=1, secagg=True)


@pytest.fixture
def masks(monkeypatch):
    """Every update a trainer masked, by round and trainer: what only the trainer itself sees."""
    seen: dict[tuple[int, str], tuple[np.ndarray, int]] = {}
    real = secagg.SecAggTrainer.mask

    def recording(self, update, samples):
        seen[(self.params.round_id, self.trainer)] = (np.asarray(update).copy(), samples)
        return real(self, update, samples)

    monkeypatch.setattr(secagg.SecAggTrainer, "mask", recording)
    return seen


def finalized(net, round_id: int):
    return next(
        e.args
        for e in net.deployment.fedchain.events(0)
        if e.name == "RoundFinalized" and e.args["round_id"] == round_id
    )


def test_a_round_with_30_percent_dropouts_is_fedavg_of_the_masked_updates(tmp_path, masks):
    # 3 of 10 vanish after their masked update is revealed: they never answer the unmasking
    # request, so their self-mask seeds are rebuilt from the others' shares
    net = build_network(dataclasses.replace(CFG, out=tmp_path, secagg_dropouts=3))
    before = net.validators[0].current_model(net.task_id).q
    out = play_round(net)
    assert out.finalized
    after = net.validators[0].current_model(net.task_id)
    sent = {u: v for (r, u), v in masks.items() if r == out.round_id}
    assert len(sent) == 10  # every trainer's masked update arrived, the dropouts' too
    expected = fp.clip_fixed(before + aggregate_update([q for q, _ in sent.values()], [n for _, n in sent.values()]))
    assert np.array_equal(after.q, expected)  # bit for bit
    lineage = Lineage.from_blob(net.store.get(after.cid))
    assert lineage.rejected == {}
    assert {trainer_id(a) for a, _ in lineage.scores} == set(sent)
    assert {s for _, s in lineage.scores} == {SCORE}  # every aggregated update is paid the same
    assert not [e for e in net.deployment.fedchain.events(0) if e.name == "Slashed"]
    assert net.conservation_gap() == 0


def test_masked_blobs_are_uncorrelated_with_the_updates_they_hide(tmp_path, masks):
    net = build_network(dataclasses.replace(CFG, out=tmp_path))
    out = play_round(net)
    assert out.finalized
    reveals = [e.args for e in net.deployment.fedchain.events(0) if e.name == "Revealed"]
    assert len(reveals) == 10
    for a in reveals:  # what anyone reading the blobs sees
        m = secagg.MaskedInput.from_bytes(net.store.get(cid_from_digest(a["update_cid"])))
        q, samples = masks[(out.round_id, m.trainer)]
        y = m.y.view(np.int64).astype(np.float64)
        r = np.corrcoef(y, q.astype(np.float64))[0, 1]
        # independent of the update: |r| below 5 standard errors of zero correlation
        assert abs(r) < 5 / np.sqrt(q.size), (m.trainer, r)
        # and uniform: each bit of the words is set about half the time (unmasked w*q is not)
        bits = np.unpackbits(m.y.view(np.uint8)).mean()
        assert abs(bits - 0.5) < 0.01
        plain = (q * min(samples, fp.MAX_WEIGHT)).view(np.uint64)
        assert abs(np.unpackbits(plain.view(np.uint8)).mean() - 0.5) > 0.05  # the check can fail


def test_trainers_that_quit_after_sharing_are_left_out_and_the_round_goes_on(tmp_path, masks):
    # 2 quit after posting their share bundle (never mask): their pairwise masks are rebuilt from
    # their s-key shares; 1 more drops after masking. Two rounds in a row.
    net = build_network(dataclasses.replace(CFG, out=tmp_path, secagg_quitters=2, secagg_dropouts=1))
    for _ in range(2):
        before = net.validators[0].current_model(net.task_id).q
        out = play_round(net)
        assert out.finalized
        sent = {u: v for (r, u), v in masks.items() if r == out.round_id}
        assert len(sent) == 8
        after = net.validators[0].current_model(net.task_id).q
        expected = fp.clip_fixed(
            before + aggregate_update([q for q, _ in sent.values()], [n for _, n in sent.values()])
        )
        assert np.array_equal(after, expected)
        assert finalized(net, out.round_id)["model_root"] == fp.vector_root(after, net.recipe.chunk_size)
    assert net.conservation_gap() == 0


def test_a_malformed_masked_blob_is_rejected_and_its_sender_counted_as_dropped(tmp_path, masks, monkeypatch):
    # one trainer commits and reveals bytes that are no masked input: every answerer and
    # validator finds the same U2 without it, its s key is rebuilt, the round finalizes with
    # the other nine and the liar's rejection and reason in the lineage
    net = build_network(dataclasses.replace(CFG, out=tmp_path))
    liar = trainer_id(net.trainers[0].address)
    real = TrainerSession.mask

    def lying(self, q, samples, chunk_size):
        blob, root = real(self, q, samples, chunk_size)
        return (b"garbage" + blob[7:], root) if self.me == liar else (blob, root)

    monkeypatch.setattr(TrainerSession, "mask", lying)
    before = net.validators[0].current_model(net.task_id).q
    out = play_round(net)
    assert out.finalized
    sent = {u: v for (r, u), v in masks.items() if r == out.round_id and u != liar}
    assert len(sent) == 9
    after = net.validators[0].current_model(net.task_id)
    expected = fp.clip_fixed(before + aggregate_update([q for q, _ in sent.values()], [n for _, n in sent.values()]))
    assert np.array_equal(after.q, expected)
    lineage = Lineage.from_blob(net.store.get(after.cid))
    assert [trainer_id(a) for a in lineage.rejected] == [liar]
    assert "masked input" in next(iter(lineage.rejected.values()))
    assert dict((trainer_id(a), s) for a, s in lineage.scores)[liar] == 0
    assert not [e for e in net.deployment.fedchain.events(0) if e.name == "Slashed"]


def test_a_wrong_unmasked_result_is_reverted_on_chain_by_the_watcher(tmp_path):
    # the whole committee colludes on a sabotaged model: the watcher unmasks the round itself
    # from the board, finds the first wrong value and proves it to secagg_judge.vy (the masked
    # chunks, the survivors' self-mask seeds): the round is reverted and every voter slashable;
    # the audit of the saved chain agrees the voted model was wrong
    cfg = dataclasses.replace(CFG, trainers=8, rounds=1, out=tmp_path, colluders=3, watchers=1)
    net = build_network(cfg)
    out = play_round(net)
    assert not out.finalized
    watcher = net.watchers[0]
    assert watcher.challenged == [(net.task_id, out.round_id, True)]
    fc = net.deployment.fedchain
    failed = [e.args for e in fc.events(0) if e.name == "RoundFailed"]
    assert [a["reason"] for a in failed] == [3]  # reverted by a challenge
    kinds = [e.args["kind"] for e in net.deployment.challenges.events(0) if e.name == "Challenged"]
    assert kinds == [6]
    assert net.conservation_gap() == 0
    save_chain(net.deployment, tmp_path / "chain", net.task_id)
    Auditor(EventFile(tmp_path / "chain"), net.store, net.task_id).run()  # the revert checks out


def test_a_wrong_unmasked_result_with_dropouts_is_found_but_not_provable_yet(tmp_path):
    cfg = dataclasses.replace(CFG, trainers=8, rounds=1, out=tmp_path, colluders=3, watchers=1, secagg_quitters=1)
    net = build_network(cfg)
    out = play_round(net)
    assert out.finalized  # what is still missing: a judge of the dropped trainers' pairwise masks
    watcher = net.watchers[0]
    assert "dropouts is not judged on chain" in watcher.unprovable[(net.task_id, out.round_id)]
    assert not watcher.challenged
    save_chain(net.deployment, tmp_path / "chain", net.task_id)
    with pytest.raises(AuditError, match="model root"):
        Auditor(EventFile(tmp_path / "chain"), net.store, net.task_id).run()


def test_an_honest_secagg_run_passes_the_audit_from_the_saved_chain(tmp_path):
    report = run(dataclasses.replace(CFG, out=tmp_path, secagg_dropouts=2, watchers=1), baselines=False)
    assert report["rounds_finalized"] == 2
    cli = CliRunner().invoke(app, ["audit", "--sim", str(tmp_path)])
    assert cli.exit_code == 0, cli.output
    assert "verified 2 rounds (2 finalized), 20 updates" in cli.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--secagg", "--rule", "krum"], "only --rule fedavg"),
        (["--secagg", "--score", "validation"], "--score cosine"),
        (["--secagg-dropouts", "2"], "only with --secagg"),
        (["--secagg", "--trainers", "4", "--secagg-dropouts", "3", "--secagg-quitters", "2"], "5 faulty trainers of 4"),
    ],
)
def test_the_cli_refuses_what_secure_aggregation_cannot_do(tmp_path, args, message):
    cli = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "x"), *args])
    assert cli.exit_code == 2
    assert message in " ".join(cli.output.split())


def test_secure_aggregation_with_client_level_dp_sums_the_noised_updates(tmp_path, masks):
    # each trainer clips and noises its update, then masks it: the unmasked sum carries every
    # trainer's noise, and each trainer's epsilon follows from the rounds it took part in
    dp = {"dp": "client", "dp_noise": 1.0, "dp_clip": 1.0, "dp_delta": 1e-5}
    net = build_network(dataclasses.replace(CFG, trainers=6, out=tmp_path, dp=dp, secagg_dropouts=1))
    before = net.validators[0].current_model(net.task_id).q
    out = play_round(net)
    assert out.finalized
    sent = [v for (r, _), v in masks.items() if r == out.round_id]
    assert len(sent) == 6
    clip = fp.to_fixed(np.array([dp["dp_clip"]]))[0]
    assert max(int(np.sqrt(np.sum(q.astype(np.float64) ** 2))) for q, _ in sent) > clip  # the noise is there
    after = net.validators[0].current_model(net.task_id).q
    assert np.array_equal(after, fp.clip_fixed(before + aggregate_update([q for q, _ in sent], [n for _, n in sent])))
    assert net.recipe.norm_bound_sq({}) == 0  # nobody sees an update to bound under masking


def test_masked_rounds_reach_the_very_models_of_the_same_rounds_in_the_clear(tmp_path):
    # same trainers, data and seeds; 3 of 10 drop after masking: every round's model root is
    # the public-update run's (FedAvg of the same updates), though nobody saw an update
    roots = {}
    for secagg_on in (False, True):
        cfg = dataclasses.replace(CFG, out=tmp_path / str(secagg_on), secagg=secagg_on, secagg_dropouts=3 * secagg_on)
        net = build_network(cfg)
        roots[secagg_on] = []
        for _ in range(2):
            assert play_round(net).finalized
            roots[secagg_on].append(net.validators[0].current_model(net.task_id).root)
    assert roots[True] == roots[False]


class Missing:
    """A store that cannot fetch one CID (its holder unreachable from here)."""

    def __init__(self, store, cid):
        self.store, self.cid = store, cid

    def get(self, cid):
        if cid == self.cid:
            raise BlobNotFound(f"{cid} unreachable")
        return self.store.get(cid)


def test_a_masked_blob_one_party_cannot_fetch_never_makes_it_reveal_a_mask_key(tmp_path):
    # an answerer that cannot fetch a survivor's blob still counts it a survivor (it reveals
    # only its b-share, as those that fetched it do: never both secrets of one trainer across
    # parties); a validator that cannot fetch it does not vote rather than compute without it
    net = build_network(dataclasses.replace(CFG, trainers=5, out=tmp_path))
    v = play_to_vote(net)
    reveals = net.validators[0].task(net.task_id).reveals[v.round_id]
    board = Board.read(net.deployment.secagg, net.task_id, v.round_id, v.opened)
    dim = net.validators[0].current_model(net.task_id).q.size
    bundles = board.bundles(board.params(net.task_id, v.round_id, dim), net.store)
    gone = reveals[0]
    store = Missing(net.store, gone.cid)
    unfetched: set[str] = set()
    masked, reasons = survivors(reveals, bundles, store, dim, 64, unfetched=unfetched)
    assert unfetched == {trainer_id(gone.node)} and len(masked) == 4 and reasons == {}
    with pytest.raises(SecAggRoundError, match="cannot be fetched here"):
        survivors(reveals, bundles, store, dim, 64)


def honest_challenge(net, v, **change):
    """A challenge of value 0 of chunk 0 of an honest round's (right) leading result, built as
    the watcher builds one, with ``change`` applied to its arguments."""
    w = net.watchers[0]
    log = w.task(net.task_id)
    ev = node_unmasking(w, log, v)
    ev = dataclasses.replace(ev, sharers=len(log.reveals[v.round_id]))  # past the builder's own check
    vote = next(Vote.from_event(e) for e in log.votes[v.round_id])
    off = ev.new_q.copy()
    off[0] += 1  # where the builder looks; the claimed chunk below is the voted (right) one
    ch = unmasking_challenge(ev, net.task_id, v.round_id, log.reveals[v.round_id], w.current_model(net.task_id).q,
                             off, vote.args(), net.recipe)  # fmt: skip
    claimed_chunk, claimed_proof = _chunk_and_proof(ev.new_q, 0, net.recipe.chunk_size)
    return w, dataclasses.replace(ch, claimed_chunk=claimed_chunk, claimed_proof=claimed_proof, **change)


def send(net, w, ch):
    ch_contract, tok = net.deployment.challenges, net.deployment.token
    tok.tx("approve", ch_contract.address, ch_contract.call("bond"), sender=w.account)
    ch.commit(ch_contract, w.account)
    net.chain.mine(1)
    return ch_contract.tx(ch.fn, *ch.args(), sender=w.account)


def test_an_honest_masked_round_cannot_be_reverted(tmp_path):
    # the judge recomputes the right value from the true seeds: the challenge fails and its
    # bond is forfeited; a seed other than the one posted on the board is refused outright
    net = build_network(dataclasses.replace(CFG, trainers=6, out=tmp_path, watchers=1))
    v = play_to_vote(net)
    w, ch = honest_challenge(net, v)
    with reverts("challenges: not its self-mask seed"):
        send(net, w, dataclasses.replace(ch, seeds=[bytes(32), *ch.seeds[1:]]))
    rc = send(net, w, ch)
    assert rc.event("Challenged").args["success"] is False
    assert net.deployment.challenges.call("forfeited") == net.deployment.challenges.call("bond")
    assert net.conservation_gap() == 0


def test_the_unmasking_judge_refuses_what_it_cannot_judge(tmp_path):
    net = build_network(dataclasses.replace(CFG, trainers=6, out=tmp_path, watchers=1))
    v = play_to_vote(net)
    w, ch = honest_challenge(net, v)
    bad_chunk = bytes([ch.masked_chunks[0] ^ 1]) + ch.masked_chunks[1:]
    dim = net.recipe.challenge_rule[1]
    cases = [
        (dict(nodes=ch.nodes[::-1], update_roots=ch.update_roots[::-1], salts=ch.salts[::-1], seeds=ch.seeds[::-1]),
         "challenges: not the reveals in reveal order"),
        (dict(nodes=ch.nodes[1:], update_roots=ch.update_roots[1:], salts=ch.salts[1:], seeds=ch.seeds[1:]),
         "challenges: not every reveal"),
        (dict(masked_chunks=bad_chunk), "challenges: bad masked update proof"),
        (dict(salts=[bytes(32), *ch.salts[1:]]), "challenges: root does not match commitment"),
        (dict(seeds=ch.seeds[:-1]), "challenges: ragged inputs"),
        (dict(chunk=dim // 64, coordinate=63), "challenges: a padding position"),
        (dict(vote=(*ch.vote[:4], 1)), "challenges: not the leading vote"),
    ]  # fmt: skip
    for change, reason in cases:
        with reverts(reason):
            send(net, w, dataclasses.replace(ch, **change))
    assert net.deployment.challenges.call("forfeited") == 0  # nothing was judged


def test_the_unmasking_judge_refuses_a_round_with_dropouts(tmp_path):
    # a trainer that shared and never revealed leaves pairwise masks that only its s key
    # (X25519) removes: not judged on chain
    net = build_network(dataclasses.replace(CFG, trainers=6, out=tmp_path, watchers=1, secagg_quitters=1))
    v = play_to_vote(net)
    w, ch = honest_challenge(net, v)
    with reverts("challenges: a masked round with dropouts is not judged on chain"):
        send(net, w, ch)
