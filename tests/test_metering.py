"""Credits and rate limits (infura.md section 5): exact arithmetic, exact 402/429 bodies, windows, races."""

from __future__ import annotations

import asyncio
import calendar
import time

import httpx
import pytest
from requests.exceptions import HTTPError
from web3 import Web3

from mockinfura.config import ApiKeyConfig
from mockinfura.gateway.metering import CreditTable, Meter, utc_day
from tests.server import ServerProcess

PLAIN = "a" * 32
FREE = "b" * 32
KEY_PER_SECOND = "c" * 32
KEY_PER_DAY = "d" * 32
LEGACY = "e" * 32
CONFIG = f"""
[api_keys.plain]
key = "{PLAIN}"
[api_keys.free]
key = "{FREE}"
plan = "free"
[api_keys.per_second]
key = "{KEY_PER_SECOND}"
credits_per_second = 100
[api_keys.per_day]
key = "{KEY_PER_DAY}"
credits_per_day = 850
"""


@pytest.fixture(scope="module")
def server():
    with ServerProcess(CONFIG) as process:
        yield process


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        http.post("/_mock/reset")
        http.post("/_mock/clock", json={"reset": True})
        yield http


def call(client, key, method, params=None, call_id=1, network="mainnet"):
    return client.post(f"/{network}/v3/{key}", json={"jsonrpc": "2.0", "id": call_id, "method": method,
                                                     "params": params or []})


def usage_of(client, key):
    report = client.get("/_mock/usage").json()["keys"].get(key, {"days": {}})
    return report["days"]


# ---------------------------------------------------------------- the table

def test_credit_table_lookup():
    table = CreditTable.load()
    assert table.cost("eth_blockNumber") == 80
    assert table.cost("eth_chainId") == 5
    assert table.cost("eth_getLogs") == 255
    assert table.cost("eth_getBlockReceipts") == 1000
    assert table.cost("eth_someday") == 80  # unknown methods: the default
    assert table.client_error == 5
    assert table.events["newHeads"] == 50
    assert table.plans["free"].per_day == 3_000_000 and table.plans["free"].per_second == 500
    assert table.plans["unlimited"].per_day == 0


def test_meter_reached_rule_unit():
    meter = Meter()
    key = ApiKeyConfig(key=PLAIN, credits_per_day=100)
    now = 1_800_000_000.0
    assert meter.admit(key, 80, now) is None
    assert meter.admit(key, 80, now) is None  # 80 < 100: admitted, and this call crosses the limit
    hit = meter.admit(key, 80, now)
    assert hit is not None and hit.kind == "key_daily"
    # the next UTC day starts afresh
    tomorrow = calendar.timegm(time.strptime(utc_day(now), "%Y-%m-%d")) + 86_400
    assert meter.admit(key, 80, tomorrow) is None


def test_meter_order_daily_before_throughput_plan_before_key():
    meter = Meter()
    key = ApiKeyConfig(key=PLAIN, plan="free", credits_per_second=10, credits_per_day=20)
    now = 1_800_000_000.0
    meter.admit(key, 3_000_000, now)
    assert meter.check(key, now).kind == "plan_daily"
    meter2 = Meter()
    meter2.admit(key, 25, now)
    assert meter2.check(key, now).kind == "key_daily"
    meter3 = Meter()
    key3 = ApiKeyConfig(key=PLAIN, plan="free", credits_per_second=10)
    meter3.admit(key3, 600, now)
    assert meter3.check(key3, now).kind == "plan_throughput"
    assert meter3.check(key3, now + 1.01) is None  # the one-second window has passed


# ---------------------------------------------------------------- over HTTP

def test_exact_credit_arithmetic(client):
    assert call(client, PLAIN, "eth_blockNumber").status_code == 200
    assert call(client, PLAIN, "eth_chainId").status_code == 200
    assert call(client, PLAIN, "eth_getLogs", [{"fromBlock": "0x0"}]).status_code == 200
    batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": []}
             for i, m in enumerate(["eth_blockNumber", "eth_chainId", "eth_gasPrice"])]
    assert client.post(f"/v3/{PLAIN}", json=batch).status_code == 200
    days = usage_of(client, PLAIN)
    (day,) = days.values()
    assert day["credits"] == 80 + 5 + 255 + (80 + 5 + 80)
    assert day["methods"]["eth_blockNumber"] == {"calls": 2, "credits": 160}
    assert day["methods"]["eth_chainId"] == {"calls": 2, "credits": 10}
    assert day["methods"]["eth_getLogs"] == {"calls": 1, "credits": 255}
    journal = client.get("/_mock/requests", params={"key": PLAIN}).json()
    assert [entry["credits"] for entry in journal] == [80, 5, 255, 165]


