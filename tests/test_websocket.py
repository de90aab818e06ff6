"""The WebSocket endpoints (infura.md section 4), through web3.py's WebSocketProvider and raw `websockets` frames.

One server for the module (its clock is moved by some tests, so it is not the session's shared one), and a short-lived
one with interval mining.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import websockets
from eth_account import Account
from web3 import AsyncWeb3, Web3
from web3.providers import HTTPProvider, WebSocketProvider
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from mockinfura.chains.subscriptions import log_matches, notification_frame
from mockinfura.tokens import DEMO_PRIVATE_KEY_PATH, DEMO_PUBLIC_KEY_PATH, demo_key_id, make_token
from tests.conftest import CONTRACTS
from tests.server import ServerProcess

OPEN_KEY = "0123456789abcdef0123456789abcdef"
OTHER_KEY = "11111111111111111111111111111111"
JWT_KEY = "fedcba9876543210fedcba9876543210"
SECRET_KEY = "22222222222222222222222222222222"
ALLOW_KEY = "33333333333333333333333333333333"
SEPOLIA_KEY = "44444444444444444444444444444444"
SECRET = "s3cret"
ALLOWED_ADDRESS = "0x1937c5c515057553ccbd46d5866455ce66290284"
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV = Account.from_key(DEV_KEY)
TEXT = "text/plain; charset=utf-8"
SUBSCRIPTION_ID = re.compile(r"^0x[0-9a-f]{32}$")
# geth's newHeads payload (types.Header's JSON), in its order
HEADER_FIELDS = [
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom", "difficulty",
    "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce", "baseFeePerGas", "withdrawalsRoot",
    "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot", "requestsHash", "hash",
]
QUIET_SECONDS = 0.3  # how long "nothing arrives" is watched for

CONFIG = f"""
[api_keys.open]
key = "{OPEN_KEY}"

[api_keys.other]
key = "{OTHER_KEY}"

[api_keys.jwt]
key = "{JWT_KEY}"
require_jwt = true

[[api_keys.jwt.jwt_public_keys]]
name = "demo"
public_key = "{DEMO_PUBLIC_KEY_PATH}"

[api_keys.secret]
key = "{SECRET_KEY}"
secret = "{SECRET}"
require_secret = true

[api_keys.allow]
key = "{ALLOW_KEY}"

[api_keys.allow.allowlists]
methods = ["eth_chainId", "eth_getBalance", "eth_subscribe", "eth_unsubscribe"]
addresses = ["{ALLOWED_ADDRESS}"]
origins = ["https://*.example.com"]

