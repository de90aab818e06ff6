"""Property-based fuzzing of everything the Infura-facing paths read (issue 8, part 1), against one real server.

Inputs: JSON-RPC bodies (wrong types, huge numbers, deep nesting, odd unicode and lone surrogates escaped in JSON,
duplicate keys, batches up to the batch limit and over it), random params for the real method names, raw bytes,
headers (`Authorization`, `Origin`, `User-Agent`, `Host`, `Content-Type`), paths and HTTP methods, and WebSocket
frames (text and binary).

Invariants, for every reply:
- never a 5xx, never a traceback's text, never a -32603 "internal error" (a bug below the gateway);
- either one of the spec's exact refusals (status, body, content type and headers as `mockinfura.gateway.replies`
  builds them), or a valid JSON-RPC reply: an object, or an array of objects, each with `jsonrpc` "2.0", an `id`
  and exactly one of `result` / `error` (an int `code` and a str `message`), the ids those the request sent;
- the server keeps answering: its process is alive after every example, and `eth_chainId` answers every
  CHAIN_ID_EVERY examples and after each property; the WebSocket counts in `/_mock/health` return to 0.

Hypothesis runs derandomized (fixed seed), with bounded example counts; `EXAMPLES` says how many per property.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import time
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mockinfura.gateway import replies
from mockinfura.networks import CATALOGUE
from mockinfura.tokens import DEMO_PRIVATE_KEY_PATH, DEMO_PUBLIC_KEY_PATH, demo_key_id, make_token
from tests.server import ServerProcess

OPEN_KEY = "0123456789abcdef0123456789abcdef"
SECRET_KEY = "5ec7e75ec7e75ec7e75ec7e75ec7e700"
ALLOW_KEY = "a110a110a110a110a110a110a110a110"
JWT_KEY = "fedcba9876543210fedcba9876543210"
SECRET = "s3cret"
KEYS = (OPEN_KEY, SECRET_KEY, ALLOW_KEY, JWT_KEY)
ALLOWED_ADDRESS = "0x1937c5c515057553ccbd46d5866455ce66290284"
DEV_ADDRESS = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # m/44'/60'/0'/0/0 of the default mnemonic
DEV_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
NETWORKS = ("mainnet", "sepolia", "base-sepolia")  # the ones the fuzz may build (each chain costs memory)
NO_WS_NETWORK = "celo-mainnet"  # no WebSocket endpoint: a 404 without building a chain
MAX_BATCH = 40
MAX_BODY = 256 * 1024
WS_MAX_MESSAGE = 64 * 1024
CHAIN_ID_EVERY = 25

# Examples per property (the README's "inputs tried" adds these up).
EXAMPLES = {
    "envelopes": 600,
    "method_params": 600,
    "raw_bodies": 200,
    "batches": 60,
    "headers": 300,
    "paths": 250,
    "ws_frames": 200,
}


FUZZ_SCALE = float(os.environ.get("MOCKINFURA_FUZZ_SCALE", "1"))  # e.g. 10 for a deeper run by hand; CI: 1


def fuzz(name: str):
    return settings(max_examples=max(1, int(EXAMPLES[name] * FUZZ_SCALE)), derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


CONFIG = f"""
[server]
max_batch_size = {MAX_BATCH}
max_body_bytes = {MAX_BODY}
ws_max_message_bytes = {WS_MAX_MESSAGE}

[api_keys.open]
key = "{OPEN_KEY}"

[api_keys.secret]
key = "{SECRET_KEY}"
secret = "{SECRET}"
require_secret = true

[api_keys.allow]
key = "{ALLOW_KEY}"
networks = ["mainnet", "sepolia"]

[api_keys.allow.allowlists]
methods = ["eth_chainId", "eth_blockNumber", "eth_getBalance", "eth_call", "eth_getLogs", "eth_subscribe"]
addresses = ["{ALLOWED_ADDRESS}"]
origins = ["https://*.example.com", "http://localhost:3000"]
user_agents = ["web3.py", "Mozilla/"]

[api_keys.jwt]
key = "{JWT_KEY}"
require_jwt = true

