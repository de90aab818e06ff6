"""Concurrency (issue 8, part 3): many clients at once, nothing lost, nothing mined twice, nobody stalled.

- 16 concurrent clients (8 over HTTP, 8 over WebSocket) send 1,000 pre-signed value transfers from 16 dev accounts,
  each account's nonces spread over several connections and sent out of order: every transaction is mined exactly
  once, nonces and balances add up to the wei, and the journal has every request.
- A slow call on one network (many-block `evm_mine`, a wide `eth_getLogs`) does not stall another network, the same
  network's inline reads or the control plane.

One server for the module, asyncio clients (httpx.AsyncClient and websockets), fixed seeds, bounded by timeouts.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import httpx
import pytest
import websockets
from eth_account import Account
from eth_utils import to_checksum_address

from mockinfura.config import DEFAULT_MNEMONIC
from tests.server import ServerProcess
from tests.test_fuzz_http import StderrDrain, unexpected_server_log

OPEN_KEY = "0123456789abcdef0123456789abcdef"
NETWORK = "sepolia"
CHAIN_ID = 11155111
ACCOUNTS = 16
TRANSACTIONS = 1000
HTTP_CLIENTS = 8
WS_CLIENTS = 8
CLIENTS = HTTP_CLIENTS + WS_CLIENTS
HTTP_BATCH = 3  # half the HTTP clients send batches of this many transactions, the other half one per request
RECIPIENTS = [f"0x{'00' * 18}de{i:02x}" for i in range(1, 5)]  # neither dev accounts nor the coinbase
COINBASE = "0x" + "00" * 20
SEED = 8
SEND_TIMEOUT_SECONDS = 75.0
MAX_FEE = 20 * 10**9
TIP = 10**9
ZERO_BALANCE = 0

CONFIG = f"""
[chain]
accounts = {ACCOUNTS}

