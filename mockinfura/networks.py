"""Infura's network catalogue (spec infura.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    chain_id: int
    websocket: bool
    retired: bool = False


def _n(name: str, chain_id: int, websocket: bool, retired: bool = False) -> Network:
    return Network(name, chain_id, websocket, retired)


CATALOGUE: dict[str, Network] = {
    n.name: n
    for n in (
        _n("mainnet", 1, True),
        _n("sepolia", 11155111, True),
        _n("hoodi", 560048, True),
        _n("holesky", 17000, True, retired=True),
        _n("linea-mainnet", 59144, True),
        _n("linea-sepolia", 59141, True),
        _n("polygon-mainnet", 137, True),
        _n("polygon-amoy", 80002, True),
        _n("optimism-mainnet", 10, True),
        _n("optimism-sepolia", 11155420, True),
        _n("arbitrum-mainnet", 42161, True),
        _n("arbitrum-sepolia", 421614, True),
        _n("base-mainnet", 8453, True),
        _n("base-sepolia", 84532, True),
        _n("bsc-mainnet", 56, True),
        _n("bsc-testnet", 97, False),
        _n("avalanche-mainnet", 43114, True),
        _n("avalanche-fuji", 43113, True),
        _n("blast-mainnet", 81457, True),
        _n("blast-sepolia", 168587773, False),
        _n("celo-mainnet", 42220, False),
        _n("celo-sepolia", 11142220, False),
        _n("mantle-mainnet", 5000, True),
        _n("mantle-sepolia", 5003, False),
        _n("opbnb-mainnet", 204, True),
        _n("opbnb-testnet", 5611, False),
        _n("palm-mainnet", 11297108109, False),
        _n("palm-testnet", 11297108099, False),
        _n("scroll-mainnet", 534352, False),
        _n("scroll-sepolia", 534351, False),
        _n("zksync-mainnet", 324, True),
        _n("zksync-sepolia", 300, False),
        _n("unichain-mainnet", 130, False),
        _n("unichain-sepolia", 1301, False),
        _n("sei-mainnet", 1329, False),
        _n("sei-testnet", 1328, False),
    )
}
