"""`MockInfura`: the whole mock served by uvicorn in a background thread of this process.

    with MockInfura() as infura:                      # or MockInfura(config="mockinfura.toml")
        w3 = infura.web3("sepolia")
        infura.admin.set_balance(address, 10**18, network="sepolia")

It binds its socket itself before the thread starts (port 0: a free port, known at once), waits a bounded
time for uvicorn to be ready, and fails with a message (never a hang) when the thread ends or stalls.
The pytest plugin (`mockinfura.testing.plugin`) is a thin layer of fixtures over this class.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from mockinfura.testing.keys import ApiKeyHandle, KeyOptions, KeyPairPool, key_entry

if TYPE_CHECKING:
    from web3 import Web3

    from mockinfura.config import Config
    from mockinfura.state import MockState
    from mockinfura.testing.admin import Admin

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
HD_PATH = "m/44'/60'/0'/0"  # interface.md 3: dev account i is m/44'/60'/0'/0/i


class StartError(RuntimeError):
    """The server could not start: the message says why (port taken, thread ended, time-out)."""


class IsolationError(RuntimeError):
    """A chain that could not be put back as a checkpoint saw it."""


@dataclass(frozen=True, slots=True)
class DevAccount:
    """A funded dev account: `address` (checksummed) and `key` (0x-hex private key)."""

    address: str
    key: str

    def __str__(self) -> str:
        return self.address


class DevAccounts(Sequence[DevAccount]):
    """The config's dev accounts, derived from its mnemonic on first access to each (derivation is slow)."""

    def __init__(self, mnemonic: str, count: int) -> None:
        self._mnemonic = mnemonic
        self._count = count
        self._seed: bytes | None = None
        self._derived: dict[int, DevAccount] = {}

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> DevAccount: ...
    @overload
    def __getitem__(self, index: slice) -> list[DevAccount]: ...

    def __getitem__(self, index: int | slice) -> DevAccount | list[DevAccount]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"dev account {index} out of range (the config has {self._count})")
        account = self._derived.get(index)
        if account is None:
            account = self._derived[index] = self._derive(index)
        return account

    def _derive(self, index: int) -> DevAccount:
        from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
        from eth_keys import keys

        if self._seed is None:
            self._seed = seed_from_mnemonic(self._mnemonic, "")
        private_key = keys.PrivateKey(key_from_seed(self._seed, f"{HD_PATH}/{index}"))
        return DevAccount(address=private_key.public_key.to_checksum_address(), key=private_key.to_hex())

    def __repr__(self) -> str:
        return f"<DevAccounts: {self._count} from the config's mnemonic>"


@dataclass
class Checkpoint:
    """What `MockInfura.checkpoint` saved: a snapshot per built network, canned counters, the clock offset."""

    snapshots: dict[str, str | None] = field(default_factory=dict)  # network -> evm snapshot id (None: no EVM)
    canned_counters: dict[str, list[tuple[Any, int | None]]] = field(default_factory=dict)
    clock_offset: float = 0.0


def make_web3(url: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0) -> Web3:
    """A `Web3` over HTTP to URL that never retries (a refusal is an answer to assert on, not a glitch).

    Extra HEADERS are added to web3.py's own (`Content-Type: application/json`, its `User-Agent`): web3.py
    replaces its defaults by whatever `request_kwargs["headers"]` holds, so they are merged here.
    """
    from web3 import HTTPProvider, Web3

    request_kwargs: dict[str, Any] = {"timeout": timeout, "proxies": {"http": "", "https": ""}}
    if headers:
        request_kwargs["headers"] = {**HTTPProvider.get_request_headers(), **headers}
    provider = HTTPProvider(url, request_kwargs=request_kwargs, exception_retry_configuration=None)
    return Web3(provider)


