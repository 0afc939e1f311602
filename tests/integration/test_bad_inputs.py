"""Bad option values across the command line: one clear line naming the flag or the file,
a non-zero exit, no traceback, and nothing spent.

The commands that talk to a chain run against a real anvil with a deployment and one task
(digits, 64 features); every account's gas money, tokens and stake are compared before and
after all the bad inputs.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from fedchain.chain.anvil import Anvil
from fedchain.chain.deploy import ProtocolParams, deploy, load_deployment, read_deployment_file
from fedchain.chain.keys import dev_account
from fedchain.chain.rpc import RpcChain
from fedchain.cli import app

pytestmark = pytest.mark.anvil
TOKEN = 10**18
ACCOUNTS = 4


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """anvil, a deployment file, a task created by dev account 1 (its blobs in node/blobs,
    the folder the trainer below uses), and bad data files."""
    root = tmp_path_factory.mktemp("bad-inputs")
    node = Anvil()
    try:
        chain = RpcChain(node.url)
        owner = dev_account(0)
        dep = deploy(chain, owner, ProtocolParams(min_challenge_blocks=1))
        dep.save(root / "deployment.json", rpc=node.url)
        for i in range(1, ACCOUNTS):
            dep.token.tx("mint", dev_account(i).address, 1_000 * TOKEN, sender=owner)
        out = run(
            root, "task", "create", "--pool", "10", "--home", str(root / "node"), "--no-wait", "--dev-account", "1",
            "--deployment", str(root / "deployment.json"),
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        (root / "notes.txt").write_text("not an npz\n")
        np.savez(root / "wide.npz", x=np.zeros((5, 65), np.float32), y=np.zeros(5, np.int64))
        np.savez(root / "objects.npz", x=np.array([{"a": 1}] * 3, dtype=object), y=np.zeros(3, np.int64))
        np.savez(root / "labels.npz", x=np.zeros((5, 1, 8, 8), np.float32), y=np.full(5, 12, np.int64))
        np.savez(root / "nolabels.npz", x=np.zeros((5, 64), np.float32))
        (root / "wide.csv").write_text("label," + ",".join(f"x{j}" for j in range(65)) + "\n" + "1" + ",0" * 65 + "\n")
        yield root, node.url, chain
    finally:
        node.stop()


def run(root, *args: str):
    """One command, in this process; the log handlers a node command adds to the root logger
    (once per process in real use) are removed after it, as its process would end."""
    handlers = list(logging.getLogger().handlers)
    try:
        return CliRunner().invoke(app, list(args), env={"FEDCHAIN_PASSWORD": "", "COLUMNS": "80"})
    finally:
        for h in logging.getLogger().handlers[len(handlers) :]:
            logging.getLogger().removeHandler(h)


def holdings(chain, root) -> list[tuple]:
    dep = load_deployment(chain, read_deployment_file(root / "deployment.json"))
    out = []
    for i in range(ACCOUNTS):
        a = dev_account(i).address
        out.append((chain.balance(a), dep.token.call("balanceOf", a), dep.fedchain.call("stakes", a)))
    return out


DEP = ("--deployment", "{root}/deployment.json")
BAD = [
    # simulate (embedded chain: nothing to spend, but nothing printed or written either)
    (["simulate", "--trainers", "300"], "--trainers", "at most 143 trainers"),
    (["simulate", "--dataset", "nope"], "--dataset", "digits, mnist, mnist1d"),
    (["simulate", "--model", "resnet"], "--model", "cnn, logreg, mlp"),
    (["simulate", "--partition", "zipf"], "--partition", "iid"),
    (["simulate", "--rule", "nope"], "--rule", "known rules"),
    (["simulate", "--rule-params", "[1]"], "--rule-params", "not a JSON object"),
    (["simulate", "--attack", "alie", "--byzantine", "1.5"], "--byzantine", "[0, 1]"),
    (["simulate", "--attack", "nope"], "--attack", "labelflip"),
    (["simulate", "--attack", "freerider_copy"], "--attack", "only `fedchain bench robustness`"),
    (["simulate", "--dataset", "mnist1d"], "--model", "cnn cannot take mnist1d's inputs"),
    (["simulate", "--misbehave", "nope"], "--misbehave", "garbage"),
    (["simulate", "--rounds", "0"], "--rounds", "below 1"),
    (["simulate", "--out", "{root}/notes.txt"], "--out", "is a file"),
    # data
    (["data", "split", "--dataset", "nope"], "--dataset", "digits"),
    (["data", "split", "--trainers", "0"], "--trainers", "below 1"),
    (["data", "split", "--trainers", "5000"], "--trainers", "1,437 training examples"),
    # deploy
    (["deploy", "--rpc", "localhost:8545", "--dev-account", "0"], "--rpc", "http://localhost:8545"),
    (["deploy", "--rpc", "{url}", "--dev-account", "0", "--min-stake", "lots"], "--min-stake", "'lots'"),
    (["deploy", "--rpc", "{url}"], "--account", "--dev-account"),
    # task create
    (["task", "create", "--dataset", "nope", *DEP, "--dev-account", "1"], "--dataset", "mnist1d"),
    (["task", "create", "--model", "resnet", *DEP, "--dev-account", "1"], "--model", "logreg"),
    (["task", "create", "--pool", "-5", *DEP, "--dev-account", "1"], "--pool", "non-negative"),
    (["task", "create", "--rounds", "0", *DEP, "--dev-account", "1"], "--rounds", "below 1"),
    (["task", "create", "--deployment", "{root}/nope.json", "--dev-account", "1"], "nope.json", "fedchain deploy"),
    (["task", "create", "--pool", "5000", *DEP, "--dev-account", "2", "--no-wait"], "pool needs 5,000", "holds"),
    # node run
    (["node", "run", "--role", "trainer", *DEP, "--dev-account", "2"], "--data", ".npz"),
    (["node", "run", "--role", "trainer", "--data", "{root}/gone.npz", *DEP, "--dev-account", "2"], "--data", "gone"),
    (["node", "run", "--role", "trainer", "--data", "{root}/notes.txt", *DEP, "--dev-account", "2"], "--data", "npz"),
    (["node", "run", "--role", "trainer", "--data", "{root}/objects.npz", *DEP, "--dev-account", "2"], "--data", "x"),
    (["node", "run", "--role", "trainer", "--data", "{root}/nolabels.npz", *DEP, "--dev-account", "2"], "--data", "y"),
    (
        [
            "node",
            "run",
            "--role",
            "trainer",
            "--data",
            "{root}/wide.csv",
            "--home",
            "{root}/node",
            *DEP,
            "--dev-account",
            "2",
        ],
        "--data",
        "65 feature columns; the task's model takes examples of shape (1, 8, 8)",
    ),  # fmt: skip
    (
        [
            "node",
            "run",
            "--role",
            "trainer",
            "--data",
            "{root}/wide.npz",
            "--task",
            "1",
            "--home",
            "{root}/node",
            *DEP,
            "--dev-account",
            "2",
        ],
        "--data",
        "the task's model takes (1, 8, 8)",
    ),  # fmt: skip
    (
        [
            "node",
            "run",
            "--role",
            "trainer",
            "--data",
            "{root}/labels.npz",
            "--home",
            "{root}/node",
            *DEP,
            "--dev-account",
            "3",
        ],
        "--data",
        "classes 0..9",
    ),  # fmt: skip
    (["node", "run", "--role", "validator", "--peer", "127.0.0.1:9", *DEP, "--dev-account", "2"], "--peer", "http"),
    (["node", "run", "--role", "boss", *DEP, "--dev-account", "2"], "--role", "trainer"),
    (["node", "run", "--role", "validator", "--stake", "inf", *DEP, "--dev-account", "2"], "--stake", "amounts"),
    # status
    (["status", *DEP, "--task", "99"], "task 99", "task"),
    (["status", *DEP, "--rpc", "http://127.0.0.1:9"], "127.0.0.1:9", "reach"),
    # audit
    (["audit", "--sim", "{root}"], "--sim", "fedchain simulate --out"),
    (["audit", "--rpc", "127.0.0.1:9"], "--rpc", "http://"),
]


def test_bad_inputs_say_what_to_fix_and_spend_nothing(net, monkeypatch):
    root, url, chain = net
    monkeypatch.chdir(root)  # where simulate's out/ and data split's data/ would go
    before = holdings(chain, root)
    for args, names, advice in BAD:
        argv = [a.replace("{root}", str(root)).replace("{url}", url) for a in args]
        r = run(root, *argv)
        shown = " ".join(argv)
        assert r.exit_code not in (0, None), f"`fedchain {shown}` succeeded:\n{r.output}"
        assert isinstance(r.exception, SystemExit), f"`fedchain {shown}` raised {r.exception!r}"
        assert "Traceback" not in r.output, f"`fedchain {shown}`:\n{r.output}"
        assert "pickle" not in r.output, f"`fedchain {shown}` advises pickles:\n{r.output}"
        assert names in r.output and advice in r.output, f"`fedchain {shown}`:\n{r.output}"
        assert len(r.output.strip().splitlines()) <= 4, f"`fedchain {shown}` says too much:\n{r.output}"
    assert holdings(chain, root) == before, "a bad input spent gas, tokens or stake"
    assert not (root / "out").exists() and not (root / "data").exists(), "a bad input wrote its output folder"
    assert len(BAD) >= 25