[api_keys.open]
key = "{OPEN_KEY}"
"""


@pytest.fixture(scope="module")
def served():
    with ServerProcess(CONFIG) as process:
        drain = StderrDrain(process)
        yield process
        assert process.process.poll() is None, "the server died"
        unexpected = unexpected_server_log(drain.text_after_stop())
        assert not unexpected, unexpected[-3000:]  # no exception inside the server either


@dataclass(frozen=True)
class SignedTx:
    sender: str
    nonce: int
    to: str
    value: int
    raw: str
    hash: str


def dev_accounts(count: int) -> list:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def sign_all(rng: random.Random) -> list[SignedTx]:
    """TRANSACTIONS value transfers, spread as evenly as can be over the ACCOUNTS dev accounts."""
    accounts = dev_accounts(ACCOUNTS)
    txs = []
    for i in range(TRANSACTIONS):
        account = accounts[i % ACCOUNTS]
        nonce = i // ACCOUNTS
        to = rng.choice(RECIPIENTS)
        value = rng.randint(1, 10**15)
        signed = account.sign_transaction({
            "chainId": CHAIN_ID, "nonce": nonce, "to": to_checksum_address(to), "value": value, "gas": 21000,
            "maxFeePerGas": MAX_FEE, "maxPriorityFeePerGas": TIP, "type": 2,
        })
        txs.append(SignedTx(account.address.lower(), nonce, to, value, "0x" + signed.raw_transaction.hex(),
                            "0x" + signed.hash.hex().removeprefix("0x")))
    return txs


def rpc_body(method: str, params: list, call_id: int | str = 1) -> dict:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}


async def batch(client: httpx.AsyncClient, url: str, calls: list[tuple[str, list]], size: int = 200) -> list:
    """Results of CALLS, in order, asked in batches; any error fails the test."""
    results = []
    for start in range(0, len(calls), size):
        body = [rpc_body(m, p, start + i) for i, (m, p) in enumerate(calls[start:start + size])]
        reply = await client.post(url, json=body)
        assert reply.status_code == 200, reply.text
        by_id = {r["id"]: r for r in reply.json()}
        for i in range(len(body)):
            answer = by_id[start + i]
            assert "error" not in answer, answer
            results.append(answer["result"])
    return results


async def single(client: httpx.AsyncClient, url: str, method: str, params: list) -> object:
    reply = await client.post(url, json=rpc_body(method, params))
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert "error" not in answer, answer
    return answer["result"]


async def http_client(url: str, txs: list[SignedTx], batched: bool) -> list[tuple[str, object]]:
    """One connection, requests one after another; (expected hash, reply) per transaction."""
    out = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        step = HTTP_BATCH if batched else 1
        for start in range(0, len(txs), step):
            chunk = txs[start:start + step]
            body = [rpc_body("eth_sendRawTransaction", [tx.raw], f"{tx.sender}:{tx.nonce}") for tx in chunk]
            reply = await client.post(url, json=body if batched else body[0])
            assert reply.status_code == 200, reply.text
            answers = reply.json() if batched else [reply.json()]
            by_id = {a["id"]: a for a in answers}
            out += [(tx.hash, by_id.get(f"{tx.sender}:{tx.nonce}")) for tx in chunk]
    return out


async def ws_client(url: str, txs: list[SignedTx]) -> list[tuple[str, object]]:
    """One socket: every frame sent at once (pipelined), then the replies read, matched by id."""
    async with websockets.connect(url, proxy=None, open_timeout=20, max_size=None) as ws:
        for tx in txs:
            await ws.send(json.dumps(rpc_body("eth_sendRawTransaction", [tx.raw], f"{tx.sender}:{tx.nonce}")))
        answers = {}
        while len(answers) < len(txs):
            frame = json.loads(await ws.recv())
            answers[frame["id"]] = frame
    return [(tx.hash, answers.get(f"{tx.sender}:{tx.nonce}")) for tx in txs]


def test_16_clients_1000_transactions_nothing_lost_nothing_twice(served):
    rng = random.Random(SEED)
    txs = sign_all(rng)
    order = txs[:]
    rng.shuffle(order)  # each account's nonces now arrive out of order, over several connections
    shares: list[list[SignedTx]] = [order[i::CLIENTS] for i in range(CLIENTS)]
    url = served.url(OPEN_KEY, NETWORK)
    ws_url = served.base_url.replace("http://", "ws://") + f"/{NETWORK}/ws/v3/{OPEN_KEY}"
    senders = sorted({tx.sender for tx in txs})
    watched = senders + RECIPIENTS + [COINBASE]

    async def scenario() -> dict:
        async with httpx.AsyncClient(timeout=60) as client:
            assert (await client.delete(served.base_url + "/_mock/requests")).status_code == 200
            start_block = int(await single(client, url, "eth_blockNumber", []), 16)
            before = await batch(client, url, [("eth_getBalance", [a, "latest"]) for a in watched])

            started = time.monotonic()
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                jobs = [http_client(url, shares[i], batched=i % 2 == 1) for i in range(HTTP_CLIENTS)]
                jobs += [ws_client(ws_url, shares[HTTP_CLIENTS + i]) for i in range(WS_CLIENTS)]
                sent = await asyncio.gather(*jobs)
            elapsed = time.monotonic() - started

            end_block = int(await single(client, url, "eth_blockNumber", []), 16)
            after = await batch(client, url, [("eth_getBalance", [a, "latest"]) for a in watched])
            nonces = await batch(client, url, [("eth_getTransactionCount", [a, "latest"]) for a in senders])
            receipts = await batch(client, url, [("eth_getTransactionReceipt", [tx.hash]) for tx in txs])
            blocks = await batch(client, url, [("eth_getBlockByNumber", [hex(n), False])
                                               for n in range(start_block + 1, end_block + 1)])
            counts = await batch(client, url, [("eth_getBlockTransactionCountByNumber", [hex(n)])
                                               for n in range(start_block + 1, end_block + 1)])
            journal = (await client.get(served.base_url + "/_mock/requests",
                                        params={"method": "eth_sendRawTransaction"})).json()
            health = (await client.get(served.base_url + "/_mock/health")).json()
        return {"sent": sent, "elapsed": elapsed, "start": start_block, "end": end_block,
                "before": dict(zip(watched, before, strict=True)), "after": dict(zip(watched, after, strict=True)),
                "nonces": dict(zip(senders, nonces, strict=True)), "receipts": receipts, "blocks": blocks,
                "counts": counts, "journal": journal, "health": health}

    result = asyncio.run(scenario())

    # every send was answered with its own hash: nothing refused, nothing lost
    replies = [pair for client in result["sent"] for pair in client]
    assert len(replies) == TRANSACTIONS
    for expected, answer in replies:
        assert answer is not None and answer.get("result") == expected, (expected, answer)

    # every transaction mined exactly once, in the new blocks
    by_hash = {tx.hash: tx for tx in txs}
    assert len(by_hash) == TRANSACTIONS
    mined = [h for block in result["blocks"] for h in block["transactions"]]
    assert len(mined) == TRANSACTIONS and set(mined) == set(by_hash)  # no duplicate, no stranger
    assert sum(int(c, 16) for c in result["counts"]) == TRANSACTIONS
    for tx, receipt in zip(txs, result["receipts"], strict=True):
        assert receipt is not None, tx
        assert receipt["status"] == "0x1" and receipt["transactionHash"] == tx.hash
        assert result["start"] < int(receipt["blockNumber"], 16) <= result["end"]

    # nonces end exactly at the count sent per account
    sent_per_account = Counter(tx.sender for tx in txs)
    assert {a: int(n, 16) for a, n in result["nonces"].items()} == dict(sent_per_account)

    # balances add up to the wei: per sender, and ether conserved overall minus the fees
    fees: dict[str, int] = defaultdict(int)
    values: dict[str, int] = defaultdict(int)
    gains: dict[str, int] = defaultdict(int)
    base_fees = {block["number"]: int(block["baseFeePerGas"], 16) for block in result["blocks"]}
    burned = 0
    total_fees = 0
    for tx, receipt in zip(txs, result["receipts"], strict=True):
        fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        fees[tx.sender] += fee
        values[tx.sender] += tx.value
        gains[tx.to] += tx.value
        total_fees += fee
        burned += int(receipt["gasUsed"], 16) * base_fees[receipt["blockNumber"]]
    change = {a: int(result["after"][a], 16) - int(result["before"][a], 16) for a in result["before"]}
    for sender in senders:
        assert change[sender] == -(values[sender] + fees[sender]), sender
    for recipient in RECIPIENTS:
        assert change[recipient] == gains[recipient], recipient
    assert sum(change[s] for s in senders) + sum(change[r] for r in RECIPIENTS) == -total_fees
    assert change[COINBASE] == total_fees - burned  # the tips; the base fee is burned
    assert sum(change.values()) == -burned

    # the journal has every request: HTTP (single and batched) and WebSocket frames
    entries = result["journal"]
    assert sum(e["methods"].count("eth_sendRawTransaction") for e in entries) == TRANSACTIONS
    assert all(e["decision"] == "allowed" and e["status"] == 200 for e in entries)
    transports = Counter(e["transport"] for e in entries)
    ws_txs = sum(len(shares[HTTP_CLIENTS + i]) for i in range(WS_CLIENTS))
    http_requests = sum(-(-len(shares[i]) // (HTTP_BATCH if i % 2 else 1)) for i in range(HTTP_CLIENTS))
    assert transports == {"websocket": ws_txs, "http": http_requests}

    assert result["health"]["websocket"] == {"connections": 0, "subscriptions": 0} or _settles(served)
    assert served.process.poll() is None
    print(f"\n1000 transactions from {ACCOUNTS} accounts over {CLIENTS} clients in {result['elapsed']:.1f} s, "
          f"{result['end'] - result['start']} blocks")


def _settles(served: ServerProcess, timeout: float = 5.0) -> bool:
    """The server's WebSocket counts reach zero shortly after every client has gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = httpx.get(served.base_url + "/_mock/health", timeout=5).json()["websocket"]
        if counts == {"connections": 0, "subscriptions": 0}:
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------- no stalls

