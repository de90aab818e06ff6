"""State that survives a restart: serve --state, /_mock/state, atomic saves."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import OPEN_KEY, rpc
from tests.server import ServerProcess

DEV0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
BEEF = "0x000000000000000000000000000000000000beef"


def control(client, base, network, method, params=None):
    body = client.post(f"{base}/_mock/rpc/{network}", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                            "params": params or []}).json()
    assert "result" in body, body
    return body["result"]


def test_state_survives_a_restart(tmp_path):
    state_file = tmp_path / "state.json"
    extra = ("--state", str(state_file))
    with ServerProcess(extra_args=extra) as first, httpx.Client() as client:
        base = first.base_url
        tx_hash = control(client, base, "sepolia", "eth_sendTransaction", [{"from": DEV0, "to": BEEF, "value": "0x7"}])
        control(client, base, "base-mainnet", "anvil_setBalance", [BEEF, "0x99"])
        snapshot = control(client, base, "sepolia", "evm_snapshot")
        control(client, base, "sepolia", "eth_sendTransaction", [{"from": DEV0, "to": BEEF, "value": "0x1"}])
        created = client.post(f"{base}/_mock/keys", json={"require_jwt": False, "networks": ["sepolia"]}).json()
        client.post(f"{base}/_mock/clock", json={"advance": 1234})
        rpc(client, first.url(OPEN_KEY, "sepolia"), "eth_blockNumber")
        usage_before = client.get(f"{base}/_mock/usage").json()
        assert first.stop() == 0
    assert json.loads(state_file.read_text())["format"] == "mockinfura-state"

    with ServerProcess(extra_args=extra) as second, httpx.Client() as client:
        base = second.base_url
        url = second.url(OPEN_KEY, "sepolia")
        assert client.get(f"{base}/_mock/usage").json() == usage_before
        assert rpc(client, url, "eth_getBalance", [BEEF]).json()["result"] == "0x8"
        receipt = rpc(client, url, "eth_getTransactionReceipt", [tx_hash]).json()["result"]
        assert receipt["status"] == "0x1" and receipt["blockNumber"] == "0x1"
        assert rpc(client, url, "eth_blockNumber").json()["result"] == "0x2"
        assert rpc(client, second.url(OPEN_KEY, "base-mainnet"), "eth_getBalance", [BEEF]).json()["result"] == "0x99"
        assert rpc(client, second.url(created["key"], "sepolia"), "eth_chainId").json()["result"] == hex(11155111)
        assert client.get(f"{base}/_mock/clock").json()["offset"] == pytest.approx(1234, abs=1)
        # snapshots survive too
        assert control(client, base, "sepolia", "evm_revert", [snapshot]) is True
        assert rpc(client, url, "eth_getBalance", [BEEF]).json()["result"] == "0x7"
        # and the chain goes on from there
        control(client, base, "sepolia", "eth_sendTransaction", [{"from": DEV0, "to": BEEF, "value": "0x1"}])
        assert rpc(client, url, "eth_getBalance", [BEEF]).json()["result"] == "0x8"


def test_save_now_and_download_restore(tmp_path):
    state_file = tmp_path / "s.json"
    with ServerProcess(extra_args=("--state", str(state_file))) as server, ServerProcess() as other, \
            httpx.Client() as client:
        control(client, server.base_url, "mainnet", "eth_sendTransaction", [{"from": DEV0, "to": BEEF, "value": "0x3"}])
        assert client.post(f"{server.base_url}/_mock/state/save").json() == {"saved": str(state_file)}
        saved = json.loads(state_file.read_text())
        assert "mainnet" in saved["chains"]
        dump = client.get(f"{server.base_url}/_mock/state").json()
        assert client.post(f"{other.base_url}/_mock/state", json=dump).json() == {"restored": True}
        assert rpc(client, other.url(OPEN_KEY), "eth_getBalance", [BEEF]).json()["result"] == "0x3"
        assert client.post(f"{other.base_url}/_mock/state/save").status_code == 409  # no --state there


def test_bad_restores_change_nothing(server, http):
    base = server.base_url
    control(http, base, "holesky", "eth_sendTransaction", [{"from": DEV0, "to": BEEF, "value": "0x5"}])
    good = http.get(f"{base}/_mock/state").json()
    tampered = json.loads(json.dumps(good))
    tampered["chains"]["holesky"]["head"] = "zz"
    missing_head = json.loads(json.dumps(good))
    missing_head["chains"]["holesky"]["head"] = "ab" * 32
    wrong_chain = json.loads(json.dumps(good))
    wrong_chain["chains"]["sepolia"] = wrong_chain["chains"]["holesky"]
    for body, words in ((b"not json", "not JSON"), (b"[]", "not a mockinfura state dump"),
                        (json.dumps({**good, "version": 99}).encode(), "unsupported state version"),
                        (json.dumps({**good, "chains": {"atlantis": {}}}).encode(), "catalogue network"),
                        (json.dumps(tampered).encode(), "malformed chain state"),
                        (json.dumps(missing_head).encode(), "head block"),
                        (json.dumps(wrong_chain).encode(), "chain id"),
                        (json.dumps({**good, "api_keys": [{"key": "nothex"}]}).encode(), "api_keys[0]")):
        reply = http.post(f"{base}/_mock/state", content=body)
        assert reply.status_code == 400, body[:80]
        assert words in reply.json()["error"]
        assert rpc(http, server.url(OPEN_KEY, "holesky"), "eth_getBalance", [BEEF]).json()["result"] == "0x5"


def test_corrupt_state_file_is_a_clear_startup_error(tmp_path):
    path = tmp_path / "bad.json"
    for text, words in (("{", "not JSON"), ('{"format": "other"}', "not a mockinfura state dump")):
        path.write_text(text)
        result = subprocess.run([sys.executable, "-m", "mockinfura", "serve", "--port", "0", "--state", str(path)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "mockinfura", "serve", "--port", "0", "--state",
                             str(tmp_path / "nope" / "s.json")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_sigkill_during_a_save_leaves_a_loadable_file(tmp_path):
    state_file = tmp_path / "state.json"
    extra = ("--state", str(state_file))
    for delay in (0.0, 0.02, 0.08):
        server = ServerProcess(extra_args=extra)
        with httpx.Client(timeout=30) as client:
            base = server.base_url
            control(client, base, "mainnet", "evm_mine", [{"blocks": 200}])
            control(client, base, "mainnet", "eth_sendTransaction", [{"from": DEV0, "to": BEEF, "value": "0x1"}])
            before = state_file.read_bytes() if state_file.exists() else None
            saver = threading.Thread(target=_post_quietly, args=(f"{base}/_mock/state/save",))
            saver.start()
            time.sleep(delay)
            server.process.send_signal(signal.SIGKILL)
            saver.join()
            server.process.wait()
            server.stop()
        head = None
        if state_file.exists():
            after = state_file.read_bytes()
            document = json.loads(after)  # complete JSON: the old file or the new one, never a torn write
            assert document["format"] == "mockinfura-state"
            if before is not None and after != before:  # the new one landed whole: it has this round's blocks
                assert document["chains"]["mainnet"]["head"] != json.loads(before)["chains"]["mainnet"]["head"]
            head = document["chains"]["mainnet"]["head"]
        else:
            assert before is None  # a save never removes the previous file
        with ServerProcess(extra_args=extra) as again, httpx.Client() as client:
            latest = rpc(client, again.url(OPEN_KEY), "eth_getBlockByNumber", ["latest", False]).json()["result"]
            assert latest["hash"] == ("0x" + head if head else latest["hash"])  # the file's chain is what is served
            assert head is not None or latest["number"] == "0x0"
        # nothing but the state file and, at most, a temporary file the kill left behind
        assert all(p.name == "state.json" or p.name.endswith(".tmp") for p in tmp_path.iterdir())


def _post_quietly(url: str) -> None:
    try:
        httpx.post(url, timeout=30)
    except httpx.HTTPError:
        pass


def test_a_chain_saved_at_genesis_restores_onto_another_genesis():
    """A dump of a chain never used past block 0, loaded by a process whose own genesis differs (it was built at
    another second): the restored head is the dump's, and mining goes on from it."""
    from mockinfura.chains.evm import EvmChain
    from mockinfura.config import DEFAULT_MNEMONIC

    saved = EvmChain(1, mnemonic=DEFAULT_MNEMONIC, accounts=2, balance=10**18)
    dump = json.loads(json.dumps(saved.export_state()))
    later = EvmChain(1, mnemonic=DEFAULT_MNEMONIC, accounts=2, balance=10**18, clock=lambda: time.time() + 5)
    assert later.genesis_hash != saved.genesis_hash
    later.import_state(dump)
    assert later.call("eth_getBlockByNumber", ["latest", False])["hash"] == "0x" + dump["head"]
    later.call("evm_mine", [{"blocks": 2}], control=True)
    assert later.call("eth_getBlockByNumber", ["0x1", False])["parentHash"] == "0x" + dump["head"]
