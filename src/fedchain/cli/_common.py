"""What the real-network subcommands share: options, accounts, the deployment, logs, errors.

Secrets: a private key is only ever read from a keystore file (unlocked with
``FEDCHAIN_PASSWORD`` or a hidden prompt) or derived from anvil's public dev
mnemonic; neither the key nor the password is printed or logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from fedchain.errors import ChainError, ChainUnavailable, FedchainError, Reverted, StorageError

PASSWORD_ENV = "FEDCHAIN_PASSWORD"
TOKEN = 10**18

# Exit codes in ranges per component (cf. Flower): 2 is click's usage error.
EXIT = {"error": 1, "chain": 10, "chain_unavailable": 11, "reverted": 12, "storage": 20, "keystore": 30}

DeploymentOpt = Annotated[
    Path,
    typer.Option(
        "--deployment",
        "-d",
        envvar="FEDCHAIN_DEPLOYMENT",
        help="Deployment file written by `fedchain deploy` (contract addresses, chain id, RPC URL).",
    ),
]
RpcOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc", envvar="FEDCHAIN_RPC", help="EVM JSON-RPC URL; default: the one saved in the deployment file."
    ),
]
AccountOpt = Annotated[
    str | None,
    typer.Option(
        "--account",
        "-a",
        envvar="FEDCHAIN_ACCOUNT",
        help="Keystore account (name, address or file) that signs; password from $FEDCHAIN_PASSWORD or a prompt.",
    ),
]
DevAccountOpt = Annotated[
    int | None,
    typer.Option(
        "--dev-account",
        envvar="FEDCHAIN_DEV_ACCOUNT",
        help="Sign with anvil's dev account N instead (local development only: its key is public).",
    ),
]
KeystoreOpt = Annotated[
    Path | None,
    typer.Option("--keystore", envvar="FEDCHAIN_KEYSTORE", help="Keystore folder (default: ~/.fedchain/keystore)."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Turn fedchain's errors into one red line and an exit code (no traceback)."""
    from fedchain.chain.keys import KeystoreError

    try:
        yield
    except ChainUnavailable as e:
        fail(str(e), EXIT["chain_unavailable"])
    except Reverted as e:
        fail(f"transaction reverted: {e}", EXIT["reverted"])
    except ChainError as e:
        fail(str(e), EXIT["chain"])
    except StorageError as e:
        fail(str(e), EXIT["storage"])
    except KeystoreError as e:
        fail(str(e), EXIT["keystore"])
    except FedchainError as e:
        fail(str(e), EXIT["error"])


def password(prompt: str = "Keystore password", confirm: bool = False) -> str:
    """``$FEDCHAIN_PASSWORD``, else a hidden prompt (never echoed, never logged)."""
    pw = os.environ.get(PASSWORD_ENV)
    if pw:
        return pw
    if not sys.stdin.isatty():
        fail(f"no password: set {PASSWORD_ENV} or run in a terminal to be prompted", EXIT["keystore"])
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def resolve_account(account: str | None, dev_account: int | None, keystore: Path | None):
    """The signing account from ``--account`` or ``--dev-account`` (exactly one)."""
    from fedchain.chain import keys

    if (account is None) == (dev_account is None):
        fail("choose the signing account with --account NAME (a keystore) or --dev-account N (local anvil only)", 2)
    if dev_account is not None:
        return keys.dev_account(dev_account)
    assert account is not None  # exactly one of the two was given
    key = keys.find_key(keystore or keys.default_keystore(), account)
    return keys.unlock(key, password(f"Password for {key.name} ({key.address})"))


def connect(deployment: Path, rpc: str | None, receipt_timeout: float = 30.0):
    """(chain, deployment, info): the chain at ``rpc`` (or the file's URL) and the contracts."""
    from fedchain.chain.deploy import load_deployment, read_deployment_file
    from fedchain.chain.rpc import RpcChain
    from fedchain.cli import checks

    checks.url(rpc, "--rpc")
    info = read_deployment_file(deployment)
    url = rpc or info.get("rpc")
    if not url:
        fail(f"no RPC URL: pass --rpc (the deployment file {deployment} has none)", 2)
    chain = RpcChain(url, timeout=30.0, receipt_timeout=receipt_timeout)
    return chain, load_deployment(chain, info), info


def peers_file_for(deployment: Path) -> Path:
    """The default peers file: ``peers.txt`` next to the deployment file."""
    return Path(deployment).resolve().parent / "peers.txt"


def setup_logging(log_file: Path | None = None, verbose: bool = False) -> None:
    """Readable node logs on stderr (and in ``log_file``): time, level, who, what."""
    fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # third-party chatter (connection retries while the chain restarts, HTTP internals)
    for name in ("urllib3", "web3", "requests", "asyncio", "filelock"):
        logging.getLogger(name).setLevel(logging.ERROR)


