"""Gas of one challenge step as a function of the chunk size (values per Merkle leaf).

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/gas/chunk_size.py

The chunk size is a constant of judging.vy (``CHUNK = 64``, ``CHUNK_BYTES =
256``, which challenges.vy and the judges import; availability.vy has its own
``CHUNK_BYTES``) shared with the recipe (``chunk_size = 64``). For each chunk
size S in 64, 256, 1024, 2048, 4096 this script copies every ``*.vy`` of
src/fedchain/chain/contracts (the working tree's, or ``--rev``'s) into a
temporary folder, patches the copies (``CHUNK = S``, ``CHUNK_BYTES = 4 S`` and
the bound of ``update_chunks: Bytes[B * CHUNK_BYTES]`` in challenges.vy and
model_judge.vy; every argument and variable of a chunk follows
``CHUNK_BYTES``), compiles them with the pinned vyper (titanoboa) and deploys
them with fedchain.chain.deploy's own ``deploy`` (its ``artifact`` pointed at
the patched folder), on a fresh embedded EVM per measurement (gas as anvil's
receipts: intrinsic gas included, refunds applied, cold storage).

Two bounds B are measured: B = 256, the source's 65536 bytes at S = 64 (any
round up to the 256-reveal limit can be challenged), and B = N ("tight": the
least that admits the round measured, a contract that could only challenge
rounds of up to N averaged updates). The bound costs memory expansion over the
whole ``Bytes[B * CHUNK_BYTES]`` region however few updates a step carries:
vyper copies every ``Bytes`` argument into a buffer of its largest size on
entry, in challenges.vy and again in its judge (docs/gas.md).

The round is real on those contracts: N staked trainers (N = 20 and 50) commit
and reveal, three staked validators join and vote, all through fedchain's own
functions. The update vectors are real too: N local trainings (one epoch,
the simulation's CNN on digits, Dirichlet(0.5) partition, SGD lr 0.05 momentum
0.9 batch 16: 6,090 parameters) from the same initial model, quantised with
fixedpoint.to_fixed, so the calldata has the byte statistics of real updates
(calldata gas depends on how many bytes are zero). Every root (the task's
model, each update, the voted model) is built with chunk size S
(fixedpoint.vector_root(q, S)). The voted model is the rule's true result
(FedAvg: floor of the sample-weighted mean, weight min(samples, 2**20);
FedMedian: the median, floor of the middle pair's mean) with value j of chunk 0
raised by one (j = S - 1 by default), and the ``challenge`` transaction proves
it wrong (success=True, round reverted). A failed challenge (a right value, bond
forfeited) is measured for FedAvg at N = 20. The scores tree is a placeholder
(every revealer scored 1): the coordinate-wise step never reads it.

Reported per row: gas of the ``challenge`` transaction, its calldata size and
the calldata's share of the gas (4 / 16 per zero / non-zero byte), and the gas
under the EIP-7623 calldata floor (Prague: a transaction pays at least
21000 + 10 * (zeros + 4 * non-zeros)), which binds for calldata-heavy steps.
Then the largest chunk size whose step stays under 5M gas at each N.

The challenge is committed to a block before it is sent (challenges.vy's
commit-reveal, SECURITY-REVIEW M-1); the commitment's gas is not counted.

Writes ``benchmarks/gas/chunk_size.json`` (``--out``). Takes about half an hour
on the shared 2-core machine (the trainings, every contract compiled per chunk
size and bound, 50 rounds; chunk 4096 alone, ~100M gas a step on py-evm, is
most of it: ``--sizes`` to leave it out). At chunk 4096 and 50 updates the
calldata is above the 2**19 bytes that ``challenges.commitment`` takes, so the
commitment is hashed here.
Check of the harness: at S = 64, B = 256, N = 20, FedAvg it measures
1,089,571 gas and 13,540 calldata bytes; challenge.py's simulated round on the
same contracts (other updates), 1,089,887 and 13,540.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from eth_abi import encode
from eth_utils import keccak

from fedchain.chain import commitments as cm
from fedchain.chain.abi import intrinsic_gas
from fedchain.chain.deploy import ROLE_TRAINER, ROLE_VALIDATOR, TOKEN, ProtocolParams, deploy
from fedchain.chain.embedded import EmbeddedChain
from fedchain.chain.interface import CONTRACTS_DIR, Artifact, account_from_seed
from fedchain.chain.layout import Schedule
from fedchain.learning import fixedpoint as fp
from fedchain.learning.data import load_dataset, partition
from fedchain.learning.models import build_model
from fedchain.learning.train import TrainConfig, flatten, get_params, train_local
from fedchain.storage.merkle import merkle_layers, merkle_root, proof_from_layers, score_leaf

HERE = Path(__file__).parent
REPO = HERE.parent.parent
LIMIT = 5_000_000
SIZES = (64, 256, 1024, 2048, 4096)
RULES = {"fedavg": 1, "fedmedian": 2}
MAX_UPDATES = 256  # challenges.vy: the bound of nodes/update_roots/salts
VALIDATORS = 3
STAKE = 100 * TOKEN
COMMAND = "PYTHONPATH=src .venv/bin/python benchmarks/gas/chunk_size.py"


# ---------------------------------------------------------------- the patched contracts


# (file, pattern, replacement): the chunk constants live in judging.vy (challenges.vy and the judges
# import them) and availability.vy; the bound of update_chunks is in challenges.vy and model_judge.vy
def _subs(size: int, chunks_bound: int) -> list[tuple[str, str, str]]:
    return [
        ("judging.vy", r"^CHUNK: constant\(uint256\) = \d+", f"CHUNK: constant(uint256) = {size}"),
        ("judging.vy", r"^CHUNK_BYTES: constant\(uint256\) = \d+", f"CHUNK_BYTES: constant(uint256) = {4 * size}"),
        ("availability.vy", r"^CHUNK_BYTES: constant\(uint256\) = \d+", f"CHUNK_BYTES: constant(uint256) = {4 * size}"),
        ("challenges.vy", r"update_chunks: Bytes\[\d+\]", f"update_chunks: Bytes[{chunks_bound}]"),
        ("model_judge.vy", r"update_chunks: Bytes\[\d+\]", f"update_chunks: Bytes[{chunks_bound}]"),
    ]


def patch_sources(sources: dict[str, str], size: int, chunks_bound: int) -> tuple[dict[str, str], dict]:
    """The contract sources with CHUNK = size, CHUNK_BYTES = 4 size and update_chunks:
    Bytes[chunks_bound]; every substitution must match exactly once (a changed source fails loudly)."""
    out = dict(sources)
    for name, pattern, repl in _subs(size, chunks_bound):
        out[name], k = re.subn(pattern, repl, out[name], flags=re.M)
        if k != 1:
            raise SystemExit(f"{name}: expected one match of {pattern!r}, found {k}")
    return out, {"CHUNK": size, "CHUNK_BYTES": 4 * size, "update_chunks": f"Bytes[{chunks_bound}]"}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout


def contract_sources(rev: str | None) -> dict[str, str]:
    """Every contract source: the working tree's, or as committed at ``rev``."""
    if rev is None:
        return {p.name: p.read_text() for p in sorted(CONTRACTS_DIR.glob("*.vy"))}
    folder = CONTRACTS_DIR.relative_to(REPO).as_posix()
    names = [n for n in git("ls-tree", "--name-only", rev, folder + "/").split() if n.endswith(".vy")]
    return {Path(n).name: git("show", f"{rev}:{n}") for n in names}


