"""The pytest plugin, run as users run it: inner pytest sessions (pytester) with the installed entry point."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import time

# Imported here, before pytester snapshots sys.modules, so that each inner session does not import them again.
import eth_tester.backends.pyevm.main  # noqa: F401
import pytest
import web3  # noqa: F401

import mockinfura.app  # noqa: F401
import mockinfura.chains.evm  # noqa: F401
import mockinfura.serving
from mockinfura.testing.server import MockInfura, StartError

pytest_plugins = ["pytester"]

DEV_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TEN_THOUSAND_ETHER = 10_000 * 10**18


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_the_three_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        from web3 import Web3

        def test_infura(infura):
            assert infura.url() == f"http://127.0.0.1:{{infura.port}}/mainnet/v3/{{infura.api_key}}"
            assert infura.url("sepolia", key="ab" * 16).endswith("/sepolia/v3/" + "ab" * 16)
            assert infura.ws_url("sepolia") == f"ws://127.0.0.1:{{infura.port}}/sepolia/ws/v3/{{infura.api_key}}"
            assert infura.api_key == "0123456789abcdef0123456789abcdef"
            assert infura.accounts[0].address == "{DEV_0}"
            assert infura.accounts[0].key == "{DEV_0_KEY}"
            assert infura.accounts[1].address == "{DEV_1}"
            assert len(infura.accounts) == 10
            assert infura.admin.health()["status"] == "ok"

        def test_infura_w3(infura_w3):
            assert infura_w3.eth.chain_id == 1
            assert infura_w3.eth.get_balance("{DEV_0}") == {TEN_THOUSAND_ETHER}

        def test_balance_with_jwt(infura, infura_key):
            key = infura_key(require_jwt=True)
            w3 = key.web3(network="sepolia")
            assert w3.eth.chain_id == 11155111
            headers = w3.provider.get_request_kwargs()["headers"]
            assert headers["Content-Type"] == "application/json"
            assert headers["User-Agent"].startswith("web3.py/")
            assert headers["Authorization"].startswith("Bearer ")
            [entry] = infura.admin.requests(key=key.key)
            assert entry["decision"] == "allowed" and entry["reason"] == f"jwt ok (kid {{key.kid}})"
            assert entry["user_agent"].startswith("web3.py/")
            assert entry["network"] == "sepolia" and entry["methods"] == ["eth_chainId"]
    """)
    run_inner(pytester).assert_outcomes(passed=3)


