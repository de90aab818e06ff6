"""The in-memory chains through web3.py, as a dapp's tests use them."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from tests.conftest import OPEN_KEY, rpc

DEV_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
]
DEV = [Account.from_key(k) for k in DEV_KEYS]
STRANGER = "0x000000000000000000000000000000000000dEaD"


def w3_for(server, network: str) -> Web3:
    return Web3(Web3.HTTPProvider(server.url(OPEN_KEY, network), exception_retry_configuration=None))


def send(w3: Web3, account, tx: dict) -> str:
    tx = {"chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
          "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9, **tx}
    if "gas" not in tx:
        call = {k: v for k, v in tx.items() if k in ("to", "data", "value")}
        tx["gas"] = w3.eth.estimate_gas(call | {"from": account.address})
    return w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)


def test_dev_accounts_funded(server):
    w3 = w3_for(server, "mainnet")
    assert DEV[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert w3.eth.get_balance(DEV[0].address) >= 9_000 * 10**18
    assert w3.eth.get_balance("0x" + "00" * 19 + "01") == 0
    assert w3.eth.accounts == []


def test_signed_transfer_is_mined(server):
    w3 = w3_for(server, "optimism-sepolia")
    before = w3.eth.get_balance(STRANGER)
    start_block = w3.eth.block_number
    tx_hash = send(w3, DEV[0], {"to": STRANGER, "value": 12345, "gas": 21000})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt.status == 1
    assert receipt.blockNumber == start_block + 1
    assert w3.eth.get_balance(STRANGER) == before + 12345
    tx = w3.eth.get_transaction(tx_hash)
    assert tx["from"] == DEV[0].address and tx["value"] == 12345 and tx["chainId"] == 11155420
    block = w3.eth.get_block(receipt.blockNumber, full_transactions=True)
    assert block.transactions[0]["hash"] == tx_hash
    assert w3.eth.get_block("latest").number == receipt.blockNumber
    assert w3.eth.get_transaction_count(DEV[0].address) >= 1


def test_contract_deploy_call_events_and_revert(server, counter_artifact):
    w3 = w3_for(server, "arbitrum-sepolia")
    counter = w3.eth.contract(abi=counter_artifact["abi"], bytecode=counter_artifact["bytecode"])
    deploy = counter.constructor(7).build_transaction({"from": DEV[1].address, "gas": 600_000})
    receipt = w3.eth.wait_for_transaction_receipt(send(w3, DEV[1], {"data": deploy["data"], "gas": 600_000}))
    assert receipt.status == 1 and receipt.contractAddress
    contract = w3.eth.contract(address=receipt.contractAddress, abi=counter_artifact["abi"])
    assert contract.functions.count().call() == 7
    assert contract.functions.owner().call() == DEV[1].address

    call = contract.functions.increment().build_transaction({"from": DEV[1].address})
    receipt = w3.eth.wait_for_transaction_receipt(send(w3, DEV[1], {"to": contract.address, "data": call["data"]}))
    assert receipt.status == 1
    events = contract.events.Incremented().process_receipt(receipt)
    assert events[0].args.by == DEV[1].address and events[0].args.newCount == 8

    logs = w3.eth.get_logs({"fromBlock": 0, "address": contract.address})
    assert len(logs) == 1 and logs[0]["transactionHash"] == receipt.transactionHash
    topic = w3.keccak(text="Incremented(address,uint256)")
    by_topic = w3.eth.get_logs({"fromBlock": 0, "topics": [topic, "0x" + "00" * 12 + DEV[1].address[2:].lower()]})
    assert [entry["transactionHash"] for entry in by_topic] == [receipt.transactionHash]
    assert w3.eth.get_logs({"fromBlock": 0, "topics": [topic, "0x" + "00" * 32]}) == []
    decoded = contract.events.Incremented().get_logs(from_block=0)
    assert decoded[0].args.newCount == 8

    with pytest.raises(ContractLogicError, match="not today"):
        contract.functions.fail("not today").call()
    with pytest.raises(ContractCustomError):
        contract.functions.onlyOwner().call({"from": DEV[0].address})
    assert contract.functions.onlyOwner().call({"from": DEV[1].address}) is True
    with pytest.raises(ContractLogicError, match="not today"):
        contract.functions.fail("not today").estimate_gas()


def test_revert_reply_shape(server, http, counter_artifact):
    w3 = w3_for(server, "linea-sepolia")
    counter = w3.eth.contract(abi=counter_artifact["abi"], bytecode=counter_artifact["bytecode"])
    data = counter.constructor(1).build_transaction({"from": DEV[0].address, "gas": 600_000})["data"]
    address = w3.eth.wait_for_transaction_receipt(send(w3, DEV[0], {"data": data, "gas": 600_000})).contractAddress
    contract = w3.eth.contract(address=address, abi=counter_artifact["abi"])
    call_data = contract.encode_abi("fail", ["boom"])
    reply = rpc(http, server.url(OPEN_KEY, "linea-sepolia"), "eth_call", [{"to": address, "data": call_data}, "latest"])
    error = reply.json()["error"]
    assert error["code"] == 3
    assert error["message"] == "execution reverted: boom"
    assert error["data"].startswith("0x08c379a0")


def test_reverted_transaction_is_mined_with_status_0(server, counter_artifact):
    w3 = w3_for(server, "base-sepolia")
    counter = w3.eth.contract(abi=counter_artifact["abi"], bytecode=counter_artifact["bytecode"])
    data = counter.constructor(1).build_transaction({"from": DEV[0].address, "gas": 600_000})["data"]
    address = w3.eth.wait_for_transaction_receipt(send(w3, DEV[0], {"data": data, "gas": 600_000})).contractAddress
    contract = w3.eth.contract(address=address, abi=counter_artifact["abi"])
    fail = contract.encode_abi("fail", ["x"])
    receipt = w3.eth.wait_for_transaction_receipt(send(w3, DEV[0], {"to": address, "data": fail, "gas": 100_000}))
    assert receipt.status == 0


def test_networks_have_independent_state(server):
    a, b = w3_for(server, "polygon-amoy"), w3_for(server, "blast-sepolia")
    before_b = b.eth.get_balance(STRANGER)
    block_b = b.eth.block_number
    send(a, DEV[0], {"to": STRANGER, "value": 5, "gas": 21000})
    assert b.eth.get_balance(STRANGER) == before_b
    assert b.eth.block_number == block_b
    assert a.eth.chain_id == 80002 and b.eth.chain_id == 168587773


def test_transaction_for_another_chain_is_rejected(server):
    w3 = w3_for(server, "hoodi")
    tx = {"to": STRANGER, "value": 1, "gas": 21000, "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9,
          "nonce": w3.eth.get_transaction_count(DEV[0].address), "chainId": 1}
    with pytest.raises(Web3RPCError, match="invalid chain id for signer"):
        w3.eth.send_raw_transaction(DEV[0].sign_transaction(tx).raw_transaction)
    legacy = {"to": STRANGER, "value": 1, "gas": 21000, "gasPrice": 3 * 10**9,
              "nonce": w3.eth.get_transaction_count(DEV[0].address)}
    with pytest.raises(Web3RPCError, match="replay-protected"):
        w3.eth.send_raw_transaction(DEV[0].sign_transaction(legacy).raw_transaction)
    legacy["chainId"] = 560048
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(
        DEV[0].sign_transaction(legacy).raw_transaction))
    assert receipt.status == 1


def test_pool_rules_nonce_gaps_duplicates_and_used_nonces(server):
    w3 = w3_for(server, "scroll-sepolia")
    account = DEV[2]
    nonce = w3.eth.get_transaction_count(account.address)
    signed = [account.sign_transaction({"to": STRANGER, "value": i + 1, "gas": 21000, "maxFeePerGas": 3 * 10**9,
                                        "maxPriorityFeePerGas": 10**9, "nonce": nonce + i, "chainId": 534351})
              for i in range(4)]
    before = w3.eth.get_balance(STRANGER)
    # nonces arrive out of order: later ones are held until the gap fills
    w3.eth.send_raw_transaction(signed[2].raw_transaction)
    w3.eth.send_raw_transaction(signed[1].raw_transaction)
    assert w3.eth.get_balance(STRANGER) == before
    assert w3.eth.get_transaction_count(account.address, "pending") == nonce
    with pytest.raises(Web3RPCError, match="already known"):
        w3.eth.send_raw_transaction(signed[2].raw_transaction)
    w3.eth.send_raw_transaction(signed[0].raw_transaction)
    assert w3.eth.get_balance(STRANGER) == before + 1 + 2 + 3
    assert w3.eth.get_transaction_count(account.address) == nonce + 3
    with pytest.raises(Web3RPCError, match="already known"):
        w3.eth.send_raw_transaction(signed[0].raw_transaction)
    other = account.sign_transaction({"to": STRANGER, "value": 99, "gas": 21000, "maxFeePerGas": 3 * 10**9,
                                      "maxPriorityFeePerGas": 10**9, "nonce": nonce, "chainId": 534351})
    with pytest.raises(Web3RPCError, match="nonce too low"):
        w3.eth.send_raw_transaction(other.raw_transaction)
    w3.eth.send_raw_transaction(signed[3].raw_transaction)
    assert w3.eth.get_balance(STRANGER) == before + 10


def test_concurrent_sends_from_one_account_all_mined(server):
    w3 = w3_for(server, "mantle-sepolia")
    account = DEV[0]
    nonce = w3.eth.get_transaction_count(account.address)
    raws = [account.sign_transaction({"to": STRANGER, "value": 1, "gas": 21000, "maxFeePerGas": 3 * 10**9,
                                      "maxPriorityFeePerGas": 10**9, "nonce": nonce + i, "chainId": 5003}).raw_transaction
            for i in range(24)]
    before = w3.eth.get_balance(STRANGER)
    url = server.url(OPEN_KEY, "mantle-sepolia")

    def post(raw: bytes) -> dict:
        with httpx.Client() as client:
            return rpc(client, url, "eth_sendRawTransaction", ["0x" + raw.hex()]).json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, reversed(raws)))
    assert all("result" in r for r in results), results
    assert w3.eth.get_balance(STRANGER) == before + 24
    assert w3.eth.get_transaction_count(account.address) == nonce + 24


def test_insufficient_funds_and_low_gas(server):
    w3 = w3_for(server, "celo-sepolia")
    poor = Account.create()
    tx = {"to": STRANGER, "value": 1, "gas": 21000, "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9,
          "nonce": 0, "chainId": 11142220}
    with pytest.raises(Web3RPCError, match="insufficient funds"):
        w3.eth.send_raw_transaction(poor.sign_transaction(tx).raw_transaction)
    low = dict(tx, gas=20000, nonce=w3.eth.get_transaction_count(DEV[0].address))
    with pytest.raises(Web3RPCError, match="intrinsic gas too low"):
        w3.eth.send_raw_transaction(DEV[0].sign_transaction(low).raw_transaction)


def test_fee_methods_and_misc_reads(server, http):
    w3 = w3_for(server, "mainnet")
    assert w3.eth.gas_price > 0
    assert w3.eth.max_priority_fee > 0
    history = w3.eth.fee_history(2, "latest", [25, 75])
    assert len(history["baseFeePerGas"]) == len(history["gasUsedRatio"]) + 1
    assert w3.eth.syncing is False
    assert w3.client_version.startswith("mockinfura")
    assert w3.net.listening is True
    url = server.url(OPEN_KEY)
    assert rpc(http, url, "web3_sha3", ["0x68656c6c6f"]).json()["result"] == (
        "0x1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8")
    assert rpc(http, url, "eth_getBlockByNumber", ["0xffffff", False]).json()["result"] is None
    assert rpc(http, url, "eth_getTransactionReceipt", ["0x" + "ab" * 32]).json()["result"] is None
    assert rpc(http, url, "eth_getBalance", [STRANGER, "0xffffff"]).json()["error"]["message"] == "header not found"
    genesis = w3.eth.get_block(0)
    assert rpc(http, url, "eth_getBlockByHash", [genesis.hash.to_0x_hex(), False]).json()["result"]["number"] == "0x0"
    assert w3.eth.get_block_transaction_count(0) == 0
    assert rpc(http, url, "eth_getUncleCountByBlockNumber", ["0x0"]).json()["result"] == "0x0"
    assert rpc(http, url, "eth_getCode", [STRANGER]).json()["result"] == "0x"
    assert rpc(http, url, "eth_getStorageAt", [STRANGER, "0x0", "latest"]).json()["result"] == "0x" + "00" * 32


def test_block_receipts(server):
    w3 = w3_for(server, "zksync-sepolia")
    tx_hash = send(w3, DEV[0], {"to": STRANGER, "value": 3, "gas": 21000})
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    receipts = w3.eth.get_block_receipts(receipt.blockNumber)
    assert [r.transactionHash for r in receipts] == [tx_hash]
    assert receipts[0].effectiveGasPrice == receipt.effectiveGasPrice


def test_filters_over_http(server, http, counter_artifact):
    w3 = w3_for(server, "opbnb-testnet")
    block_filter = w3.eth.filter("latest")
    log_filter = w3.eth.filter({"fromBlock": "latest"})
    send(w3, DEV[0], {"to": STRANGER, "value": 1, "gas": 21000})
    assert len(block_filter.get_new_entries()) == 1
    assert block_filter.get_new_entries() == []
    counter = w3.eth.contract(abi=counter_artifact["abi"], bytecode=counter_artifact["bytecode"])
    data = counter.constructor(1).build_transaction({"from": DEV[0].address, "gas": 600_000})["data"]
    address = w3.eth.wait_for_transaction_receipt(send(w3, DEV[0], {"data": data, "gas": 600_000})).contractAddress
    contract = w3.eth.contract(address=address, abi=counter_artifact["abi"])
    send(w3, DEV[0], {"to": address, "data": contract.encode_abi("increment", [])})
    entries = log_filter.get_new_entries()
    assert len(entries) == 1 and entries[0]["address"] == address
    assert len(log_filter.get_all_entries()) == 1
    assert w3.eth.uninstall_filter(log_filter.filter_id) is True
    assert w3.eth.uninstall_filter(log_filter.filter_id) is False
    reply = rpc(http, server.url(OPEN_KEY, "opbnb-testnet"), "eth_getFilterChanges", [log_filter.filter_id])
    assert reply.json()["error"] == {"code": -32000, "message": "filter not found"}


def test_create_access_list_and_get_proof(server, counter_artifact):
    import rlp
    from eth_utils import keccak
    from trie import HexaryTrie

    w3 = w3_for(server, "unichain-mainnet")
    counter = w3.eth.contract(abi=counter_artifact["abi"], bytecode=counter_artifact["bytecode"])
    data = counter.constructor(5).build_transaction({"from": DEV[0].address, "gas": 600_000})["data"]
    address = w3.eth.wait_for_transaction_receipt(send(w3, DEV[0], {"data": data, "gas": 600_000})).contractAddress
    contract = w3.eth.contract(address=address, abi=counter_artifact["abi"])

    increment = {"from": DEV[0].address, "to": address, "data": contract.encode_abi("increment", [])}
    result = w3.eth.create_access_list(increment)
    assert [(entry["address"], list(entry["storageKeys"])) for entry in result["accessList"]] == [
        (address, ["0x" + "00" * 32])]
    # the list is worth sending: the transaction with it is mined and costs what createAccessList said
    tx = {**increment, "accessList": result["accessList"], "gas": 100_000}
    receipt = w3.eth.wait_for_transaction_receipt(send(w3, DEV[0], {k: v for k, v in tx.items() if k != "from"}))
    assert receipt.status == 1 and receipt.gasUsed == result["gasUsed"]

    proof = w3.eth.get_proof(address, [0, 1], "latest")
    assert proof["nonce"] == 1 and proof["balance"] == 0
    assert [int.from_bytes(entry["value"], "big") for entry in proof["storageProof"]] == [6, int(DEV[0].address, 16)]
    state_root = w3.eth.get_block("latest")["stateRoot"]
    account = HexaryTrie.get_from_proof(state_root, keccak(bytes.fromhex(address[2:])),
                                        tuple(rlp.decode(bytes(node)) for node in proof["accountProof"]))
    assert rlp.decode(account)[2] == bytes(proof["storageHash"])
    slot = HexaryTrie.get_from_proof(bytes(proof["storageHash"]), keccak((0).to_bytes(32, "big")),
                                     tuple(rlp.decode(bytes(node)) for node in proof["storageProof"][0]["proof"]))
    assert rlp.decode(slot) == b"\x06"