def compile_dir(folder: Path, name: str) -> Artifact:
    import boa
    from vyper.compiler.output import build_abi_output

    data = boa.load_partial(str(folder / f"{name}.vy")).compiler_data
    return Artifact(name, build_abi_output(data), bytes(data.bytecode), f"chunk-bench:{folder.name}")


class Contracts:
    """The contract sources, copied and compiled once per chunk size and bound."""

    def __init__(self, root: Path, rev: str | None = None):
        self.root = root
        self.sources = contract_sources(rev)
        self.source_sha = keccak(b"".join(n.encode() + s.encode() for n, s in self.sources.items())).hex()[:16]
        self._folders: dict[tuple[int, int], tuple[Path, dict]] = {}
        self._artifacts: dict[tuple[Path, str], Artifact] = {}

    def patched(self, size: int, bound_updates: int) -> tuple[Path, dict]:
        """The folder of sources with chunks of ``size`` values and update_chunks holding
        ``bound_updates`` chunks, challenges.vy compiled there (its time and code size in the patch)."""
        bound = bound_updates * 4 * size
        key = (size, bound)
        if key not in self._folders:
            texts, patch = patch_sources(self.sources, size, bound)
            folder = self.root / f"chunk{size}-b{bound}"
            folder.mkdir()
            for name, text in texts.items():
                (folder / name).write_text(text)
            t0 = time.time()
            art = self.artifact(folder, "challenges")
            patch["compile_s"] = round(time.time() - t0, 1)
            patch["bytecode_bytes"] = len(art.bytecode)
            self._folders[key] = (folder, patch)
        return self._folders[key]

    def artifact(self, folder: Path, name: str) -> Artifact:
        if (folder, name) not in self._artifacts:
            self._artifacts[folder, name] = compile_dir(folder, name)
        return self._artifacts[folder, name]


