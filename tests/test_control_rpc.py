"""`POST /_mock/rpc/<network>`: the test controls, and `POST /_mock/reset`."""

from __future__ import annotations

import time

import pytest

from tests.conftest import OPEN_KEY, rpc

DEV0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
DEV1 = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
STRANGER = "0x000000000000000000000000000000000000beef"


def control(http, server, network, method, params=None):
    reply = http.post(f"{server.base_url}/_mock/rpc/{network}",
                      json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    assert reply.status_code == 200
    return reply.json()


def result(http, server, network, method, params=None):
    body = control(http, server, network, method, params)
    assert "result" in body, body
    return body["result"]


def test_dev_accounts_and_send_transaction(server, http):
    accounts = result(http, server, "avalanche-fuji", "eth_accounts")
    assert accounts[:2] == [DEV0, DEV1] and len(accounts) == 10
    before = int(result(http, server, "avalanche-fuji", "eth_getBalance", [STRANGER]), 16)
    tx_hash = result(http, server, "avalanche-fuji", "eth_sendTransaction",
                     [{"from": DEV1, "to": STRANGER, "value": "0x10"}])
    receipt = result(http, server, "avalanche-fuji", "eth_getTransactionReceipt", [tx_hash])
    assert receipt["status"] == "0x1" and receipt["from"] == DEV1
    assert int(result(http, server, "avalanche-fuji", "eth_getBalance", [STRANGER]), 16) == before + 16
    unknown = control(http, server, "avalanche-fuji", "eth_sendTransaction", [{"from": STRANGER, "to": DEV0}])
    assert "not a dev account" in unknown["error"]["message"]


def test_snapshot_and_revert(server, http):
    net = "avalanche-mainnet"
    snapshot = result(http, server, net, "evm_snapshot")
    block = result(http, server, net, "eth_blockNumber")
    result(http, server, net, "eth_sendTransaction", [{"from": DEV0, "to": STRANGER, "value": "0x1"}])
    assert int(result(http, server, net, "eth_getBalance", [STRANGER]), 16) == 1
    assert result(http, server, net, "evm_revert", [snapshot]) is True
    assert result(http, server, net, "eth_blockNumber") == block
    assert result(http, server, net, "eth_getBalance", [STRANGER]) == "0x0"
    assert result(http, server, net, "evm_revert", [snapshot]) is False  # used up, as anvil does
    # after a revert the chain goes on normally
    result(http, server, net, "eth_sendTransaction", [{"from": DEV0, "to": STRANGER, "value": "0x2"}])
    assert result(http, server, net, "eth_getBalance", [STRANGER]) == "0x2"


def test_mine_and_time(server, http):
    net = "bsc-testnet"
    start = int(result(http, server, net, "eth_blockNumber"), 16)
    result(http, server, net, "evm_mine")
    result(http, server, net, "evm_mine", [{"blocks": 3}])
    assert int(result(http, server, net, "eth_blockNumber"), 16) == start + 4
    wall = time.time()
    result(http, server, net, "evm_increaseTime", [3600])
    result(http, server, net, "evm_mine")
    after = int(result(http, server, net, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    assert wall + 3600 - 2 <= after <= time.time() + 3600 + 10
    result(http, server, net, "evm_setNextBlockTimestamp", [after + 10_000])
    result(http, server, net, "evm_mine")
    assert int(result(http, server, net, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16) == after + 10_000
    past = control(http, server, net, "evm_setNextBlockTimestamp", [1])
    assert past["error"]["code"] == -32000


def test_set_balance_code_nonce_storage(server, http):
    net = "opbnb-mainnet"
    for method in ("anvil_setBalance", "hardhat_setBalance"):
        assert result(http, server, net, method, [STRANGER, "0xde0b6b3a7640000"]) is True
        assert result(http, server, net, "eth_getBalance", [STRANGER]) == "0xde0b6b3a7640000"
    assert result(http, server, net, "anvil_setCode", [STRANGER, "0x6001"]) is True
    assert result(http, server, net, "eth_getCode", [STRANGER]) == "0x6001"
    assert result(http, server, net, "anvil_setNonce", [STRANGER, "0x7"]) is True
    assert result(http, server, net, "eth_getTransactionCount", [STRANGER]) == "0x7"
    value = "0x" + "00" * 31 + "2a"
    assert result(http, server, net, "hardhat_setStorageAt", [STRANGER, "0x1", value]) is True
    assert result(http, server, net, "eth_getStorageAt", [STRANGER, "0x1"]) == value
    bad = control(http, server, net, "anvil_setBalance", [STRANGER, "lots"])
    assert bad["error"]["code"] == -32602


def test_controls_are_unknown_on_infura_paths(server, http):
    for method in ("evm_snapshot", "anvil_setBalance", "evm_mine"):
        reply = rpc(http, server.url(OPEN_KEY), method, [])
        assert reply.json()["error"]["code"] == -32601


def test_control_rpc_bad_input(server, http):
    reply = http.post(f"{server.base_url}/_mock/rpc/mainnet", content=b"{nope")
    assert reply.status_code == 400 and reply.json()["error"]["code"] == -32700
    reply = http.post(f"{server.base_url}/_mock/rpc/atlantis", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    assert reply.status_code == 404
    batch = http.post(f"{server.base_url}/_mock/rpc/mainnet", json=[
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, {"jsonrpc": "2.0", "id": 2, "method": "evm_nope"}])
    assert batch.json()[0]["result"] == "0x1" and batch.json()[1]["error"]["code"] == -32601


@pytest.mark.parametrize("network", ["unichain-sepolia"])
def test_reset_returns_every_chain_to_genesis(network):
    import httpx

    from tests.server import ServerProcess

    with ServerProcess() as process, httpx.Client() as client:
        client.post(f"{process.base_url}/_mock/rpc/{network}", json={
            "jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction",
            "params": [{"from": DEV0, "to": STRANGER, "value": "0x5"}]})
        assert rpc(client, process.url(OPEN_KEY, network), "eth_blockNumber").json()["result"] == "0x1"
        assert client.post(f"{process.base_url}/_mock/reset").json() == {"reset": True}
        assert rpc(client, process.url(OPEN_KEY, network), "eth_blockNumber").json()["result"] == "0x0"
        assert rpc(client, process.url(OPEN_KEY, network), "eth_getBalance", [STRANGER]).json()["result"] == "0x0"
        journal = client.get(f"{process.base_url}/_mock/requests").json()
        assert [entry["methods"] for entry in journal] == [["eth_blockNumber"], ["eth_getBalance"]]
