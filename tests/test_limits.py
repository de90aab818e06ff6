"""Limits that protect the process, and the control plane is not a back door."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from starlette.testclient import TestClient

from mockinfura.app import create_app
from mockinfura.config import parse_config
from tests.conftest import OPEN_KEY, rpc
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def small_server():
    config = "[server]\nmax_batch_size = 5\nmax_body_bytes = 2048\nkeep_alive_seconds = 0.5\n"
    with ServerProcess(config) as process:
        yield process


def test_batch_over_the_limit_is_refused_whole(small_server):
    with httpx.Client() as client:
        batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(6)]
        reply = client.post(small_server.url(OPEN_KEY), json=batch)
        assert reply.status_code == 400
        assert reply.content == (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32005,'
                                 b'"message":"batch of 6 calls is over the limit of 5"}}')
        assert len(client.post(small_server.url(OPEN_KEY), json=batch[:5]).json()) == 5


def test_configured_body_limit(small_server):
    with httpx.Client() as client:
        reply = client.post(small_server.url(OPEN_KEY), content=b"[" + b" " * 3000 + b"]")
        assert reply.status_code == 413
        # chunked, with no Content-Length: the limit holds while streaming
        reply = client.post(small_server.url(OPEN_KEY), content=iter([b"[", b" " * 1500, b" " * 1500, b"]"]))
        assert reply.status_code == 413
        assert rpc(client, small_server.url(OPEN_KEY), "eth_chainId").status_code == 200


def test_deeply_nested_json_is_refused_cleanly(server, small_server):
    with httpx.Client() as client:
        # with a chain built (py-evm's import raises the interpreter's recursion limit to 100,000): a body nested
        # 100,000 deep, under the body limit, once plain and once with a lone surrogate (the standard-library path),
        # must be refused, not crash the process on the C stack
        assert "result" in rpc(client, server.url(OPEN_KEY), "eth_getBalance", ["0x" + "11" * 20]).json()
        for inner in (b"", b'"\\ud800"'):
            deep = b"[" * 100_000 + inner + b"]" * 100_000
            reply = client.post(server.url(OPEN_KEY), content=deep)
            assert reply.status_code == 400
            assert reply.content == b'{"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid json request"}}'
            assert rpc(client, server.url(OPEN_KEY), "eth_chainId").json()["result"] == "0x1"
        nested = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":' + b"[" * 500 + b"]" * 500 + b"}"
        reply = client.post(small_server.url(OPEN_KEY), content=nested)
        assert reply.status_code == 200
        assert rpc(client, small_server.url(OPEN_KEY), "eth_chainId").json()["result"] == "0x1"


def test_idle_keep_alive_connection_is_closed(small_server):
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=5) as sock:
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
        sock.sendall(b"POST /v3/" + OPEN_KEY.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        reply = b""
        while b'"result"' not in reply:
            reply += sock.recv(4096)
        assert b"200 OK" in reply
        started = time.monotonic()
        assert sock.recv(4096) == b""  # the server closes the idle connection
        assert time.monotonic() - started < 4


def test_slow_client_that_never_finishes_its_headers_does_not_block_others(small_server):
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=5) as slow:
        slow.sendall(b"POST /v3/" + OPEN_KEY.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        with httpx.Client() as client:
            assert rpc(client, small_server.url(OPEN_KEY), "eth_chainId").status_code == 200


@pytest.mark.parametrize(("field", "value"), [("max_batch_size", "0"), ("max_connections", "2"),
                                              ("ws_max_message_bytes", "10"), ("keep_alive_seconds", "-1")])
def test_limit_settings_are_validated(field, value):
    import tomllib

    from mockinfura.config import ConfigError

    with pytest.raises(ConfigError, match=f"server.{field}"):
        parse_config(tomllib.loads(f"[server]\n{field} = {value}\n"))


def test_control_plane_answers_loopback_only():
    # Starlette's test client connects as host "testclient": not loopback.
    app = create_app(parse_config({}))
    with TestClient(app) as client:
        reply = client.get("/_mock/health")
        assert reply.status_code == 403
        assert "loopback" in reply.json()["error"]
        assert client.post("/_mock/rpc/mainnet", json={"jsonrpc": "2.0", "id": 1, "method": "eth_accounts"}
                           ).status_code == 403
        assert client.post("/_mock/reset").status_code == 403
        # the Infura paths stay open to everyone
        reply = client.post(f"/v3/{OPEN_KEY}", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        assert reply.json()["result"] == "0x1"


def test_control_token_and_open_mode():
    app = create_app(parse_config({"server": {"control_token": "s3cret"}}))
    with TestClient(app) as client:
        assert client.get("/_mock/health", headers={"X-Mockinfura-Control-Token": "wrong"}).status_code == 403
        assert client.get("/_mock/health", headers={"X-Mockinfura-Control-Token": "s3cret"}).status_code == 200
    app = create_app(parse_config({"server": {"control": "open"}}))
    with TestClient(app) as client:
        assert client.get("/_mock/health").json()["status"] == "ok"


def test_infura_paths_never_expose_dev_keys_or_controls(server, http):
    assert rpc(http, server.url(OPEN_KEY), "eth_accounts").json()["result"] == []
    for method, params in (("evm_snapshot", []), ("anvil_setBalance", [OPEN_KEY, "0x1"]),
                           ("eth_sendTransaction", [{"from": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"}])):
        assert rpc(http, server.url(OPEN_KEY), method, params).json()["error"]["code"] == -32601
    for path in ("/v3/_mock/health", f"/_mock/v3/{OPEN_KEY}", "/mainnet/_mock/rpc/mainnet"):
        reply = http.post(server.base_url + path, json={})
        assert (reply.status_code, reply.content) == (404, b"404 page not found\n")
