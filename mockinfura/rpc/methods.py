"""Which methods the Infura-facing paths serve (spec infura.md section 3).

The chain answers what it can; this module holds Infura's own rules on top: no private keys
(eth_sendTransaction, eth_sign, eth_coinbase are -32601, eth_accounts is []), no test controls,
subscriptions only over WebSocket.
"""

from __future__ import annotations

from mockinfura.rpc.errors import RpcError, method_not_found

# infura.md 3 [doc]: Infura holds no private keys.
NO_PRIVATE_KEY_METHODS = frozenset({
    "eth_sendTransaction", "eth_sign", "eth_coinbase", "eth_signTransaction", "eth_signTypedData",
    "eth_signTypedData_v4", "personal_sign",
})
SUBSCRIPTION_METHODS = frozenset({"eth_subscribe", "eth_unsubscribe"})  # WebSocket only
TEST_CONTROL_PREFIXES = ("evm_", "anvil_", "hardhat_", "debug_setHead", "miner_", "personal_")


def infura_refusal(method: str, *, websocket: bool = False) -> RpcError | None:
    """The -32601 Infura gives for METHOD on its public paths, or None if the call goes on to the chain."""
    if method in NO_PRIVATE_KEY_METHODS:
        return method_not_found(method)
    if method in SUBSCRIPTION_METHODS and not websocket:
        return method_not_found(method)
    if method.startswith(TEST_CONTROL_PREFIXES):
        return method_not_found(method)
    return None