def parse_tokens(value: str, flag: str | None = None) -> int:
    """``"100"`` or ``"0.5"`` tokens -> wei (18 decimals)."""
    from decimal import Decimal, InvalidOperation

    try:
        wei = Decimal(value) * TOKEN
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not an amount of tokens", param_hint=flag) from None
    if not wei.is_finite() or wei < 0 or wei != wei.to_integral_value():
        raise typer.BadParameter(f"{value!r}: amounts are non-negative with at most 18 decimals", param_hint=flag)
    return int(wei)


def parse_rule_params(rule: str, text: str) -> dict:
    """``--rule-params``: a JSON object the rule accepts (typer.BadParameter otherwise)."""
    import json

    from fedchain.errors import LearningError
    from fedchain.learning.aggregate import check_params, registry

    try:
        registry.get(rule)
    except LearningError as e:
        raise typer.BadParameter(str(e), param_hint="--rule") from None
    try:
        params = json.loads(text)
        if not isinstance(params, dict):
            raise ValueError("not a JSON object")
        check_params(rule, params)
    except (ValueError, LearningError) as e:
        raise typer.BadParameter(f"{text!r}: {e}", param_hint="--rule-params") from None
    return params


def fmt_tokens(wei: int) -> str:
    return f"{wei / TOKEN:,.4f}".rstrip("0").rstrip(".")


ListenOpt = Annotated[
    str,
    typer.Option(
        help="HOST:PORT where this process serves its blobs (GET /ipfs/<cid>); port 0 picks a free one; "
        "'off' serves nothing."
    ),
]


def _public_url(value: str | None) -> str | None:
    """``--public-url`` checked before anything connects: what the endpoints contract takes."""
    from fedchain.protocol.endpoints import check_url

    if value is None:
        return None
    try:
        return check_url(value, flag="")
    except FedchainError as e:
        raise typer.BadParameter(str(e).strip()) from None


PublicUrlOpt = Annotated[
    str | None,
    typer.Option(
        help="The URL other machines reach this blob server at, e.g. http://10.0.0.5:8701 (announced on chain "
        "and in the peers file); default http://HOST:PORT from --listen.",
        callback=_public_url,
    ),
]
PeerOpt = Annotated[
    list[str],
    typer.Option(
        "--peer",
        help="Blob server URL of another participant (repeatable); tried after a blob's author and before "
        "the peers file and the endpoints announced on chain.",
    ),
]
PeersFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="Peers file, one URL a line, re-read on every lookup (default: peers.txt next to the deployment file)."
    ),
]
ModelsOpt = Annotated[
    list[str],
    typer.Option(
        "--model",
        help="An entry-point model package.module:factory, installed here, that this command may build when "
        "a task names it (repeatable): fedchain builds no model that only a recipe names. The recipe pins "
        "the sha256 of its source, and a copy that hashes differently is refused. Built-in models need none.",
    ),
]
AnnounceOpt = Annotated[
    bool,
    typer.Option(
        help="Announce this process's blob server URL: on chain (a transaction, only when it changed) "
        "and in the peers file."
    ),
]


