"""Chain backends (issue 9): the same core behaviours on `evm`, `anvil` and `upstream`, and their failure modes.

One real `mockinfura serve` serves the three backends side by side: mainnet on the in-memory chain, sepolia on an
anvil that mockinfura runs, hoodi forwarded to a separately started anvil (`upstream`). anvil comes from
`.tools/node_modules/.bin/anvil` (`make anvil`) or PATH; without it the anvil and upstream cases are skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from mockinfura import cli
from mockinfura.chains.anvil import find_anvil, native_anvil
from mockinfura.chains.registry import ChainRegistry
from mockinfura.chains.upstream import BackendError, UpstreamChain
from mockinfura.config import parse_config
from mockinfura.testing.server import MockInfura
from tests.conftest import CONTRACTS, OPEN_KEY
from tests.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DEV = [Account.from_key(k) for k in (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)]
STRANGER = "0x000000000000000000000000000000000000dEaD"
BACKENDS = {"evm": ("mainnet", 1), "anvil": ("sepolia", 11155111), "upstream": ("hoodi", 560048)}
BOUND_SECONDS = 15.0  # every wait in this module


def anvil_binary() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    return shutil.which("anvil")


ANVIL = anvil_binary()
if ANVIL is None and os.environ.get("CI"):  # in CI `make test` installs anvil: its absence is a failure, not a skip
    raise RuntimeError("anvil is not installed: `make anvil` should have put it in .tools/")
needs_anvil = pytest.mark.skipif(ANVIL is None, reason="anvil is not installed (`make anvil` puts it in .tools/)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RawAnvil:
    """An anvil that mockinfura does not manage: the node an `upstream` network points at."""

    def __init__(self, chain_id: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(
            [native_anvil(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(chain_id),
             "--silent"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + BOUND_SECONDS
        while time.monotonic() < deadline:
            try:
                httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("the upstream anvil did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(BOUND_SECONDS)


def config_text(upstream_url: str, **extra_networks: str) -> str:
    text = f"""
[networks.sepolia]
backend = "anvil"
anvil_path = "{ANVIL}"