[[api_keys.jwt.jwt_public_keys]]
name = "demo"
public_key = "{DEMO_PUBLIC_KEY_PATH}"
"""


# ---------------------------------------------------------------------------------------------- the server


class Served:
    """The module's server, a client, and the liveness checks."""

    def __init__(self, process: ServerProcess) -> None:
        self.process = process
        self.client = httpx.Client(timeout=60)
        self.examples = 0
        self.token = make_token(DEMO_PRIVATE_KEY_PATH.read_bytes(), demo_key_id(), ttl=24 * 3600)

    def url(self, key: str = OPEN_KEY, network: str | None = None) -> str:
        return self.process.url(key, network)

    def ws_url(self, key: str = OPEN_KEY, network: str | None = None) -> str:
        prefix = f"/{network}" if network else ""
        return self.process.base_url.replace("http://", "ws://") + f"{prefix}/ws/v3/{key}"

    def example_done(self) -> None:
        """After every example: the process is alive; every CHAIN_ID_EVERY examples it also answers."""
        assert self.process.process.poll() is None, "the server died"
        self.examples += 1
        if self.examples % CHAIN_ID_EVERY == 0:
            self.assert_answers()

    def assert_answers(self, journal_limit: int | None = CHAIN_ID_EVERY * 2) -> None:
        """The server is alive, answers eth_chainId, and can still show what it recorded of the fuzz."""
        assert self.process.process.poll() is None, "the server died"
        reply = self.client.post(self.url(), json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        assert reply.status_code == 200 and reply.json() == {"jsonrpc": "2.0", "id": 1, "result": "0x1"}, reply.text
        params = {} if journal_limit is None else {"limit": journal_limit}
        for path, query in (("/_mock/requests", params), ("/_mock/usage", {})):
            reply = self.client.get(self.process.base_url + path, params=query)
            assert reply.status_code == 200, (path, reply.status_code, reply.text[:500])
            reply.json()

    def websocket_counts(self) -> dict[str, int]:
        return self.client.get(self.process.base_url + "/_mock/health").json()["websocket"]


class StderrDrain:
    """The server's stderr (ServerProcess reads it as it comes: a pipe nobody reads fills at 64 KiB, and the server
    then blocks on its next log line)."""

    def __init__(self, process: ServerProcess) -> None:
        self.process = process

    def text_after_stop(self) -> str:
        """Stop the server (SIGTERM) and return all it wrote on stderr: its log of exceptions, if any."""
        self.process.process.send_signal(signal.SIGTERM)
        self.process.process.wait(timeout=30)
        text = self.process.stderr
        return text + "\n" if text else ""


# uvicorn's own log lines for inputs it refuses correctly (uvicorn 0.54, websockets-sansio): a text frame that is
# not UTF-8 (closed 1007, logged with its traceback), and every refused handshake (the denial reply is sent as the
# gateway built it; uvicorn then logs that no handshake completed).
UVICORN_NOISE = re.compile(
    r"ERROR: +Invalid UTF-8 sequence received from client\.\nTraceback \(most recent call last\):\n"
    r"(?:  .*\n)+UnicodeDecodeError: .*\n"
    r"|ERROR: +ASGI callable returned without completing handshake\.\n"
)


def unexpected_server_log(stderr: str) -> str:
    """What the server logged beyond uvicorn's known lines: must be nothing (no exception, no error)."""
    return UVICORN_NOISE.sub("", stderr).strip()


@pytest.fixture(scope="module")
def served():
    with ServerProcess(CONFIG) as process:
        drain = StderrDrain(process)
        state = Served(process)
        try:
            yield state
            state.assert_answers()  # and at the very end
        finally:
            state.client.close()
        assert process.process.poll() is None, "the server died"
        stderr = drain.text_after_stop()
        assert process.process.returncode == 0, stderr[-3000:]
        unexpected = unexpected_server_log(stderr)
        assert not unexpected, unexpected[-3000:]  # nothing failed inside the server either


@pytest.fixture
def alive(served: Served):
    """Each property ends with the server still answering."""
    yield served
    served.assert_answers(journal_limit=None)  # the whole journal


# ---------------------------------------------------------------------------------------------- the oracle

TRACEBACK = re.compile(rb"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
BATCH_TOO_LARGE = re.compile(rb'^\{"jsonrpc":"2\.0","id":null,"error":\{"code":-32005,"message":"batch of (\d+) calls')


def exact_refusals() -> list[replies.Refusal]:
    fixed = [
        replies.project_id_required(), replies.invalid_project_id(), replies.invalid_secret(""),
        replies.invalid_jwt(""), replies.rejected_by_settings(""), replies.page_not_found(), replies.invalid_json(),
        replies.body_too_large(MAX_BODY),
    ]
    return fixed + [replies.network_not_allowed(network) for network in CATALOGUE]


REFUSALS = {(r.status, r.body): r for r in exact_refusals()}


def refusal_for(status: int, body: bytes) -> replies.Refusal | None:
    """The spec refusal these exact bytes are, or None."""
    found = REFUSALS.get((status, body))
    if found is not None:
        return found
    match = BATCH_TOO_LARGE.match(body)
    if match:
        refusal = replies.batch_too_large(int(match.group(1)), MAX_BATCH)
        if refusal.status == status and refusal.body == body and int(match.group(1)) > MAX_BATCH:
            return refusal
    return None


def assert_no_leak(body: bytes) -> None:
    assert not TRACEBACK.search(body), body[:2000]


def assert_rpc_object(item: Any) -> None:
    assert isinstance(item, dict), item
    assert item.get("jsonrpc") == "2.0", item
    assert "id" in item, item
    assert item["id"] is None or isinstance(item["id"], (str, int, float)) and not isinstance(item["id"], bool), item
    assert ("result" in item) != ("error" in item), item
    assert set(item) <= {"jsonrpc", "id", "result", "error"}, item
    if "error" in item:
        error = item["error"]
        assert isinstance(error, dict), item
        assert isinstance(error.get("code"), int) and not isinstance(error["code"], bool), item
        assert isinstance(error.get("message"), str), item
        assert set(error) <= {"code", "message", "data"}, item
        # -32603 is what the gateway answers when something below it raised: a bug, never an answer
        assert error["code"] != -32603, item
        assert "internal error" not in error["message"], item


def assert_rpc_document(document: Any, expected_ids: list | None = None) -> None:
    """An object, or an array of them; when EXPECTED_IDS is known, the replies carry exactly those ids."""
    if isinstance(document, list):
        for item in document:
            assert_rpc_object(item)
        if expected_ids is not None:
            assert sorted(map(repr, (i["id"] for i in document))) == sorted(map(repr, expected_ids)), (
                document, expected_ids)
    else:
        assert_rpc_object(document)
        if expected_ids is not None:
            assert len(expected_ids) == 1 and repr(document["id"]) == repr(expected_ids[0]), (document, expected_ids)


def assert_valid_http_reply(reply: httpx.Response, expected_ids: list | None = None, *, head: bool = False) -> str:
    """'refusal' or 'rpc'; fails on anything else."""
    status, body = reply.status_code, reply.content
    assert status < 500, (status, body[:500])
    assert_no_leak(body)
    assert_no_leak(" ".join(f"{k}: {v}" for k, v in reply.headers.items()).encode(errors="replace"))
    assert reply.headers.get("vary") == "Origin", reply.headers
    if head:  # no body to compare: the status says which refusal it is
        assert status in {r.status for r in REFUSALS.values()} | {200}, status
        return "refusal"
    refusal = refusal_for(status, body)
    if refusal is not None:
        event(f"refusal {status} {body[:40]!r}")
        assert reply.headers.get("content-type") == refusal.content_type, (reply.headers, body)
        for name, value in refusal.headers.items():
            assert reply.headers.get(name) == value, (name, reply.headers)
        return "refusal"
    assert status == 200, (status, body[:500])
    assert reply.headers.get("content-type") == "application/json", reply.headers
    document = json.loads(body)
    assert_rpc_document(document, expected_ids)
    first = document[0] if isinstance(document, list) and document else document
    if isinstance(first, dict):
        event("rpc result" if "result" in first else f"rpc error {first['error']['code']}")
    return "rpc"


def expected_reply_ids(document: Any) -> list | None:
    """The ids a well-read request gets back (JSON-RPC 2.0), or None when the body is not one the oracle can judge.

    A call without an id is a notification: no reply inside a batch. An item that is not a valid call gets a reply
    with id null (or its own id when it had a usable one).
    """

    def id_of(item: Any) -> tuple[bool, Any]:
        if not isinstance(item, dict):
            return True, None
        has_id = "id" in item
        call_id = item.get("id")
        valid_id = call_id is None or (isinstance(call_id, (str, int, float)) and not isinstance(call_id, bool))
        if has_id and not valid_id:
            return True, None
        method = item.get("method")
        params = item.get("params")
        valid = isinstance(method, str) and method != "" and (params is None or isinstance(params, (list, dict)))
        if not has_id:
            return not valid, None
        if isinstance(call_id, str):  # a lone surrogate comes back as U+FFFD, as Go's encoding/json reads it
            call_id = re.sub("[\ud800-\udfff]", "\ufffd", call_id)
        return True, call_id

    if isinstance(document, list):
        if not document or len(document) > MAX_BATCH:
            return None
        return [call_id for wants, call_id in map(id_of, document) if wants]
    return [id_of(document)[1]]


def floats_ok(value: Any) -> bool:
    """False when VALUE holds a float that cannot round-trip (inf, nan): the oracle does not judge those ids."""
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, list):
        return all(floats_ok(v) for v in value)
    if isinstance(value, dict):
        return all(floats_ok(v) for v in value.values())
    return True


def post(served: Served, content: bytes, *, key: str = OPEN_KEY, network: str | None = None,
         headers: dict | None = None) -> httpx.Response:
    return served.client.post(served.url(key, network), content=content, headers=headers or {})


def check_body(served: Served, body: bytes, *, key: str = OPEN_KEY, network: str | None = None) -> str:
    """Send BODY, check the reply against the oracle, and (when the server read it as JSON) the ids."""
    try:
        return _check_body(served, body, key=key, network=network)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n  input body: {body[:600]!r}") from None


def _check_body(served: Served, body: bytes, *, key: str, network: str | None) -> str:
    reply = post(served, body, key=key, network=network)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        document = None
    expected = None
    try:
        if document is not None and floats_ok(document) and len(body) <= MAX_BODY:
            expected = expected_reply_ids(document)
    except RecursionError:  # nested deeper than this process's own stack: no id oracle
        expected = None
    kind = assert_valid_http_reply(reply, expected if reply.status_code == 200 else None)
    if document is None and len(body) <= MAX_BODY and kind == "refusal":
        assert reply.content == replies.INVALID_JSON_BODY, reply.content
    if len(body) > MAX_BODY:
        assert reply.status_code == 413
    served.example_done()
    return kind


# ---------------------------------------------------------------------------------------------- JSON text

def text_literal(value: str) -> str:
    return json.dumps(value)  # ASCII, with \uXXXX escapes (lone surrogates included)


lone_surrogates = st.lists(st.integers(0xD800, 0xDFFF), min_size=1, max_size=3).map(
    lambda cps: '"' + "".join(f"\\u{cp:04x}" for cp in cps) + '"')
odd_strings = st.one_of(
    st.text(max_size=40).map(text_literal),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
            max_size=20).map(lambda s: json.dumps(s, ensure_ascii=False)),
    lone_surrogates,
    st.sampled_from(['"\\u0000"', '"\\ud83d\\ude00"', '"\\udbff\\udfff"', '"\\ud800x"', '"\\\\"', '"\\/"', '""',
                     '"\\u202e"', '"\\ufeff"', '"0x"', '"0x0"', '"latest"']),
)
huge_numbers = st.one_of(
    st.integers(min_value=-(2**400), max_value=2**400).map(str),
    st.integers(1, 6000).map(lambda n: "9" * n),  # past Python's 4300-digit int limit too
    st.sampled_from(["1e400", "-1e400", "1E-400", "-0", "0.0", "1.5", "1e2", "123456789012345678901234567890.5",
                     "18446744073709551616", "-9223372036854775809", "4.9e-324", "1.7976931348623157e308"]),
)
json_scalars = st.one_of(st.sampled_from(["null", "true", "false"]), huge_numbers, odd_strings)


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def obj_text(members: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in members) + "}"