def _load_config(config: Config | str | os.PathLike[str] | dict[str, Any] | None) -> Config:
    from mockinfura.config import Config, default_config, load_config, parse_config

    if config is None:
        return default_config()
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return parse_config(config, source="<config dict>")
    return load_config(Path(config))


class MockInfura:
    """The running mock: `.url()`, `.ws_url()`, `.api_key`, `.accounts`, `.admin`, `.web3()`, `.create_key()`.

    CONFIG: None (the embedded default), a TOML file path, a parsed `Config`, or a dict shaped like the TOML.
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | dict[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self._config_source = config
        self.host = host
        self.requested_port = port
        self.start_timeout = start_timeout
        self.port: int = 0
        self.config: Config | None = None
        self.key_pairs = KeyPairPool()
        self._app: Any = None
        self._server: Any = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._admin: Admin | None = None
        self._accounts: DevAccounts | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> MockInfura:
        """Serve; returns once the server answers. Raises ConfigError (a bad config) or StartError."""
        if self._thread is not None:
            raise StartError("this MockInfura is already started")
        from mockinfura import serving
        from mockinfura.app import create_app

        config = _load_config(self._config_source)
        config = _with_open_key(config)
        try:
            sock = serving.bind_socket(self.host, self.requested_port)
        except serving.BindError as exc:
            raise StartError(f"mockinfura could not start: {exc}") from None
        self._sock = sock
        self.port = sock.getsockname()[1]
        self.config = config
        try:
            # Replies are written in several pieces; without TCP_NODELAY (inherited by accepted sockets) a
            # loopback client can wait 40 ms per request on a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._app = create_app(config)
            from mockinfura.chains.upstream import BackendError

            try:
                self._app.state.chains.start_backends()  # anvil processes, upstream chain-id checks
            except BackendError as exc:
                raise StartError(f"mockinfura could not start: {exc}") from None
            self._server = serving.make_server(self._app)
            self._thread_error = None
            self._thread = threading.Thread(target=self._run, name=f"mockinfura-{self.port}", daemon=True)
            self._thread.start()
            self._wait_started()
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self) -> None:
        try:
            import anyio._backends._asyncio  # noqa: F401 - else the first request pays for this import (~20 ms)

            coroutine = self._server.serve(sockets=[self._sock])
            try:
                import uvloop
            except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
                asyncio.run(coroutine)
            else:
                uvloop.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - uvicorn ends a failed start with SystemExit; keep it for the message
            self._thread_error = exc

    def _wait_started(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                cause = self._thread_error
                detail = f"{type(cause).__name__}: {cause}" if cause is not None else "no error was raised"
                raise StartError(f"mockinfura could not start on {self.host}:{self.port}: the server thread ended "
                                 f"during start-up ({detail}); uvicorn's log above may say more")
            if time.monotonic() > deadline:
                raise StartError(f"mockinfura did not start on {self.host}:{self.port} within "
                                 f"{self.start_timeout:g} s (the server thread is alive but not serving)")
            time.sleep(0.001)

    def stop(self) -> None:
        """Stop serving and free the port and the chains' threads. Safe to call twice."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        thread, server = self._thread, self._server
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT_SECONDS)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(2.0)
        if self._app is not None:
            self._app.state.chains.close()
        if self._sock is not None:
            self._sock.close()
        self._thread = self._server = self._sock = None

    def __enter__(self) -> MockInfura:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and bool(self._server and self._server.started)

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    def url(self, network: str = "mainnet", key: str | ApiKeyHandle | None = None) -> str:
        """`http://host:port/<network>/v3/<key>`, on the default open key unless KEY is given."""
        return f"{self.base_url}/{network}/v3/{_key_string(key) or self.api_key}"

    def ws_url(self, network: str = "mainnet", key: str | ApiKeyHandle | None = None) -> str:
        """`ws://host:port/<network>/ws/v3/<key>`."""
        return f"ws{self.base_url[4:]}/{network}/ws/v3/{_key_string(key) or self.api_key}"

    @property
    def api_key(self) -> str:
        """The default key: the config's first key with no secret or JWT required and every network enabled
        (the embedded default's `0123456789abcdef0123456789abcdef`); one is added when the config has none."""
        config = self._require_config()
        for api_key in config.api_keys.values():
            if _is_open(api_key):
                return api_key.key
        raise LookupError("no open API key")  # pragma: no cover - _with_open_key adds one

    # ------------------------------------------------------------------ handles

    @property
    def state(self) -> MockState:
        """The in-process state (config, keys, clock, chains, journal): for reading, and for what HTTP cannot do."""
        if self._app is None:
            raise RuntimeError("MockInfura is not started")
        return self._app.state

    @property
    def admin(self) -> Admin:
        """The control plane as Python calls over HTTP."""
        if self._admin is None:
            if self._app is None:
                raise RuntimeError("MockInfura is not started")
            from mockinfura.testing.admin import Admin

            self._admin = Admin(self.base_url)
        return self._admin

    @property
    def accounts(self) -> DevAccounts:
        """The funded dev accounts (`.address`, `.key`), derived from the config's mnemonic (m/44'/60'/0'/0/i)."""
        if self._accounts is None:
            config = self._require_config()
            self._accounts = DevAccounts(config.chain.mnemonic, config.chain.accounts)
        return self._accounts

    def web3(self, network: str = "mainnet", key: str | ApiKeyHandle | None = None, *,
             headers: dict[str, str] | None = None) -> Web3:
        """A `Web3` on NETWORK with KEY (default: the open key)."""
        return make_web3(self.url(network, key), headers=headers)

    def create_key(self, **options: Any) -> ApiKeyHandle:
        """A new API key, registered through the control plane with a JWT key pair of its own.

        Options (see `KeyOptions`): require_jwt, secret (None | True | "text"), require_secret,
        secret_overrides_allowlists, allowlists={...}, networks=[...], plan, credits_per_second,
        credits_per_day, jwt_alg ("RS256" or "ES256"), label, key. The server validates them as it
        validates the config and refuses what it does not support (an AdminError naming the field).
        """
        typed: KeyOptions = options  # type: ignore[assignment]
        alg = typed.get("jwt_alg", "RS256")
        if alg not in ("RS256", "ES256"):
            raise ValueError(f"jwt_alg must be RS256 or ES256, not {alg!r}")
        private_pem, public_pem = self.key_pairs.take(alg)
        try:
            entry = key_entry(typed, public_pem)
            reply = self.admin.keys.add(entry)
        except BaseException:
            self.key_pairs.give_back(alg, (private_pem, public_pem))
            raise
        kid = reply["jwt_public_keys"][0]["id"]
        return ApiKeyHandle(
            infura=self, key=reply["key"], secret=reply.get("secret"), require_secret=bool(reply.get("require_secret")),
            alg=alg, kid=kid, private_key=private_pem, public_key=public_pem, entry=reply,
        )

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """The request journal (see `Admin.requests`)."""
        return self.admin.requests(**filters)

    def clear_requests(self) -> None:
        self.state.journal.clear()

    def clock_now(self) -> float:
        """The server clock (moved by `admin.clock`), which JWT exp/nbf are checked against."""
        return self.state.clock.now()

    # ------------------------------------------------------------------ isolation

    def built_networks(self) -> list[str]:
        return sorted(self.state.chains.built())

    def checkpoint(self) -> Checkpoint:
        """Save every built network's chain (an EVM snapshot, canned `times` counters) and the clock offset.

        In process, on each chain's own worker thread: no HTTP. A network still being built is left out:
        it is at genesis, so `rollback` resets it like a network first built after the checkpoint.
        """
        state = self.state
        mark = Checkpoint(clock_offset=state.clock.offset)
        pending = {}
        for network, slot in state.chains.built().items():
            if slot.chain is None:
                continue
            pending[network] = slot.executor.submit(_save_chain, slot.chain)
        for network, future in pending.items():
            mark.snapshots[network], mark.canned_counters[network] = future.result()
        return mark

    def rollback(self, checkpoint: Checkpoint) -> list[str]:
        """Put the chains and the clock back as CHECKPOINT saw them; networks built since go back to genesis.

        Returns the problems (a network whose snapshot a test used up, e.g. by `admin.reset()` or a revert
        to an older snapshot): such a network keeps the state the test left.
        """
        state = self.state
        pending = {}
        for network, slot in state.chains.built().items():
            if network in checkpoint.snapshots:
                pending[network] = slot.executor.submit(
                    _restore_chain, slot.result(), checkpoint.snapshots[network], checkpoint.canned_counters[network]
                )
            else:  # built after the checkpoint: it was at genesis then
                pending[network] = slot.executor.submit(_reset_chain, slot)
        state.clock.offset = checkpoint.clock_offset
        problems, failures = [], []
        for network, future in pending.items():
            try:
                restored = future.result()
            except Exception as exc:  # noqa: BLE001 - every network is waited for before reporting
                failures.append(f"{network}: {type(exc).__name__}: {exc}")
                continue
            if not restored:
                problems.append(f"{network}: the snapshot taken before the test was used up during it "
                                f"(by /_mock/reset or evm_revert to an older snapshot), so {network} keeps the "
                                "state the test left")
        if failures:
            raise IsolationError("could not roll the chains back: " + "; ".join(failures))
        return problems

    @contextmanager
    def isolated(self) -> Iterator[Checkpoint]:
        """`with infura.isolated(): ...`: chain and clock changes made inside are rolled back on exit."""
        mark = self.checkpoint()
        try:
            yield mark
        finally:
            problems = self.rollback(mark)
            if problems:
                raise IsolationError("; ".join(problems))

    # ------------------------------------------------------------------ helpers

    def _require_config(self) -> Config:
        if self.config is None:
            self.config = _with_open_key(_load_config(self._config_source))
        return self.config

    def __repr__(self) -> str:
        where = self.base_url if self._thread is not None else "not started"
        return f"<MockInfura {where}>"