[api_keys.sepolia_only]
key = "{SEPOLIA_KEY}"
networks = ["sepolia"]
"""


@pytest.fixture(scope="module")
def ws_server():
    with ServerProcess(CONFIG) as process:
        yield process


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=30) as http:
        yield http


def ws_url(server: ServerProcess, key: str = OPEN_KEY, network: str | None = None) -> str:
    prefix = f"/{network}" if network else ""
    return server.base_url.replace("http://", "ws://") + f"{prefix}/ws/v3/{key}"


def call(method: str, params: list | None = None, call_id: int | str = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params or []})


def connect(url: str, **kwargs):
    return websockets.connect(url, proxy=None, open_timeout=10, **kwargs)


async def ask(ws, method: str, params: list | None = None, call_id: int | str = 1) -> dict:
    await ws.send(call(method, params, call_id))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def recv_json(ws, timeout: float = 10) -> dict | list:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def nothing_arrives(ws) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), QUIET_SECONDS)
    except TimeoutError:
        return True
    return False


def control(client: httpx.Client, server: ServerProcess, method: str, params: list | None = None,
            network: str = "mainnet") -> object:
    reply = client.post(f"{server.base_url}/_mock/rpc/{network}",
                        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).json()
    assert "error" not in reply, reply
    return reply["result"]


def health_counts(client: httpx.Client, server: ServerProcess) -> dict:
    return client.get(f"{server.base_url}/_mock/health").json()["websocket"]


def wait_for_counts(client: httpx.Client, server: ServerProcess, expected: dict, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    counts = health_counts(client, server)
    while counts != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        counts = health_counts(client, server)
    return counts


@pytest.fixture()
def no_leaks(ws_server, client):
    """Every test leaves no socket and no subscription behind."""
    yield
    assert wait_for_counts(client, ws_server, {"connections": 0, "subscriptions": 0}) == {
        "connections": 0, "subscriptions": 0}


def move_clock(client: httpx.Client, server: ServerProcess, change: dict) -> None:
    assert client.post(f"{server.base_url}/_mock/clock", json=change).status_code == 200


def http_w3(server: ServerProcess, key: str = OPEN_KEY) -> Web3:
    return Web3(HTTPProvider(server.url(key), exception_retry_configuration=None))


def send_signed(w3: Web3, tx: dict) -> str:
    tx = {"nonce": w3.eth.get_transaction_count(DEV.address, "pending"), "chainId": w3.eth.chain_id, **tx}
    tx.setdefault("gas", w3.eth.estimate_gas({"from": DEV.address, **{k: v for k, v in tx.items() if k in (
        "to", "data", "value")}}))
    tx.setdefault("maxPriorityFeePerGas", 10**9)
    tx.setdefault("maxFeePerGas", 2 * w3.eth.get_block("latest")["baseFeePerGas"] + 10**9)
    signed = DEV.sign_transaction(tx)
    return "0x" + w3.eth.send_raw_transaction(signed.raw_transaction).hex().removeprefix("0x")


def deploy_counter(w3: Web3, start: int = 7):
    artifact = json.loads((CONTRACTS / "counter.json").read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = send_signed(w3, {"data": factory.constructor(start).data_in_transaction})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])


def increment(w3: Web3, counter) -> str:
    return send_signed(w3, {"to": counter.address, "data": counter.encode_abi("increment")})


@asynccontextmanager
async def web3_socket(url: str, headers: dict | None = None):
    provider = WebSocketProvider(url, websocket_kwargs={"additional_headers": headers or {}, "proxy": None},
                                 max_connection_retries=1)
    async with AsyncWeb3(provider) as w3:
        yield w3


# ---------------------------------------------------------------------------------------------- web3.py, end to end


def test_web3_new_heads_and_contract_logs_while_transactions_go_over_http(ws_server, no_leaks):
    w3_http = http_w3(ws_server)
    counter = deploy_counter(w3_http, start=7)
    event = counter.events.Incremented()
    topic = "0x" + Web3.keccak(text="Incremented(address,uint256)").hex().removeprefix("0x")

    async def scenario() -> tuple[list, list, int]:
        async with web3_socket(ws_url(ws_server)) as w3:
            assert await w3.eth.chain_id == 1
            heads_id = await w3.eth.subscribe("newHeads")
            logs_id = await w3.eth.subscribe("logs", {"address": counter.address, "topics": [topic]})
            assert SUBSCRIPTION_ID.match(heads_id) and SUBSCRIPTION_ID.match(logs_id) and heads_id != logs_id
            first = await w3.eth.block_number
            sent = asyncio.create_task(asyncio.to_thread(lambda: [increment(w3_http, counter) for _ in range(3)]))
            heads, logs = [], []
            async for message in w3.socket.process_subscriptions():
                (heads if message["subscription"] == heads_id else logs).append(message["result"])
                if len(heads) == 3 and len(logs) == 3:
                    break
            await sent
            assert await w3.eth.unsubscribe(heads_id) is True
            assert await w3.eth.unsubscribe(logs_id) is True
            return heads, logs, first

    heads, logs, first = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert [int(h["number"]) for h in heads] == [first + 1, first + 2, first + 3]
    for head in heads:
        assert head["hash"] == w3_http.eth.get_block(int(head["number"]))["hash"]
    decoded = [event.process_log(entry) for entry in logs]
    assert [d["args"]["newCount"] for d in decoded] == [8, 9, 10]
    assert all(d["args"]["by"] == DEV.address for d in decoded)
    assert [entry["blockNumber"] for entry in logs] == [int(h["number"]) for h in heads]


def test_web3_batch_and_pending_transactions(ws_server, no_leaks):
    w3_http = http_w3(ws_server)

    async def scenario() -> tuple[list, str, str]:
        async with web3_socket(ws_url(ws_server, network="sepolia")) as w3:
            async with w3.batch_requests() as batch:
                batch.add(w3.eth.chain_id)
                batch.add(w3.eth.get_balance(DEV.address))
                results = await batch.async_execute()
            pending_id = await w3.eth.subscribe("newPendingTransactions")
            sent = asyncio.create_task(asyncio.to_thread(
                send_signed, Web3(HTTPProvider(ws_server.url(OPEN_KEY, "sepolia"))), {"to": DEV.address, "value": 1}))
            async for message in w3.socket.process_subscriptions():
                assert message["subscription"] == pending_id
                pending_hash = message["result"]
                break
            return results, pending_hash, await sent

    results, pending_hash, tx_hash = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert results[0] == 11155111
    assert results[1] > 0
    assert "0x" + bytes(pending_hash).hex() == tx_hash
    assert w3_http.eth.chain_id == 1  # mainnet untouched by the sepolia transaction


# ---------------------------------------------------------------------------------------------- exact frames


def test_new_heads_frame_exact_and_unsubscribe(ws_server, client, no_leaks):
    async def scenario() -> None:
        async with connect(ws_url(ws_server)) as ws:
            reply = await ask(ws, "eth_subscribe", ["newHeads"], call_id="a")
            sub_id = reply["result"]
            assert set(reply) == {"jsonrpc", "id", "result"} and reply["id"] == "a"
            assert SUBSCRIPTION_ID.match(sub_id)
            await asyncio.to_thread(control, client, ws_server, "evm_mine")
            raw = await asyncio.wait_for(ws.recv(), 10)
            prefix = '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"' + sub_id + '","result":{'
            assert raw.startswith(prefix) and raw.endswith("}}}")
            header = json.loads(raw)["params"]["result"]
            assert list(header) == HEADER_FIELDS
            block = (await ask(ws, "eth_getBlockByNumber", [header["number"], False]))["result"]
            assert {name: block[name] for name in HEADER_FIELDS} == header
            assert len(header["logsBloom"]) == 2 + 512
            assert await ask(ws, "eth_unsubscribe", [sub_id], call_id=9) == {"jsonrpc": "2.0", "id": 9, "result": True}
            await asyncio.to_thread(control, client, ws_server, "evm_mine")
            assert await nothing_arrives(ws)
            again = await ask(ws, "eth_unsubscribe", [sub_id], call_id=10)
            assert again == {"jsonrpc": "2.0", "id": 10, "error": {"code": -32000, "message": "subscription not found"}}

    asyncio.run(scenario())


def test_logs_filter_by_address_and_topics(ws_server, client, no_leaks):
    w3_http = http_w3(ws_server)
    counter = deploy_counter(w3_http, start=0)
    other = deploy_counter(w3_http, start=100)
    topic = "0x" + Web3.keccak(text="Incremented(address,uint256)").hex().removeprefix("0x")
    by_dev = "0x" + "00" * 12 + DEV.address[2:].lower()
    by_nobody = "0x" + "00" * 31 + "01"

    async def scenario() -> None:
        async with connect(ws_url(ws_server)) as ws:
            only_counter = (await ask(ws, "eth_subscribe", ["logs", {"address": counter.address}], 1))["result"]
            by_topic = (await ask(ws, "eth_subscribe", ["logs", {"topics": [topic, [by_dev]]}], 2))["result"]
            nobody = (await ask(ws, "eth_subscribe", ["logs", {"topics": [None, by_nobody]}], 3))["result"]
            await asyncio.to_thread(increment, w3_http, counter)
            await asyncio.to_thread(increment, w3_http, other)
            seen = [json.loads(await asyncio.wait_for(ws.recv(), 10))["params"] for _ in range(3)]
            assert await nothing_arrives(ws)
            by_subscription: dict[str, list[str]] = {}
            for params in seen:
                by_subscription.setdefault(params["subscription"], []).append(params["result"]["address"])
            assert by_subscription == {
                only_counter: [counter.address.lower()],
                by_topic: [counter.address.lower(), other.address.lower()],
            }
            assert nobody not in by_subscription
            bad = await ask(ws, "eth_subscribe", ["logs", {"address": "0x12"}], 4)
            assert bad["error"]["code"] == -32602

    asyncio.run(scenario())


def test_batch_frames_text_and_binary(ws_server, no_leaks):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "method": "eth_chainId", "params": []},  # a notification: no reply
        {"jsonrpc": "2.0", "id": "x", "method": "eth_nope", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_sendTransaction", "params": [{}]},
        {"jsonrpc": "2.0", "id": 4, "method": "net_version"},
    ]

    async def scenario() -> None:
        async with connect(ws_url(ws_server, network="base-sepolia")) as ws:
            for frame in (json.dumps(batch), json.dumps(batch).encode()):
                await ws.send(frame)
                assert await recv_json(ws) == [
                    {"jsonrpc": "2.0", "id": 1, "result": hex(84532)},
                    {"jsonrpc": "2.0", "id": "x", "error": {
                        "code": -32601, "message": "The method eth_nope does not exist/is not available"}},
                    {"jsonrpc": "2.0", "id": 3, "error": {
                        "code": -32601, "message": "The method eth_sendTransaction does not exist/is not available"}},
                    {"jsonrpc": "2.0", "id": 4, "result": "84532"},
                ]
            await ws.send(json.dumps(batch[1]))  # a lone notification: no reply either
            assert await ask(ws, "eth_blockNumber", call_id=5) == {"jsonrpc": "2.0", "id": 5, "result": "0x0"}

    asyncio.run(scenario())


def test_network_from_host_header(ws_server, no_leaks):
    async def scenario() -> None:
        url = f"ws://sepolia.localhost:{ws_server.port}/ws/v3/{OPEN_KEY}"
        async with connect(url, host="127.0.0.1", port=ws_server.port) as ws:
            assert (await ask(ws, "eth_chainId"))["result"] == hex(11155111)
        url = f"ws://hoodi.localhost:{ws_server.port}/base-mainnet/ws/v3/{OPEN_KEY}"  # the path prefix wins
        async with connect(url, host="127.0.0.1", port=ws_server.port) as ws:
            assert (await ask(ws, "eth_chainId"))["result"] == hex(8453)

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_frames_get_errors_and_the_socket_stays_open(ws_server, no_leaks):
    invalid_json = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid json request"}}

    async def scenario() -> None:
        async with connect(ws_url(ws_server)) as ws:
            for frame in (b"\xff\xfe\x00binary", "{not json", "", b'{"id": 1, "method": "eth_chainId"'):
                await ws.send(frame)
                assert await recv_json(ws) == invalid_json
            await ws.send("[]")
            assert await recv_json(ws) == {"jsonrpc": "2.0", "id": None,
                                           "error": {"code": -32600, "message": "empty batch"}}
            await ws.send("42")
            assert (await recv_json(ws))["error"]["code"] == -32600
            await ws.send('{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":"x"}')
            assert (await recv_json(ws))["error"]["code"] == -32600
            unknown = await ask(ws, "eth_subscribe", ["newBlocks"], call_id=8)
            assert unknown == {"jsonrpc": "2.0", "id": 8,
                               "error": {"code": -32601, "message": 'no "newBlocks" subscription in eth namespace'}}
            assert (await ask(ws, "eth_subscribe", [], call_id=9))["error"]["code"] == -32602
            assert (await ask(ws, "eth_subscribe", ["newHeads", {}], call_id=10))["error"]["code"] == -32602
            assert (await ask(ws, "eth_unsubscribe", [], call_id=11))["error"]["code"] == -32602
            assert (await ask(ws, "evm_mine", call_id=12))["error"]["code"] == -32601
            assert await ask(ws, "eth_chainId", call_id=13) == {"jsonrpc": "2.0", "id": 13, "result": "0x1"}

    asyncio.run(scenario())


def test_subscribe_over_http_is_method_not_found(ws_server, client):
    reply = client.post(ws_server.url(OPEN_KEY), json=json.loads(call("eth_subscribe", ["newHeads"])))
    assert reply.json()["error"] == {"code": -32601, "message": "The method eth_subscribe does not exist/is not available"}


def test_clients_that_vanish_while_notifications_flow(ws_server, client, no_leaks):
    """Sockets dropped without a close frame, in the middle of a burst of blocks: the server cleans up and goes on."""

    async def scenario() -> None:
        sockets = []
        for _ in range(8):
            ws = await connect(ws_url(ws_server))
            assert "result" in await ask(ws, "eth_subscribe", ["newHeads"])
            assert "result" in await ask(ws, "eth_subscribe", ["newPendingTransactions"], call_id=2)
            sockets.append(ws)
        assert health_counts(client, ws_server) == {"connections": 8, "subscriptions": 16}
        burst = asyncio.create_task(asyncio.to_thread(control, client, ws_server, "evm_mine", [{"blocks": 200}]))
        await asyncio.wait_for(sockets[0].recv(), 10)  # the burst has begun
        for ws in sockets:
            ws.transport.abort()  # no close frame: a client that vanished
        await burst

    asyncio.run(scenario())
    assert wait_for_counts(client, ws_server, {"connections": 0, "subscriptions": 0}) == {
        "connections": 0, "subscriptions": 0}
    assert client.post(ws_server.url(OPEN_KEY), json=json.loads(call("eth_chainId"))).json()["result"] == "0x1"


def unread_socket(server: ServerProcess, frame: str) -> socket.socket:
    """A WebSocket client that sends FRAME and then never reads (a tiny receive buffer, no library reading for it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    protocol = ClientProtocol(parse_uri(ws_url(server)))
    protocol.send_request(protocol.connect())
    sock.sendall(b"".join(protocol.data_to_send()))
    while protocol.state is not State.OPEN:
        protocol.receive_data(sock.recv(65536))
    protocol.send_text(frame.encode())
    sock.sendall(b"".join(protocol.data_to_send()))
    return sock


def test_a_client_that_stops_reading_is_dropped(ws_server, client, no_leaks):
    """100 newHeads subscriptions on one socket and 150 blocks: 15,000 frames, past MAX_QUEUED_FRAMES unread."""
    subscribe_100 = json.dumps([json.loads(call("eth_subscribe", ["newHeads"], i)) for i in range(100)])

    async def scenario() -> None:
        async with connect(ws_url(ws_server)) as healthy:
            assert "result" in await ask(healthy, "eth_subscribe", ["newHeads"])
            stuck = await asyncio.to_thread(unread_socket, ws_server, subscribe_100)
            try:
                counts = await asyncio.to_thread(wait_for_counts, client, ws_server,
                                                 {"connections": 2, "subscriptions": 101})
                assert counts == {"connections": 2, "subscriptions": 101}
                await asyncio.to_thread(control, client, ws_server, "evm_mine", [{"blocks": 150}])
                for _ in range(150):  # a reading client on the same chain gets every block meanwhile
                    assert (await recv_json(healthy))["method"] == "eth_subscription"
                counts = await asyncio.to_thread(wait_for_counts, client, ws_server,
                                                 {"connections": 1, "subscriptions": 1})
                assert counts == {"connections": 1, "subscriptions": 1}
            finally:
                stuck.close()

    asyncio.run(scenario())


def test_subscriptions_end_with_their_connection(ws_server, client, no_leaks):
    async def scenario() -> None:
        async with connect(ws_url(ws_server)) as ws:
            for index in range(5):
                assert "result" in await ask(ws, "eth_subscribe", ["newHeads"], call_id=index)
            assert health_counts(client, ws_server) == {"connections": 1, "subscriptions": 5}

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------- access rules


def demo_token(ttl: float = 600, **allowlists) -> str:
    return make_token(DEMO_PRIVATE_KEY_PATH.read_bytes(), demo_key_id(), ttl=ttl, allowlists=allowlists or None)


REFUSED_HANDSHAKES = [
    # (path, headers, status, body, reason substring)
    (f"/ws/v3/{'f' * 32}", {}, 401, b"invalid project id\n", "unknown API key"),
    ("/ws/v3/", {}, 401, b"project id required in the url\n", "no API key"),
    (f"/ws/v4/{OPEN_KEY}", {}, 404, b"404 page not found\n", "no such path"),
    (f"/bsc-testnet/ws/v3/{OPEN_KEY}", {}, 404, b"404 page not found\n", "no WebSocket"),
    (f"/ws/v3/{JWT_KEY}", {}, 401, b"invalid JWT\n", "jwt required"),
    (f"/ws/v3/{JWT_KEY}", {"Authorization": "Bearer not.a.jwt"}, 401, b"invalid JWT\n", ""),
    (f"/ws/v3/{SECRET_KEY}", {}, 401, b"invalid project id or project secret\n", "secret required"),
    (f"/ws/v3/{SECRET_KEY}", {"Authorization": "Basic Ondyb25n"}, 401, b"invalid project id or project secret\n",
     "wrong API key secret"),
    (f"/ws/v3/{SEPOLIA_KEY}", {}, 403,
     b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"project ID does not have access to mainnet"}}\n', "mainnet"),
    (f"/ws/v3/{ALLOW_KEY}", {"Origin": "https://example.com"}, 403,
     b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"rejected due to project ID settings"}}\n', ""),
]


