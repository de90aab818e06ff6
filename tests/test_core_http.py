"""Infura's URLs, status codes and bodies, byte for byte (infura.md sections 1 and 3)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import OPEN_KEY, rpc

TEXT = "text/plain; charset=utf-8"


def test_blocknumber_on_default_network(server, http):
    reply = rpc(http, server.url(OPEN_KEY), "eth_chainId")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["vary"] == "Origin"
    assert reply.json() == {"jsonrpc": "2.0", "id": 1, "result": "0x1"}


@pytest.mark.parametrize(
    ("network", "chain_id"),
    [("sepolia", 11155111), ("polygon-amoy", 80002), ("base-mainnet", 8453), ("palm-mainnet", 11297108109)],
)
def test_network_from_path_prefix(server, http, network, chain_id):
    assert rpc(http, server.url(OPEN_KEY, network), "eth_chainId").json()["result"] == hex(chain_id)
    assert rpc(http, server.url(OPEN_KEY, network), "net_version").json()["result"] == str(chain_id)


def test_network_from_host_header(server, http):
    reply = rpc(http, server.url(OPEN_KEY), "eth_chainId", headers={"Host": f"sepolia.localhost:{server.port}"})
    assert reply.json()["result"] == hex(11155111)
    reply = rpc(http, server.url(OPEN_KEY), "eth_chainId", headers={"Host": "base-sepolia.infura.io"})
    assert reply.json()["result"] == hex(84532)
    # a path prefix wins over the Host header
    reply = rpc(http, server.url(OPEN_KEY, "hoodi"), "eth_chainId", headers={"Host": "sepolia.infura.io"})
    assert reply.json()["result"] == hex(560048)
    # an unknown first label falls back to the default network
    reply = rpc(http, server.url(OPEN_KEY), "eth_chainId", headers={"Host": "example.localhost"})
    assert reply.json()["result"] == "0x1"


def test_missing_key_exact_reply(server, http):
    for path in ("/v3/", "/v3", "/sepolia/v3/"):
        reply = http.post(server.base_url + path, json={})
        assert reply.status_code == 401
        assert reply.headers["content-type"] == TEXT
        assert reply.content == b"project id required in the url\n"
        assert reply.headers["vary"] == "Origin"


@pytest.mark.parametrize("key", ["ffffffffffffffffffffffffffffffff", "short", "0123456789ABCDEF0123456789ABCDEF"])
def test_unknown_key_exact_reply(server, http, key):
    reply = rpc(http, server.url(key), "eth_chainId")
    assert reply.status_code == 401
    assert reply.headers["content-type"] == TEXT
    assert reply.headers["www-authenticate"] == 'Basic realm="Auth failure, invalid project id"'
    assert reply.content == b"invalid project id\n"
    assert reply.headers["vary"] == "Origin"


@pytest.mark.parametrize("path", ["/", "/v2/" + OPEN_KEY, "/nosuchnet/v3/" + OPEN_KEY, "/solana/v3/" + OPEN_KEY,
                                  f"/v3/{OPEN_KEY}/extra", "/_mock/nothing-here"])
def test_other_paths_404(server, http, path):
    reply = http.post(server.base_url + path, json={})
    assert reply.status_code == 404
    assert reply.content == b"404 page not found\n"
    assert reply.headers["content-type"] == TEXT
    assert reply.headers["vary"] == "Origin"


def test_get_on_rpc_path_is_404(server, http):
    reply = http.get(server.url(OPEN_KEY))
    assert reply.status_code == 404
    assert reply.content == b"404 page not found\n"


@pytest.mark.parametrize("body", [b"nope", b"{", b"", b"\xff\xfe", b'{"a": NaN}'])
def test_body_not_json_exact_reply(server, http, body):
    reply = http.post(server.url(OPEN_KEY), content=body)
    assert reply.status_code == 400
    assert reply.content == b'{"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid json request"}}'
    assert reply.headers["content-type"] == "application/json"


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/plain", "application/json"])
def test_body_read_whatever_content_type(server, http, content_type):
    headers = {"content-type": content_type} if content_type else {}
    body = b'{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}'
    request = http.build_request("POST", server.url(OPEN_KEY), content=body, headers=headers)
    assert request.headers.get("content-type") == content_type
    reply = http.send(request)
    assert reply.json() == {"jsonrpc": "2.0", "id": 7, "result": "0x1"}


@pytest.mark.parametrize("method", ["eth_sendTransaction", "eth_sign", "eth_coinbase", "eth_fooBar", "evm_snapshot",
                                    "anvil_setBalance", "hardhat_mine", "eth_subscribe"])
def test_method_not_found(server, http, method):
    reply = http.post(server.url(OPEN_KEY), json={"jsonrpc": "2.0", "id": "x", "method": method, "params": []})
    assert reply.status_code == 200
    assert reply.content == (
        b'{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"The method ' + method.encode()
        + b' does not exist/is not available"}}'
    )


def test_eth_accounts_is_empty(server, http):
    assert rpc(http, server.url(OPEN_KEY), "eth_accounts").json()["result"] == []


def test_batch(server, http):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "method": "eth_chainId", "params": []},  # no id: no reply
        {"jsonrpc": "2.0", "id": 2, "method": "eth_nope", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x00"]},
        42,
    ]
    reply = http.post(server.url(OPEN_KEY, "sepolia"), json=batch)
    assert reply.status_code == 200
    body = reply.json()
    assert [r.get("id") for r in body] == [1, 2, 3, None]
    assert body[0]["result"] == hex(11155111)
    assert body[1]["error"]["code"] == -32601
    assert body[2]["error"]["code"] == -32602
    assert body[3]["error"]["code"] == -32600


def test_empty_batch(server, http):
    reply = http.post(server.url(OPEN_KEY), json=[])
    assert reply.json()["error"]["code"] == -32600


@pytest.mark.parametrize(
    ("method", "params", "words"),
    [
        ("eth_getBalance", ["0x12"], "address"),
        ("eth_getBalance", [], "missing value"),
        ("eth_getBalance", "notalist", "params must be an array"),
        ("eth_getBalance", ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "nope"], "block"),
        ("eth_getBlockByNumber", ["0x1", "yes"], "fullTransactions"),
        ("eth_getBlockByNumber", [123, False], "block"),
        ("eth_getTransactionReceipt", ["0x1234"], "transaction hash"),
        ("eth_call", ["notanobject"], "object"),
        ("eth_call", [{"to": "0x" + "11" * 20, "data": "0xzz"}], "input"),
        ("eth_feeHistory", ["0x0", "latest"], "blockCount"),
        ("eth_getLogs", [{"topics": "nope"}], "topics"),
        ("eth_sendRawTransaction", ["0xdeadbeef"], "invalid transaction"),
        ("eth_getStorageAt", ["0x" + "11" * 20], "missing value"),
        ("web3_sha3", [123], "data"),
    ],
)
def test_wrong_params_say_what_was_wrong(server, http, method, params, words):
    reply = http.post(server.url(OPEN_KEY), json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert reply.status_code == 200
    error = reply.json()["error"]
    assert error["code"] in (-32602, -32000, -32600)
    assert words in error["message"]


def test_invalid_request_objects(server, http):
    for body in ({"jsonrpc": "2.0", "id": 1}, {"jsonrpc": "2.0", "id": 1, "method": 5},
                 {"jsonrpc": "2.0", "id": {"a": 1}, "method": "eth_chainId"}, "just a string", 12):
        reply = http.post(server.url(OPEN_KEY), json=body)
        assert reply.status_code == 200
        assert reply.json()["error"]["code"] == -32600


def test_huge_id_is_echoed(server, http):
    body = b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"eth_chainId","params":[]}'
    reply = http.post(server.url(OPEN_KEY), content=body)
    assert reply.content == b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":"0x1"}'


def test_body_over_limit_is_413(server, http):
    big = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["' + b"a" * (5 * 1024 * 1024) + b'"]}'
    reply = http.post(server.url(OPEN_KEY), content=big)
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == -32600
    assert rpc(http, server.url(OPEN_KEY), "eth_chainId").status_code == 200


def test_method_not_found_status_is_configurable():
    from tests.server import ServerProcess

    with ServerProcess("[server]\nmethod_not_found_status = 400\n") as process, httpx.Client() as client:
        reply = rpc(client, process.url(OPEN_KEY), "eth_sign")
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == -32601


def test_first_calls_to_a_new_network_do_not_wait_for_its_chain(server, http):
    import time

    assert "celo-mainnet" not in http.get(f"{server.base_url}/_mock/health").json()["built"]
    assert rpc(http, server.url(OPEN_KEY, "celo-mainnet"), "eth_blockNumber").json()["result"] == "0x0"
    assert rpc(http, server.url(OPEN_KEY, "celo-mainnet"), "eth_chainId").json()["result"] == hex(42220)
    # the chain is being built meanwhile, and then answers the same
    deadline = time.monotonic() + 30
    while "celo-mainnet" not in http.get(f"{server.base_url}/_mock/health").json()["built"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert rpc(http, server.url(OPEN_KEY, "celo-mainnet"), "eth_getBalance",
               ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]).json()["result"] == hex(10_000 * 10**18)
    assert rpc(http, server.url(OPEN_KEY, "celo-mainnet"), "eth_blockNumber").json()["result"] == "0x0"
