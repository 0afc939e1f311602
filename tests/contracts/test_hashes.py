"""The hashes that bind nodes to what they say, against their Python twins:
commitments (and what they are bound to), vote hashes, score leaves and the
positional Merkle proofs that claims check."""

import pytest
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import STAKE, make_net, reverts
from fedchain.chain import commitments as cm
from fedchain.chain.deploy import deploy
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import account_from_seed

b32 = st.binary(min_size=32, max_size=32)
u256 = st.integers(0, 2**256 - 1)
addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)


@pytest.fixture(scope="module")
def deployed():
    """A bare deployment for view calls only (state never changes)."""
    chain = EmbeddedChain()
    return chain, deploy(chain, account_from_seed("owner")).fedchain


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=u256, rnd=u256, node=addresses, root=b32, salt=b32)
def test_commitment_twin_matches_the_contract(deployed, task, rnd, node, root, salt):
    chain, fc = deployed
    assert fc.call("commitment_of", task, rnd, node, root, salt) == cm.commitment(
        chain.chain_id, fc.address, task, rnd, node, root, salt
    )


def test_commitment_domain():
    assert cm.COMMIT_DOMAIN == keccak(text="fedchain.commit.v1")


def test_commitment_is_bound_to_the_deployment(deployed):
    chain, fc = deployed
    other = deploy(chain, account_from_seed("owner")).fedchain
    args = (1, 0, account_from_seed("t").address, b"\x01" * 32, b"\x02" * 32)
    assert fc.call("commitment_of", *args) != other.call("commitment_of", *args)
    assert other.call("commitment_of", *args) == cm.commitment(chain.chain_id, other.address, *args)
    assert cm.commitment(1, fc.address, *args) != cm.commitment(chain.chain_id, fc.address, *args)


def test_a_copied_commitment_cannot_be_revealed(net):
    """B sees A's commitment and copies it; B cannot reveal A's update as its own."""
    task = net.create_task()
    a, b = net.trainers[:2]
    upd = net.commit(task, 0, a)
    net.fc.tx("commit", task, 0, net.commitment(task, 0, a, upd), sender=b)
    net.to_reveal_phase(task, 0)
    net.reveal(task, 0, a, upd)
    with reverts("rounds: reveal does not match commitment"):
        net.reveal(task, 0, b, upd)


def test_a_commitment_cannot_be_replayed_in_another_round(net):
    task = net.create_task()
    t = net.trainers[0]
    upd = net.commit(task, 0, t)
    net.to_vote_phase(task, 0)
    net.fc.tx("advance", task, sender=net.owner)  # no reveals: round 0 fails and round 1 opens
    net.to_seed(task, 1)
    net.fc.tx("commit", task, 1, net.commitment(task, 0, t, upd), sender=t)
    net.to_reveal_phase(task, 1)
    with reverts("rounds: reveal does not match commitment"):
        net.reveal(task, 1, t, upd)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.lists(st.tuples(b32, b32, b32, u256, u256), min_size=3, max_size=3, unique=True))
def test_vote_hash_twin_matches_the_voted_event(fields):
    net = make_net(EmbeddedChain())
    task = net.create_task()
    net.join(task, 0)
    net.to_vote_phase(task, 0)
    for v, f in zip(net.validators, fields):
        ev = net.fc.tx("vote", task, 0, *f, sender=v).event("Voted").args
        assert ev["vote_hash"] == cm.vote_hash(*f)
        assert net.fc.call("vote_of", task, 0, v.address) == cm.vote_hash(*f)
    net.assert_conserved()


@pytest.mark.parametrize("leaves", [1, 2, 3, 5, 8, 9])
def test_claims_verify_python_proofs_for_every_tree_shape(leaves):
    """Scores trees of 1..9 leaves (padded to a power of two): every revealer's
    proof from ``fedchain.storage.merkle`` verifies on chain, at its reveal index."""
    net = make_net(EmbeddedChain(), trainers=9)
    task = net.create_task(num_rounds=1)
    scores = [3 * i + 1 for i in range(leaves)]
    res = net.play_round(task, 0, revealers=net.trainers[:leaves], scores=scores)
    budget = net.fc.call("rounds", task, 0)["trainer_budget"]
    for t, s in zip(net.trainers[:leaves], scores):
        amount = net.claim(task, 0, t, res).event("RewardClaimed").args["amount"]
        assert amount == budget * s // sum(scores)
    assert net.stake_of(net.trainers[0])["active"] == STAKE
    net.assert_conserved()
