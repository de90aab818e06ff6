"""`mockinfura record`: a recording proxy in front of a second mockinfura, then the recording replayed."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mockinfura import cli
from mockinfura.recorder import Recording, record_exchange
from mockinfura.testing.server import MockInfura, make_web3

DEV_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
BEEF = "0x000000000000000000000000000000000000bEEF"


class Recorder:
    """`mockinfura record` as a user runs it, on a free port."""

    def __init__(self, upstream: str, out: Path, *extra: str) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mockinfura", "record", "--upstream", upstream, "--out", str(out), "--port", "0",
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=30):
            self.process.kill()
            raise RuntimeError("the recorder did not start")
        line = self.process.stdout.readline()
        assert line.startswith("mockinfura listening on http://127.0.0.1:"), line + self.process.stderr.read()
        self.base_url = line.split()[-1]

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=20)
        return self.process.returncode, out, err


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockInfura]:
    with MockInfura() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, trust_env=False) as client:
        yield client


def post(http: httpx.Client, url: str, body: object) -> tuple[int, object]:
    response = http.post(url, json=body)
    return response.status_code, response.json()


def session(http: httpx.Client, url: str, between: Callable[[], object]) -> list[tuple[int, object]]:
    """What a client asks: singles, a batch, an error, a call whose answer changes, a web3.py session."""
    answers = [
        post(http, url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}),
        post(http, url, {"jsonrpc": "2.0", "id": "two", "method": "eth_getBalance", "params": [DEV_0, "latest"]}),
        post(http, url, [{"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber"},
                         {"jsonrpc": "2.0", "id": 4, "method": "eth_getBlockByNumber", "params": ["0x0", False]},
                         {"jsonrpc": "2.0", "id": 5, "method": "net_version"}]),
        post(http, url, {"jsonrpc": "2.0", "id": 6, "method": "eth_getTransactionByHash", "params": ["0x12"]}),
        post(http, url, {"jsonrpc": "2.0", "id": 7, "method": "eth_sign", "params": [DEV_0, "0x00"]}),
    ]
    between()  # the upstream's chain moves on (mined blocks); a replay has nothing to do here
    answers.append(post(http, url, {"jsonrpc": "2.0", "id": 8, "method": "eth_blockNumber"}))
    answers.append(post(http, url, {"jsonrpc": "2.0", "id": 9, "method": "eth_blockNumber"}))
    w3 = make_web3(url)
    answers.append((200, [w3.eth.chain_id, w3.eth.get_balance(BEEF), w3.eth.get_block("latest")["number"],
                          w3.eth.gas_price]))
    return answers


def test_record_then_replay_gives_the_same_answers(upstream: MockInfura, http: httpx.Client, tmp_path: Path) -> None:
    out = tmp_path / "sepolia.json"
    with upstream.isolated():
        recorder = Recorder(upstream.url("sepolia"), out)
        recorded = session(http, f"{recorder.base_url}/v3/{'ab' * 16}",
                           lambda: upstream.admin.mine(2, network="sepolia"))
        code, stdout, stderr = recorder.stop()
    assert code == 0, stderr
    assert "wrote" in stdout and str(out) in stdout
    entries = json.loads(out.read_text())
    assert {"method": "eth_sign", "params": [DEV_0, "0x00"],
            "error": {"code": -32601, "message": "The method eth_sign does not exist/is not available"}} in entries
    block_numbers = [e for e in entries if e["method"] == "eth_blockNumber"]
    assert [(e["result"], e.get("times")) for e in block_numbers] == [("0x0", 1), ("0x2", None)]
    assert cli.main(["check", str(_canned_config(tmp_path, out))]) == 0

    with MockInfura(_canned_config(tmp_path, out)) as replay:
        replayed = session(http, replay.url("sepolia"), lambda: None)
    assert replayed == recorded


def _canned_config(folder: Path, fixture: Path) -> Path:
    config = folder / "replay.toml"
    config.write_text(f'[networks.sepolia]\nbackend = "canned"\nfixtures = ["{fixture.name}"]\n')
    return config


def test_answers_at_the_root_and_at_v3_and_stops_on_sigint(upstream: MockInfura, http: httpx.Client,
                                                           tmp_path: Path) -> None:
    recorder = Recorder(upstream.url("mainnet"), tmp_path / "out.json")
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    for path in ("", "/", f"/v3/{'0' * 32}", "/v3/anything/", f"/mainnet/v3/{'0' * 32}"):
        assert post(http, recorder.base_url + path, body) == (200, {"jsonrpc": "2.0", "id": 1, "result": "0x1"})
    assert http.post(f"{recorder.base_url}/elsewhere", json=body).status_code == 404
    assert http.get(f"{recorder.base_url}/v3/x").status_code == 405
    assert http.post(recorder.base_url, content=b"{nope").status_code == 400
    code, _, stderr = recorder.stop(signal.SIGINT)
    assert code == 0, stderr
    assert json.loads((tmp_path / "out.json").read_text()) == [{"method": "eth_chainId", "params": [], "result": "0x1"}]


def test_auth_headers_are_forwarded_and_refusals_not_recorded(upstream: MockInfura, http: httpx.Client,
                                                              tmp_path: Path) -> None:
    key = upstream.create_key(require_jwt=True, jwt_alg="ES256")
    try:
        recorder = Recorder(key.url("sepolia"), tmp_path / "out.json")
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
        refused = http.post(recorder.base_url, json=body)
        assert refused.status_code == 401 and refused.text == "invalid JWT\n"
        allowed = http.post(recorder.base_url, json=body, headers={"Authorization": key.authorization()})
        assert allowed.json()["result"] == "0xaa36a7"
        assert recorder.stop()[0] == 0
    finally:
        key.delete()
    assert json.loads((tmp_path / "out.json").read_text()) == [{"method": "eth_chainId", "params": [],
                                                                 "result": "0xaa36a7"}]


def test_an_unreachable_upstream_is_a_502_and_nothing_is_recorded(http: httpx.Client, tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    recorder = Recorder(f"http://127.0.0.1:{port}/v3/x", tmp_path / "out.json")
    reply = http.post(recorder.base_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    assert reply.status_code == 502
    assert "upstream unreachable" in reply.json()["error"]["message"]
    assert recorder.stop()[0] == 0
    assert json.loads((tmp_path / "out.json").read_text()) == []


@pytest.mark.parametrize(("args", "problem"), [
    (["--upstream", "mainnet.infura.io", "--out", "x.json"], "--upstream must be an http:// or https:// URL"),
    (["--upstream", "http://127.0.0.1:1", "--out", "no/such/dir/x.json"], "the folder no/such/dir does not exist"),
    (["--upstream", "http://127.0.0.1:1", "--out", "."], "is a folder"),
    (["--upstream", "http://127.0.0.1:1", "--out", "x.json", "--port", "70000"], "--port must be between"),
])
def test_bad_flags_exit_2_with_the_problem(args: list[str], problem: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mockinfura", "record", *args], capture_output=True, text=True,
                            cwd=tmp_path, timeout=30, env={**os.environ})
    assert result.returncode == 2
    assert problem in result.stderr and "Traceback" not in result.stderr


def test_missing_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["record", "--out", "x.json"])
    assert exit_info.value.code == 2
    assert "--upstream" in capsys.readouterr().err


# ---------------------------------------------------------------- what is recorded, unit by unit


def test_runs_of_answers_become_times() -> None:
    recording = Recording()
    for answer in ("0x1", "0x1", "0x2", "0x1", "0x1", "0x1"):
        recording.add("eth_blockNumber", [], "result", answer)
    recording.add("eth_chainId", [], "result", "0x1")
    recording.add("eth_chainId", [], "result", "0x1")
    assert recording.fixture_entries() == [
        {"method": "eth_blockNumber", "params": [], "result": "0x1", "times": 2},
        {"method": "eth_blockNumber", "params": [], "result": "0x2", "times": 1},
        {"method": "eth_blockNumber", "params": [], "result": "0x1"},
        {"method": "eth_chainId", "params": [], "result": "0x1"},
    ]


def test_batch_replies_are_paired_by_id_whatever_their_order() -> None:
    recording = Recording()
    request = [{"jsonrpc": "2.0", "id": 1, "method": "a", "params": [1]},
               {"jsonrpc": "2.0", "method": "notification"},
               {"jsonrpc": "2.0", "id": "x", "method": "b"},
               {"jsonrpc": "2.0", "id": 3, "method": "c"}]
    reply = [{"jsonrpc": "2.0", "id": "x", "error": {"code": 3, "message": "reverted"}},
             {"jsonrpc": "2.0", "id": 1, "result": "one"},
             {"jsonrpc": "2.0", "id": 3, "error": {"code": -32005, "message": "limit exceeded"}}]
    record_exchange(recording, request, 200, reply)
    assert recording.fixture_entries() == [
        {"method": "a", "params": [1], "result": "one"},
        {"method": "b", "params": [], "error": {"code": 3, "message": "reverted"}},
    ]


def test_http_errors_are_not_recorded_save_method_not_found() -> None:
    recording = Recording()
    call = {"jsonrpc": "2.0", "id": 1, "method": "m"}
    record_exchange(recording, call, 429, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "x"}})
    record_exchange(recording, call, 401, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32002, "message": "x"}})
    record_exchange(recording, [call], 401, {"jsonrpc": "2.0", "id": None, "error": {"code": -32002, "message": "x"}})
    record_exchange(recording, call, 400, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no m"}})
    assert recording.fixture_entries() == [{"method": "m", "params": [], "error": {"code": -32601, "message": "no m"}}]