[networks.hoodi]
backend = "upstream"
url = "{upstream_url}"
timeout = 5
"""
    return text + "".join(f"\n[networks.{name}]\n{body}\n" for name, body in extra_networks.items())


@pytest.fixture(scope="module")
def upstream_anvil() -> Iterator[RawAnvil]:
    if ANVIL is None:
        pytest.skip("anvil is not installed (`make anvil` puts it in .tools/)")
    node = RawAnvil(BACKENDS["upstream"][1])
    yield node
    node.stop()


@pytest.fixture(scope="module")
def served(upstream_anvil: RawAnvil) -> Iterator[ServerProcess]:
    with ServerProcess(config_text(upstream_anvil.url)) as process:
        yield process


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=BOUND_SECONDS, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def counter_artifact() -> dict:
    return json.loads((CONTRACTS / "counter.json").read_text())


BACKEND_PARAMS = [pytest.param("evm", id="evm"), pytest.param("anvil", id="anvil", marks=needs_anvil),
                  pytest.param("upstream", id="upstream", marks=needs_anvil)]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def w3_for(server: ServerProcess, network: str) -> Web3:
    return Web3(HTTPProvider(server.url(OPEN_KEY, network), exception_retry_configuration=None,
                             request_kwargs={"timeout": BOUND_SECONDS, "proxies": {"http": "", "https": ""}}))


def send(w3: Web3, account, tx: dict) -> bytes:
    tx = {"chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
          "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9, **tx}
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas({k: v for k, v in tx.items() if k in ("to", "data", "value")}
                                        | {"from": account.address})
    return w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)


def rpc(client: httpx.Client, url: str, method: str, params: list | None = None, call_id: object = 1) -> httpx.Response:
    return client.post(url, json={"jsonrpc": "2.0", "id": call_id, "method": method, "params": params or []})


def control(server: ServerProcess, network: str) -> str:
    return f"{server.base_url}/_mock/rpc/{network}"


# ---------------------------------------------------------------------------------------------- the same behaviours


def test_chain_id_and_funded_dev_accounts(served, backend):
    network, chain_id = BACKENDS[backend]
    w3 = w3_for(served, network)
    assert w3.eth.chain_id == chain_id
    assert w3.eth.get_balance(DEV[0].address) > 1_000 * 10**18
    assert w3.eth.accounts == []  # infura.md 3: Infura holds no keys


def test_signed_transfer_is_mined(served, backend):
    w3 = w3_for(served, BACKENDS[backend][0])
    before, start = w3.eth.get_balance(STRANGER), w3.eth.block_number
    receipt = w3.eth.wait_for_transaction_receipt(send(w3, DEV[0], {"to": STRANGER, "value": 12345, "gas": 21000}),
                                                  timeout=BOUND_SECONDS)
    assert receipt.status == 1 and receipt.blockNumber == start + 1
    assert w3.eth.get_balance(STRANGER) == before + 12345
    assert w3.eth.get_transaction(receipt.transactionHash)["from"] == DEV[0].address


def test_contract_deploy_events_and_reverts(served, backend, counter_artifact):
    w3 = w3_for(served, BACKENDS[backend][0])
    factory = w3.eth.contract(abi=counter_artifact["abi"], bytecode=counter_artifact["bytecode"])
    data = factory.constructor(7).build_transaction({"from": DEV[1].address, "gas": 600_000})["data"]
    receipt = w3.eth.wait_for_transaction_receipt(send(w3, DEV[1], {"data": data, "gas": 600_000}))
    assert receipt.status == 1 and receipt.contractAddress
    contract = w3.eth.contract(address=receipt.contractAddress, abi=counter_artifact["abi"])
    assert contract.functions.count().call() == 7
    assert contract.functions.owner().call() == DEV[1].address

    call_data = contract.encode_abi("increment", [])
    receipt = w3.eth.wait_for_transaction_receipt(send(w3, DEV[1], {"to": contract.address, "data": call_data}))
    (event,) = contract.events.Incremented().process_receipt(receipt)
    assert event.args.by == DEV[1].address and event.args.newCount == 8
    logs = w3.eth.get_logs({"fromBlock": 0, "address": contract.address})
    assert [entry["transactionHash"] for entry in logs] == [receipt.transactionHash]
    topic = w3.keccak(text="Incremented(address,uint256)")
    by_topic = w3.eth.get_logs({"fromBlock": receipt.blockNumber, "toBlock": receipt.blockNumber,
                                "topics": [topic, "0x" + "00" * 12 + DEV[1].address[2:].lower()]})
    assert [entry["transactionHash"] for entry in by_topic] == [receipt.transactionHash]
    assert contract.events.Incremented().get_logs(from_block=receipt.blockNumber)[0].args.newCount == 8

    with pytest.raises(ContractLogicError, match="not today"):
        contract.functions.fail("not today").call()
    with pytest.raises(ContractLogicError, match="not today"):
        contract.functions.fail("not today").estimate_gas()
    with pytest.raises(ContractCustomError):
        contract.functions.onlyOwner().call({"from": DEV[0].address})
    assert contract.functions.onlyOwner().call({"from": DEV[1].address}) is True


def test_a_read_right_after_a_send_sees_it_mined(served, backend):
    w3 = w3_for(served, BACKENDS[backend][0])
    for _ in range(20):  # anvil mines just after it replies: the next call waits for that block
        before = w3.eth.get_balance(STRANGER)
        tx_hash = send(w3, DEV[0], {"to": STRANGER, "value": 1, "gas": 21000})
        assert w3.eth.get_balance(STRANGER) == before + 1
        assert w3.eth.get_transaction_receipt(tx_hash).status == 1


def test_snapshot_and_revert_through_the_control_plane(served, backend, http):
    network = BACKENDS[backend][0]
    w3 = w3_for(served, network)
    snapshot = rpc(http, control(served, network), "evm_snapshot").json()["result"]
    before, block = w3.eth.get_balance(STRANGER), w3.eth.block_number
    send(w3, DEV[0], {"to": STRANGER, "value": 5, "gas": 21000})
    assert w3.eth.get_balance(STRANGER) == before + 5
    assert rpc(http, control(served, network), "evm_revert", [snapshot]).json()["result"] is True
    assert w3.eth.get_balance(STRANGER) == before
    assert w3.eth.block_number == block
    assert rpc(http, control(served, network), "evm_mine", [{"blocks": 2}]).json()["result"] == "0x0"
    assert w3.eth.block_number == block + 2
    balance = rpc(http, control(served, network), "anvil_setBalance", [STRANGER, hex(10**18)]).json()
    assert "error" not in balance
    assert w3.eth.get_balance(STRANGER) == 10**18


def test_infura_method_rules_stay_at_the_gateway(served, backend, http):
    network = BACKENDS[backend][0]
    infura_url, control_url = served.url(OPEN_KEY, network), control(served, network)
    tx = {"from": DEV[0].address, "to": STRANGER, "value": "0x1"}
    refused = rpc(http, infura_url, "eth_sendTransaction", [tx], call_id="x")
    assert refused.status_code == 200
    assert refused.json() == {"jsonrpc": "2.0", "id": "x", "error": {
        "code": -32601, "message": "The method eth_sendTransaction does not exist/is not available"}}
    for method in ("evm_snapshot", "anvil_setBalance", "eth_sign"):
        assert rpc(http, infura_url, method, []).json()["error"]["code"] == -32601
    assert rpc(http, infura_url, "eth_accounts").json()["result"] == []
    # the control plane: the dev accounts, unlocked
    accounts = rpc(http, control_url, "eth_accounts").json()["result"]
    assert accounts[0].lower() == DEV[0].address.lower()
    tx_hash = rpc(http, control_url, "eth_sendTransaction", [tx]).json()["result"]
    receipt = rpc(http, control_url, "eth_getTransactionReceipt", [tx_hash]).json()["result"]
    assert receipt["status"] == "0x1"


def test_new_heads_logs_and_pending_subscriptions(served, backend, counter_artifact):
    network = BACKENDS[backend][0]
    w3 = w3_for(served, network)
    factory = w3.eth.contract(abi=counter_artifact["abi"], bytecode=counter_artifact["bytecode"])
    data = factory.constructor(1).build_transaction({"from": DEV[0].address, "gas": 600_000})["data"]
    address = w3.eth.get_transaction_receipt(send(w3, DEV[0], {"data": data, "gas": 600_000})).contractAddress
    contract = w3.eth.contract(address=address, abi=counter_artifact["abi"])
    ws_url = served.url(OPEN_KEY, network).replace("http://", "ws://").replace("/v3/", "/ws/v3/")
    subscribe = [{"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": params} for i, params in (
        (1, ["newHeads"]), (2, ["newPendingTransactions"]), (3, ["logs", {"address": address}]))]

    async def scenario() -> tuple[dict, str, dict, str, float]:
        async with websockets.connect(ws_url, proxy=None, open_timeout=BOUND_SECONDS) as ws:
            await ws.send(json.dumps(subscribe))
            ids = {reply["result"]: reply["id"] for reply in json.loads(await ws.recv())}
            sent_at = time.monotonic()
            tx_hash = await asyncio.to_thread(send, w3, DEV[0], {"to": address,
                                                                 "data": contract.encode_abi("increment", [])})
            seen: dict[int, object] = {}
            while len(seen) < 3:
                message = json.loads(await ws.recv())["params"]
                seen[ids[message["subscription"]]] = message["result"]
                if ids[message["subscription"]] == 1:
                    latency = time.monotonic() - sent_at
            return seen[1], seen[2], seen[3], "0x" + tx_hash.hex().removeprefix("0x"), latency

    head, pending, log, tx_hash, latency = asyncio.run(asyncio.wait_for(scenario(), BOUND_SECONDS))
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert pending == tx_hash
    assert int(head["number"], 16) == receipt.blockNumber
    assert head["hash"] == receipt.blockHash.to_0x_hex()
    assert list(head)[-1] == "hash" and "transactions" not in head
    assert log["transactionHash"] == tx_hash and log["address"].lower() == address.lower()
    assert contract.events.Incremented().process_log(w3.eth.get_logs({"blockHash": receipt.blockHash})[0]).args.newCount == 2
    assert latency < 2.0


# ---------------------------------------------------------------------------------------------- upstream specifics


@needs_anvil
def test_a_batch_through_the_upstream(served, http, upstream_anvil):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": [DEV[0].address, "latest"]},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # a notification: no reply
        {"jsonrpc": "2.0", "id": 3, "method": "eth_sendTransaction", "params": [{}]},
        {"jsonrpc": "2.0", "id": 4, "method": "web3_clientVersion"},
        {"jsonrpc": "2.0", "id": 5, "method": "eth_getTransactionByHash", "params": ["0x12"]},
    ]
    reply = http.post(served.url(OPEN_KEY, "hoodi"), json=batch)
    assert reply.status_code == 200
    body = reply.json()
    assert [r["id"] for r in body] == [1, 2, 3, 4, 5]
    assert body[0]["result"] == hex(560048)
    assert int(body[1]["result"], 16) > 0
    assert body[2]["error"]["code"] == -32601
    assert body[3]["result"].startswith("anvil/")
    assert body[4]["error"]["code"] == -32602  # the node's own error, passed on


class SlowServer(socketserver.ThreadingTCPServer):
    """Accepts and reads a request, then says nothing until stopped: an upstream that hangs."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.release = threading.Event()

        class Handler(socketserver.BaseRequestHandler):
            def handle(inner) -> None:  # noqa: N805
                inner.request.recv(65536)
                self.release.wait(BOUND_SECONDS)

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