@pytest.mark.parametrize(("path", "headers", "status", "body", "reason"), REFUSED_HANDSHAKES)
def test_refused_handshake_gets_the_http_reply(ws_server, client, no_leaks, path, headers, status, body, reason):
    async def handshake() -> websockets.http11.Response:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(ws_server.base_url.replace("http://", "ws://") + path, additional_headers=headers):
                pass
        return refused.value.response

    response = asyncio.run(handshake())
    assert response.status_code == status
    assert bytes(response.body) == body
    assert response.headers["Content-Type"] == TEXT
    assert response.headers["Vary"] == "Origin"
    assert reason in response.headers["X-Mockinfura-Reason"]
    http_reply = client.post(ws_server.base_url + path.replace("/ws/v3", "/v3"), headers=headers,
                             json=json.loads(call("eth_chainId")))
    if "no WebSocket" not in reason:  # the same refusal over HTTP, byte for byte
        assert (http_reply.status_code, http_reply.content) == (status, body)
        assert http_reply.headers.get("www-authenticate") == response.headers.get("Www-Authenticate")


def test_refused_handshake_with_web3_does_not_hang(ws_server, no_leaks):
    async def scenario() -> None:
        with pytest.raises(Exception, match="401|invalid|connect"):
            async with web3_socket(ws_url(ws_server, JWT_KEY)):
                pass

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 10


