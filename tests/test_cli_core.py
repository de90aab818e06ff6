"""`mockinfura serve` and `mockinfura check` as a user runs them: a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mockinfura.config import ConfigError, parse_balance, parse_config
from tests.conftest import OPEN_KEY, rpc
from tests.server import ServerProcess


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mockinfura", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_listening_line_and_exits_0_on_signal(signum):
    process = ServerProcess()
    assert process.lines[0] == f"mockinfura listening on http://127.0.0.1:{process.port}"
    assert any(line.endswith(f"/v3/{OPEN_KEY}") for line in process.lines[1:])
    with httpx.Client() as client:
        assert rpc(client, process.url(OPEN_KEY), "eth_blockNumber").json()["result"] == "0x0"
    process.process.send_signal(signum)
    assert process.process.wait(timeout=15) == 0
    stderr = process.stderr
    assert "Traceback" not in stderr
    process.stop()


def test_env_vars_stand_in_for_flags(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[server]\ndefault_network = "sepolia"\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MOCKINFURA_CONFIG": str(config), "MOCKINFURA_PORT": str(port), "MOCKINFURA_HOST": "127.0.0.1"}
    process = subprocess.Popen([sys.executable, "-m", "mockinfura", "serve"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout.readline().strip() == f"mockinfura listening on http://127.0.0.1:{port}"
        with httpx.Client() as client:
            assert rpc(client, f"http://127.0.0.1:{port}/v3/{OPEN_KEY}", "eth_chainId").json()["result"] == hex(11155111)
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
        process.stdout.close()


def test_port_in_use_is_a_one_line_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip() == f"mockinfura: cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("serve", "--port", "notaport"), "invalid int value"),
        (("serve", "--port", "70000"), "between 0 and 65535"),
        (("serve", "--config", "/nonexistent/mockinfura.toml"), "cannot read the config file"),
        (("frobnicate",), "invalid choice"),
        (("check",), "required"),
    ],
)
def test_bad_flags_exit_2_without_traceback(args, words):
    result = run_cli(*args)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr


CONFIG_PROBLEMS = [
    ("[server]\ndefault_network = \"atlantis\"\n", "server.default_network: unknown network 'atlantis'"),
    ("[server]\nmethod_not_found_status = 500\n", "server.method_not_found_status: expected 200 or 400"),
    ("[server]\nfoo = 1\n", "server.foo: unknown field"),
    ("[chain]\naccounts = \"ten\"\n", "chain.accounts: expected an integer"),
    ("[chain]\nbalance = \"ten ether\"\n", "chain.balance"),
    ("[chain]\nmnemonic = \"test test test test test test test test test test test test\"\n", "checksum"),
    ("[networks.atlantis]\n", "networks.atlantis: unknown network"),
    ("[networks.sepolia]\nbackend = \"geth\"\n", "networks.sepolia.backend"),
    ("[networks.sepolia]\nfixtures = [\"nowhere.json\"]\n", "networks.sepolia.fixtures: no such file"),
    ("[api_keys.a]\nkey = \"XYZ\"\n", "api_keys.a.key: expected 32 lowercase hex characters"),
    ("[api_keys.a]\nkey = \"" + "a" * 32 + "\"\nrequire_secret = true\n", "api_keys.a.require_secret"),
    ("[api_keys.a]\nkey = \"" + "a" * 32 + "\"\nnetworks = [\"atlantis\"]\n", "api_keys.a.networks: unknown network"),
    ("[api_keys.a]\nkey = \"" + "a" * 32 + "\"\n[api_keys.b]\nkey = \"" + "a" * 32 + "\"\n", "already used"),
    ("not toml at all [", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "words"), CONFIG_PROBLEMS)
def test_check_names_file_key_and_field(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = run_cli("check", str(path))
    assert result.returncode == 2, result.stdout
    assert words in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr
    served = run_cli("serve", "--port", "0", "--config", str(path))
    assert served.returncode == 2 and words in served.stderr and "Traceback" not in served.stderr


def test_check_lists_every_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nfoo = 1\n[chain]\naccounts = -1\n")
    result = run_cli("check", str(path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 2


def test_check_ok(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text('[chain]\nbalance = "5 ether"\naccounts = 3\n[api_keys.ci]\nkey = "' + "b" * 32 + '"\n')
    result = run_cli("check", str(path))
    assert result.returncode == 0 and "ok" in result.stdout


def test_configured_accounts_and_balance_are_served():
    text = ('[chain]\nbalance = "5 ether"\naccounts = 2\n'
            'mnemonic = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"\n'
            '[api_keys.ci]\nkey = "' + "c" * 32 + '"\n')
    with ServerProcess(text) as process, httpx.Client() as client:
        accounts = client.post(f"{process.base_url}/_mock/rpc/mainnet",
                               json={"jsonrpc": "2.0", "id": 1, "method": "eth_accounts"}).json()["result"]
        assert accounts == ["0x9858effd232b4033e47d90003d41ec34ecaeda94", "0x6fac4d18c912343bf86fa7049364dd4e424ab9c0"]
        balance = rpc(client, process.url("c" * 32), "eth_getBalance", [accounts[1]]).json()["result"]
        assert int(balance, 16) == 5 * 10**18
        assert rpc(client, process.url(OPEN_KEY), "eth_chainId").status_code == 401  # only the configured key


@pytest.mark.parametrize(("text", "wei"), [("10000 ether", 10**22), ("5 gwei", 5 * 10**9), ("123", 123),
                                           (123, 123), ("1.5 ether", 15 * 10**17)])
def test_parse_balance(text, wei):
    assert parse_balance(text) == wei


@pytest.mark.parametrize("text", ["-1 ether", "1.5 wei", "many", True, "1 bitcoin", "1e100 ether"])
def test_parse_balance_refuses(text):
    with pytest.raises(ValueError):
        parse_balance(text)


def test_parse_config_collects_problems():
    with pytest.raises(ConfigError) as error:
        parse_config({"server": {"control": "wide"}, "chain": {"accounts": 0}}, source="x.toml")
    assert len(error.value.problems) == 2
    assert all(problem.startswith("x.toml: ") for problem in error.value.problems)