@pytest.fixture(scope="module")
def failing() -> Iterator[tuple[ServerProcess, int, str]]:
    """A server with hoodi forwarded to a closed port and holesky to an upstream that never answers."""
    closed = free_port()
    slow = SlowServer()
    text = f"""
[networks.hoodi]
backend = "upstream"
url = "http://127.0.0.1:{closed}"

[networks.holesky]
backend = "upstream"
url = "{slow.url}"
timeout = 0.5
"""
    with ServerProcess(text) as process:
        yield process, closed, slow.url
    slow.stop()


def test_an_upstream_that_is_down_is_a_502_that_costs_nothing(failing, http):
    server, port, _ = failing
    reply = rpc(http, server.url(OPEN_KEY, "hoodi"), "eth_blockNumber", call_id=42)
    assert reply.status_code == 502
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"jsonrpc": "2.0", "id": 42, "error": {
        "code": -32603, "message": f"upstream unreachable: connection refused by http://127.0.0.1:{port}/"}}
    (entry,) = http.get(f"{server.base_url}/_mock/requests", params={"limit": 1}).json()
    assert entry["status"] == 502 and entry["credits"] == 0 and entry["decision"] == "allowed"
    # a batch whose every call failed takes the status; one with an answered call stays 200
    batch = http.post(server.url(OPEN_KEY, "hoodi"), json=[
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}, {"jsonrpc": "2.0", "id": 2, "method": "eth_gasPrice"}])
    assert batch.status_code == 502
    assert [r["error"]["code"] for r in batch.json()] == [-32603, -32603]
    mixed = http.post(server.url(OPEN_KEY, "hoodi"), json=[
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}, {"jsonrpc": "2.0", "id": 2, "method": "eth_sign"}])
    assert mixed.status_code == 200
    assert [r["error"]["code"] for r in mixed.json()] == [-32603, -32601]
    # the control plane answers the same error (its replies are always 200)
    assert rpc(http, control(server, "hoodi"), "evm_snapshot").json()["error"]["code"] == -32603


