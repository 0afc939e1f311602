"""Gas of every external fedchain function, and how finalize and claim scale.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/gas/run.py             # anvil: real receipts
    PYTHONPATH=src .venv/bin/python benchmarks/gas/run.py --embedded  # in-process EVM, no node

It writes ``benchmarks/gas/snapshot.json`` (``--out`` to change it) as::

    {"backend": "anvil",
     "functions": {"stake": 123456, ...},
     "scaling": {"finalize": {"10": ..., "100": ..., "1000": ...},
                 "claim": {"10": ..., "100": ..., "1000": ...}}}

and prints both tables and the max/min ratio of finalize and claim. Commit the
snapshot with the change that moved it: a gas regression is reviewed like code.
It takes about five minutes on anvil (mostly registering 1,000 trainers, one
transaction at a time) and half a minute with ``--embedded``.

What is measured
----------------
``functions``: one scripted task (five trainers, three validators, three rounds)
that calls every external function of fedchain and slashing.vy (and endpoints.vy's
``announce``, a first announcement of the longest URL it takes), then two one-round
tasks: a validator that joins and never votes (``slash_absent``), and the
availability game (``request``, ``answer``: the larger of a root's children and a
256-byte leaf, ``settle``: an unanswered request, which reverts the round), and a
round on secure aggregation's board (``secagg.advertise``, ``secagg.share``,
``secagg.answer``). A function called several times there
(commits, votes, claims...) is reported at its most expensive call, e.g. the
vote that reaches quorum or the first stake of a fresh node: a gas budget
needs the worst case. ``advance`` is the one that fails round 1 and opens
round 2; ``withdraw_payout`` pays a node that already holds tokens.

``scaling``: for N = 10, 100 and 1,000 registered participants (N staked
trainers, plus three validators) one task selects every trainer
(``trainers_per_round = N``, so ``k * stake >= total``). The contract caps a
round at 256 reveals, so min(N, 256) trainers commit and reveal and the rest
stay registered but silent. The scores tree has one leaf per registered
participant, N leaves: leaf i < reveals is the i-th revealer with score i + 1
(the contract ties leaf i to the i-th reveal), the leaves after it are the
silent participants with score 0 (no claim can use them: the contract takes
the leaf index from the caller's own reveal). The tree therefore has depth
ceil(log2 N) (4, 7, 10), and a claim's proof grows with it. ``finalize`` is the finalize of that round (the first of
two, so it also opens the next round, as in ``functions``); ``claim`` is the
claim of the last revealer (the deepest index in use), its first claim, so
its payout balance goes from zero to non-zero (claims credit ``payouts``; no
token moves until ``withdraw_payout``). finalize does not loop over anyone, so
its ratio should stay near 1; claim grows by one proof step per doubling.

On anvil every transaction mines its own block and the receipt's ``gasUsed``
is what a user pays. ``--embedded`` is faster and its receipts are the same
(each transaction starts cold, with committed storage, and gets its refunds:
``tests/contracts/test_full_round.py`` compares them transaction for
transaction, and both give the same ``functions`` figure for figure); the
committed snapshot is measured on anvil all the same.

The regression gate: ``tests/contracts/test_gas_snapshot.py`` measures ``functions``
afresh on the snapshot's backend (``measure_snapshot_functions``, about ten seconds)
and fails, naming each function and both figures, if any is more than 10% above the
snapshot (``regressions``). docs/gas.md says why each figure is what it is.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from eth_utils import keccak

from fedchain.chain import commitments as cm
from fedchain.chain.deploy import ROLE_TRAINER, ROLE_VALIDATOR, TOKEN, ProtocolParams, deploy
from fedchain.chain.interface import Chain, account_from_seed
from fedchain.chain.layout import Schedule
from fedchain.learning import fixedpoint as fp
from fedchain.protocol.availability import NO_OPENING, vector_node
from fedchain.storage.merkle import merkle_layers, proof_from_layers, score_leaf

MAX_UINT = 2**256 - 1
STAKE = ProtocolParams().min_stake
SIZES = (10, 100, 1_000)
MAX_REVEALS = 256
SETUP_GAS = 1_000_000  # setup transactions skip gas estimation (half the RPC round trips)


def h32(*parts) -> bytes:
    return keccak(text=":".join(map(str, parts)))


class Bench:
    """One deployment and the gas it records: the max per function name."""

    def __init__(self, chain: Chain, tag: str, params: ProtocolParams = ProtocolParams()):
        self.chain = chain
        self.tag = tag
        self.owner = account_from_seed(f"gas-{tag}-owner")
        chain.fund(self.owner.address, 10**24)
        d = deploy(chain, self.owner, params)
        self.token, self.fc, self.slashing, self.availability = d.token, d.fedchain, d.slashing, d.availability
        self.endpoints, self.board = d.endpoints, d.secagg
        self.gas: dict[str, int] = {}
        self.register([self.owner], 0)  # the sponsor: tokens and allowance, no stake

    def tx(self, fn: str, *args, sender, record: bool = True, to=None, name: str | None = None):
        """Send ``fn``; record its gas under ``name`` (default: ``fn``) at its most expensive call."""
        to = to or (self.slashing if fn.startswith("slash_") else self.fc)  # faults are judged by slashing.vy
        r = to.tx(fn, *args, sender=sender, gas=None if record else SETUP_GAS)
        name = name or fn
        if record:
            self.gas[name] = max(self.gas.get(name, 0), r.gas_used)
        return r

    def accounts(self, name: str, n: int):
        return [account_from_seed(f"gas-{self.tag}-{name}{i}") for i in range(n)]

    def register(self, nodes, role: int, record: bool = False) -> None:
        for a in nodes:
            self.chain.fund(a.address, 10**21)
            self.token.tx("mint", a.address, 1_000 * TOKEN, sender=self.owner, gas=SETUP_GAS)
            self.token.tx("approve", self.fc.vault.address, MAX_UINT, sender=a, gas=SETUP_GAS)
            self.token.tx("approve", self.availability.address, MAX_UINT, sender=a, gas=SETUP_GAS)
            if role:
                self.tx("stake", role, STAKE, sender=a, record=record)

    def create_task(self, record: bool = True, **cfg) -> int:
        full = dict(
            recipe_hash=h32("recipe"),
            model_root=h32("model"),
            model_cid=h32("cid"),
            num_rounds=1,
            trainers_per_round=1,
            validators_per_round=3,
            min_reveals=1,
            commit_blocks=10,
            reveal_blocks=10,
            validate_blocks=10,
            challenge_blocks=5,
            validator_fee_bps=1_000,
            pool=100 * TOKEN,
            max_commits=256,
            max_rounds_per_trainer=0,
        )
        full.update(cfg)
        r = self.tx("create_task", full, sender=self.owner, record=record)
        self.chain.mine(1)  # round 0's seed is its opening block's hash: readable from the next block (M-4)
        return r.event("TaskCreated").args["task_id"]

    def schedule(self, task: int, rnd: int):
        return Schedule.unpack(self.fc.call("rounds", task, rnd)["schedule"]).astuple()

    def commit(self, task: int, rnd: int, node, record: bool = True) -> None:
        c = cm.commitment(
            self.chain.chain_id,
            self.fc.address,
            task,
            rnd,
            node.address,
            h32("update", node.address),
            h32("salt", node.address),
        )
        self.tx("commit", task, rnd, c, sender=node, record=record)

    def reveal(self, task: int, rnd: int, node, record: bool = True) -> None:
        self.tx(
            "reveal",
            task,
            rnd,
            h32("update", node.address),
            h32("blob", node.address),
            100,
            h32("salt", node.address),
            sender=node,
            record=record,
        )

    def finalizable(self, task: int, rnd: int) -> None:
        self.chain.mine_to(self.schedule(task, rnd)[3] + self.fc.call("tasks", task)["challenge_blocks"] + 1)


def measure_functions(chain: Chain) -> dict[str, int]:
    """Every external function once or more in one scripted task (see the module docstring)."""
    b = Bench(chain, "functions")
    trainers, validators = b.accounts("trainer", 5), b.accounts("validator", 3)
    reporter = b.accounts("reporter", 1)[0]
    b.register(trainers, ROLE_TRAINER, record=True)
    b.register(validators, ROLE_VALIDATOR, record=True)
    b.register([reporter], 0)
    for node, url in ((trainers[0], "http://10.0.0.5:8701"), (trainers[1], "https://" + "a" * 248)):
        b.tx("announce", url, sender=node, to=b.endpoints)  # a usual blob URL, then the longest (256 bytes)
    chain.mine(1)

    task = b.create_task(num_rounds=3, trainers_per_round=5, pool=90 * TOKEN)
    for t in trainers:
        b.commit(task, 0, t)
    for v in validators:
        b.tx("join", task, 0, sender=v)
    chain.mine_to(b.schedule(task, 0)[1] + 1)
    revealers = [trainers[0], trainers[1], trainers[2], trainers[4]]  # trainer 3 stays silent
    for t in revealers:
        b.reveal(task, 0, t)
    scores = [1, 2, 3, 0]
    leaves = [score_leaf(t.address, s) for t, s in zip(revealers, scores)]
    layers = merkle_layers(leaves)
    result = (h32("model", 1), h32("model-cid", 1), layers[-1][0], sum(scores), 1 << 3)  # reveal 3 rejected
    chain.mine_to(b.schedule(task, 0)[2] + 1)
    for v in validators:
        b.tx("vote", task, 0, *result, sender=v)
    b.finalizable(task, 0)
    b.tx("finalize", task, *result, sender=reporter)
    for i, t in enumerate(revealers[:3]):
        b.tx("claim", task, 0, scores[i], proof_from_layers(layers, i), sender=t)
    for v in validators:
        b.tx("claim_validator", task, 0, sender=v)
    b.tx("slash_missing_reveal", task, 0, trainers[3].address, sender=reporter)
    b.tx("slash_rejected", task, 0, trainers[4].address, sender=reporter)
    for node in [*revealers[:3], *validators, reporter]:
        b.tx("withdraw_payout", sender=node)

    for rnd in (1, 2):  # nobody commits: both rounds fail, the second finishes the task
        chain.mine_to(b.schedule(task, rnd)[2] + 1)
        b.tx("advance", task, sender=reporter, record=rnd == 1)
    b.tx("reclaim", task, sender=b.owner)

    # a committee member that joins and never votes (slash_absent): a one-round task of its own
    task = b.create_task(record=False, trainers_per_round=5)
    b.commit(task, 0, trainers[1], record=False)
    for v in validators:
        b.tx("join", task, 0, sender=v, record=False)
    chain.mine_to(b.schedule(task, 0)[1] + 1)
    b.reveal(task, 0, trainers[1], record=False)
    chain.mine_to(b.schedule(task, 0)[2] + 1)
    for v in validators[:2]:  # 2 of 3 seats: a quorum
        b.tx("vote", task, 0, *result, sender=v, record=False)
    chain.mine_to(b.schedule(task, 0)[3] + 1)
    b.tx("slash_absent", task, 0, validators[2].address, sender=reporter)

    # the availability game on a voted model of 5 chunks (depth 3): a request for the root and
    # for a leaf, each answered (the leaf's answer carries its 256 bytes), and one for the
    # accepted update left to settle, which reverts the round and makes its trainer slashable
    model = np.random.default_rng(0).integers(-(2**20), 2**20, 300)
    vote = (fp.vector_root(model, fp.CHUNK_SIZE), h32("model-cid", 2), result[2], result[3], 0)
    task = b.create_task(record=False, trainers_per_round=5, challenge_blocks=10)  # anvil: a block a transaction
    b.commit(task, 0, trainers[1], record=False)
    for v in validators[:2]:  # validator 2 was slashed below the least stake
        b.tx("join", task, 0, sender=v, record=False)
    chain.mine_to(b.schedule(task, 0)[1] + 1)
    b.reveal(task, 0, trainers[1], record=False)
    chain.mine_to(b.schedule(task, 0)[2] + 1)
    for v in validators[:2]:
        b.tx("vote", task, 0, *vote, sender=v, record=False)
    chain.mine_to(b.schedule(task, 0)[3] + 1)
    fedavg = (1, 0, 1, 1, h32("json"))
    for kind, level, position in ((1, 0, 0), (1, 3, 1), (2, 1, 1)):
        r = b.tx("request", task, 0, vote, fedavg, kind, 0, level, position, sender=reporter, to=b.availability)
        rid = r.event("Requested").args["request_id"]
        if kind == 1:
            b.tx(
                "answer",
                rid,
                vote,
                vector_node(model, fp.CHUNK_SIZE, level, position),
                NO_OPENING,
                sender=validators[0],
                to=b.availability,
            )
    chain.mine_to(b.availability.call("requests", rid)["deadline"] + 1)
    b.tx("settle", rid, sender=reporter, to=b.availability)
    b.tx("slash_withheld", task, 0, trainers[1].address, sender=reporter)

    # secure aggregation's board (secagg.vy): the selected trainers of a one-round task advertise,
    # share and answer, each once (recorded as secagg.advertise, secagg.share, secagg.answer)
    # (windows of 10 blocks: anvil mines a block a transaction)
    task = b.create_task(record=False, trainers_per_round=5, commit_blocks=30, validate_blocks=20)
    chain.mine_to(b.schedule(task, 0)[0] + 1)  # the seed is readable from the block after the opening one
    chosen = [t for t in trainers if b.fc.call("is_selected", task, 0, t.address, ROLE_TRAINER)]
    advertise_end, _, _ = b.board.call("windows", task, 0)
    for t in chosen:
        b.tx(
            "advertise",
            task,
            0,
            h32("c", t.address),
            h32("s", t.address),
            sender=t,
            to=b.board,
            name="secagg.advertise",
        )
    chain.mine_to(advertise_end + 1)
    for t in chosen:
        b.tx("share", task, 0, h32("bundle", t.address), h32("b", t.address), sender=t, to=b.board, name="secagg.share")
    chain.mine_to(b.schedule(task, 0)[2] + 1)
    for t in chosen:
        b.tx("answer", task, 0, h32("answer", t.address), sender=t, to=b.board, name="secagg.answer")

    r = b.tx("unbond", STAKE, sender=trainers[0])
    chain.mine_to(r.block + ProtocolParams().unbonding_delay)
    b.tx("withdraw", sender=trainers[0])
    return b.gas


def measure_scaling(chain: Chain, n: int) -> tuple[int, int]:
    """(finalize gas, claim gas) with ``n`` registered trainers (see the module docstring)."""
    # 256 reveals need phases of ~270 blocks on anvil (a block per transaction), and
    # a round must end before unbonding does: a long delay, which costs no gas.
    b = Bench(chain, f"scale{n}", ProtocolParams(unbonding_delay=10_000))
    trainers, validators = b.accounts("trainer", n), b.accounts("validator", 3)
    b.register(trainers, ROLE_TRAINER)
    b.register(validators, ROLE_VALIDATOR)
    chain.mine(1)
    reveals = min(n, MAX_REVEALS)
    task = b.create_task(
        record=False, num_rounds=2, trainers_per_round=n, commit_blocks=reveals + 10, reveal_blocks=reveals + 10
    )
    for t in trainers[:reveals]:
        b.commit(task, 0, t, record=False)
    for v in validators:
        b.tx("join", task, 0, sender=v, record=False)
    chain.mine_to(b.schedule(task, 0)[1] + 1)
    for t in trainers[:reveals]:
        b.reveal(task, 0, t, record=False)
    scores = [i + 1 if i < reveals else 0 for i in range(n)]
    layers = merkle_layers([score_leaf(t.address, s) for t, s in zip(trainers, scores)])
    assert len(layers) - 1 == math.ceil(math.log2(n))
    result = (h32("model", n), h32("model-cid", n), layers[-1][0], sum(scores), 0)
    chain.mine_to(b.schedule(task, 0)[2] + 1)
    for v in validators:
        b.tx("vote", task, 0, *result, sender=v, record=False)
    b.finalizable(task, 0)
    fin = b.fc.tx("finalize", task, *result, sender=validators[0]).gas_used
    last = reveals - 1
    claim = b.fc.tx("claim", task, 0, scores[last], proof_from_layers(layers, last), sender=trainers[last]).gas_used
    return fin, claim


@contextmanager
def chains(backend: str) -> Iterator[Callable[[], Chain]]:
    """A maker of fresh chains on ``backend``: "embedded" (an in-process EVM each) or
    "anvil" (one node started here, a fresh deployment per measurement, stopped after)."""
    if backend == "embedded":
        from fedchain.chain.embedded import EmbeddedChain

        yield EmbeddedChain
        return
    if backend != "anvil":
        raise ValueError(f"gas: unknown backend {backend!r} (embedded or anvil)")
    from fedchain.chain.anvil import Anvil
    from fedchain.chain.rpc import RpcChain

    anvil = Anvil()
    try:
        yield lambda: RpcChain(anvil.url)
    finally:
        anvil.stop()


def measure_snapshot_functions(backend: str) -> dict[str, int]:
    """The snapshot's ``functions`` measured afresh on ``backend`` (no scaling)."""
    with chains(backend) as make:
        return measure_functions(make())


