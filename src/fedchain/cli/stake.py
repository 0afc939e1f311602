"""``fedchain unstake`` and ``fedchain withdraw``: leave the network and take your tokens.

A node stakes when it starts (``fedchain node run``); leaving is two steps because stake must
stay slashable after its last round (the unbonding delay): ``unstake`` moves stake into the
unbonding queue, and ``withdraw``, once the delay has passed, pays it out together with any
rewards and reporter shares credited to the account. Every check is made before anything is
sent, so a refused command costs no gas.
"""

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
    fail,
    fmt_tokens,
    parse_tokens,
    resolve_account,
)


def unstake(
    amount: Annotated[str | None, typer.Option(help="Tokens to unstake (default: all of the active stake).")] = None,
    deployment: DeploymentOpt = Path("deployment.json"),
    rpc: RpcOpt = None,
    account: AccountOpt = None,
    dev_account: DevAccountOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Stop staking: move stake into the unbonding queue (it stays slashable until withdrawn).

    The stake stops counting for selection at once; `fedchain withdraw` pays it out after
    the deployment's unbonding delay. What stays staked must be zero or at least the minimum.
    """
    with errors():
        me = resolve_account(account, dev_account, keystore)
        chain, dep, _ = connect(deployment, rpc)
        fc = dep.fedchain
        active = fc.call("stakes", me.address)["active"]
        least = fc.call("min_stake")
        if active == 0:
            fail(f"{me.address} has no active stake: nothing to unstake (`fedchain withdraw` pays out what is due)")
        wei = active if amount is None else parse_tokens(amount)
        if wei == 0 or wei > active:
            fail(f"--amount {amount} must be above 0 and at most the active stake, {fmt_tokens(active)} tokens", 2)
        if 0 < active - wei < least:
            fail(
                f"--amount {amount} would leave {fmt_tokens(active - wei)} tokens staked, below the minimum "
                f"{fmt_tokens(least)}: unstake everything (omit --amount) or at most {fmt_tokens(active - least)}",
                2,
            )
        r = fc.tx("unbond", wei, sender=me)
        release = r.event("UnbondRequested").args["release_block"]
        typer.echo(
            f"{me.address}: {fmt_tokens(wei)} tokens unbonding, {fmt_tokens(active - wei)} still staked; "
            f"`fedchain withdraw` from block {release} (now {chain.block_number()}). Until then it can "
            "still be slashed for faults in rounds it backed."
        )


def withdraw(
    deployment: DeploymentOpt = Path("deployment.json"),
    rpc: RpcOpt = None,
    account: AccountOpt = None,
    dev_account: DevAccountOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Take out what is due: unbonded stake whose delay has passed, and credited payouts.

    Payouts are the rewards a node claimed and the reporter shares it earned; they can be
    withdrawn at any time. Exits non-zero, sending nothing, when nothing is due yet.
    """
    with errors():
        me = resolve_account(account, dev_account, keystore)
        chain, dep, _ = connect(deployment, rpc)
        fc = dep.fedchain
        s = fc.call("stakes", me.address)
        payout = fc.call("payouts", me.address)
        now = chain.block_number()
        stake_due = s["unbonding"] > 0 and now >= s["release_block"]
        if not stake_due and payout == 0:
            if s["unbonding"]:
                fail(
                    f"nothing due yet: {fmt_tokens(s['unbonding'])} tokens unbonding until block "
                    f"{s['release_block']} (now {now}); no payouts"
                )
            fail(f"nothing to withdraw for {me.address}: no unbonding stake (`fedchain unstake` first) and no payouts")
        if stake_due:
            fc.tx("withdraw", sender=me)
            typer.echo(f"{me.address}: withdrew {fmt_tokens(s['unbonding'])} tokens of stake")
        elif s["unbonding"]:
            typer.echo(f"{fmt_tokens(s['unbonding'])} tokens still unbonding until block {s['release_block']}")
        if payout:
            fc.tx("withdraw_payout", sender=me)
            typer.echo(f"{me.address}: withdrew {fmt_tokens(payout)} tokens of rewards and reporter shares")