def test_an_upstream_that_hangs_is_a_504_within_the_timeout(failing, http):
    server, _, slow_url = failing
    started = time.monotonic()
    reply = rpc(http, server.url(OPEN_KEY, "holesky"), "eth_getBalance", [STRANGER, "latest"], call_id="slow")
    elapsed = time.monotonic() - started
    assert reply.status_code == 504
    assert reply.json() == {"jsonrpc": "2.0", "id": "slow", "error": {
        "code": -32603, "message": f"upstream timed out: no reply from {slow_url} within 0.5 s"}}
    assert 0.4 < elapsed < 3.0
    (entry,) = http.get(f"{server.base_url}/_mock/requests", params={"limit": 1}).json()
    assert entry["status"] == 504 and entry["credits"] == 0


def _serve_checks_backends() -> bool:
    return "start_backends" in inspect.getsource(cli.cmd_serve)


@needs_anvil
def test_an_upstream_of_another_chain_is_refused(upstream_anvil, http):
    text = f'[networks.sepolia]\nbackend = "upstream"\nurl = "{upstream_anvil.url}"\n'
    expected = (f"upstream chain id mismatch: {upstream_anvil.url} serves chain id 560048, but network sepolia is "
                "chain id 11155111")
    registry = ChainRegistry(parse_config({"networks": {"sepolia": {"backend": "upstream", "url": upstream_anvil.url}}}),
                             time.time)
    try:
        with pytest.raises(BackendError, match="upstream chain id mismatch") as raised:
            registry.start_backends()
        assert str(raised.value).startswith(expected)
    finally:
        registry.close()
    if _serve_checks_backends():  # `mockinfura serve` checks before it listens
        with pytest.raises(RuntimeError, match="upstream chain id mismatch"):
            ServerProcess(text)
        return
    with ServerProcess(text) as server:  # else: every call says so
        reply = rpc(http, server.url(OPEN_KEY, "sepolia"), "eth_blockNumber")
        assert reply.status_code == 502
        assert reply.json()["error"]["message"].startswith(expected)