# ---------------------------------------------------------------- real updates


def real_updates(n: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    """The parent model and n trainers' fixed-point updates after one local epoch (as
    the simulation's honest trainers compute them), with their sample counts."""
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=seed)
    parts = partition("dirichlet", data.y_train, n, seed=seed, alpha=0.5)
    model = build_model("cnn", tuple(data.input_shape), data.num_classes, seed=seed)
    initial = get_params(model)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.05, momentum=0.9)
    updates, samples = [], []
    for i, idx in enumerate(parts):
        params = train_local(
            model, initial, data.x_train[idx], data.y_train[idx], cfg, seed=(seed * 1000 + i) * 100_003
        )
        updates.append(fp.to_fixed(flatten({k: (params[k] - initial[k]).astype(np.float32) for k in initial})))
        samples.append(len(idx))
    return fp.to_fixed(flatten(initial)), updates, samples


def aggregate(rule: str, updates: list[np.ndarray], samples: list[int]) -> np.ndarray:
    """What challenges.vy recomputes, for every coordinate."""
    u = np.stack(updates).astype(np.int64)
    if rule == "fedavg":
        w = np.minimum(np.asarray(samples, dtype=np.int64), fp.MAX_WEIGHT)
        return (w[:, None] * u).sum(axis=0) // w.sum()  # numpy floors, as _floor_div
    s = np.sort(u, axis=0)
    n = len(updates)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2


def chunk_and_proof(q: np.ndarray, c: int, size: int) -> tuple[bytes, list[bytes]]:
    rows = fp.chunks(q, size)
    return fp.chunk_bytes(rows[c]), proof_from_layers(merkle_layers(fp.chunk_leaves(q, size)), c)


# ---------------------------------------------------------------- one round and its challenge


