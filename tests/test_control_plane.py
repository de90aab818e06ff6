"""The control plane's routes (interface.md section 4) over HTTP: journal, keys, clock, reset, usage, OpenAPI."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from mockinfura.app import create_app
from mockinfura.config import parse_config
from mockinfura.testing.server import MockInfura
from mockinfura.tokens import fingerprint_of_pem, generate_key_pair, make_token

OPEN_KEY = "0123456789abcdef0123456789abcdef"
JOURNAL_FIELDS = {"time", "network", "key", "methods", "client", "user_agent", "origin", "decision", "reason",
                  "status", "credits"}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def infura() -> Iterator[MockInfura]:
    with MockInfura() as server:
        yield server


@pytest.fixture
def http(infura: MockInfura) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=infura.base_url, timeout=30, trust_env=False) as client:
        yield client
        client.post("/_mock/clock", json={"reset": True})


def rpc(http: httpx.Client, path: str, method: str = "eth_blockNumber", params: list | None = None,
        **kwargs: object) -> httpx.Response:
    return http.post(path, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, **kwargs)


def new_key(http: httpx.Client, **entry: object) -> tuple[dict, bytes]:
    """A key with a fresh ES256 key pair; (the server's reply, the private PEM)."""
    private_pem, public_pem = generate_key_pair("ES256")
    reply = http.post("/_mock/keys", json={"jwt_public_keys": [{"name": "t", "public_key": public_pem.decode()}],
                                           **entry})
    assert reply.status_code == 201, reply.text
    return reply.json(), private_pem


# ---------------------------------------------------------------- health and rpc


def test_health(http: httpx.Client) -> None:
    body = http.get("/_mock/health").json()
    assert body["status"] == "ok"
    assert "mainnet" in body["networks"] and "sepolia" in body["networks"]
    assert isinstance(body["built"], list) and body["api_keys"] >= 2
    rpc(http, "/_mock/rpc/optimism-sepolia")
    assert "optimism-sepolia" in http.get("/_mock/health").json()["built"]


def test_control_rpc_single_batch_and_notifications(http: httpx.Client) -> None:
    single = rpc(http, "/_mock/rpc/sepolia", "eth_chainId").json()
    assert single == {"jsonrpc": "2.0", "id": 1, "result": "0xaa36a7"}
    batch = http.post("/_mock/rpc/sepolia", json=[
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "evm_mine"},  # a notification: done, not answered
        {"jsonrpc": "2.0", "id": "b", "method": "nope_nothing"},
    ]).json()
    assert [r["id"] for r in batch] == ["a", "b"]
    assert batch[1]["error"]["code"] == -32601


def test_control_rpc_empty_batch_is_one_error(http: httpx.Client) -> None:
    reply = http.post("/_mock/rpc/sepolia", json=[])
    assert reply.status_code == 200
    assert reply.json() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "empty batch"}}


def test_control_rpc_bad_input(http: httpx.Client) -> None:
    assert http.post("/_mock/rpc/sepolia", content=b"{nope").status_code == 400
    unknown = rpc(http, "/_mock/rpc/atlantis")
    assert unknown.status_code == 404 and "atlantis" in unknown.json()["error"]


# ---------------------------------------------------------------- the request journal


def test_journal_entries_carry_the_decision_its_reason_and_the_status(http: httpx.Client, infura: MockInfura) -> None:
    key, private_pem = new_key(http, require_jwt=True)
    url = f"/sepolia/v3/{key['key']}"
    kid = key["jwt_public_keys"][0]["id"]
    rpc(http, url, headers={"User-Agent": "my-app/1.0", "Origin": "https://app.example"})
    rpc(http, url, headers={"Authorization": f"Bearer {make_token(private_pem, kid)}"})
    rpc(http, url, headers={"Authorization": f"Bearer {make_token(private_pem, 'f' * 32)}"})
    rpc(http, url, headers={"Authorization": f"Bearer {make_token(private_pem, kid, now=infura.clock_now() - 7200)}"})
    entries = http.get("/_mock/requests", params={"key": key["key"]}).json()
    assert [(e["decision"], e["status"], e["reason"]) for e in entries] == [
        ("refused", 401, "jwt required and missing"),
        ("allowed", 200, f"jwt ok (kid {kid})"),
        ("refused", 401, f"unknown kid {'f' * 32} (no such public key on this API key)"),
        ("refused", 401, "jwt expired"),
    ]
    first = entries[0]
    assert JOURNAL_FIELDS <= set(first)
    assert ISO_MS.match(first["time"])
    assert (first["network"], first["key"], first["user_agent"], first["origin"]) == (
        "sepolia", key["key"], "my-app/1.0", "https://app.example")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", first["client"])
    assert entries[1]["methods"] == ["eth_blockNumber"] and entries[1]["credits"] >= 0