def test_secret_and_jwt_on_the_handshake(ws_server, no_leaks):
    async def scenario() -> None:
        basic = {"Authorization": "Basic OnMzY3JldA=="}  # base64(":s3cret")
        async with connect(ws_url(ws_server, SECRET_KEY), additional_headers=basic) as ws:
            assert (await ask(ws, "eth_chainId"))["result"] == "0x1"
        async with web3_socket(ws_url(ws_server, JWT_KEY), {"Authorization": f"Bearer  {demo_token()}"}) as w3:
            assert await w3.eth.chain_id == 1

    asyncio.run(scenario())


def test_allowlists_apply_to_each_message(ws_server, no_leaks):
    refused = {"code": -32002, "message": "rejected due to project ID settings"}

    async def scenario() -> None:
        headers = {"Origin": "https://app.example.com"}
        async with connect(ws_url(ws_server, ALLOW_KEY), additional_headers=headers) as ws:
            assert await ask(ws, "eth_chainId") == {"jsonrpc": "2.0", "id": 1, "result": "0x1"}
            assert await ask(ws, "eth_blockNumber", call_id=2) == {"jsonrpc": "2.0", "id": 2, "error": refused}
            assert await ask(ws, "eth_getBalance", [DEV.address, "latest"], 3) == {
                "jsonrpc": "2.0", "id": 3, "error": refused}
            assert (await ask(ws, "eth_getBalance", [ALLOWED_ADDRESS, "latest"], 4))["result"] == "0x0"
            # one refused call refuses the whole batch, each call saying so (as HTTP refuses the whole request)
            await ws.send(json.dumps([json.loads(call("eth_chainId", [], 5)), json.loads(call("eth_gasPrice", [], 6))]))
            assert await recv_json(ws) == [{"jsonrpc": "2.0", "id": 5, "error": refused},
                                           {"jsonrpc": "2.0", "id": 6, "error": refused}]
            assert SUBSCRIPTION_ID.match((await ask(ws, "eth_subscribe", ["newHeads"], 7))["result"])

    asyncio.run(scenario())


