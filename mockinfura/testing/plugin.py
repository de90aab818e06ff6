"""The pytest plugin (entry point `pytest11`, spec interface.md section 6): fixtures over `MockInfura`.

Importing this module must stay cheap: nothing of the server (FastAPI, uvicorn, py-evm, web3) is imported
until a test uses one of the fixtures.

Isolation rule. Before each test that uses `infura` (directly or through another fixture), every network
whose chain is already built is snapshotted (in process, on the chain's own thread, no HTTP) and the
server clock's offset is saved; after the test those networks are reverted to their snapshots, the canned
replies' `times` counters are restored, and the clock offset is put back. A network first built during the
test was at genesis before it (nothing had touched it), so it is reset to genesis. Higher-scoped fixtures
(session, module) are set up before this function-scoped one, so what they deploy is kept; function-scoped
fixtures are rolled back with the test. API keys are not rolled back: `infura_key` deletes its own keys,
keys added through `infura.admin.keys` stay. A test marked `infura_shared_state` is not rolled back. The
request journal is cleared before every test that uses `infura`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from web3 import Web3

    from mockinfura.testing.keys import KeyFactory
    from mockinfura.testing.server import MockInfura

SHARED_STATE_MARKER = "infura_shared_state"


class MockInfuraIsolationWarning(pytest.PytestWarning):
    """A test's chain changes could not be rolled back."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mockinfura", "mockinfura (a local Infura)")
    group.addoption(
        "--infura-config", dest="infura_config", metavar="FILE", default=None,
        help="mockinfura TOML config for the `infura` fixture (default: the ini key infura_config, "
        "else the embedded default)",
    )
    group.addoption(
        "--infura-credits", dest="infura_credits", action="store_true", default=False,
        help="at the end, print the Infura credits each test and each method cost (what the suite would spend)",
    )
    parser.addini("infura_config", "mockinfura TOML config for the `infura` fixture, relative to the ini file",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{SHARED_STATE_MARKER}: the test's changes to mockinfura's chains and clock are kept for the tests "
        "after it (no snapshot/revert around it)",
    )


@pytest.fixture(scope="session")
def infura_config(pytestconfig: pytest.Config) -> Any:
    """The config the `infura` server runs: `--infura-config`, else the ini key `infura_config`, else None
    (the embedded default). Override this fixture to return a path, a `Config` or a TOML-shaped dict."""
    option = pytestconfig.getoption("infura_config")
    if option:
        return pytestconfig.invocation_params.dir / option
    ini = pytestconfig.getini("infura_config")
    if ini:
        base = pytestconfig.inipath.parent if pytestconfig.inipath else pytestconfig.rootpath
        return base / Path(ini)
    return None


@pytest.fixture(scope="session")
def infura_host() -> str:
    return "127.0.0.1"


@pytest.fixture(scope="session")
def infura_port() -> int:
    """0: a free port (one server per session and per xdist worker)."""
    return 0


@pytest.fixture(scope="session")
def infura(infura_config: Any, infura_host: str, infura_port: int) -> Iterator[MockInfura]:
    """The running mock: `.url(network, key)`, `.ws_url()`, `.api_key`, `.accounts`, `.admin`, `.web3()`."""
    from mockinfura.config import ConfigError
    from mockinfura.testing.server import MockInfura, StartError

    server = MockInfura(infura_config, host=infura_host, port=infura_port)
    try:
        server.start()
    except ConfigError as exc:
        pytest.fail(f"mockinfura: invalid config for the infura fixture:\n{exc}", pytrace=False)
    except StartError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _infura_isolation(request: pytest.FixtureRequest) -> None:
    """Autouse, so that it is set up after the higher-scoped fixtures and before the test's own ones."""
    if "infura" not in request.fixturenames:  # a test that does not use the mock costs nothing more
        return
    infura: MockInfura = request.getfixturevalue("infura")
    infura.clear_requests()
    if request.config.getoption("infura_credits"):
        before = _credits_by_method(infura)
        request.addfinalizer(lambda: _record_credits(request, infura, before))
    if request.node.get_closest_marker(SHARED_STATE_MARKER) is not None:
        return
    checkpoint = infura.checkpoint()

    def roll_back() -> None:
        for problem in infura.rollback(checkpoint):
            warnings.warn(MockInfuraIsolationWarning(f"mockinfura isolation: {problem}"), stacklevel=1)

    request.addfinalizer(roll_back)


@pytest.fixture
def infura_key(infura: MockInfura) -> Iterator[KeyFactory]:
    """A factory: `infura_key(require_jwt=True, secret=True, allowlists={...}, networks=[...], jwt_alg="ES256")`
    returns a new key (`.key`, `.secret`, `.url()`, `.jwt()`, `.web3()`); its keys are deleted after the test."""
    from mockinfura.testing.keys import KeyFactory

    factory = KeyFactory(infura)
    yield factory
    factory.cleanup()


@pytest.fixture
def infura_w3(infura: MockInfura) -> Web3:
    """A `Web3` on the default open key and mainnet."""
    return infura.web3("mainnet")


# ---------------------------------------------------------------- --infura-credits

CREDITS_KEY = pytest.StashKey[list]()


def _credits_by_method(infura: MockInfura) -> dict[str, list[int]]:
    """{method: [calls, credits]} summed over every key and day of the usage report."""
    totals: dict[str, list[int]] = {}
    for days in infura.state.meter.usage.values():
        for day in days.values():
            for method, figures in day["methods"].items():
                entry = totals.setdefault(method, [0, 0])
                entry[0] += figures["calls"]
                entry[1] += figures["credits"]
    return totals


def _record_credits(request: pytest.FixtureRequest, infura: MockInfura, before: dict[str, list[int]]) -> None:
    after = _credits_by_method(infura)
    spent = {}
    for method, (calls, credits) in after.items():
        old_calls, old_credits = before.get(method, (0, 0))
        if calls != old_calls or credits != old_credits:
            spent[method] = [calls - old_calls, credits - old_credits]
    request.config.stash.setdefault(CREDITS_KEY, []).append((request.node.nodeid, spent))


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the figures to the controller
        workeroutput["infura_credits"] = session.config.stash.get(CREDITS_KEY, [])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist's controller: gather each worker's figures (the hook exists only with xdist installed)."""
    records = getattr(node, "workeroutput", {}).get("infura_credits", [])
    node.config.stash.setdefault(CREDITS_KEY, []).extend(tuple(r) for r in records)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not config.getoption("infura_credits") or getattr(config, "workeroutput", None) is not None:
        return
    records = config.stash.get(CREDITS_KEY, [])
    write = terminalreporter.write_line
    terminalreporter.section("mockinfura: Infura credits")
    if not records:
        write("no test used the infura fixture")
        return
    methods: dict[str, list[int]] = {}
    per_test = []
    for nodeid, spent in records:
        per_test.append((sum(credits for _, credits in spent.values()), nodeid))
        for method, (calls, credits) in spent.items():
            entry = methods.setdefault(method, [0, 0])
            entry[0] += calls
            entry[1] += credits
    total = sum(credits for credits, _ in per_test)
    write("per test:")
    for credits, nodeid in sorted(per_test, key=lambda item: (-item[0], item[1])):
        write(f"  {credits:>10,}  {nodeid}")
    write("per method:")
    for method, (calls, credits) in sorted(methods.items(), key=lambda item: (-item[1][1], item[0])):
        write(f"  {credits:>10,}  {method} ({calls:,} calls)")
    write(f"total: {total:,} credits over {len(per_test)} tests")