def open_store(
    home: Path,
    deployment: Path,
    listen: str,
    public_url: str | None,
    peer: list[str],
    peers_file: Path | None,
    announce: bool,
    log: logging.Logger,
    dep=None,
):
    """(store, server, url): the local blob folder under ``home`` first, then HTTP peers
    (with the endpoints announced on ``dep``'s chain, if it has an endpoints contract);
    the server that shares the local folder (None with ``--listen off``); and the URL to
    announce on chain (None with ``--listen off`` or ``--no-announce``)."""
    from fedchain.cli import checks
    from fedchain.protocol.endpoints import ChainDirectory
    from fedchain.storage.http import BlobServer, HttpBlobStore, Peers
    from fedchain.storage.store import LocalBlobStore, MultiStore

    checks.url(public_url, "--public-url")
    for given in peer:
        checks.url(given, "--peer")
    local = LocalBlobStore(home / "blobs")
    directory = ChainDirectory(dep) if dep is not None and dep.endpoints is not None else None
    peers = Peers(peer, peers_file or peers_file_for(deployment), directory=directory)
    server, url = None, None
    if listen != "off":
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            fail(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8701", 2)
        try:
            server = BlobServer(local, host, int(port)).start()
        except OSError as e:
            fail(f"cannot serve blobs on {listen}: {e}", EXIT["storage"])
        url = public_url or server.url
        peers.exclude.add(url)
        log.info("serving blobs from %s at %s/ipfs/<cid>", local.root, url)
        if public_url is None and host in ("0.0.0.0", "::"):
            log.warning("--listen %s without --public-url: other machines cannot reach %s", listen, url)
        if announce:
            peers.announce(url)
            log.info("announced %s in %s", url, peers.file)
    return MultiStore([local, HttpBlobStore(peers, cache=local)]), server, url if announce else None


# Fine-tuning a base model (fedchain.learning.models.lora), for `simulate` and `task create`
BaseModelOpt = Annotated[
    str | None,
    typer.Option(
        help="Fine-tune a base model instead of training from scratch: a model file (safetensors of --model's "
        "tensors; `fedchain model get` writes one), or (task create) the CID of a model blob that the peers "
        "serve, such as an earlier task's final model. It is published as the task's base model."
    ),
]
LoraRankOpt = Annotated[
    int, typer.Option(help="With --base-model: train rank-R LoRA adapters only, the base frozen (0: every weight).")
]
LoraTargetsOpt = Annotated[
    str, typer.Option(help="Comma-separated modules of the model that get LoRA adapters, e.g. hidden,out.")
]
LoraFullOpt = Annotated[
    str, typer.Option(help="Comma-separated modules trained in full beside the adapters (a new head), e.g. out.")
]


def names(value: str) -> tuple[str, ...]:
    """``"hidden, out"`` -> ``("hidden", "out")``: a comma-separated option's names."""
    return tuple(n.strip() for n in value.split(",") if n.strip())


# Differential privacy (fedchain.learning.privacy), for `simulate` and `task create`
DpOpt = Annotated[
    str | None,
    typer.Option(
        help="Differential privacy: 'client' (each trainer clips its update to --dp-clip and adds Gaussian "
        "noise) or 'example' (DP-SGD with Opacus: --dp-steps steps a round at sampling rate --dp-sampling-rate)."
    ),
]
DpEpsilonOpt = Annotated[
    float | None,
    typer.Option(
        help="With --dp: the epsilon every trainer may reach, at --dp-delta: the noise is calibrated so that "
        "a trainer in every one of --rounds rounds reaches it, and the contracts cap each trainer's rounds there."
    ),
]
DpNoiseOpt = Annotated[
    float | None, typer.Option(help="With --dp, instead of --dp-epsilon: the noise multiplier sigma (no cap).")
]
DpClipOpt = Annotated[
    float, typer.Option(help="With --dp: the L2 clip C (of the update, or of each example's gradient).")
]
DpDeltaOpt = Annotated[float, typer.Option(help="With --dp: the delta of the (epsilon, delta) guarantee.")]
DpSamplingRateOpt = Annotated[float, typer.Option(help="With --dp example: each DP-SGD step's Poisson sampling rate.")]
DpStepsOpt = Annotated[int, typer.Option(help="With --dp example: DP-SGD steps per round.")]


def dp_recipe(
    mechanism: str | None,
    epsilon: float | None,
    noise: float | None,
    clip: float,
    delta: float,
    sampling_rate: float,
    steps: int,
    rounds: int,
) -> dict:
    """The recipe's DP fields from the command line ({} without --dp); errors name the flag."""
    from fedchain.learning import privacy

    if mechanism is None:
        if epsilon is not None or noise is not None:
            raise typer.BadParameter("needs --dp client or --dp example", param_hint="--dp-epsilon/--dp-noise")
        return {}
    if mechanism not in ("client", "example"):
        raise typer.BadParameter(f"{mechanism!r}: choose client or example", param_hint="--dp")
    if (epsilon is None) == (noise is None):
        raise typer.BadParameter("give one of --dp-epsilon (calibrated) or --dp-noise", param_hint="--dp-epsilon")
    example = mechanism == "example"
    fields = dict(dp=mechanism, dp_clip=clip, dp_delta=delta)
    if example:
        fields |= dict(dp_sampling_rate=sampling_rate, dp_steps=steps)
    try:
        spec = privacy.DpSpec(
            mechanism,  # type: ignore[arg-type]  # "client" or "example", checked above
            1.0,
            clip,
            delta,
            sampling_rate if example else None,
            steps if example else None,
        )
        if epsilon is not None:
            if not epsilon > 0:
                raise ValueError(f"privacy: epsilon must be > 0, got {epsilon}")
            return fields | dict(dp_noise=privacy.calibrate_noise(spec, rounds, epsilon), dp_max_epsilon=epsilon)
        if noise is not None and noise < 0:
            raise ValueError(f"privacy: the noise multiplier must be >= 0, got {noise}")
        return fields | dict(dp_noise=noise)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--dp") from None