def _key_string(key: str | ApiKeyHandle | None) -> str | None:
    return key.key if isinstance(key, ApiKeyHandle) else key


def _is_open(api_key: Any) -> bool:
    return not (api_key.require_jwt or api_key.require_secret or api_key.networks is not None
                or not api_key.allowlists.is_empty())


def _with_open_key(config: Config) -> Config:
    """CONFIG, plus the embedded default's open key when it has no open key (so `infura.url()` always works)."""
    from mockinfura.config import OPEN_API_KEY, ApiKeyConfig, with_api_key

    if any(_is_open(k) for k in config.api_keys.values()):
        return config
    key = OPEN_API_KEY
    if key in config.api_keys:  # taken by a restricted key: use another fixed one
        key = "0" * 31 + "1"
    return with_api_key(config, ApiKeyConfig(key=key, label="open (added by MockInfura)"))


# Run on a chain's own worker thread (the one thread that touches that chain).

def _save_chain(chain: Any) -> tuple[str | None, list[tuple[Any, int | None]]]:
    counters = [(entry, entry.remaining) for entry in getattr(chain, "entries", None) or ()]
    snapshot = getattr(chain, "snapshot", None)  # a canned-only network has none
    return (snapshot() if snapshot is not None else None), counters


def _restore_chain(chain: Any, snapshot_id: str | None, counters: Iterable[tuple[Any, int | None]]) -> bool:
    for entry, remaining in counters:
        entry.remaining = remaining
    return chain.revert(snapshot_id) if snapshot_id is not None else True


def _reset_chain(slot: Any) -> bool:
    try:
        chain = slot.result()
    except Exception:  # its build failed: there is nothing to reset
        return True
    chain.reset()
    return True