def test_refusals_cost_5_and_unknown_methods_80(client):
    assert client.post(f"/v3/{PLAIN}", content=b"not json").status_code == 400
    assert call(client, PLAIN, "eth_somethingNew").json()["error"]["code"] == -32601
    (day,) = usage_of(client, PLAIN).values()
    assert day["credits"] == 5 + 80
    journal = client.get("/_mock/requests", params={"key": PLAIN}).json()
    assert [entry["credits"] for entry in journal] == [5, 80]


def test_key_throughput_429_exact(client):
    for _attempt in range(3):  # each attempt needs its three calls inside one second
        client.post("/_mock/clock", json={"advance": 5})
        started = time.monotonic()
        first = call(client, KEY_PER_SECOND, "eth_blockNumber", call_id=1)
        second = call(client, KEY_PER_SECOND, "eth_blockNumber", call_id=2)  # 80 < 100: served, crosses
        third = call(client, KEY_PER_SECOND, "eth_blockNumber", call_id="abc")
        if time.monotonic() - started < 0.8:
            break
    assert first.status_code == 200 and second.status_code == 200
    assert third.status_code == 429
    assert third.headers["content-type"] == "application/json"
    assert third.content == (
        b'{"jsonrpc":"2.0","id":"abc","error":{"code":429,"event":-33300,"message":"Too Many Requests",'
        b'"details":"You have surpassed your user-defined key throughput limit setting. To make more requests with '
        b'this key, review key setting configurations."}}'
    )
    client.post("/_mock/clock", json={"advance": 2})
    assert call(client, KEY_PER_SECOND, "eth_blockNumber").status_code == 200
    # 429s cost nothing
    journal = client.get("/_mock/requests", params={"key": KEY_PER_SECOND}).json()
    assert [e["credits"] for e in journal if e["status"] == 429] == [0] * sum(e["status"] == 429 for e in journal)


def test_key_daily_429_and_rollover(client):
    today = calendar.timegm(time.strptime("2031-03-04", "%Y-%m-%d"))
    client.post("/_mock/clock", json={"set": today + 86_400 - 30})  # 23:59:30 UTC
    statuses = [call(client, KEY_PER_DAY, "eth_blockNumber", call_id=n).status_code for n in range(12)]
    assert statuses == [200] * 11 + [429]  # 10 calls = 800 < 850; the 11th crosses; the 12th is refused
    refused = call(client, KEY_PER_DAY, "eth_chainId", call_id=7)
    assert refused.json() == {"jsonrpc": "2.0", "id": 7, "error": {
        "code": 429, "event": -33400, "message": "Too Many Requests",
        "details": "You have surpassed your user-defined key daily credit limit setting. To make more requests with "
                   "this key, review key setting configurations."}}
    client.post("/_mock/clock", json={"advance": 60})  # past 00:00 UTC
    assert call(client, KEY_PER_DAY, "eth_blockNumber").status_code == 200
    days = usage_of(client, KEY_PER_DAY)
    assert days["2031-03-04"]["credits"] == 880 and days["2031-03-05"]["credits"] == 80


def test_plan_daily_402_exact(client):
    client.post("/_mock/clock", json={"set": calendar.timegm(time.strptime("2031-05-01", "%Y-%m-%d")) + 3600})
    big = [{"jsonrpc": "2.0", "id": i, "method": "debug_traceTransaction", "params": []} for i in range(1000)]
    # free plan: 3,000,000 a day and 500 a second; walk the clock so only the daily limit bites
    for _ in range(3):
        assert client.post(f"/v3/{FREE}", json=big).status_code == 200  # 1,000,000 credits each
        client.post("/_mock/clock", json={"advance": 2})
    refused = call(client, FREE, "eth_blockNumber", call_id=42)
    assert refused.status_code == 402
    assert refused.content == (
        b'{"jsonrpc":"2.0","id":42,"error":{"code":402,"event":-33000,"message":"Payment Required","details":'
        b'"You have reached your daily credit limit. To continue making requests, upgrade your plan or purchase '
        b'additional credits"}}'
    )


