"""``fedchain fund``: give an account test tokens (to stake or sponsor) and gas money."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import (
    AccountOpt,
    DeploymentOpt,
    DevAccountOpt,
    KeystoreOpt,
    RpcOpt,
    connect,
    errors,
    fmt_tokens,
    parse_tokens,
    resolve_account,
)


def fund(
    addresses: Annotated[list[str], typer.Argument(help="Accounts to fund (0x addresses).")],
    tokens: Annotated[str, typer.Option(help="Test tokens to mint to each (the signer must own the token).")] = "1000",
    eth: Annotated[str, typer.Option(help="Native currency for gas to send to each.")] = "1",
    deployment: DeploymentOpt = Path("deployment.json"),
    rpc: RpcOpt = None,
    account: AccountOpt = None,
    dev_account: DevAccountOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Mint test tokens and send gas money to accounts (run by the deployer).

    On a real chain with a real ERC-20 nobody can mint: participants bring
    their own tokens and gas.
    """
    from eth_utils import is_address, to_checksum_address

    with errors():
        sender = resolve_account(account, dev_account, keystore)
        chain, dep, _ = connect(deployment, rpc)
        wei_tokens, wei_eth = parse_tokens(tokens), parse_tokens(eth)
        for a in addresses:
            if not is_address(a):
                raise typer.BadParameter(f"{a!r} is not an address")
            a = to_checksum_address(a)
            if wei_tokens:
                dep.token.tx("mint", a, wei_tokens, sender=sender)
            if wei_eth:
                chain.transfer(a, wei_eth, sender)
            typer.echo(f"{a}: +{fmt_tokens(wei_tokens)} tokens, +{fmt_tokens(wei_eth)} ETH")