def test_infura_key_options_and_cleanup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import re
        import pytest
        from requests.exceptions import HTTPError
        from web3 import Web3

        created = []

        def test_create(infura, infura_key):
            plain = infura_key()
            assert re.fullmatch("[0-9a-f]{32}", plain.key) and plain.secret is None
            assert plain.web3().eth.block_number == 0   # a JWT is sent; the key accepts it though not required

            secret = infura_key(secret=True, require_secret=True)
            assert re.fullmatch("[0-9a-f]{32}", secret.secret)
            assert secret.web3("sepolia").eth.chain_id == 11155111   # auto: the secret, since it is required
            with pytest.raises(HTTPError, match="401"):
                secret.web3("sepolia", jwt=True).eth.chain_id
            assert infura_key(secret="my-secret").secret == "my-secret"

            es = infura_key(require_jwt=True, jwt_alg="ES256")
            assert es.alg == "ES256" and es.entry["jwt_public_keys"][0]["alg"] == "ES256"
            assert es.web3("sepolia").eth.chain_id == 11155111
            other = infura_key(require_jwt=True)
            assert other.kid != es.kid
            with pytest.raises(HTTPError, match="401"):   # a key pair of its own: es's token is no good here
                other.web3("sepolia", jwt=es.jwt()).eth.chain_id

            scoped = infura_key(networks=["sepolia"], allowlists={"methods": ["eth_chainId"]})
            assert scoped.entry["networks"] == ["sepolia"]
            assert scoped.web3("sepolia", jwt=False).eth.chain_id == 11155111
            with pytest.raises(HTTPError, match="403"):
                scoped.web3("sepolia", jwt=False).eth.block_number
            with pytest.raises(TypeError, match="unknown API key option"):
                infura_key(requires_jwt=True)
            limited = infura_key(plan="developer", credits_per_second=50, credits_per_day=1000)  # passed through
            assert (limited.entry["plan"], limited.entry["credits_per_second"], limited.entry["credits_per_day"]) == (
                "developer", 50, 1000)
            assert infura.url("sepolia", key=limited) == limited.url("sepolia")
            created.extend(k.key for k in (plain, secret, es, other, scoped, limited))

        def test_keys_were_deleted(infura):
            assert len(created) == 6
            assert all(infura.admin.keys.get(key) is None for key in created)
    """)
    run_inner(pytester).assert_outcomes(passed=2)


def test_token_claims(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from requests.exceptions import HTTPError

        def test_claims(infura, infura_key):
            key = infura_key(require_jwt=True)
            w3 = key.web3("sepolia", jwt=key.jwt(methods=["eth_chainId"]))
            assert w3.eth.chain_id == 11155111
            with pytest.raises(HTTPError, match="403"):
                w3.eth.block_number
            with pytest.raises(HTTPError, match="401"):
                key.web3("sepolia", jwt=key.jwt(aud="someone-else")).eth.chain_id
            assert infura.admin.requests(decision="refused")[-1]["reason"].startswith("aud")

        def test_clock_drives_expiry(infura, infura_key):
            key = infura_key(require_jwt=True)
            w3 = key.web3("sepolia", jwt=key.jwt(ttl=60))
            assert w3.eth.chain_id == 11155111
            infura.admin.clock.advance(61)
            with pytest.raises(HTTPError, match="401"):
                w3.eth.chain_id
            assert infura.admin.requests()[-1]["reason"] == "jwt expired"
            assert key.web3("sepolia").eth.chain_id == 11155111  # a new token is made on the server's clock

        def test_the_clock_was_put_back(infura):
            assert abs(infura.admin.clock.get()["offset"]) < 1e-6
    """)
    run_inner(pytester).assert_outcomes(passed=3)


ISOLATION_TESTS = f"""
    import pytest

    DEV_0 = "{DEV_0}"
    BEEF = "0x000000000000000000000000000000000000bEEF"

    def send(infura, wei, network="mainnet"):
        infura.admin.rpc("eth_sendTransaction", [{{"from": DEV_0, "to": BEEF, "value": hex(wei)}}], network=network)

    @pytest.fixture(scope="session")
    def deployed(infura):
        # a session fixture runs before the per-test snapshot: what it does is kept
        send(infura, 123)
        return 123

    def test_0_builds_mainnet(infura_w3):
        assert infura_w3.eth.block_number == 0

    def test_1_changes(infura, infura_w3, deployed):
        assert infura_w3.eth.get_balance(BEEF) == deployed
        send(infura, 5)
        infura.admin.mine(3, network="mainnet")
        send(infura, 7, network="sepolia")   # sepolia is first built here
        assert infura.web3("sepolia").eth.get_balance(BEEF) == 7
        assert infura.admin.requests()  # this test's requests ...
        assert infura.built_networks() == ["mainnet", "sepolia"]

    def test_2_sees_the_state_before_test_1(infura, infura_w3, deployed):
        assert infura.admin.requests() == []   # ... are gone
        assert infura_w3.eth.get_balance(BEEF) == deployed
        assert infura_w3.eth.block_number == 1   # the session fixture's block only
        assert infura.web3("sepolia").eth.get_balance(BEEF) == 0
        assert infura.web3("sepolia").eth.block_number == 0

    @pytest.mark.infura_shared_state
    def test_3_shared(infura, infura_w3):
        send(infura, 1000)
        infura.admin.clock.advance(100)

    def test_4_keeps_what_test_3_did(infura, infura_w3):
        assert infura_w3.eth.get_balance(BEEF) == 1123
        assert infura.admin.clock.get()["offset"] == 100
        infura.admin.clock.reset()   # rolled back after this test, as the chains are

    def test_5_snapshot_inside_a_test(infura, infura_w3):
        snapshot = infura.admin.snapshot()
        send(infura, 1)
        assert infura.admin.revert(snapshot) is True
        assert infura_w3.eth.get_balance(BEEF) == 1123
        send(infura, 2)

    def test_6_after(infura, infura_w3):
        assert infura_w3.eth.get_balance(BEEF) == 1123
        assert infura.admin.clock.get()["offset"] == 100
"""