def test_jwt_allowlist_claims_apply_to_each_message(ws_server, no_leaks):
    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {demo_token(methods=['eth_chainId'])}"}
        async with connect(ws_url(ws_server, JWT_KEY), additional_headers=headers) as ws:
            assert (await ask(ws, "eth_chainId"))["result"] == "0x1"
            assert (await ask(ws, "eth_subscribe", ["newHeads"], 2))["error"]["code"] == -32002

    asyncio.run(scenario())


def test_jwt_expiry_is_checked_on_every_message(ws_server, client, no_leaks):
    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {demo_token(ttl=60)}"}
        async with connect(ws_url(ws_server, JWT_KEY), additional_headers=headers) as ws:
            assert (await ask(ws, "eth_chainId"))["result"] == "0x1"
            await asyncio.to_thread(move_clock, client, ws_server, {"advance": 120})
            assert await ask(ws, "eth_chainId", call_id=2) == {
                "jsonrpc": "2.0", "id": 2, "error": {"code": -32002, "message": "invalid JWT"}}
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008
            assert "jwt expired" in ws.close_reason

    try:
        asyncio.run(scenario())
    finally:
        move_clock(client, ws_server, {"reset": True})


def test_expired_jwt_stops_notifications(ws_server, client, no_leaks):
    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {demo_token(ttl=60)}"}
        async with connect(ws_url(ws_server, JWT_KEY), additional_headers=headers) as ws:
            assert "result" in await ask(ws, "eth_subscribe", ["newHeads"])
            await asyncio.to_thread(move_clock, client, ws_server, {"advance": 120})
            await asyncio.to_thread(control, client, ws_server, "evm_mine")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008

    try:
        asyncio.run(scenario())
    finally:
        move_clock(client, ws_server, {"reset": True})


