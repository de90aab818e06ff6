"""mockinfura in a test suite: no conftest, the fixtures come with the package (`pip install mockinfura`).

Run with `pytest examples/`. pytest.ini points the `infura` fixture at mockinfura.toml, which serves the
canned mainnet replies of ../fixtures/mainnet in front of the in-memory chains.
"""

import pytest
from requests.exceptions import HTTPError
from web3 import Web3
from web3.exceptions import ContractLogicError

VITALIK = "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"


def test_balance_with_jwt(infura_key):
    key = infura_key(require_jwt=True)
    w3 = key.web3(network="sepolia")
    assert w3.eth.chain_id == 11155111


def test_why_a_request_was_refused(infura, infura_key):
    key = infura_key(require_jwt=True)
    w3 = Web3(Web3.HTTPProvider(key.url("sepolia"), exception_retry_configuration=None))  # sends no token
    with pytest.raises(HTTPError, match="401"):
        w3.eth.get_block_number()
    [entry] = infura.admin.requests(key=key.key)
    assert (entry["decision"], entry["status"], entry["reason"]) == ("refused", 401, "jwt required and missing")


def test_an_expired_token(infura, infura_key):
    key = infura_key(require_jwt=True)
    w3 = key.web3(network="sepolia")  # its token lives one hour
    assert w3.eth.block_number == 0
    infura.admin.clock.advance(3601)  # the server's clock only; put back after the test
    with pytest.raises(HTTPError, match="401"):
        w3.eth.get_block_number()
    assert infura.admin.requests(decision="refused")[-1]["reason"] == "jwt expired"


def test_a_transfer(infura_w3, infura):
    alice, bob = infura.accounts[0], infura.accounts[1]
    before = infura_w3.eth.get_balance(bob.address)
    transaction = {
        "to": bob.address,
        "value": Web3.to_wei(1, "ether"),
        "nonce": infura_w3.eth.get_transaction_count(alice.address),
        "gas": 21_000,
        "maxFeePerGas": Web3.to_wei(100, "gwei"),
        "maxPriorityFeePerGas": Web3.to_wei(1, "gwei"),
        "chainId": infura_w3.eth.chain_id,
    }
    signed = infura_w3.eth.account.sign_transaction(transaction, alice.key)
    receipt = infura_w3.eth.wait_for_transaction_receipt(infura_w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt.status == 1
    assert infura_w3.eth.get_balance(bob.address) == before + Web3.to_wei(1, "ether")


def test_each_test_starts_from_the_state_before_it(infura_w3, infura):
    # The transfer above was rolled back after its test (snapshot before, revert after).
    assert infura_w3.eth.get_balance(infura.accounts[1].address) == Web3.to_wei(10_000, "ether")


def test_canned_mainnet_replies(infura_w3):
    assert infura_w3.eth.get_balance(VITALIK) == 0x42E5FA6F484C2E5000  # fixtures/mainnet/example.json
    assert infura_w3.eth.call({"to": USDC, "data": "0x313ce567"}) == (6).to_bytes(32, "big")  # decimals()
    with pytest.raises(ContractLogicError, match="Pausable: paused"):  # a canned error
        infura_w3.eth.call({"to": USDC, "data": "0x8456cb59"})
    assert infura_w3.eth.gas_price == 5 * 10**9  # canned once ("times": 1) ...
    assert infura_w3.eth.gas_price != 5 * 10**9  # ... then the in-memory chain answers
