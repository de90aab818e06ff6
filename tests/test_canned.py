"""Canned fixtures (interface.md section 5), over HTTP on a real server: matching, `times`, errors, ids,
fall-through to the chain, -32601 under `backend = "canned"`, and `mockinfura check` on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mockinfura import cli
from mockinfura.testing.server import MockInfura

REPO = Path(__file__).resolve().parent.parent
ADDRESS = "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045"
OTHER = "0x000000000000000000000000000000000000bEEF"
REVERT_DATA = "0x08c379a0" + "20".rjust(64, "0") + "4".rjust(64, "0") + b"nope".hex().ljust(64, "0")
ENTRIES = [
    {"method": "web3_clientVersion", "result": "Geth/v1.14.12-canned"},  # no params: any params
    {"method": "eth_getBalance", "params": [ADDRESS, "latest"], "result": "0x2a"},
    {"method": "eth_gasPrice", "result": "0x7", "times": 2},
    {"method": "eth_call", "params": [{"to": ADDRESS, "data": "0x01"}, "latest"],
     "error": {"code": 3, "message": "execution reverted: nope", "data": REVERT_DATA}},
    {"method": "eth_getBalance", "params": [OTHER, "latest"], "result": "0x5", "network": "sepolia"},
    {"method": "eth_getProof", "result": {"canned": True}},  # a method the chain does not serve
]


@pytest.fixture(scope="module")
def canned(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("fixtures")
    (folder / "a.json").write_text(json.dumps(ENTRIES))
    config = {
        "networks": {
            "mainnet": {"fixtures": [str(folder)]},
            "sepolia": {"fixtures": [str(folder / "a.json")]},
            "holesky": {"backend": "canned", "fixtures": [str(folder)]},
        },
    }
    with MockInfura(config) as infura, httpx.Client(timeout=30, trust_env=False) as client:
        yield infura, client


def call(canned, method: str, params: list | None = None, network: str = "mainnet", call_id: object = 1) -> dict:
    infura, client = canned
    payload = {"jsonrpc": "2.0", "id": call_id, "method": method}
    if params is not None:
        payload["params"] = params
    response = client.post(infura.url(network), json=payload)
    assert response.status_code == 200
    return response.json()


def test_no_params_in_the_entry_matches_any_params(canned) -> None:
    for params in (None, [], ["extra", 1]):
        assert call(canned, "web3_clientVersion", params)["result"] == "Geth/v1.14.12-canned"


def test_params_must_match_exactly_else_the_chain_answers(canned) -> None:
    assert call(canned, "eth_getBalance", [ADDRESS, "latest"])["result"] == "0x2a"
    assert call(canned, "eth_getBalance", [ADDRESS, "0x0"])["result"] == "0x0"  # the chain: an empty account
    assert call(canned, "eth_getBalance", [OTHER, "latest"])["result"] == "0x0"  # the sepolia-only entry


def test_times_answers_n_times_then_falls_through(canned) -> None:
    infura, _ = canned
    with infura.isolated():  # puts the counters back for the other tests
        assert [call(canned, "eth_gasPrice")["result"] for _ in range(2)] == ["0x7", "0x7"]
        assert call(canned, "eth_gasPrice")["result"] != "0x7"  # the chain's own
        # counted per network; under backend = "canned" the call then has no answer at all
        assert [call(canned, "eth_gasPrice", network="holesky").get("result") for _ in range(2)] == ["0x7", "0x7"]
        assert call(canned, "eth_gasPrice", network="holesky")["error"]["code"] == -32601
    assert call(canned, "eth_gasPrice", network="holesky")["result"] == "0x7"


def test_a_canned_error_is_answered_whole(canned) -> None:
    reply = call(canned, "eth_call", [{"to": ADDRESS, "data": "0x01"}, "latest"], call_id="x-1")
    assert reply == {"jsonrpc": "2.0", "id": "x-1",
                     "error": {"code": 3, "message": "execution reverted: nope", "data": REVERT_DATA}}


@pytest.mark.parametrize("call_id", [0, 7, "abc", None, 2**70, 1.5])
def test_every_reply_echoes_the_callers_id(canned, call_id: object) -> None:
    assert call(canned, "web3_clientVersion", call_id=call_id)["id"] == call_id
    assert call(canned, "eth_getBalance", [ADDRESS, "latest"], call_id=call_id)["id"] == call_id


def test_ids_in_a_batch(canned) -> None:
    infura, client = canned
    batch = [
        {"jsonrpc": "2.0", "id": "b", "method": "eth_getBalance", "params": [ADDRESS, "latest"]},
        {"jsonrpc": "2.0", "id": 9, "method": "eth_call", "params": [{"to": ADDRESS, "data": "0x01"}, "latest"]},
        {"jsonrpc": "2.0", "id": [], "method": "web3_clientVersion"},
        {"jsonrpc": "2.0", "id": "c", "method": "eth_chainId"},
    ]
    replies = client.post(infura.url(), json=batch).json()
    assert [r["id"] for r in replies] == ["b", 9, None, "c"]
    assert replies[0]["result"] == "0x2a" and replies[1]["error"]["code"] == 3 and replies[3]["result"] == "0x1"
    assert replies[2]["error"]["code"] == -32600  # an array id is not a valid request


def test_an_entry_with_a_network_serves_only_that_network(canned) -> None:
    assert call(canned, "eth_getBalance", [OTHER, "latest"], network="sepolia")["result"] == "0x5"
    assert call(canned, "eth_getBalance", [OTHER, "latest"], network="mainnet")["result"] == "0x0"


def test_fall_through_to_the_chain_under_evm(canned) -> None:
    assert call(canned, "eth_chainId")["result"] == "0x1"
    assert call(canned, "eth_blockNumber", network="sepolia")["result"] == "0x0"
    assert call(canned, "eth_getProof", [ADDRESS, [], "latest"])["result"] == {"canned": True}


def test_under_canned_an_unmatched_call_is_method_not_found(canned) -> None:
    assert call(canned, "web3_clientVersion", network="holesky")["result"] == "Geth/v1.14.12-canned"
    reply = call(canned, "eth_chainId", network="holesky", call_id="q")
    assert reply["id"] == "q"
    assert reply["error"] == {"code": -32601, "message": "The method eth_chainId does not exist/is not available"}


def test_canned_replies_are_answered_by_the_control_plane_too(canned) -> None:
    infura, _ = canned
    assert infura.admin.rpc("eth_getBalance", [ADDRESS, "latest"]) == "0x2a"
    with pytest.raises(Exception, match="-32601"):
        infura.admin.rpc("evm_snapshot", network="holesky")  # a canned-only network has no chain to snapshot


# ---------------------------------------------------------------- `mockinfura check` on bad fixture files

BAD_FIXTURES = [
    ("{not json", "not valid JSON"),
    ('{"method": "eth_chainId", "result": "0x1"}', "expected a JSON list of fixture entries"),
    ('["eth_chainId"]', "[0]: expected an object"),
    ('[{"result": "0x1"}]', "[0].method: expected a method name"),
    ('[{"method": "eth_chainId"}]', "[0]: give exactly one of result and error"),
    ('[{"method": "eth_chainId", "result": "0x1", "error": {"code": 1, "message": "x"}}]',
     "[0]: give exactly one of result and error"),
    ('[{"method": "eth_chainId", "error": {"message": "x"}}]', "[0].error: expected {\"code\": int"),
    ('[{"method": "eth_chainId", "result": "0x1"}, {"method": "eth_gasPrice", "result": "0x1", "times": 0}]',
     "[1].times: expected a positive integer"),
    ('[{"method": "eth_chainId", "parms": [], "result": "0x1"}]', "[0]: unknown field 'parms'"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FIXTURES)
def test_check_names_the_file_the_entry_and_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         text: str, problem: str) -> None:
    fixture = tmp_path / "bad.json"
    fixture.write_text(text)
    config = tmp_path / "mockinfura.toml"
    config.write_text('[networks.mainnet]\nfixtures = ["bad.json"]\n')
    assert cli.main(["check", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: networks.mainnet.fixtures: {fixture}" in err
    assert problem in err


def test_check_reports_a_missing_fixture_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mockinfura.toml"
    config.write_text('[networks.sepolia]\nfixtures = ["nowhere.json"]\n')
    assert cli.main(["check", str(config)]) == 2
    assert f"networks.sepolia.fixtures: no such file or folder: {tmp_path / 'nowhere.json'}" in capsys.readouterr().err


def test_the_shipped_example_set_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(REPO / "examples" / "mockinfura.toml")]) == 0
    entries = json.loads((REPO / "fixtures" / "mainnet" / "example.json").read_text())
    assert {"params", "times", "error"} <= {name for entry in entries for name in entry}
    assert any("params" not in entry for entry in entries)


def test_hex_params_match_whatever_their_case() -> None:
    from mockinfura.chains.canned import CannedChain, parse_entry

    entry = parse_entry({"method": "eth_getBalance", "params": ["0xabcdef0000000000000000000000000000000001", "latest"],
                         "result": "0x10"}, "inline")
    chain = CannedChain("mainnet", [entry])
    # web3.py sends checksummed addresses; a recording may hold lower case
    assert chain.call("eth_getBalance", ["0xABcDEF0000000000000000000000000000000001", "latest"]) == "0x10"
    assert chain.match("eth_getBalance", ["0xabcdef0000000000000000000000000000000002", "latest"]) is None
    # a non-hex string keeps its case
    named = parse_entry({"method": "m", "params": ["Latest"], "result": 1}, "inline")
    assert CannedChain("mainnet", [named]).match("m", ["latest"]) is None