json_text = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(odd_strings, children), max_size=4).map(obj_text),  # duplicate keys likely
    ),
    max_leaves=12,
)
deep_text = st.one_of(
    st.integers(1, 3000).map(nested),
    st.integers(1, 1500).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(1, 2000).map(lambda n: nested(n, "")),
)

REAL_METHODS = (
    "eth_chainId", "net_version", "net_listening", "net_peerCount", "web3_clientVersion", "web3_sha3", "eth_syncing",
    "eth_mining", "eth_hashrate", "eth_blockNumber", "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_blobBaseFee",
    "eth_feeHistory", "eth_getBalance", "eth_getCode", "eth_getStorageAt", "eth_getTransactionCount",
    "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getBlockTransactionCountByNumber",
    "eth_getBlockTransactionCountByHash", "eth_getUncleCountByBlockNumber", "eth_getUncleCountByBlockHash",
    "eth_getUncleByBlockNumberAndIndex", "eth_getUncleByBlockHashAndIndex", "eth_getTransactionByHash",
    "eth_getTransactionByBlockNumberAndIndex", "eth_getTransactionByBlockHashAndIndex", "eth_getTransactionReceipt",
    "eth_getBlockReceipts", "eth_call", "eth_estimateGas", "eth_sendRawTransaction", "eth_getLogs", "eth_newFilter",
    "eth_newBlockFilter", "eth_newPendingTransactionFilter", "eth_getFilterChanges", "eth_getFilterLogs",
    "eth_uninstallFilter", "eth_accounts",
    # refused on Infura's paths, or not served by the embedded chain
    "eth_subscribe", "eth_unsubscribe", "eth_sendTransaction", "eth_sign", "eth_coinbase", "evm_mine",
    "evm_snapshot", "anvil_setBalance", "hardhat_setCode", "debug_traceTransaction", "trace_block", "eth_getProof",
    "eth_createAccessList",
)
real_method_texts = st.sampled_from(REAL_METHODS).map(text_literal)
method_texts = st.one_of(real_method_texts, real_method_texts, real_method_texts, json_text, odd_strings)
id_texts = st.one_of(st.integers(-(2**70), 2**70).map(str), huge_numbers, odd_strings,
                     st.sampled_from(["null", "true", "[]", "{}", "1.0", "[1]"]))