def test_plan_throughput_429_exact(client):
    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []} for i in range(7)]  # 560
    for _attempt in range(3):
        client.post("/_mock/clock", json={"advance": 5})
        started = time.monotonic()
        assert client.post(f"/v3/{FREE}", json=batch).status_code == 200
        refused = call(client, FREE, "eth_chainId", call_id=None)
        if time.monotonic() - started < 0.8:
            break
    assert refused.status_code == 429
    assert refused.json()["error"] == {
        "code": 429, "event": -33200, "message": "Too Many Requests",
        "details": "You have surpassed your allowed throughput limit. Reduce the amount of requests per second or "
                   "upgrade for more capacity."}
    assert refused.json()["id"] is None


def test_concurrent_callers_cannot_race_past_a_limit(client, server):
    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            replies = await asyncio.gather(*[
                http.post(f"/v3/{KEY_PER_DAY}", json={"jsonrpc": "2.0", "id": n, "method": "eth_blockNumber"})
                for n in range(60)])
        return [r.status_code for r in replies]

    client.post("/_mock/clock", json={"set": calendar.timegm(time.strptime("2032-01-01", "%Y-%m-%d")) + 60})
    statuses = asyncio.run(burst())
    admitted = statuses.count(200)
    assert admitted == 11  # 850 / 80: ten calls reach 800, the eleventh crosses, the rest are refused
    assert statuses.count(429) == 49
    (day,) = [d for name, d in usage_of(client, KEY_PER_DAY).items() if name == "2032-01-01"]
    assert day["credits"] == admitted * 80 <= 850 + 80


def test_legacy_style():
    config = f'[server]\nrate_limit_style = "legacy"\n[api_keys.l]\nkey = "{LEGACY}"\ncredits_per_day = 10\n'
    with ServerProcess(config) as process, httpx.Client(base_url=process.base_url) as http:
        assert call(http, LEGACY, "eth_blockNumber").status_code == 200
        refused = call(http, LEGACY, "eth_blockNumber", call_id=9)
        assert refused.status_code == 429
        body = refused.json()
        assert body["id"] == 9
        assert body["error"]["code"] == -32005
        assert body["error"]["message"] == "project ID request rate exceeded"
        assert set(body["error"]["data"]["rate"]) == {"allowed_rps", "backoff_seconds", "current_rps"}
        assert body["error"]["data"]["see"] == "https://infura.io/docs/ethereum/json-rpc/ratelimits"


def test_web3_meets_a_429(client, server):
    """web3.py retries a 429 by default; with retries off it raises HTTPError at once. The journal shows both."""
    client.post("/_mock/clock", json={"set": calendar.timegm(time.strptime("2033-01-01", "%Y-%m-%d")) + 60})
    for n in range(11):
        call(client, KEY_PER_DAY, "eth_blockNumber", call_id=n)
    client.delete("/_mock/requests")
    w3 = Web3(Web3.HTTPProvider(f"{server.base_url}/v3/{KEY_PER_DAY}", exception_retry_configuration=None))
    with pytest.raises(HTTPError, match="429"):
        _ = w3.eth.block_number
    journal = client.get("/_mock/requests").json()
    assert [(e["status"], e["credits"]) for e in journal] == [(429, 0)]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("plan", '"gold"', "expected one of unlimited, free, developer, team"),
    ("credits_per_second", "-1", "must not be negative"),
    ("credits_per_day", '"lots"', "expected an integer"),
    ("credits_per_day", "1.5", "expected an integer"),
])
def test_bad_limits_are_startup_errors(tmp_path, field, value, words):
    import subprocess
    import sys

    path = tmp_path / "c.toml"
    path.write_text(f'[api_keys.k]\nkey = "{PLAIN}"\n{field} = {value}\n')
    result = subprocess.run([sys.executable, "-m", "mockinfura", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"api_keys.k.{field}" in result.stderr and words in result.stderr