def test_isolation_and_the_opt_out_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ISOLATION_TESTS)
    run_inner(pytester, "-W", "error::pytest.PytestWarning").assert_outcomes(passed=7)


def test_isolation_when_the_state_before_the_test_was_set_directly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        import pytest

        @pytest.fixture(scope="session")
        def funded(infura):
            infura.admin.set_balance("{DEV_1}", 123)
            return 123

        def test_1(infura, infura_w3, funded):
            infura.admin.set_balance("{DEV_1}", 5)

        def test_2(infura_w3, funded):
            assert infura_w3.eth.get_balance("{DEV_1}") == funded
    """)
    run_inner(pytester, "-W", "error::pytest.PytestWarning").assert_outcomes(passed=2)


def test_a_test_that_resets_everything_gets_a_warning(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_builds_mainnet(infura_w3):
            assert infura_w3.eth.block_number == 0

        def test_reset(infura, infura_w3):
            infura.admin.set_balance(infura.accounts[1].address, 1)
            infura.admin.reset()

        def test_after(infura_w3, infura):
            assert infura_w3.eth.get_balance(infura.accounts[1].address) == 10_000 * 10**18
    """)
    result = run_inner(pytester)
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(["*MockInfuraIsolationWarning*mainnet: the snapshot taken before the test was used up*"])


def test_canned_times_counters_are_rolled_back(pytester: pytest.Pytester) -> None:
    fixture = pytester.path / "canned.json"
    fixture.write_text(json.dumps([{"method": "eth_gasPrice", "result": "0x7", "times": 1}]))
    pytester.makefile(".toml", mockinfura=f'[networks.mainnet]\nfixtures = ["{fixture.name}"]\n')
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("run", [1, 2])
        def test_canned_once_per_test(infura_w3, run):
            assert infura_w3.eth.gas_price == 7
            assert infura_w3.eth.gas_price != 7
    """)
    run_inner(pytester, "--infura-config", "mockinfura.toml").assert_outcomes(passed=2)


def test_tests_that_do_not_use_the_mock_start_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import sys

        def test_plain():
            assert 1 + 1 == 2

        def test_nothing_heavy_was_imported():
            heavy = [m for m in ("fastapi", "uvicorn", "web3", "eth", "eth_tester", "mockinfura.app")
                     if m in sys.modules]
            assert heavy == [], heavy
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_config_option_and_ini_key(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", custom="""
        [chain]
        accounts = 3

        [api_keys.mine]
        key = "00000000000000000000000000000abc"
    """)
    pytester.makepyfile("""
        def test_config(infura):
            assert infura.api_key == "00000000000000000000000000000abc"
            assert len(infura.accounts) == 3
            assert infura.config.source.endswith("custom.toml")
    """)
    run_inner(pytester, "--infura-config", "custom.toml").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\ninfura_config = custom.toml\n")
    run_inner(pytester).assert_outcomes(passed=1)


def test_an_invalid_config_fails_with_its_problems(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", bad='[chain]\naccounts = "many"\n')
    pytester.makepyfile("""
        def test_a(infura):
            pass

        def test_b(infura):
            pass
    """)
    result = run_inner(pytester, "--infura-config", "bad.toml")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*invalid config for the infura fixture*", "*chain.accounts: expected an integer*"])


def test_a_taken_port_fails_fast_with_a_clear_message(pytester: pytest.Pytester) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pytester.makeconftest(f"""
            import pytest

            @pytest.fixture(scope="session")
            def infura_port():
                return {port}
        """)
        pytester.makepyfile("""
            def test_a(infura):
                pass

            def test_b(infura_w3):
                pass
        """)
        started = time.monotonic()
        result = run_inner(pytester)
        elapsed = time.monotonic() - started
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([f"*mockinfura could not start: cannot listen on 127.0.0.1:{port}: *in use*"])
    result.stdout.no_fnmatch_line("*Traceback*")
    assert elapsed < 10


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.infura_shared_state
        def test_marked():
            pass
    """)
    run_inner(pytester, "--strict-markers").assert_outcomes(passed=1)
    run_inner(pytester, "--markers").stdout.fnmatch_lines(["@pytest.mark.infura_shared_state:*"])


