"""The endpoints contract: each address sets only its own blob server URL, which anyone reads
back by address or from the Announced events; empty, too long and non-web URLs are refused.
And its reader, the directory every node's HTTP blob store asks."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import h32, make_net, reverts
from fedchain.chain.deploy import Deployment, deploy
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import account_from_seed, artifact
from fedchain.cli import app
from fedchain.errors import FedchainError, Reverted
from fedchain.protocol.endpoints import ChainDirectory, check_url
from fedchain.storage.cid import cid_from_digest
from fedchain.storage.http import Peers


@pytest.fixture
def endpoints():
    chain = EmbeddedChain()
    owner, alice, bob = (account_from_seed(n) for n in ("owner", "alice", "bob"))
    for a in (owner, alice, bob):
        chain.fund(a.address, 10**20)
    return deploy(chain, owner).endpoints, alice, bob


def test_each_address_announces_and_replaces_only_its_own_endpoint(endpoints):
    reg, alice, bob = endpoints
    assert reg.call("endpoint", alice.address) == ""
    first = reg.tx("announce", "http://10.0.0.5:8701", sender=alice)
    assert first.event("Announced").args == {"node": alice.address, "url": "http://10.0.0.5:8701"}
    reg.tx("announce", "https://bob.example.org", sender=bob)
    reg.tx("announce", "http://10.0.0.6:8701", sender=alice)
    assert reg.call("endpoint", alice.address) == "http://10.0.0.6:8701"
    assert reg.call("endpoint", bob.address) == "https://bob.example.org"
    assert [(e.args["node"], e.args["url"]) for e in reg.events()] == [
        (alice.address, "http://10.0.0.5:8701"),
        (bob.address, "https://bob.example.org"),
        (alice.address, "http://10.0.0.6:8701"),
    ]


@pytest.mark.parametrize(
    "url, reason",
    [
        ("", "endpoints: empty URL"),
        ("10.0.0.5:8701", "endpoints: not an http:// or https:// URL"),
        ("ftp://10.0.0.5", "endpoints: not an http:// or https:// URL"),
        ("HTTP://10.0.0.5", "endpoints: not an http:// or https:// URL"),
        ("http://", "endpoints: not an http:// or https:// URL"),
        ("https://", "endpoints: not an http:// or https:// URL"),
    ],
)
def test_an_empty_or_non_web_url_is_refused(endpoints, url, reason):
    reg, alice, _ = endpoints
    with reverts(reason):
        reg.tx("announce", url, sender=alice)
    assert reg.call("endpoint", alice.address) == ""


def test_a_url_longer_than_256_bytes_fails_abi_decoding(endpoints):
    reg, alice, _ = endpoints
    longest = "http://" + "a" * 249
    reg.tx("announce", longest, sender=alice)
    with pytest.raises(Reverted):
        reg.tx("announce", longest + "a", sender=alice)
    assert reg.call("endpoint", alice.address) == longest


def test_the_directory_names_each_blobs_authors_and_ignores_who_takes_no_part():
    """ChainDirectory (what every node's HTTP store asks): an update is its revealer's, the
    initial model its sponsor's, a voted model its voters'; an address that never staked,
    sponsored, revealed or voted is not asked; a new announcement is seen on the next read."""
    net = make_net(EmbeddedChain())
    reg = net.chain.deploy(artifact("endpoints"), sender=net.owner)
    t0, t1 = net.trainers[:2]
    urls = {t0: "http://t0:1", t1: "http://t1:1", net.validators[0]: "http://v0:1", net.owner: "http://sponsor:1"}
    for who, url in [*urls.items(), (net.outsiders[0], "http://outsider:1")]:
        reg.tx("announce", url, sender=who)
    task = net.create_task()
    result = net.play_round(task, revealers=[t0, t1])

    directory = ChainDirectory(Deployment(net.token, net.fc, 0, endpoints=reg), every=0)
    update = cid_from_digest(net.update_for(task, 0, t1).cid)
    assert directory.authors(update) == ["http://t1:1"]
    assert directory.authors(cid_from_digest(net.task_config()["model_cid"])) == ["http://sponsor:1"]
    assert directory.authors(cid_from_digest(result.model_cid)) == ["http://v0:1"]  # the only voter that announced
    assert directory.authors(cid_from_digest(h32("never revealed"))) == []
    assert sorted(directory.everyone()) == sorted(urls.values())
    # a store asks the author first, then its configured peers, then everyone else
    assert Peers(["http://configured:1"], directory=directory)(update)[:2] == ["http://t1:1", "http://configured:1"]

    reg.tx("announce", "https://t0.example.org", sender=t0)
    assert "https://t0.example.org" in directory.everyone() and "http://t0:1" not in directory.everyone()


@pytest.mark.parametrize("url", ["10.0.0.5:8701", "ftp://x", "http://", "http://" + "a" * 250])
def test_a_public_url_the_contract_would_refuse_is_refused_first(url):
    with pytest.raises(FedchainError, match="--public-url"):
        check_url(url)
    assert check_url("http://10.0.0.5:8701/") == "http://10.0.0.5:8701"


@pytest.mark.parametrize("command", [["node", "run", "--role", "validator"], ["task", "create"]])
def test_a_public_url_without_a_scheme_is_a_usage_error_before_anything_connects(command, tmp_path):
    r = CliRunner().invoke(
        app, [*command, "--dev-account", "5", "--public-url", "10.0.0.5:8701", "--deployment", str(tmp_path / "d.json")]
    )
    assert r.exit_code == 2 and "--public-url" in r.output and "http://" in r.output, r.output
    assert "Traceback" not in r.output and "deployment" not in r.output  # refused before reading the deployment
