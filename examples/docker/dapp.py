"""A sample dapp backend: reads a balance and sends a signed transaction through Infura, with a JWT.

It is the code a team would run against the real Infura, unchanged: the URL is Infura's own,
`https://sepolia.infura.io/v3/<KEY>`. In the docker compose example (compose.yaml) that name is a network alias
of the mockinfura service, and the test CA is trusted through `SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE`.

Environment (all optional):
  INFURA_API_KEY     the API key (default: the example config's JWT key)
  INFURA_URL         the endpoint (default: https://sepolia.infura.io/v3/$INFURA_API_KEY); tests add a port here
  INFURA_JWT         a JWT to send as `Authorization: Bearer ...`; else one is signed with JWT_PRIVATE_KEY
  JWT_PRIVATE_KEY    PEM private key file that signs the JWT (default: mockinfura's shipped demo key, if installed)
  JWT_KEY_ID         the `kid` of that key on the API key (default: the demo key's id)
  DAPP_PRIVATE_KEY   the sender's key (default: dev account 0 of the test mnemonic, public knowledge)
  EXPECTED_CHAIN_ID  refuse to send unless the endpoint reports this chain (default: 11155111, sepolia)
  DAPP_WAIT_SECONDS  how long to retry while the endpoint is not up yet (default: 30)

Exit 0 when the transaction is mined with status 1; the last line printed is `RESULT {json}`.
"""

from __future__ import annotations

import json
import os
import sys
import time

from eth_account import Account
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import SSLError
from web3 import HTTPProvider, Web3

DEV_ACCOUNT_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEFAULT_API_KEY = "fedcba9876543210fedcba9876543210"
RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # dev account 1
VALUE_WEI = Web3.to_wei(0.01, "ether")


def jwt_token() -> str:
    token = os.environ.get("INFURA_JWT")
    if token:
        return token.strip()
    try:
        from mockinfura.tokens import DEMO_PRIVATE_KEY_PATH, demo_key_id, make_token
    except ImportError:
        sys.exit("dapp: set INFURA_JWT (or install mockinfura to sign one with its demo key)")
    key_path = os.environ.get("JWT_PRIVATE_KEY") or str(DEMO_PRIVATE_KEY_PATH)
    kid = os.environ.get("JWT_KEY_ID") or demo_key_id()
    with open(key_path, "rb") as handle:
        return make_token(handle.read(), kid, ttl=600)


def connect(url: str, token: str, wait_seconds: float) -> Web3:
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30, "headers": {
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}}))
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            w3.eth.chain_id  # noqa: B018 - the first call: is the endpoint there, and is its certificate trusted?
            return w3
        except SSLError as exc:
            sys.exit(f"dapp: TLS failed for {url} (is the mockinfura CA in SSL_CERT_FILE/REQUESTS_CA_BUNDLE?): {exc}")
        except RequestsConnectionError as exc:
            if time.monotonic() >= deadline:
                sys.exit(f"dapp: cannot reach {url}: {exc}")
            time.sleep(1)


def main() -> int:
    api_key = os.environ.get("INFURA_API_KEY") or DEFAULT_API_KEY
    url = os.environ.get("INFURA_URL") or f"https://sepolia.infura.io/v3/{api_key}"
    expected_chain = int(os.environ.get("EXPECTED_CHAIN_ID") or 11155111)
    w3 = connect(url, jwt_token(), float(os.environ.get("DAPP_WAIT_SECONDS") or 30))

    chain_id = w3.eth.chain_id
    print(f"connected to {url}: chain id {chain_id}, block {w3.eth.block_number}", flush=True)
    if chain_id != expected_chain:
        sys.exit(f"dapp: expected chain id {expected_chain}, the endpoint reports {chain_id}")

    sender = Account.from_key(os.environ.get("DAPP_PRIVATE_KEY") or DEV_ACCOUNT_0_KEY)
    before = w3.eth.get_balance(sender.address)
    print(f"balance of {sender.address}: {Web3.from_wei(before, 'ether')} ETH", flush=True)

    base_fee = w3.eth.get_block("latest").get("baseFeePerGas", 0)
    priority_fee = Web3.to_wei(1, "gwei")
    transaction = {
        "type": 2,
        "chainId": chain_id,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "to": RECIPIENT,
        "value": VALUE_WEI,
        "gas": 21_000,
        "maxPriorityFeePerGas": priority_fee,
        "maxFeePerGas": 2 * base_fee + priority_fee,
    }
    signed = sender.sign_transaction(transaction)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    after = w3.eth.get_balance(sender.address)
    print(f"sent {VALUE_WEI} wei to {RECIPIENT}: {tx_hash.to_0x_hex()} mined in block {receipt['blockNumber']} "
          f"with status {receipt['status']}", flush=True)
    print(f"balance after: {Web3.from_wei(after, 'ether')} ETH", flush=True)
    result = {"url": url, "chain_id": chain_id, "sender": sender.address, "balance_before": before,
              "balance_after": after, "tx_hash": tx_hash.to_0x_hex(), "block": receipt["blockNumber"],
              "status": receipt["status"]}
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if receipt["status"] == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