params_texts = st.one_of(
    json_text, deep_text, st.just("[]"), st.just("{}"),
    st.lists(json_text, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
    st.lists(json_scalars, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
)
MEMBER_NAMES = ('"jsonrpc"', '"id"', '"method"', '"params"')


@st.composite
def envelope_texts(draw) -> str:
    """One request object as JSON text: the usual members with odd values, some missing, some twice, some extra."""
    members: list[tuple[str, str]] = []
    if draw(st.integers(0, 3)):
        members.append(('"jsonrpc"', draw(st.sampled_from(['"2.0"', '"2.0"', '"1.0"', "2", "null", '"2.0 "'])
                                          | json_scalars)))
    if draw(st.integers(0, 5)):
        members.append(('"id"', draw(id_texts)))
    if draw(st.integers(0, 7)):
        members.append(('"method"', draw(method_texts)))
    if draw(st.integers(0, 3)):
        members.append(('"params"', draw(params_texts)))
    for _ in range(draw(st.integers(0, 2))):  # duplicates and strangers
        members.append((draw(st.sampled_from(MEMBER_NAMES) | odd_strings), draw(json_text)))
    members = draw(st.permutations(members))
    return obj_text(members)


bodies = st.one_of(
    envelope_texts(),
    st.lists(envelope_texts(), min_size=0, max_size=6).map(lambda items: "[" + ",".join(items) + "]"),
    json_text,
    deep_text,
    st.tuples(envelope_texts(), st.sampled_from([" ", "\n", "x", "{}", "]", "\x00"])).map("".join),
)


# ---------------------------------------------------------------------------------------------- Ethereum params

def hex_of(data: bytes) -> str:
    return "0x" + data.hex()


quantities = st.one_of(
    st.integers(0, 2**256 + 5).map(hex),
    st.integers(0, 300).map(hex),
    st.sampled_from(["0x", "0x00", "0x01", "0xZZ", "-0x1", "0X1", "1", "0x" + "f" * 65, "latest", ""]),
    st.integers(-(2**80), 2**80),
)
data_values = st.one_of(
    st.binary(max_size=80).map(hex_of),
    st.sampled_from(["0x", "0x0", "0x1", "0xgg", "deadbeef", "0x" + "00" * 2000]),
)
addresses = st.one_of(
    st.binary(min_size=20, max_size=20).map(hex_of),
    st.sampled_from([DEV_ADDRESS, ALLOWED_ADDRESS, "0x" + "00" * 20, DEV_ADDRESS.upper().replace("0X", "0x"),
                     "0x" + "00" * 19, "0x" + "00" * 21]),
)
hashes = st.one_of(st.binary(min_size=32, max_size=32).map(hex_of), st.binary(max_size=40).map(hex_of))
block_ids = st.one_of(
    st.sampled_from(["latest", "earliest", "pending", "safe", "finalized", "0x0", "0x1", "0x2", "Latest", None]),
    quantities,
    hashes,
    st.fixed_dictionaries({}, optional={"blockHash": hashes, "blockNumber": quantities,
                                        "requireCanonical": st.booleans()}),
)
tx_objects = st.fixed_dictionaries({}, optional={
    "from": addresses, "to": st.one_of(addresses, st.none()), "data": data_values, "input": data_values,
    "value": quantities, "gas": quantities, "gasPrice": quantities, "maxFeePerGas": quantities,
    "maxPriorityFeePerGas": quantities, "nonce": quantities, "type": quantities, "chainId": quantities,
    "accessList": st.lists(st.fixed_dictionaries({"address": addresses, "storageKeys": st.lists(hashes, max_size=2)}),
                           max_size=2),
})
topics = st.lists(st.one_of(st.none(), hashes, st.lists(st.one_of(hashes, st.none()), max_size=3)), max_size=5)
filters = st.fixed_dictionaries({}, optional={
    "fromBlock": block_ids, "toBlock": block_ids, "blockHash": hashes, "topics": topics,
    "address": st.one_of(addresses, st.lists(addresses, max_size=3)),
})
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


@st.composite
def raw_transactions(draw) -> str:
    """A signed transaction with drawn fields (often valid, often not), or bytes that only look like one."""
    kind = draw(st.sampled_from(["signed", "signed", "bytes", "typed-junk"]))
    if kind == "bytes":
        return hex_of(draw(st.binary(max_size=200)))
    if kind == "typed-junk":
        return hex_of(bytes([draw(st.integers(0, 5))]) + draw(st.binary(max_size=120)))
    from eth_account import Account

    fields = {
        "chainId": draw(st.sampled_from([1, 11155111, 5, 0]) | st.integers(0, 2**64)),
        "nonce": draw(st.integers(0, 3) | st.integers(0, 2**64 - 1)),
        "to": draw(st.sampled_from(["0x000000000000000000000000000000000000dEaD", "0x" + "00" * 20, ""])),
        "value": draw(st.integers(0, 10**18) | st.integers(0, 2**256 - 1)),
        "gas": draw(st.sampled_from([21000, 0, 20999, 30_000_000, 30_000_001]) | st.integers(0, 2**64 - 1)),
        "data": hex_of(draw(st.binary(max_size=16))),
    }
    if draw(st.booleans()):
        fields["maxFeePerGas"] = draw(st.integers(0, 100 * 10**9) | st.integers(0, 2**256 - 1))
        fields["maxPriorityFeePerGas"] = draw(st.integers(0, 2 * 10**9))
        fields["type"] = 2
    else:
        fields["gasPrice"] = draw(st.integers(0, 100 * 10**9) | st.integers(0, 2**256 - 1))
    if not fields["to"]:
        del fields["to"]
    try:
        signed = Account.from_key(DEV_PRIVATE_KEY).sign_transaction(fields)
    except Exception:  # eth_account refuses some drawn values: send bytes instead
        return hex_of(draw(st.binary(max_size=120)))
    return hex_of(signed.raw_transaction)


def params_for(method: str) -> st.SearchStrategy:
    specific = {
        "eth_call": st.tuples(tx_objects, block_ids).map(list) | st.tuples(tx_objects, block_ids, json_values).map(list),
        "eth_estimateGas": st.tuples(tx_objects).map(list) | st.tuples(tx_objects, block_ids).map(list),
        "eth_getLogs": st.tuples(filters).map(list),
        "eth_newFilter": st.tuples(filters).map(list),
        "eth_sendRawTransaction": st.tuples(raw_transactions()).map(list),
        "eth_feeHistory": st.tuples(quantities | st.integers(-5, 2000), block_ids,
                                    st.lists(st.floats(allow_nan=True) | st.integers(-5, 200), max_size=5)).map(list),
        "eth_getBlockByNumber": st.tuples(block_ids, st.booleans() | json_values).map(list),
        "eth_getBlockByHash": st.tuples(hashes, st.booleans()).map(list),
        "eth_getBalance": st.tuples(addresses, block_ids).map(list),
        "eth_getCode": st.tuples(addresses, block_ids).map(list),
        "eth_getStorageAt": st.tuples(addresses, quantities, block_ids).map(list),
        "eth_getTransactionCount": st.tuples(addresses, block_ids).map(list),
        "eth_getFilterChanges": st.tuples(quantities | hashes | json_values).map(list),
        "eth_getFilterLogs": st.tuples(quantities | hashes | json_values).map(list),
        "eth_uninstallFilter": st.tuples(quantities | hashes | json_values).map(list),
        "web3_sha3": st.tuples(data_values).map(list),
    }
    generic = st.lists(st.one_of(quantities, data_values, addresses, hashes, block_ids, tx_objects, filters,
                                 json_values), max_size=4)
    odd = st.one_of(json_values, st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    return st.one_of(specific.get(method, generic), generic, odd)


@st.composite
def method_calls(draw) -> dict:
    method = draw(st.sampled_from(REAL_METHODS))
    call: dict[str, Any] = {"jsonrpc": "2.0", "id": draw(st.integers(0, 2**70) | st.text(max_size=10)),
                            "method": method}
    if draw(st.integers(0, 9)):
        call["params"] = draw(params_for(method))
    return call


# ---------------------------------------------------------------------------------------------- HTTP properties


@fuzz("envelopes")
@given(body=bodies, network=st.sampled_from((None, *NETWORKS)))
def test_fuzzed_json_rpc_bodies(alive: Served, body: str, network: str | None) -> None:
    check_body(alive, body.encode("utf-8", errors="surrogatepass"), network=network)


@fuzz("method_params")
@given(call=method_calls(), key=st.sampled_from([OPEN_KEY, OPEN_KEY, OPEN_KEY, ALLOW_KEY]),
       network=st.sampled_from(NETWORKS))
def test_random_params_for_real_methods(alive: Served, call: dict, key: str, network: str) -> None:
    body = json.dumps(call).encode()
    headers = {"User-Agent": "web3.py/7", "Origin": "https://app.example.com"} if key == ALLOW_KEY else {}
    reply = post(alive, body, key=key, network=network, headers=headers)
    assert_valid_http_reply(reply, [call["id"]] if reply.status_code == 200 else None)
    alive.example_done()


@fuzz("raw_bodies")
@given(body=st.one_of(st.binary(max_size=3000), st.binary(max_size=64).map(lambda b: b'{"jsonrpc":"2.0","id":1,' + b),
                      st.sampled_from([b"", b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b"\x00", b"{" * 100_000,
                                       b'"' + b"a" * (MAX_BODY + 1) + b'"'])))
def test_raw_byte_bodies(alive: Served, body: bytes) -> None:
    check_body(alive, body)


@fuzz("batches")
@given(size=st.one_of(st.integers(0, MAX_BATCH), st.integers(MAX_BATCH + 1, MAX_BATCH * 3),
                      st.sampled_from([MAX_BATCH, MAX_BATCH + 1, 1000, 5000])),
       method=st.sampled_from(["eth_chainId", "eth_blockNumber", "eth_getBalance", "no_such_method"]),
       notifications=st.booleans())
def test_batches_up_to_and_over_the_limit(alive: Served, size: int, method: str, notifications: bool) -> None:
    calls = [{"jsonrpc": "2.0", "method": method, "params": [DEV_ADDRESS] if method == "eth_getBalance" else []}
             for _ in range(size)]
    for i, call in enumerate(calls):
        if not (notifications and i % 3 == 0):
            call["id"] = i
    body = json.dumps(calls).encode()
    reply = post(alive, body)
    kind = assert_valid_http_reply(reply)
    if len(body) > MAX_BODY:
        assert reply.status_code == 413 and reply.content == replies.body_too_large(MAX_BODY).body
    elif size > MAX_BATCH:
        assert kind == "refusal" and reply.content == replies.batch_too_large(size, MAX_BATCH).body
    elif size == 0:
        assert reply.json()["error"]["code"] == -32600
    else:
        assert kind == "rpc"
        assert [r["id"] for r in reply.json()] == [c["id"] for c in calls if "id" in c]
    alive.example_done()


# ---------------------------------------------------------------------------------------------- headers

header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60).map(lambda s: s.strip())


def to_bytes(value: str) -> bytes:
    return value.strip(" \t").encode("latin-1")  # HTTP drops a value's outer white space (h11 refuses to send it)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@st.composite
def authorizations(draw, token: str) -> str | None:
    return draw(st.one_of(
        st.none(), st.none(), st.none(),
        st.just(basic("", SECRET)), st.just("Bearer " + token), st.just(basic("anyone", SECRET)),
        header_text.map(lambda s: basic("", s)),
        st.sampled_from(["Bearer", "Bearer ", "bearer  " + token, "BEARER " + token, "Bearer " + token,
                         "Bearer " + token[:-3] + "abc", "Bearer " + token + ".x", "Basic", "Basic !!!", "Basic Og==",
                         "Negotiate abc", "Bearer a.b.c", "Bearer ..", "Bearer " + "A" * 20000]),
        st.tuples(st.sampled_from(["Bearer ", "Basic ", "bearer\t", ""]), header_text).map("".join),
        st.binary(max_size=200).map(lambda b: "Bearer " + base64.urlsafe_b64encode(b).decode().rstrip("=")),
    ))


hosts = st.one_of(
    st.none(),
    st.sampled_from(["localhost", "127.0.0.1", "mainnet.localhost:8545", "sepolia.infura.io", "SEPOLIA.infura.io",
                     "base-sepolia.localhost", "celo-mainnet.localhost", "nosuch.infura.io", ".", ":", "[::1]:80",
                     "mainnet", "a" * 300]),
    header_text,
)
origins = st.one_of(st.none(), st.sampled_from(["https://app.example.com", "https://example.com", "http://localhost:3000",
                                                "null", "https://a.b.example.com", "file://", "*"]), header_text)
user_agents = st.one_of(st.none(), st.sampled_from(["web3.py/7.0", "Mozilla/5.0", "curl/8", ""]), header_text)
content_types = st.one_of(st.none(), st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                                      "multipart/form-data; boundary=x", "application/json; charset=latin-1",
                                                      "application/octet-stream"]), header_text)


