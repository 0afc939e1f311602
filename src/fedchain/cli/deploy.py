"""``fedchain deploy``: deploy the contracts and write the deployment file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import (
    AccountOpt,
    DevAccountOpt,
    KeystoreOpt,
    errors,
    fmt_tokens,
    parse_tokens,
    resolve_account,
)

# A challenge window must outlast anyone who could censor challenges (one block
# builder, a sequencer): on a public chain at least about an hour of blocks
# (SECURITY-REVIEW L-7). A local dev chain mines on demand and censors nobody.
LOCAL_CHAIN_IDS = {31337, 1337}
LOCAL_MIN_CHALLENGE = 5
PUBLIC_MIN_CHALLENGE = 300


def least_challenge_window(chain_id: int, wanted: int | None) -> int:
    """The deployment's least challenge window: ``wanted``, or the default for the chain;
    on a chain that is not a local dev chain, never below ``PUBLIC_MIN_CHALLENGE``."""
    local = chain_id in LOCAL_CHAIN_IDS
    if wanted is None:
        return LOCAL_MIN_CHALLENGE if local else PUBLIC_MIN_CHALLENGE
    if wanted < 1:
        raise typer.BadParameter("the challenge window must be at least one block", param_hint="--min-challenge-blocks")
    if not local and wanted < PUBLIC_MIN_CHALLENGE:
        raise typer.BadParameter(
            f"chain {chain_id} is not a local dev chain: a challenge window of {wanted} blocks "
            f"could be censored; use at least {PUBLIC_MIN_CHALLENGE}",
            param_hint="--min-challenge-blocks",
        )
    return wanted


def deploy(
    rpc: Annotated[str, typer.Option(envvar="FEDCHAIN_RPC", help="EVM JSON-RPC URL, e.g. http://127.0.0.1:8545.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Deployment file to write; other commands read it (--deployment).")
    ] = Path("deployment.json"),
    account: AccountOpt = None,
    dev_account: DevAccountOpt = None,
    keystore: KeystoreOpt = None,
    min_stake: Annotated[str, typer.Option(help="Least stake (tokens) a node needs to be selected.")] = "100",
    unbonding_delay: Annotated[
        int, typer.Option(help="Blocks from unbond to withdraw (above every task's round plus the slash grace).")
    ] = 100,
    slash_grace: Annotated[
        int,
        typer.Option(
            help="Blocks after a round's challenge window in which its faults can "
            "still be reported before its stake can leave."
        ),
    ] = 20,
    liveness_penalty: Annotated[str, typer.Option(help="Tokens slashed for a commit never revealed.")] = "5",
    min_challenge_blocks: Annotated[
        int | None,
        typer.Option(
            help=f"Least challenge window a task may set, in blocks. Default: {LOCAL_MIN_CHALLENGE} on a local dev "
            f"chain (id {', '.join(map(str, sorted(LOCAL_CHAIN_IDS)))}), {PUBLIC_MIN_CHALLENGE} elsewhere "
            "(about an hour of 12-second blocks), and no less than that elsewhere."
        ),
    ] = None,
    dev_tokens: Annotated[
        str,
        typer.Option(help="With --dev-account: test tokens minted to each dev account, so they can stake and sponsor."),
    ] = "10000",
    dev_accounts: Annotated[int, typer.Option(help="How many dev accounts get test tokens.")] = 10,
) -> None:
    """Deploy a test ERC-20 token and the fedchain contract.

    The signer becomes the token's owner (it can mint test tokens: see
    `fedchain fund`). Writes the deployment file with the addresses, the chain
    id, the deployment block and the RPC URL; share it with every participant
    (each may reach the chain at its own --rpc URL).
    """
    from fedchain.chain.deploy import ProtocolParams
    from fedchain.chain.deploy import deploy as deploy_contracts
    from fedchain.chain.keys import dev_account as dev
    from fedchain.chain.rpc import RpcChain
    from fedchain.cli import checks

    checks.url(rpc, "--rpc")
    stake_wei, penalty_wei = (
        parse_tokens(min_stake, "--min-stake"),
        parse_tokens(liveness_penalty, "--liveness-penalty"),
    )
    amount = parse_tokens(dev_tokens, "--dev-tokens")
    checks.at_least("--unbonding-delay", unbonding_delay, 1)
    checks.at_least("--dev-accounts", dev_accounts, 0)
    if out.is_dir():
        raise typer.BadParameter(f"{out} is a folder: name the deployment file to write", param_hint="--out")
    with errors():
        owner = resolve_account(account, dev_account, keystore)
        chain = RpcChain(rpc, receipt_timeout=60.0)
        window = least_challenge_window(chain.chain_id, min_challenge_blocks)
        params = ProtocolParams(
            min_stake=stake_wei,
            unbonding_delay=unbonding_delay,
            liveness_penalty=penalty_wei,
            min_challenge_blocks=window,
            slash_grace=slash_grace,
        )
        typer.echo(f"deploying from {owner.address} to chain {chain.chain_id} at {rpc} ...")
        dep = deploy_contracts(chain, owner, params)
        dep.save(out, rpc=rpc, deployer=owner.address)
        assert dep.slashing is not None and dep.challenges is not None  # a new deployment has every contract
        typer.echo(f"  token    {dep.token.address}")
        typer.echo(f"  fedchain {dep.fedchain.address}")
        typer.echo(f"  slashing {dep.slashing.address}")
        typer.echo(f"  challenges {dep.challenges.address} (least challenge window: {window} blocks)")
        typer.echo(f"  block    {dep.block}")
        typer.echo(f"wrote {out}")
        if dev_account is not None and amount:
            chain.transact_batch(
                dep.token, [("mint", (dev(i).address, amount)) for i in range(dev_accounts)], sender=owner
            )
            typer.echo(f"minted {fmt_tokens(amount)} test tokens to each of dev accounts 0-{dev_accounts - 1}")
