"""WebSocket load and latency for mockinfura (issue 5).

    .venv/bin/python bench/ws_load.py                 # both parts, the issue's numbers
    .venv/bin/python bench/ws_load.py latency --blocks 300
    .venv/bin/python bench/ws_load.py load --connections 100 --seconds 30 --block-time 1

latency: an in-process server (`MockInfura`), one client subscribed to newHeads; blocks are mined with `evm_mine`
  over the control plane. A listener put on the chain before the subscription's records the moment each block is
  mined (on the chain thread); the client records the moment its notification is read. Both read
  `time.perf_counter()`, so the difference is "mined -> notification read by a client".
load: the real CLI server in a subprocess with `[chain] block_time`, N connections each subscribed to newHeads for
  S seconds. Checks: no error, every connection sees every block in order with no gap, the counts in
  `/_mock/health` return to zero; reports the server's RSS (from /proc) along the way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server import ServerProcess  # noqa: E402

OPEN_KEY = "0123456789abcdef0123456789abcdef"
SUBSCRIBE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
MAX_BLOCKS = 100_000
MAX_CONNECTIONS = 1_000


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ---------------------------------------------------------------------------------------------- latency


async def measure_latency(blocks: int) -> dict[str, float]:
    from mockinfura.testing.server import MockInfura

    mined_at: dict[int, float] = {}

    def record(event: str, value: object) -> None:
        if event == "block":
            mined_at[int(value)] = time.perf_counter()  # type: ignore[arg-type]

    with MockInfura() as infura:
        infura._app.state.chains.slot("mainnet").result().listeners.append(record)
        latencies: list[float] = []
        round_trips: list[float] = []
        url = infura.base_url.replace("http://", "ws://") + f"/ws/v3/{OPEN_KEY}"
        mine = {"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}
        async with websockets.connect(url, proxy=None) as ws, httpx.AsyncClient() as http:
            await ws.send(SUBSCRIBE)
            json.loads(await ws.recv())
            for _ in range(min(blocks, MAX_BLOCKS)):
                sent = time.perf_counter()
                reply = asyncio.create_task(http.post(f"{infura.base_url}/_mock/rpc/mainnet", json=mine))
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                arrived = time.perf_counter()
                await reply
                number = int(message["params"]["result"]["number"], 16)
                latencies.append(arrived - mined_at[number])
                round_trips.append(arrived - sent)
    latencies.sort()
    return {
        "blocks": len(latencies),
        "median_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "max_ms": 1000 * latencies[-1],
        "median_request_to_notification_ms": 1000 * statistics.median(round_trips),
    }


# ---------------------------------------------------------------------------------------------- load


async def client(url: str, seconds: float, results: list[dict]) -> None:
    numbers: list[int] = []
    error = None
    try:
        async with websockets.connect(url, proxy=None, open_timeout=30) as ws:
            await ws.send(SUBSCRIBE)
            sub_id = json.loads(await ws.recv())["result"]
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), left))
                except TimeoutError:
                    break
                if message.get("params", {}).get("subscription") != sub_id:
                    error = f"unexpected frame {message}"
                    break
                numbers.append(int(message["params"]["result"]["number"], 16))
    except Exception as exc:  # reported, not raised: the run counts its errors
        error = f"{type(exc).__name__}: {exc}"
    gaps = sum(1 for a, b in zip(numbers, numbers[1:], strict=False) if b != a + 1)
    results.append({"notifications": len(numbers), "gaps": gaps, "error": error})


async def run_load(connections: int, seconds: float, block_time: float) -> dict[str, object]:
    config = f'[chain]\nblock_time = {block_time}\n\n[api_keys.open]\nkey = "{OPEN_KEY}"\n'
    with ServerProcess(config) as server, httpx.Client(timeout=10) as http:
        pid = server.process.pid
        url = server.base_url.replace("http://", "ws://") + f"/ws/v3/{OPEN_KEY}"
        http.post(server.url(OPEN_KEY), json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
        await asyncio.sleep(2 * block_time)  # the chain is built and mining
        rss_start = rss_kib(pid)
        results: list[dict] = []
        tasks = [asyncio.create_task(client(url, seconds, results)) for _ in range(min(connections, MAX_CONNECTIONS))]
        await asyncio.sleep(min(3.0, seconds / 2))
        health_during = http.get(f"{server.base_url}/_mock/health").json()["websocket"]
        rss_samples = [rss_kib(pid)]
        while not all(t.done() for t in tasks):
            await asyncio.sleep(5)
            rss_samples.append(rss_kib(pid))
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.5)
        health_after = http.get(f"{server.base_url}/_mock/health").json()["websocket"]
        rss_end = rss_kib(pid)
        exit_code = server.stop()
    counts = [r["notifications"] for r in results]
    return {
        "connections": len(results),
        "seconds": seconds,
        "block_time": block_time,
        "errors": [r["error"] for r in results if r["error"]],
        "gaps": sum(r["gaps"] for r in results),
        "notifications_per_connection": {"min": min(counts), "max": max(counts)},
        "health_during": health_during,
        "health_after": health_after,
        "rss_kib": {"before": rss_start, "samples": rss_samples, "after": rss_end},
        "server_exit_code": exit_code,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=("latency", "load", "all"), default="all")
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--block-time", type=float, default=1.0)
    args = parser.parse_args()
    if args.part in ("latency", "all"):
        print("latency", json.dumps(asyncio.run(measure_latency(args.blocks))), flush=True)
    if args.part in ("load", "all"):
        print("load", json.dumps(asyncio.run(run_load(args.connections, args.seconds, args.block_time))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