def regressions(snapshot: dict[str, int], fresh: dict[str, int], tolerance_pct: int = 10) -> list[str]:
    """One line per function of ``fresh`` more than ``tolerance_pct`` percent above
    ``snapshot`` (exact integers: fresh * 100 > snapshot * (100 + tolerance_pct)),
    naming it and both figures; also every function measured in only one of the two
    (re-measure the snapshot when the contracts gain or lose one)."""
    lines = []
    for fn in sorted(snapshot.keys() | fresh.keys()):
        if fn not in fresh:
            lines.append(f"{fn}: in the snapshot ({snapshot[fn]:,}) but not measured")
        elif fn not in snapshot:
            lines.append(f"{fn}: measured ({fresh[fn]:,}) but not in the snapshot")
        elif fresh[fn] * 100 > snapshot[fn] * (100 + tolerance_pct):
            lines.append(
                f"{fn}: {fresh[fn]:,} gas against {snapshot[fn]:,} in the snapshot "
                f"({(fresh[fn] - snapshot[fn]) * 100 / snapshot[fn]:+.1f}%, more than +{tolerance_pct}%)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--embedded", action="store_true", help="use the in-process EVM instead of anvil")
    p.add_argument("--out", type=Path, default=here / "snapshot.json")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="registered participants, comma-separated")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    backend = "embedded" if args.embedded else "anvil"

    started = time.monotonic()
    with chains(backend) as make:
        functions = measure_functions(make())
        scaling = {"finalize": {}, "claim": {}}
        for n in sizes:
            fin, claim = measure_scaling(make(), n)
            scaling["finalize"][str(n)] = fin
            scaling["claim"][str(n)] = claim
            print(f"  measured N={n} ({time.monotonic() - started:.0f}s)", file=sys.stderr)

    snapshot = {"backend": backend, "functions": functions, "scaling": scaling}
    args.out.write_text(json.dumps(snapshot, indent=2) + "\n")

    print(f"{'function':<22}{'gas':>10}")
    for fn, gas in sorted(functions.items(), key=lambda kv: kv[1]):
        print(f"{fn:<22}{gas:>10,}")
    print()
    print(f"{'participants':>12}{'depth':>7}{'finalize':>11}{'claim':>10}")
    for n in sizes:
        print(f"{n:>12}{math.ceil(math.log2(n)):>7}{scaling['finalize'][str(n)]:>11,}{scaling['claim'][str(n)]:>10,}")
    for fn in ("finalize", "claim"):
        values = scaling[fn].values()
        print(f"{fn} max/min: {max(values) / min(values):.3f}")
    print(f"wrote {args.out} in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