def test_key_changed_while_the_socket_is_open(ws_server, client, no_leaks):
    key = "55555555555555555555555555555555"
    keys_url = f"{ws_server.base_url}/_mock/keys"
    assert client.post(keys_url, json={"key": key}).status_code == 201

    async def scenario() -> None:
        async with connect(ws_url(ws_server, key)) as ws:
            assert (await ask(ws, "eth_chainId"))["result"] == "0x1"
            # new allowlists apply to the open socket from the next frame on
            await asyncio.to_thread(client.put, f"{keys_url}/{key}", json={"allowlists": {"methods": ["eth_chainId"]}})
            assert (await ask(ws, "eth_chainId", call_id=2))["result"] == "0x1"
            assert (await ask(ws, "eth_gasPrice", call_id=3))["error"]["code"] == -32002
            # a deleted key: the frame gets the 401's text as its error, then the socket closes
            await asyncio.to_thread(client.delete, f"{keys_url}/{key}")
            assert await ask(ws, "eth_chainId", call_id=4) == {
                "jsonrpc": "2.0", "id": 4, "error": {"code": -32002, "message": "invalid project id"}}
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008

    try:
        asyncio.run(scenario())
    finally:
        client.delete(f"{keys_url}/{key}")


def test_signed_transaction_sent_over_the_socket(ws_server, no_leaks):
    async def scenario() -> None:
        async with web3_socket(ws_url(ws_server, network="linea-sepolia")) as w3:
            nonce = await w3.eth.get_transaction_count(DEV.address)
            base_fee = (await w3.eth.get_block("latest"))["baseFeePerGas"]
            signed = DEV.sign_transaction({
                "chainId": 59141, "nonce": nonce, "to": DEV.address, "value": 5, "gas": 21000,
                "maxFeePerGas": 2 * base_fee + 1, "maxPriorityFeePerGas": 1,
            })
            tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
            assert receipt["status"] == 1 and receipt["from"] == DEV.address

    asyncio.run(scenario())