@fuzz("headers")
@given(data=st.data())
def test_fuzzed_headers(alive: Served, data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(KEYS), "key")
    headers: dict[str, bytes] = {}
    for name, strategy in (("Authorization", authorizations(alive.token)), ("Origin", origins),
                           ("User-Agent", user_agents), ("Host", hosts), ("Content-Type", content_types)):
        value = data.draw(strategy, name)
        if value is not None:
            headers[name] = to_bytes(value) if isinstance(value, str) else value
    call = data.draw(st.sampled_from([
        {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 7, "method": "eth_getBalance", "params": [ALLOWED_ADDRESS, "latest"]},
        {"jsonrpc": "2.0", "id": 7, "method": "eth_getBalance", "params": [DEV_ADDRESS, "latest"]},
        {"jsonrpc": "2.0", "id": 7, "method": "eth_getTransactionCount", "params": [DEV_ADDRESS]},
    ]), "call")
    request = alive.client.build_request("POST", alive.url(key), content=json.dumps(call).encode(), headers=headers)
    if "User-Agent" not in headers:
        del request.headers["User-Agent"]  # httpx's own would stand in for a missing one
    reply = alive.client.send(request)
    kind = assert_valid_http_reply(reply, [7] if reply.status_code == 200 else None)
    if key == OPEN_KEY:
        # the open key has no secret, JWT or allowlist: only a wrong secret or a bad JWT refuses it
        assert kind == "rpc" or reply.status_code == 401 or reply.status_code == 403, reply.content
    alive.example_done()