def measure(
    contracts: Contracts,
    size: int,
    bound_updates: int,
    rule: str,
    data,
    *,
    wrong: bool = True,
    chunk: int = 0,
    coordinate: int | None = None,
) -> dict:
    parent, updates, samples = data
    n = len(updates)
    j = size - 1 if coordinate is None else coordinate
    folder, patch = contracts.patched(size, bound_updates)
    chain = EmbeddedChain()
    owner = account_from_seed("chunk-bench:owner")
    chain.fund(owner.address, 10**22)
    params = ProtocolParams()
    # fedchain.chain.deploy's own sequence, on the patched folder's contracts
    with mock.patch("fedchain.chain.deploy.artifact", lambda name: contracts.artifact(folder, name)):
        d = deploy(chain, owner, params)
    token, fc, challenges = d.token, d.fedchain, d.challenges

    trainers = [account_from_seed(f"chunk-bench:trainer{i}") for i in range(n)]
    validators = [account_from_seed(f"chunk-bench:validator{i}") for i in range(VALIDATORS)]
    challenger = account_from_seed("chunk-bench:challenger")
    for a, role in [
        (owner, 0),
        *((t, ROLE_TRAINER) for t in trainers),
        *((v, ROLE_VALIDATOR) for v in validators),
        (challenger, 0),
    ]:
        chain.fund(a.address, 10**21)
        token.tx("mint", a.address, 1_000 * TOKEN, sender=owner)
        token.tx("approve", fc.vault.address, 2**256 - 1, sender=a)
        if role:
            fc.tx("stake", role, STAKE, sender=a)
    chain.mine(1)  # stake counts only in rounds opened after the block it was added in

    rule_id = RULES[rule]
    json_hash = keccak(text=f"chunk-size benchmark recipe: {rule}, chunk_size {size}")
    recipe = (rule_id, 0, 1, 1, json_hash)  # (rule, param1, param2, score = cosine, keccak(recipe JSON))
    recipe_hash = keccak(encode(["uint256"] * 4 + ["bytes32"], list(recipe)))
    phase = 5
    task = (
        fc.tx(
            "create_task",
            dict(
                recipe_hash=recipe_hash,
                model_root=fp.vector_root(parent, size),
                model_cid=keccak(text="parent-cid"),
                num_rounds=2,
                trainers_per_round=n,
                validators_per_round=VALIDATORS,
                min_reveals=1,
                commit_blocks=phase,
                reveal_blocks=phase,
                validate_blocks=phase,
                challenge_blocks=phase,
                validator_fee_bps=1_000,
                pool=100 * TOKEN,
                max_commits=256,
                max_rounds_per_trainer=0,
            ),
            sender=owner,
        )
        .event("TaskCreated")
        .args["task_id"]
    )
    chain.mine(1)  # round 0's seed is its opening block's hash: readable from the next block (M-4)
    rnd = 0

    roots = [fp.vector_root(q, size) for q in updates]
    salts = [keccak(text=f"salt:{i}") for i in range(n)]
    for t, root, salt in zip(trainers, roots, salts):
        fc.tx(
            "commit", task, rnd, cm.commitment(chain.chain_id, fc.address, task, rnd, t.address, root, salt), sender=t
        )
    for v in validators:
        fc.tx("join", task, rnd, sender=v)
    opened, commit_end, reveal_end, validate_end = Schedule.unpack(fc.call("rounds", task, rnd)["schedule"]).astuple()
    chain.mine_to(commit_end + 1)
    for i, (t, root, salt, s) in enumerate(zip(trainers, roots, salts, samples)):
        idx = fc.tx("reveal", task, rnd, root, keccak(text=f"cid:{i}"), s, salt, sender=t).event("Revealed")
        assert idx.args["index"] == i
    chain.mine_to(reveal_end + 1)

    expected = fp.clip_fixed(parent + aggregate(rule, updates, samples))
    claimed = expected.copy()
    target = chunk * size + j
    assert target < parent.size, "the challenged value must be a real parameter"
    if wrong:
        claimed[target] += 1 if claimed[target] < fp.QMAX else -1
    leaves = [score_leaf(t.address, 1) for t in trainers]
    vote = (fp.vector_root(claimed, size), keccak(text="model-cid"), merkle_root(leaves), n, 0)
    for v in validators:
        fc.tx("vote", task, rnd, *vote, sender=v)
    assert chain.block_number() <= validate_end + phase

    parent_chunk, parent_proof = chunk_and_proof(parent, chunk, size)
    claimed_chunk, claimed_proof = chunk_and_proof(claimed, chunk, size)
    update_chunks, update_proofs = b"", []
    for q in updates:
        data_c, proof = chunk_and_proof(q, chunk, size)
        update_chunks += data_c
        update_proofs += proof
    depth = len(parent_proof)
    args = (
        task,
        rnd,
        vote,
        recipe,
        chunk,
        j,
        depth,
        [t.address for t in trainers],
        roots,
        salts,
        update_chunks,
        update_proofs,
        parent_chunk,
        parent_proof,
        claimed_chunk,
        claimed_proof,
    )
    token.tx("approve", challenges.address, params.challenge_bond, sender=challenger)
    calldata = challenges.artifact.codec.encode_call("challenge", args)
    # M-1: committed a block before. Hashed here, not by challenges.commitment, whose argument
    # is bounded at 2**19 bytes (the largest chunks' calldata is above it)
    h = keccak(encode(["address", "bytes32"], [challenger.address, keccak(calldata)]))
    challenges.tx("commit_challenge", h, sender=challenger)
    chain.mine(1)
    rc = challenges.tx("challenge", *args, sender=challenger)
    success = rc.event("Challenged").args["success"]
    assert success == wrong, (success, wrong)
    zeros = calldata.count(0)
    floor = 21_000 + 10 * (zeros + 4 * (len(calldata) - zeros))  # EIP-7623
    return {
        "chunk_size": size,
        "bound_updates": bound_updates,
        "update_chunks": patch["update_chunks"],
        "updates": n,
        "rule": rule,
        "success": success,
        "parameters": int(parent.size),
        "chunks": int(fp.chunks(parent, size).shape[0]),
        "depth": depth,
        "chunk": chunk,
        "coordinate": j,
        "calldata_bytes": len(calldata),
        "calldata_zero_bytes": zeros,
        "calldata_gas": intrinsic_gas(calldata) - 21_000,
        "challenge_gas": rc.gas_used,
        "execution_gas": rc.gas_used - intrinsic_gas(calldata),
        "eip7623_gas": max(rc.gas_used, floor),
        "under_5M": rc.gas_used < LIMIT,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "chunk_size.json")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--updates", type=int, nargs="+", default=[20, 50])
    p.add_argument(
        "--rev", help="measure the contracts as committed at this git revision (default: the working tree's sources)"
    )
    p.add_argument(
        "--bound-updates",
        nargs="+",
        default=[str(MAX_UPDATES), "tight"],
        help="update_chunks is patched to Bytes[B * CHUNK_BYTES] for each B given: a number, or "
        "'tight' for B = the round's N (default: %(default)s; 256 is the source's 65536 at "
        "chunk 64, the contract's reveal limit)",
    )
    args = p.parse_args()
    t0 = time.time()
    rows, patches = [], {}
    with tempfile.TemporaryDirectory(prefix="fedchain-chunk-") as tmp:
        contracts = Contracts(Path(tmp), args.rev)
        for n in args.updates:
            data = real_updates(n)
            for policy in args.bound_updates:
                b = n if policy == "tight" else int(policy)
                for size in args.sizes:
                    key = f"{size}/{b}"
                    try:
                        patches[key] = contracts.patched(size, b)[1]
                    except Exception as e:  # a bound the compiler refuses: report it and go on
                        patches[key] = {"compile_error": f"{type(e).__name__}: {e}"}
                        print(f"chunk {size}, bound {b} updates: does not compile: {patches[key]['compile_error']}")
                        continue
                    for rule in RULES:
                        rows.append(measure(contracts, size, b, rule, data))
                        rows[-1]["bound_policy"] = policy
                        r = rows[-1]
                        print(
                            f"  chunk {size:5d} N={n:3d} bound {b:3d} {rule:>9}: {r['challenge_gas']:>10,} gas, "
                            f"calldata {r['calldata_bytes']:>8,} B ({r['calldata_gas']:,} gas), depth "
                            f"{r['depth']}, EIP-7623 {r['eip7623_gas']:,}"
                        )
                        sys.stdout.flush()
                    if n == 20:
                        rows.append(measure(contracts, size, b, "fedavg", data, wrong=False))
                        rows[-1]["bound_policy"] = policy
                        print(
                            f"  chunk {size:5d} N={n:3d} bound {b:3d} fedavg failed challenge: "
                            f"{rows[-1]['challenge_gas']:,} gas"
                        )

    best = {}
    for policy in args.bound_updates:
        for n in args.updates:
            for key in ("challenge_gas", "eip7623_gas"):
                ok = [
                    s
                    for s in args.sizes
                    if (
                        rs := [
                            r
                            for r in rows
                            if r["bound_policy"] == policy and r["updates"] == n and r["chunk_size"] == s
                        ]
                    )
                    and all(r[key] < LIMIT for r in rs)
                ]
                best.setdefault(f"bound {policy}", {}).setdefault(f"N={n}", {})[key] = max(ok, default=None)
    print("\nchunk  updates  update_chunks bound  rule       success        gas   calldata B   EIP-7623 gas")
    for r in rows:
        print(
            f"{r['chunk_size']:5d}  {r['updates']:7d}  {r['update_chunks']:>19}  {r['rule']:<10} "
            f"{str(r['success']):<7} {r['challenge_gas']:>10,}  {r['calldata_bytes']:>11,}  "
            f"{r['eip7623_gas']:>13,}"
        )
    for policy, by_n in best.items():
        for n, b in by_n.items():
            print(
                f"{policy}, {n}: largest chunk size with every measured step under 5M gas: "
                f"{b['challenge_gas']} (counting the EIP-7623 floor: {b['eip7623_gas']})"
            )
    head = git("rev-parse", "HEAD").strip()
    dirty = args.rev is None and bool(git("status", "--porcelain", "--", CONTRACTS_DIR.relative_to(REPO).as_posix()))
    result = {
        "command": " ".join([COMMAND, *sys.argv[1:]]),
        "backend": "embedded",
        "limit": LIMIT,
        "contracts": {
            "rev": git("rev-parse", args.rev).strip() if args.rev else "working tree",
            "head": head,
            "working_tree_differs_from_head": dirty,
            "sources_keccak": contracts.source_sha,
        },
        "patches": patches,
        "rows": rows,
        "largest_chunk_under_5M": best,
        "seconds": round(time.time() - t0),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