def test_messages_are_journaled(ws_server, client, no_leaks):
    client.delete(f"{ws_server.base_url}/_mock/requests")

    async def scenario() -> None:
        async with connect(ws_url(ws_server, ALLOW_KEY), additional_headers={"Origin": "https://a.example.com"}) as ws:
            await ask(ws, "eth_chainId")
            await ask(ws, "eth_gasPrice", call_id=2)

    asyncio.run(scenario())
    entries = client.get(f"{ws_server.base_url}/_mock/requests", params={"key": ALLOW_KEY}).json()
    assert [(e["methods"], e["decision"], e["status"], e["transport"]) for e in entries] == [
        ([], "allowed", 101, "websocket"),
        (["eth_chainId"], "allowed", 200, "websocket"),
        (["eth_gasPrice"], "refused", 403, "websocket"),
    ]
    assert entries[0]["origin"] == "https://a.example.com"


# ---------------------------------------------------------------------------------------------- credits


@pytest.fixture()
def metered_key(ws_server, client):
    """A factory of run-time keys, deleted after the test."""
    made = []

    def make(**settings) -> str:
        key = secrets.token_hex(16)  # fresh: the meter remembers a key's credits after it is deleted
        assert client.post(f"{ws_server.base_url}/_mock/keys", json={"key": key, **settings}).status_code == 201
        made.append(key)
        return key

    yield make
    for key in made:
        client.delete(f"{ws_server.base_url}/_mock/keys/{key}")


def usage_of(client: httpx.Client, server: ServerProcess, key: str) -> dict:
    days = client.get(f"{server.base_url}/_mock/usage").json()["keys"].get(key, {}).get("days", {})
    methods: dict = {}
    for day in days.values():
        for method, entry in day["methods"].items():
            methods[method] = {n: methods.get(method, {}).get(n, 0) + entry[n] for n in ("calls", "credits")}
    return methods


def test_frames_and_notifications_are_charged(ws_server, client, metered_key, no_leaks):
    key = metered_key()
    w3_http = http_w3(ws_server)
    counter = deploy_counter(w3_http)

    async def scenario() -> None:
        async with connect(ws_url(ws_server, key)) as ws:
            await ws.send(json.dumps([json.loads(call("eth_chainId", [], 1)), json.loads(call("eth_blockNumber", [], 2))]))
            await recv_json(ws)
            heads = (await ask(ws, "eth_subscribe", ["newHeads"], 3))["result"]
            await ask(ws, "eth_subscribe", ["logs", {"address": counter.address}], 4)
            await asyncio.to_thread(increment, w3_http, counter)
            await asyncio.to_thread(control, client, ws_server, "evm_mine")
            kinds = [json.loads(await asyncio.wait_for(ws.recv(), 10))["params"]["subscription"] == heads
                     for _ in range(3)]
            assert sorted(kinds) == [False, True, True]

    asyncio.run(scenario())
    assert usage_of(client, ws_server, key) == {
        "eth_chainId": {"calls": 1, "credits": 5},
        "eth_blockNumber": {"calls": 1, "credits": 80},
        "eth_subscribe": {"calls": 2, "credits": 10},
        "eth_subscription:newHeads": {"calls": 2, "credits": 100},
        "eth_subscription:logs": {"calls": 1, "credits": 300},
    }


def test_throughput_limit_refuses_frames_and_keeps_the_socket(ws_server, client, metered_key, no_leaks):
    key = metered_key(credits_per_second=10)

    async def scenario() -> None:
        async with connect(ws_url(ws_server, key)) as ws:
            assert "result" in await ask(ws, "eth_blockNumber", call_id=1)  # the call that crosses is served
            refused = await ask(ws, "eth_blockNumber", call_id=2)
            assert refused["id"] == 2
            assert refused["error"]["code"] == 429 and refused["error"]["event"] == -33300
            await asyncio.to_thread(move_clock, client, ws_server, {"advance": 2})
            assert "result" in await ask(ws, "eth_chainId", call_id=3)

    try:
        asyncio.run(scenario())
    finally:
        move_clock(client, ws_server, {"reset": True})


def test_daily_limit_severs_the_connection(ws_server, client, metered_key, no_leaks):
    key = metered_key(credits_per_day=100)

    async def scenario() -> None:
        async with connect(ws_url(ws_server, key)) as ws:
            assert "result" in await ask(ws, "eth_subscribe", ["newHeads"])  # 5 credits
            await asyncio.to_thread(control, client, ws_server, "evm_mine", [{"blocks": 3}])
            for _ in range(2):  # 50 + 50: the second notification crosses the limit and is still sent
                assert (await recv_json(ws))["method"] == "eth_subscription"
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008 and "daily" in ws.close_reason

        async with connect(ws_url(ws_server, key)) as ws:  # a new socket: its first frame meets the limit
            refused = await ask(ws, "eth_chainId", call_id=7)
            assert refused["id"] == 7 and refused["error"]["event"] == -33400
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------- filters