def test_a_missing_anvil_binary_says_how_to_install_it(tmp_path, monkeypatch):
    with pytest.raises(BackendError, match="npm install --prefix .tools @foundry-rs/anvil") as raised:
        find_anvil(str(tmp_path / "no-anvil"))
    assert "does not exist" in str(raised.value) and "foundryup" in str(raised.value)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendError, match="anvil not found on PATH"):
        find_anvil(None)
    config = parse_config({"networks": {"sepolia": {"backend": "anvil"}}})
    registry = ChainRegistry(config, time.time)
    try:
        with pytest.raises(BackendError, match="npm install"):
            registry.start_backends()
    finally:
        registry.close()
    if _serve_checks_backends():  # `mockinfura serve` says so before it listens, and exits 2
        config_file = tmp_path / "anvil.toml"
        config_file.write_text('[networks.sepolia]\nbackend = "anvil"\nanvil_path = "no/such/anvil"\n')
        process = subprocess.run([sys.executable, "-m", "mockinfura", "serve", "--port", "0", "--config",
                                  str(config_file)], capture_output=True, text=True, timeout=60)
        assert process.returncode == 2
        assert "no/such/anvil does not exist" in process.stderr and "npm install" in process.stderr


def test_config_validation_of_backend_fields():
    from mockinfura.config import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse_config({"networks": {
            "sepolia": {"backend": "upstream", "url": "ws://127.0.0.1:1", "timeout": 0},
            "hoodi": {"backend": "upstream"},
            "mainnet": {"backend": "evm", "anvil_path": "anvil"},
        }})
    problems = "\n".join(raised.value.problems)
    assert "networks.sepolia.url: expected an http:// or https:// URL" in problems
    assert "networks.sepolia.timeout: must be more than 0 and at most 3600 seconds" in problems
    assert "networks.hoodi.url: backend = \"upstream\" needs the node's url" in problems
    assert "networks.mainnet.anvil_path: only for backend = \"anvil\"" in problems
    settings = parse_config({"networks": {"hoodi": {"backend": "upstream", "url": "https://node.example/rpc",
                                                    "timeout": 2.5}}}).networks["hoodi"]
    assert (settings.url, settings.timeout) == ("https://node.example/rpc", 2.5)