# ---------------------------------------------------------------------------------------------- paths

path_segments = st.one_of(
    st.sampled_from(["v3", "ws", "v3", *NETWORKS, NO_WS_NETWORK, "solana-mainnet", "", ".", "..", "%2F", "%00",
                     "_mock", "V3", "v3.0", "%76%33", OPEN_KEY, OPEN_KEY.upper(), "0" * 33, ALLOW_KEY, SECRET_KEY]),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="/?#%\x7f"), max_size=12),
)


infura_like_paths = st.tuples(
    st.lists(st.sampled_from([*NETWORKS, NO_WS_NETWORK, "ws", "v3"]), max_size=2),
    st.sampled_from(["v3", "ws/v3", "v3/v3", "V3"]),
    st.lists(st.sampled_from(KEYS) | path_segments, max_size=2),
).map(lambda parts: [*parts[0], *parts[1].split("/"), *parts[2]])


@fuzz("paths")
@given(segments=st.one_of(st.lists(path_segments, max_size=6), infura_like_paths),
       method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
       trailing=st.booleans())
def test_fuzzed_paths_and_methods(alive: Served, segments: list[str], method: str, trailing: bool) -> None:
    path = "/" + "/".join(segments) + ("/" if trailing else "")
    body = b'{"jsonrpc":"2.0","id":3,"method":"eth_chainId","params":[]}'
    request = alive.client.build_request(method, alive.process.base_url + path,
                                         content=body if method in ("POST", "PUT", "PATCH") else None)
    reply = alive.client.send(request)
    if request.url.path.startswith("/_mock/"):  # the control plane: schemathesis's ground (tests/test_schemathesis.py)
        assert reply.status_code < 500
        assert_no_leak(reply.content)
    else:
        assert_valid_http_reply(reply, [3] if reply.status_code == 200 else None, head=method == "HEAD")
        if method not in ("POST", "HEAD"):
            assert reply.content == b"404 page not found\n"
    alive.example_done()