def test_filters_are_shared_by_the_key_across_transports_and_expire(ws_server, client, no_leaks):
    async def scenario() -> None:
        async with connect(ws_url(ws_server)) as ws:
            filter_id = (await ask(ws, "eth_newBlockFilter"))["result"]
            pending_id = (await ask(ws, "eth_newPendingTransactionFilter", call_id=2))["result"]
            await asyncio.to_thread(control, client, ws_server, "evm_mine")
            head = (await ask(ws, "eth_getBlockByNumber", ["latest", False], 3))["result"]["hash"]

            def over_http(key: str, method: str, params: list) -> dict:
                return client.post(ws_server.url(key), json=json.loads(call(method, params))).json()

            assert (await asyncio.to_thread(over_http, OPEN_KEY, "eth_getFilterChanges", [filter_id]))["result"] == [
                head]
            other = await asyncio.to_thread(over_http, OTHER_KEY, "eth_getFilterChanges", [filter_id])
            assert other["error"] == {"code": -32000, "message": "filter not found"}
            assert (await asyncio.to_thread(over_http, OTHER_KEY, "eth_uninstallFilter", [filter_id]))["result"] is False
            tx_hash = await asyncio.to_thread(send_signed, http_w3(ws_server), {"to": DEV.address, "value": 1})
            assert (await ask(ws, "eth_getFilterChanges", [pending_id], 4))["result"] == [tx_hash]
            assert (await ask(ws, "eth_getFilterChanges", [filter_id], 5))["result"] != []
            await asyncio.to_thread(move_clock, client, ws_server, {"advance": 901})
            gone = await ask(ws, "eth_getFilterChanges", [filter_id], 6)
            assert gone["error"] == {"code": -32000, "message": "filter not found"}

    try:
        asyncio.run(scenario())
    finally:
        move_clock(client, ws_server, {"reset": True})


# ---------------------------------------------------------------------------------------------- interval mining


def test_interval_mining_feeds_new_heads_without_transactions(tmp_path: Path):
    config = f'[chain]\nblock_time = 0.2\n\n[api_keys.open]\nkey = "{OPEN_KEY}"\n'
    with ServerProcess(config) as server, httpx.Client(timeout=10) as http:
        async def scenario() -> list[int]:
            async with connect(ws_url(server, network="hoodi")) as ws:
                sub_id = (await ask(ws, "eth_subscribe", ["newHeads"]))["result"]
                numbers = []
                while len(numbers) < 4:
                    message = await recv_json(ws, timeout=5)
                    assert message["params"]["subscription"] == sub_id
                    numbers.append(int(message["params"]["result"]["number"], 16))
                return numbers

        started = time.monotonic()
        numbers = asyncio.run(scenario())
        elapsed = time.monotonic() - started
        assert numbers == list(range(numbers[0], numbers[0] + 4))
        assert 0.5 < elapsed < 5
        assert wait_for_counts(http, server, {"connections": 0, "subscriptions": 0}) == {
            "connections": 0, "subscriptions": 0}
        first = int(http.post(server.url(OPEN_KEY), json=json.loads(call("eth_blockNumber"))).json()["result"], 16)
        time.sleep(0.5)
        assert int(http.post(server.url(OPEN_KEY), json=json.loads(call("eth_blockNumber"))).json()["result"], 16) > first
        assert server.stop() == 0


@pytest.mark.parametrize(("value", "problem"), [(-1, "must not be negative"), (0.001, "at least"), ("1", "a number")])
def test_block_time_config_is_checked(value, problem):
    from mockinfura.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config({"chain": {"block_time": value}})
    assert any("chain.block_time" in line and problem in line for line in refused.value.problems)
    assert parse_config({"chain": {"block_time": 2.5}}).chain.block_time == 2.5


# ---------------------------------------------------------------------------------------------- the rules, alone


def test_log_matching_rule():
    log = {"address": "0x" + "ab" * 20, "topics": ["0x" + "00" * 31 + "01", "0x" + "00" * 31 + "02"]}
    addresses = {bytes.fromhex("ab" * 20)}
    assert log_matches({"addresses": None, "topics": []}, log)
    assert log_matches({"addresses": addresses, "topics": [None, {2}]}, log)
    assert log_matches({"addresses": None, "topics": [{1, 5}]}, log)
    assert not log_matches({"addresses": {bytes(20)}, "topics": []}, log)
    assert not log_matches({"addresses": None, "topics": [{2}]}, log)
    assert not log_matches({"addresses": None, "topics": [None, None, None]}, log)


def test_notification_frame_is_the_spec_shape():
    frame = notification_frame(b"0x9cef478923ff08bf67fde6c64013158d", b'"0xabc"')
    assert frame == (b'{"jsonrpc":"2.0","method":"eth_subscription","params":'
                     b'{"subscription":"0x9cef478923ff08bf67fde6c64013158d","result":"0xabc"}}')