STALL_BOUND_SECONDS = 1.0  # the slowest answer allowed elsewhere while one chain is busy (~25 ms measured; loaded box)
MINE_BLOCKS = 2000


async def _latencies(client: httpx.AsyncClient, base: str, busy: asyncio.Task, other_url: str, busy_url: str) -> dict:
    """Answer times on the other network, the busy network's inline reads and the control plane, while BUSY runs."""
    samples: dict[str, list[float]] = defaultdict(list)
    probes = {
        "other network eth_chainId": (other_url, rpc_body("eth_chainId", [])),
        "other network eth_getBalance": (other_url, rpc_body("eth_getBalance", [COINBASE, "latest"])),
        "busy network eth_blockNumber": (busy_url, rpc_body("eth_blockNumber", [])),
    }
    while not busy.done():
        for name, (url, body) in probes.items():
            started = time.monotonic()
            reply = await client.post(url, json=body)
            samples[name].append(time.monotonic() - started)
            assert reply.status_code == 200 and "result" in reply.json(), reply.text
        started = time.monotonic()
        assert (await client.get(base + "/_mock/health")).status_code == 200
        samples["control plane health"].append(time.monotonic() - started)
        await asyncio.sleep(0.02)
    return samples


def test_a_slow_call_on_one_network_does_not_stall_others(served):
    busy_network, other_network = "base-sepolia", "mainnet"
    busy_url, other_url = served.url(OPEN_KEY, busy_network), served.url(OPEN_KEY, other_network)
    control_url = f"{served.base_url}/_mock/rpc/{busy_network}"

    async def scenario() -> tuple[float, dict, float, dict]:
        async with httpx.AsyncClient(timeout=120) as client:
            for url in (busy_url, other_url):  # both chains built before the clock starts (eth_blockNumber would
                # be answered from the genesis while the chain builds in the background: a read of state waits for it)
                reply = await client.post(url, json=rpc_body("eth_getBalance", [COINBASE, "latest"]))
                assert "result" in reply.json(), reply.text

            async def mine() -> float:
                started = time.monotonic()
                reply = await client.post(control_url, json=rpc_body("evm_mine", [{"blocks": MINE_BLOCKS}]))
                assert reply.json().get("result") == "0x0", reply.text
                return time.monotonic() - started

            mining = asyncio.create_task(mine())
            await asyncio.sleep(0.05)
            during_mine = await _latencies(client, served.base_url, mining, other_url, busy_url)
            mine_seconds = await mining

            async def logs() -> float:
                started = time.monotonic()
                reply = await client.post(busy_url, json=rpc_body("eth_getLogs", [{"fromBlock": "0x0",
                                                                                   "toBlock": "latest"}]))
                assert isinstance(reply.json().get("result"), list), reply.text
                return time.monotonic() - started

            scanning = asyncio.create_task(logs())
            during_logs = await _latencies(client, served.base_url, scanning, other_url, busy_url)
            logs_seconds = await scanning
        return mine_seconds, during_mine, logs_seconds, during_logs

    mine_seconds, during_mine, logs_seconds, during_logs = asyncio.run(scenario())
    assert mine_seconds > STALL_BOUND_SECONDS, "the slow call was not slow: the test proves nothing"
    for name, samples in [*during_mine.items(), *during_logs.items()]:
        assert samples, name
        assert max(samples) < STALL_BOUND_SECONDS, (name, max(samples), mine_seconds, logs_seconds)
    worst = max(max(s) for s in [*during_mine.values(), *during_logs.values()])
    print(f"\nevm_mine {MINE_BLOCKS} blocks: {mine_seconds:.1f} s, eth_getLogs over them: {logs_seconds:.2f} s; "
          f"slowest answer elsewhere meanwhile: {worst * 1000:.0f} ms")
    for name, samples in during_mine.items():
        print(f"  {name}: {len(samples)} answers, slowest {max(samples) * 1000:.0f} ms, "
              f"median {sorted(samples)[len(samples) // 2] * 1000:.0f} ms")