def test_one_server_per_xdist_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_port(infura, infura_w3, n):
            infura.admin.set_balance(infura.accounts[1].address, n)
            assert infura_w3.eth.get_balance(infura.accounts[1].address) == n
            with open(f"ports-{n}.txt", "w") as f:
                f.write(f"{os.environ['PYTEST_XDIST_WORKER']} {infura.port}")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6)
    pairs = {tuple((pytester.path / f"ports-{n}.txt").read_text().split()) for n in range(6)}
    workers = {worker for worker, _ in pairs}
    ports = {port for _, port in pairs}
    assert len(workers) == 2 and len(ports) == 2


def test_importing_the_plugin_is_cheap() -> None:
    code = textwrap.dedent("""
        import sys, time
        import pytest
        start = time.perf_counter()
        import mockinfura.testing.plugin
        elapsed = time.perf_counter() - start
        heavy = sorted(m for m in ("fastapi", "starlette", "uvicorn", "web3", "eth", "eth_tester", "httpx",
                                   "cryptography", "mockinfura.config") if m in sys.modules)
        print(elapsed, heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
    elapsed, heavy = float(out[0]), out[1].strip()
    assert heavy == "[]"
    assert elapsed < 0.1  # measured: 1.5 to 6 ms; the bound leaves room for a loaded CI machine


# ---------------------------------------------------------------- MockInfura without pytest


def test_mockinfura_as_a_context_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):  # loopback calls never go through a proxy
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with MockInfura(config={"chain": {"accounts": 2}}) as infura:
        assert infura.running
        port = infura.port
        assert infura.web3("sepolia").eth.chain_id == 11155111
        assert [a.address for a in infura.accounts] == [DEV_0, DEV_1]
        with pytest.raises(StartError, match="already started"):
            infura.start()
        with infura.isolated():
            infura.admin.set_balance(DEV_1, 1, network="sepolia")
        assert infura.web3("sepolia").eth.get_balance(DEV_1) == TEN_THOUSAND_ETHER
    assert not infura.running
    with socket.socket() as probe:  # nothing listens there any more (SO_REUSEADDR: TIME_WAIT is no listener)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_a_server_thread_that_dies_at_start_up_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class DyingServer:
        started = False
        should_exit = False

        async def serve(self, sockets: object) -> None:
            raise SystemExit(1)  # what uvicorn does when its start-up fails

    monkeypatch.setattr(mockinfura.serving, "make_server", lambda app: DyingServer())
    started = time.monotonic()
    with pytest.raises(StartError, match=r"server thread ended during start-up \(SystemExit: 1\)"):
        MockInfura().start()
    assert time.monotonic() - started < 5


def test_a_server_that_never_starts_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    class StuckServer:
        started = False
        should_exit = False

        async def serve(self, sockets: object) -> None:
            while not self.should_exit:
                await asyncio.sleep(0.01)

    monkeypatch.setattr(mockinfura.serving, "make_server", lambda app: StuckServer())
    with pytest.raises(StartError, match=r"did not start on 127\.0\.0\.1:\d+ within 0\.3 s"):
        MockInfura(start_timeout=0.3).start()
