# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title test_token
@notice The ERC-20 used for stake and rewards on local chains: snekmate's
        audited erc20 module with its owner as the only minter.
@dev Any standard ERC-20 (a stablecoin, say) can replace it on a real chain.
     Reentrancy: none of its functions call out; snekmate's defaults apply.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: erc20.__interface__


@deploy
def __init__(name_: String[25], symbol_: String[5]):
    """
    @param name_ Token name (also the EIP-712 name).
    @param symbol_ Token symbol.
    """
    ownable.__init__()
    erc20.__init__(name_, symbol_, 18, name_, "1")