# ---------------------------------------------------------------------------------------------- anvil processes


def anvil_children(pid: int) -> list[int]:
    """The anvil processes whose parent is PID (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if name == "anvil" and int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"  # a zombie is dead (its reaper may be slow)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@needs_anvil
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_anvil_is_restarted_when_it_dies_and_reset_goes_to_genesis(http):
    with ServerProcess(f'[networks.sepolia]\nbackend = "anvil"\nanvil_path = "{ANVIL}"\n') as server:
        url, control_url = server.url(OPEN_KEY, "sepolia"), control(server, "sepolia")
        assert rpc(http, control_url, "evm_mine", [{"blocks": 3}]).json()["result"] == "0x0"
        assert rpc(http, url, "eth_blockNumber").json()["result"] == "0x3"
        assert http.post(f"{server.base_url}/_mock/reset").json() == {"reset": True}  # anvil_reset
        assert rpc(http, url, "eth_blockNumber").json()["result"] == "0x0"
        rpc(http, control_url, "evm_mine", [])
        (pid,) = anvil_children(server.process.pid)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), "anvil to die")
        # the next call waits out the restart: a fresh anvil, at genesis, funded again
        reply = rpc(http, url, "eth_blockNumber").json()
        assert reply == {"jsonrpc": "2.0", "id": 1, "result": "0x0"}
        (new_pid,) = anvil_children(server.process.pid)
        assert new_pid != pid
        assert int(rpc(http, url, "eth_getBalance", [DEV[0].address, "latest"]).json()["result"], 16) == 10_000 * 10**18
    wait_until(lambda: not alive(new_pid), "anvil to stop with the server")


@needs_anvil
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_no_orphan_anvil_after_sigkill_of_mockinfura(http):
    server = ServerProcess(f'[networks.sepolia]\nbackend = "anvil"\nanvil_path = "{ANVIL}"\n')
    try:
        assert rpc(http, server.url(OPEN_KEY, "sepolia"), "eth_chainId").json()["result"] == hex(11155111)
        (pid,) = anvil_children(server.process.pid)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(BOUND_SECONDS)
        wait_until(lambda: not alive(pid), f"anvil {pid} to die with its SIGKILLed parent")
    finally:
        server.stop()


@needs_anvil
def test_pytest_isolation_rolls_back_anvil_and_upstream():
    node = RawAnvil(BACKENDS["upstream"][1])
    config = {"networks": {"sepolia": {"backend": "anvil", "anvil_path": ANVIL},
                           "hoodi": {"backend": "upstream", "url": node.url}}}
    try:
        with MockInfura(config) as infura:
            w3s = {network: infura.web3(network) for network in ("sepolia", "hoodi")}
            mark = infura.checkpoint()  # nothing built yet: a network first used now is reset afterwards
            for w3 in w3s.values():
                w3.eth.wait_for_transaction_receipt(send(w3, DEV[0], {"to": STRANGER, "value": 7, "gas": 21000}))
            assert infura.rollback(mark) == []
            assert {n: (w3.eth.block_number, w3.eth.get_balance(STRANGER)) for n, w3 in w3s.items()} == {
                "sepolia": (0, 0), "hoodi": (0, 0)}
            with infura.isolated():  # both built: evm_snapshot / evm_revert
                for w3 in w3s.values():
                    send(w3, DEV[0], {"to": STRANGER, "value": 9, "gas": 21000})
                    assert w3.eth.get_balance(STRANGER) == 9
            assert all(w3.eth.get_balance(STRANGER) == 0 for w3 in w3s.values())
            chain = infura.state.chains.slot("hoodi").result()
            assert isinstance(chain, UpstreamChain)
    finally:
        node.stop()