# ---------------------------------------------------------------------------------------------- WebSocket

CLEAN_CLOSE_CODES = {1000, 1007, 1008, 1009, 1013}  # normal, bad UTF-8, policy, too big, try later
ABNORMAL_CLOSE = 1006  # no close frame received
SENTINEL = "sentinel"


def assert_ws_frame(frame: str | bytes) -> None:
    assert isinstance(frame, str), frame  # the server answers in text frames
    assert_no_leak(frame.encode())
    document = json.loads(frame)
    if isinstance(document, dict) and document.get("method") == "eth_subscription":
        assert set(document) == {"jsonrpc", "method", "params"} and set(document["params"]) == {"subscription", "result"}
        event("ws notification")
        return
    assert_rpc_document(document)
    first = document[0] if isinstance(document, list) and document else document
    if isinstance(first, dict):
        event("ws rpc result" if "result" in first else f"ws rpc error {first['error']['code']}")


def violates_protocol(kind: str, payload: str | bytes) -> bool:
    """A frame over the message size limit, or a text frame that is not UTF-8."""
    if len(payload) > WS_MAX_MESSAGE:
        return True
    if kind == "raw-text":
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return True
    return False


frames = st.one_of(
    bodies.map(lambda text: ("text", text)),
    st.builds(lambda call: ("text", json.dumps(call)), method_calls()),
    st.binary(max_size=500).map(lambda raw: ("binary", raw)),
    bodies.map(lambda text: ("binary", text.encode("utf-8", errors="surrogatepass"))),
    st.binary(min_size=1, max_size=40).map(lambda raw: ("raw-text", raw)),  # a text frame that may not be UTF-8
    st.sampled_from([("text", "x" * (WS_MAX_MESSAGE + 10)), ("binary", b"[" * (WS_MAX_MESSAGE + 1)),
                     ("text", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]})),
                     ("text", json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}
                                          for i in range(MAX_BATCH + 1)]))]),
)