def test_journal_filters_and_clear(http: httpx.Client) -> None:
    http.delete("/_mock/requests")
    key = new_key(http)[0]["key"]
    rpc(http, f"/mainnet/v3/{key}", "eth_chainId")
    rpc(http, f"/sepolia/v3/{key}", "eth_blockNumber")
    http.post(f"/sepolia/v3/{key}", json=[{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                                          {"jsonrpc": "2.0", "id": 2, "method": "net_version"}])
    rpc(http, f"/sepolia/v3/{'9' * 32}", "eth_chainId")  # an unknown key
    everything = http.get("/_mock/requests").json()
    assert [e["methods"] for e in everything] == [["eth_chainId"], ["eth_blockNumber"], ["eth_chainId", "net_version"],
                                                  []]

    def methods(**filters: object) -> list[list[str]]:
        reply = http.get("/_mock/requests", params=filters)
        assert reply.status_code == 200, reply.text
        return [e["methods"] for e in reply.json()]

    assert methods(key=key) == [["eth_chainId"], ["eth_blockNumber"], ["eth_chainId", "net_version"]]
    assert methods(network="mainnet") == [["eth_chainId"]]
    assert methods(method="eth_chainId") == [["eth_chainId"], ["eth_chainId", "net_version"]]
    assert methods(method="net_version", network="sepolia", key=key) == [["eth_chainId", "net_version"]]
    assert methods(limit=2) == [["eth_chainId", "net_version"], []]  # the newest two, still oldest first
    assert methods(key=key, limit=1) == [["eth_chainId", "net_version"]]
    assert methods(limit=0) == []
    assert methods(decision="refused") == [[]]
    assert http.get("/_mock/requests", params={"key": "9" * 32}).json()[0]["reason"] == "unknown API key"
    assert http.get("/_mock/requests", params={"limit": -1}).status_code == 422
    assert http.get("/_mock/requests", params={"decision": "maybe"}).status_code == 422
    assert http.delete("/_mock/requests").json() == {"cleared": True}
    assert http.get("/_mock/requests").json() == []


# ---------------------------------------------------------------- API keys


def test_keys_create_read_replace_delete(http: httpx.Client) -> None:
    keys = {k["key"] for k in http.get("/_mock/keys").json()}
    assert OPEN_KEY in keys

    private_pem, public_pem = generate_key_pair("RS256")
    created = http.post("/_mock/keys", json={
        "label": "ci", "secret": "s3cret", "require_jwt": True, "networks": ["sepolia"],
        "allowlists": {"methods": ["eth_chainId"]},
        "jwt_public_keys": [{"name": "ci", "public_key": public_pem.decode()}],
    })
    assert created.status_code == 201
    entry = created.json()
    key = entry["key"]
    assert re.fullmatch("[0-9a-f]{32}", key)  # random, since the body named none
    [jwt_key] = entry["jwt_public_keys"]
    assert jwt_key["name"] == "ci" and jwt_key["alg"] == "RS256"
    assert re.fullmatch("[0-9a-f]{32}", jwt_key["id"])
    assert jwt_key["fingerprint"] == fingerprint_of_pem(public_pem)
    assert (entry["label"], entry["secret"], entry["networks"], entry["allowlists"]) == (
        "ci", "s3cret", ["sepolia"], {"methods": ["eth_chainId"]})

    assert http.get(f"/_mock/keys/{key}").json() == entry
    token = make_token(private_pem, jwt_key["id"])
    assert rpc(http, f"/sepolia/v3/{key}", "eth_chainId", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert http.post("/_mock/keys", json={"key": key}).status_code == 409

    replaced = http.put(f"/_mock/keys/{key}", json={"label": "open now"})
    assert replaced.status_code == 200
    assert replaced.json()["require_jwt"] is False and replaced.json()["jwt_public_keys"] == []
    assert rpc(http, f"/mainnet/v3/{key}", "eth_chainId").status_code == 200  # the new rules apply at once

    assert http.delete(f"/_mock/keys/{key}").json() == {"deleted": key}
    assert http.get(f"/_mock/keys/{key}").status_code == 404
    assert http.delete(f"/_mock/keys/{key}").status_code == 404
    assert rpc(http, f"/mainnet/v3/{key}", "eth_chainId").status_code == 401


def test_put_creates_with_the_urls_key(http: httpx.Client) -> None:
    key = "c" * 32
    http.delete(f"/_mock/keys/{key}")
    assert http.put(f"/_mock/keys/{key}", json={}).status_code == 201
    assert http.get(f"/_mock/keys/{key}").json()["key"] == key
    mismatch = http.put(f"/_mock/keys/{key}", json={"key": "d" * 32})
    assert mismatch.status_code == 400 and "differs" in mismatch.json()["error"]


@pytest.mark.parametrize(("entry", "problem"), [
    ({"key": "ABC"}, "api_keys.runtime.key: expected 32 lowercase hex characters"),
    ({"require_jwt": True}, "require_jwt: is true but the key has no jwt_public_keys"),
    ({"require_secret": True}, "require_secret: is true but the key has no secret"),
    ({"networks": ["atlantis"]}, "networks: unknown network 'atlantis'"),
    ({"allowlists": {"methods": ["x"] * 31}}, "at most 30 entries"),
    ({"jwt_public_keys": [{"public_key": "not a pem"}]}, "jwt_public_keys[0].public_key"),
    ({"colour": "blue"}, "colour: unknown field"),
])
def test_an_invalid_key_is_refused_with_its_problems(http: httpx.Client, entry: dict, problem: str) -> None:
    reply = http.post("/_mock/keys", json=entry)
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid API key"
    assert any(problem in line for line in reply.json()["problems"]), reply.json()


def test_a_key_body_must_be_an_object(http: httpx.Client) -> None:
    assert http.post("/_mock/keys", json=["x"]).status_code == 422


# ---------------------------------------------------------------- the clock


def test_clock_advance_set_reset(http: httpx.Client) -> None:
    import time

    clock = http.get("/_mock/clock").json()
    assert set(clock) == {"now", "iso", "offset"} and clock["offset"] == 0
    assert abs(clock["now"] - time.time()) < 5
    advanced = http.post("/_mock/clock", json={"advance": 3600}).json()
    assert advanced["offset"] == 3600 and abs(advanced["now"] - time.time() - 3600) < 5
    assert http.post("/_mock/clock", json={"advance": -600}).json()["offset"] == 3000
    moved = http.post("/_mock/clock", json={"set": 2_000_000_000}).json()
    assert abs(moved["now"] - 2_000_000_000) < 5 and moved["iso"].startswith("2033-05-18T03:33")
    assert http.post("/_mock/clock", json={"reset": True}).json()["offset"] == 0


@pytest.mark.parametrize("body", [{}, {"advance": 1, "set": 2}, {"advance": True}, {"advance": "1"},
                                  {"set": -1}, {"reset": False}, {"jump": 1}, {"advance": 1e13}])
def test_clock_bad_bodies(http: httpx.Client, body: dict) -> None:
    reply = http.post("/_mock/clock", json=body)
    assert reply.status_code == 400 and "expected" in reply.json()["error"]
    assert http.get("/_mock/clock").json()["offset"] == 0


def test_the_clock_drives_jwt_expiry(http: httpx.Client, infura: MockInfura) -> None:
    key, private_pem = new_key(http, require_jwt=True)
    kid = key["jwt_public_keys"][0]["id"]
    url = f"/sepolia/v3/{key['key']}"
    headers = {"Authorization": f"Bearer {make_token(private_pem, kid, ttl=600)}"}
    assert rpc(http, url, headers=headers).status_code == 200
    http.post("/_mock/clock", json={"advance": 601})
    refused = rpc(http, url, headers=headers)
    assert refused.status_code == 401
    assert http.get("/_mock/requests", params={"key": key["key"], "limit": 1}).json()[0]["reason"] == "jwt expired"
    http.post("/_mock/clock", json={"reset": True})
    assert rpc(http, url, headers=headers).status_code == 200  # the same token, valid again

    early = {"Authorization": f"Bearer {make_token(private_pem, kid, nbf=int(infura.clock_now()) + 300)}"}
    assert rpc(http, url, headers=early).status_code == 401
    http.post("/_mock/clock", json={"advance": 301})
    assert rpc(http, url, headers=early).status_code == 200


# ---------------------------------------------------------------- reset and usage


def test_reset_chains_journal_and_usage_but_not_keys() -> None:
    with MockInfura() as infura, httpx.Client(base_url=infura.base_url, trust_env=False, timeout=30) as http:
        key = new_key(http)[0]["key"]
        rpc(http, "/_mock/rpc/sepolia", "evm_mine")
        assert rpc(http, f"/sepolia/v3/{key}").json()["result"] == "0x1"
        assert http.get("/_mock/requests").json()
        assert http.post("/_mock/reset").json() == {"reset": True}
        assert http.get("/_mock/requests").json() == []
        assert http.get("/_mock/usage").json() == {"keys": {}}
        assert http.get(f"/_mock/keys/{key}").status_code == 200
        assert rpc(http, f"/sepolia/v3/{key}").json()["result"] == "0x0"


def test_usage_shape(http: httpx.Client) -> None:
    assert isinstance(http.get("/_mock/usage").json()["keys"], dict)


# ---------------------------------------------------------------- OpenAPI and access


def test_openapi_documents_the_control_plane(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    expected = {
        "/_mock/health": {"get"}, "/_mock/rpc/{network}": {"post"}, "/_mock/requests": {"get", "delete"},
        "/_mock/keys": {"get", "post"}, "/_mock/keys/{key}": {"get", "put", "delete"}, "/_mock/usage": {"get"},
        "/_mock/clock": {"get", "post"}, "/_mock/reset": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(spec["paths"][path]), path
        assert all(spec["paths"][path][m]["summary"] for m in methods)
    assert not [p for p in spec["paths"] if not p.startswith("/_mock/")]  # Infura's paths are not the mock's API
    parameters = {p["name"] for p in spec["paths"]["/_mock/requests"]["get"]["parameters"]}
    assert {"key", "network", "method", "limit"} <= parameters
    assert http.get("/docs").status_code == 200


async def _status_from(config: dict, client: tuple[str, int], headers: dict | None = None) -> int:
    app = create_app(parse_config(config))
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as http:
        return (await http.get("/_mock/health", headers=headers)).status_code


def test_the_control_plane_answers_loopback_clients_only() -> None:
    outside = ("203.0.113.7", 40000)
    assert asyncio.run(_status_from({}, ("127.0.0.1", 40000))) == 200
    assert asyncio.run(_status_from({}, ("::1", 40000))) == 200
    assert asyncio.run(_status_from({}, outside)) == 403
    assert asyncio.run(_status_from({"server": {"control": "open"}}, outside)) == 200
    token = {"server": {"control_token": "t0ken"}}
    assert asyncio.run(_status_from(token, outside, {"X-Mockinfura-Control-Token": "t0ken"})) == 200
    assert asyncio.run(_status_from(token, outside, {"X-Mockinfura-Control-Token": "wrong"})) == 403