async def ws_exchange(url: str, sent: list[tuple[str, Any]], headers: dict[str, str]) -> tuple[list, int | None]:
    """Send the frames and a sentinel call; collect every frame up to the sentinel's reply, or the close code."""
    received: list = []
    async with websockets.connect(url, proxy=None, open_timeout=20, max_size=None, additional_headers=headers,
                                  user_agent_header=headers.get("User-Agent", "websockets")) as ws:
        try:
            for kind, payload in sent:
                if kind == "text":
                    await ws.send(payload)
                elif kind == "binary":
                    await ws.send(payload, text=False)
                else:
                    await ws.send(payload, text=True)  # bytes sent as a text frame, unchecked
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": SENTINEL, "method": "eth_chainId", "params": []}))
            async with asyncio.timeout(30):
                while True:
                    frame = await ws.recv()
                    if isinstance(frame, str) and SENTINEL in frame and json.loads(frame).get("id") == SENTINEL:
                        return received, None
                    received.append(frame)
        except websockets.ConnectionClosed as closed:
            return received, closed.rcvd.code if closed.rcvd else ABNORMAL_CLOSE


def test_fuzzed_websocket_frames(alive: Served) -> None:
    """Random frames on fresh sockets; then every socket is gone from the server's counts (one test, so that under
    xdist the counts are read on the server the frames went to)."""
    run_websocket_frames(alive)
    assert_websocket_counts_return_to_zero(alive)


@fuzz("ws_frames")
@given(sent=st.lists(frames, min_size=1, max_size=4),
       target=st.sampled_from([(OPEN_KEY, None), (OPEN_KEY, "sepolia"), (ALLOW_KEY, None)]))
def run_websocket_frames(alive: Served, sent: list, target: tuple[str, str | None]) -> None:
    key, network = target
    headers = {"Origin": "https://app.example.com", "User-Agent": "web3.py/7"} if key == ALLOW_KEY else {}
    received, close_code = asyncio.run(ws_exchange(alive.ws_url(key, network), sent, headers))
    for frame in received:
        assert_ws_frame(frame)
    if close_code is not None:
        event(f"ws closed {close_code}")
        clean = CLEAN_CLOSE_CODES
        if any(violates_protocol(kind, payload) for kind, payload in sent):
            # the server fails the connection at once (1009, 1007) and closes it with the client's later frames
            # unread: the kernel then resets the connection, which can drop the close frame before the client reads it
            clean = clean | {ABNORMAL_CLOSE}
        assert close_code in clean, (close_code, [(kind, payload[:200]) for kind, payload in sent])
    alive.example_done()


def assert_websocket_counts_return_to_zero(alive: Served) -> None:
    async def open_and_drop() -> None:
        sockets = [await websockets.connect(alive.ws_url(), proxy=None, open_timeout=20) for _ in range(5)]
        await sockets[0].send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
        await sockets[0].recv()
        for ws in sockets:
            await ws.close()

    asyncio.run(open_and_drop())
    deadline = time.monotonic() + 10
    while alive.websocket_counts() != {"connections": 0, "subscriptions": 0}:
        assert time.monotonic() < deadline, alive.websocket_counts()
        time.sleep(0.05)


def test_wrong_websocket_handshakes_get_the_http_refusals(alive: Served) -> None:
    async def handshake(url: str, headers: dict | None = None) -> tuple[int, bytes]:
        try:
            async with websockets.connect(url, proxy=None, open_timeout=20, additional_headers=headers):
                return 101, b""
        except websockets.InvalidStatus as exc:
            return exc.response.status_code, exc.response.body

    base = alive.process.base_url.replace("http://", "ws://")
    cases = [
        (f"{base}/ws/v3/{'0' * 32}", None, replies.invalid_project_id()),
        (f"{base}/ws/v3/", None, replies.project_id_required()),
        (f"{base}/{NO_WS_NETWORK}/ws/v3/{OPEN_KEY}", None, replies.page_not_found()),
        (f"{base}/ws/v4/{OPEN_KEY}", None, replies.page_not_found()),
        (f"{base}/ws/v3/{SECRET_KEY}", {"Authorization": basic("", "wrong")}, replies.invalid_secret("")),
        (f"{base}/ws/v3/{JWT_KEY}", {"Authorization": "Bearer x.y.z"}, replies.invalid_jwt("")),
        (f"{base}/base-sepolia/ws/v3/{ALLOW_KEY}", None, replies.network_not_allowed("base-sepolia")),
    ]
    for url, headers, refusal in cases:
        status, body = asyncio.run(handshake(url, headers))
        assert (status, body) == (refusal.status, refusal.body), url
