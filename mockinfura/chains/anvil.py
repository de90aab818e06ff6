"""`backend = "anvil"`: mockinfura runs one anvil process per network and forwards to it (as `upstream` does).

    [networks.mainnet]
    backend = "anvil"
    anvil_path = ".tools/node_modules/.bin/anvil"   # optional: else `anvil` on PATH
    timeout = 10                                    # seconds for one forwarded call

The process: started on 127.0.0.1 on a free port with the network's chain id and `[chain]`'s mnemonic, account
count and balance (anvil takes whole ether: another balance is set with anvil_setBalance once it answers), waited
for (bounded: `ANVIL_START_TIMEOUT_SECONDS`), restarted when it dies (on the same port, at genesis; at most
`ANVIL_MAX_RESTARTS` times in `ANVIL_RESTART_WINDOW_SECONDS`, then calls get 502 naming its exit), and stopped with
the server. No orphans: anvil runs in its own process group (killed whole at shutdown), and on Linux with a
parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGKILL)`), so that it dies with mockinfura even on SIGKILL. The
signal follows the *thread* that started the process, so one long-lived supervisor thread per network starts,
waits on and restarts it. npm's `anvil` is a Node wrapper around the native binary: the binary itself is run
(found beside the wrapper), so that the parent-death signal reaches anvil and not only Node.

Control-plane calls are anvil's own (evm_snapshot, evm_revert, evm_mine, anvil_setBalance, hardhat_* aliases...);
eth_accounts and eth_sendTransaction on the control plane use anvil's unlocked dev accounts, the same accounts as
the in-memory chain's (same mnemonic and derivation path). `reset()` is anvil_reset.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import http.client
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from mockinfura.chains.upstream import DEFAULT_TIMEOUT_SECONDS, BackendError, UpstreamChain, UpstreamError

log = logging.getLogger("mockinfura")

ANVIL_HOST = "127.0.0.1"
ANVIL_START_TIMEOUT_SECONDS = 30.0  # launch to the first answered eth_chainId
ANVIL_STOP_GRACE_SECONDS = 2.0  # SIGTERM, then SIGKILL
ANVIL_MAX_RESTARTS = 5  # within ANVIL_RESTART_WINDOW_SECONDS; then the network stays down
ANVIL_RESTART_WINDOW_SECONDS = 60.0
ANVIL_PORT_ATTEMPTS = 3  # a free port can be taken between our look and anvil's bind
RESTART_RETRY_PAUSE_SECONDS = 0.02  # a call that met a dead anvil retries (within its timeout) once it answers again
HD_PATH = "m/44'/60'/0'/0/"
WEI_PER_ETHER = 10**18
INSTALL_HINT = (
    "install it with npm (`npm install --prefix .tools @foundry-rs/anvil`, then anvil_path = "
    "\".tools/node_modules/.bin/anvil\"; `make anvil` does this) or with foundryup "
    "(`curl -L https://foundry.paradigm.xyz | bash && foundryup`), or set anvil_path in [networks.<name>]"
)
NPM_PLATFORMS = {("linux", "x86_64"): "linux-amd64", ("linux", "aarch64"): "linux-arm64",
                 ("darwin", "arm64"): "darwin-arm64", ("darwin", "x86_64"): "darwin-amd64"}
PR_SET_PDEATHSIG = 1

_LIVE: weakref.WeakSet[AnvilProcess] = weakref.WeakSet()


def find_anvil(anvil_path: str | os.PathLike[str] | None) -> str:
    """The anvil executable to run: ANVIL_PATH (a path, or a name looked up on PATH), else `anvil` on PATH.

    Raises BackendError saying how to install anvil. npm's Node wrapper is replaced by the native binary it runs.
    """
    if anvil_path:
        text = str(anvil_path)
        found = shutil.which(text) if os.sep not in text else (text if os.access(text, os.X_OK) else None)
        if found is None:
            why = "does not exist" if not Path(text).exists() else "is not an executable file"
            raise BackendError(f"anvil_path {text} {why}: {INSTALL_HINT}")
    else:
        found = shutil.which("anvil")
        if found is None:
            raise BackendError(f"anvil not found on PATH: backend = \"anvil\" needs Foundry's anvil; {INSTALL_HINT}")
    return native_anvil(found)


def native_anvil(path: str) -> str:
    """The native binary behind npm's `@foundry-rs/anvil` wrapper (bin.mjs), else PATH itself."""
    resolved = Path(path).resolve()
    try:
        with resolved.open("rb") as file:
            head = file.read(64)
    except OSError:
        return path
    if not head.startswith(b"#!") or b"node" not in head:
        return path
    package_dir = resolved.parent  # node_modules/@foundry-rs/anvil
    suffix = NPM_PLATFORMS.get((sys.platform, platform.machine().lower()))
    candidates = [package_dir.parent / f"anvil-{suffix}" / "bin" / "anvil"] if suffix else []
    candidates += sorted(package_dir.parent.glob("anvil-*/bin/anvil"))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return path  # run the wrapper: stopped by its process group, but a SIGKILL of mockinfura may orphan anvil


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ANVIL_HOST, 0))
        return sock.getsockname()[1]


def _death_signal_setter() -> Any:
    """A preexec_fn that makes the child get SIGKILL when the thread that forked it ends (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:  # runs in the child between fork and exec: no imports, no allocation-heavy work
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: the signal will never come
            os._exit(1)

    return set_death_signal


def _answers(port: int, timeout: float) -> int | None:
    """anvil's chain id, if it answers on PORT now."""
    conn = http.client.HTTPConnection(ANVIL_HOST, port, timeout=timeout)
    try:
        conn.request("POST", "/", b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
                     {"Content-Type": "application/json"})
        reply = json.loads(conn.getresponse().read())
        return int(reply["result"], 16)
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        return None
    finally:
        conn.close()


class AnvilProcess:
    """One anvil, kept running by a supervisor thread (see the module docstring)."""

    def __init__(self, binary: str, args: list[str], *, network: str, chain_id: int,
                 start_timeout: float = ANVIL_START_TIMEOUT_SECONDS) -> None:
        self.binary = binary
        self.args = args
        self.network = network
        self.chain_id = chain_id
        self.start_timeout = start_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts: list[float] = []  # monotonic times of restarts, for the limit
        self.failure: str | None = None  # why it is down for good
        self.on_restart: Any = None  # called on the supervisor thread after a restart answered
        self._ready = threading.Event()  # the current process answers
        self._started = threading.Event()  # the first start finished (well or not)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._preexec = _death_signal_setter()

    @property
    def url(self) -> str:
        return f"http://{ANVIL_HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start and wait until anvil answers; raises BackendError."""
        self._thread = threading.Thread(target=self._supervise, name=f"anvil-{self.network}", daemon=True)
        _LIVE.add(self)
        self._thread.start()
        self._started.wait()
        if self.failure is not None:
            self.stop()
            raise BackendError(self.failure)

    def wait_ready(self, timeout: float) -> bool:
        """Wait (bounded) until anvil answers, e.g. while it restarts; False if it does not or is down for good."""
        if self.failure is not None or self._stopping.is_set():
            return False
        return self._ready.wait(timeout)

    # ------------------------------------------------------------------ the supervisor thread

    def _supervise(self) -> None:
        first = True
        while not self._stopping.is_set():
            problem = self._launch(reuse_port=not first)
            if problem is not None:
                self.failure = problem
                break
            if first:
                first = False
                self._started.set()
            elif self.on_restart is not None:
                try:
                    self.on_restart()
                except Exception:
                    log.exception("anvil for %s: set-up after the restart failed", self.network)
            self._ready.set()
            code = self.process.wait()  # type: ignore[union-attr]
            self._ready.clear()
            if self._stopping.is_set():
                break
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < ANVIL_RESTART_WINDOW_SECONDS] + [now]
            if len(self.restarts) > ANVIL_MAX_RESTARTS:
                self.failure = (f"anvil for network {self.network} exited (code {code}) "
                                f"{len(self.restarts)} times within {ANVIL_RESTART_WINDOW_SECONDS:g} s; not restarted "
                                f"again: {self._output_tail()}")
                log.error("%s", self.failure)
                break
            log.warning("anvil for network %s exited (code %s); restarting it on port %s (at genesis)",
                        self.network, code, self.port)
        self._ready.clear()
        self._started.set()
        self._kill()

    def _launch(self, *, reuse_port: bool) -> str | None:
        """Start anvil and wait until it answers; the problem, or None."""
        problem = "not started"
        for attempt in range(ANVIL_PORT_ATTEMPTS):
            if not (reuse_port and attempt == 0 and self.port):
                self.port = _free_port()
            self._kill()
            with contextlib.suppress(AttributeError, OSError):
                self._output.close()  # the previous launch's
            self._output = tempfile.TemporaryFile(prefix="mockinfura-anvil-")
            try:
                self.process = subprocess.Popen(
                    [self.binary, "--host", ANVIL_HOST, "--port", str(self.port), *self.args],
                    stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=self._preexec,  # see _death_signal_setter
                )
            except OSError as exc:
                return f"cannot run anvil ({self.binary}): {exc.strerror or exc}; {INSTALL_HINT}"
            problem = self._wait_answer()
            if problem is None:
                return None
            if "in use" not in problem.lower():  # another failure than a port taken meanwhile: no point retrying
                break
        self._kill()
        return problem

    def _wait_answer(self) -> str | None:
        deadline = time.monotonic() + self.start_timeout
        process = self.process
        while time.monotonic() < deadline and not self._stopping.is_set():
            if process.poll() is not None:  # type: ignore[union-attr]
                return (f"anvil for network {self.network} exited with code {process.returncode} "  # type: ignore
                        f"at start: {self._output_tail()}")
            chain_id = _answers(self.port, 1.0)
            if chain_id is not None:
                if chain_id != self.chain_id:  # not ours: something else on that port
                    return f"port {self.port} answers with chain id {chain_id} (address in use)"
                return None
            time.sleep(0.02)
        if self._stopping.is_set():
            return "stopped while starting"
        return (f"anvil for network {self.network} did not answer on port {self.port} within "
                f"{self.start_timeout:g} s: {self._output_tail()}")

    def _output_tail(self) -> str:
        try:
            self._output.seek(0)
            text = self._output.read().decode(errors="replace").strip()
        except (AttributeError, OSError, ValueError):
            return "(no output)"
        return text[-600:] or "(no output)"

    def _kill(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(ANVIL_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):  # anything left in its group
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(ANVIL_STOP_GRACE_SECONDS)

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop anvil and its supervisor (from any thread); safe to call twice."""
        self._stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(ANVIL_STOP_GRACE_SECONDS * 3)
        self._kill()
        _LIVE.discard(self)


@atexit.register
def _stop_all() -> None:
    for process in list(_LIVE):
        with contextlib.suppress(Exception):
            process.stop()


class AnvilChain(UpstreamChain):
    """A network served by an anvil process of its own."""

    snapshot_at_first_contact = False  # reset() is anvil_reset

    def __init__(self, network: str, chain_id: int, *, mnemonic: str, accounts: int, balance: int,
                 anvil_path: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        binary = find_anvil(anvil_path)
        self.mnemonic = mnemonic
        self.accounts = accounts
        self.balance = balance
        whole_ether = balance // WEI_PER_ETHER
        if whole_ether >= 2**64:  # more than anvil's --balance takes: set with anvil_setBalance instead
            whole_ether = 0
        self._start_balance = whole_ether * WEI_PER_ETHER
        args = ["--chain-id", str(chain_id), "--mnemonic", mnemonic, "--accounts", str(accounts),
                "--balance", str(whole_ether), "--derivation-path", HD_PATH, "--silent"]
        self.process = AnvilProcess(binary, args, network=network, chain_id=chain_id)
        self.process.start()
        try:
            super().__init__(network, chain_id, self.process.url, timeout=timeout)
            self.process.on_restart = self._after_restart
            self._dev_keys: dict[bytes, Any] | None = None
            self._set_balances()
        except BaseException:
            self.process.stop()
            raise

    # the dev keys, derived on first use (slow); the node signs eth_sendTransaction with its own
    @property  # type: ignore[override]
    def dev_keys(self) -> dict[bytes, Any]:
        if self._dev_keys is None:
            from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
            from eth_keys import keys

            seed = seed_from_mnemonic(self.mnemonic, "")
            derived = [keys.PrivateKey(key_from_seed(seed, f"{HD_PATH}{i}")) for i in range(self.accounts)]
            self._dev_keys = {k.public_key.to_canonical_address(): k for k in derived}
        return self._dev_keys

    @dev_keys.setter
    def dev_keys(self, value: dict[bytes, Any]) -> None:
        self._dev_keys = value or None

    def _set_balances(self) -> None:
        """anvil takes whole ether: set a balance with a fraction of an ether on each dev account."""
        if self.balance == self._start_balance:
            return
        for address in self.raw_call("eth_accounts"):
            self.raw_call("anvil_setBalance", [address, hex(self.balance)])

    def _after_restart(self) -> None:
        if self.process.url != self.url:
            self._set_url(self.process.url)
        self._set_balances()
        self.moved_back()

    # ------------------------------------------------------------------ transport: wait out a restart

    def _down(self) -> UpstreamError | None:
        """When anvil is down for good, the error to give."""
        if self.process.failure is not None:
            return UpstreamError(f"anvil for network {self.network} is down: {self.process.failure}")
        return None

    def _post_sync(self, body: bytes) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            down = self._down()
            if down is not None:
                raise down
            try:
                return self.sync.post(body)
            except UpstreamError as exc:
                remaining = deadline - time.monotonic()
                if not exc.unreachable or remaining <= 0 or not self.process.wait_ready(remaining):
                    raise self._down() or exc from None
                time.sleep(RESTART_RETRY_PAUSE_SECONDS)

    async def _post_async(self, body: bytes) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            down = self._down()
            if down is not None:
                raise down
            try:
                return await self._aclient().post(body)
            except UpstreamError as exc:
                remaining = deadline - time.monotonic()
                if not exc.unreachable or remaining <= 0:
                    raise self._down() or exc from None
                loop = asyncio.get_running_loop()
                if not await loop.run_in_executor(None, self.process.wait_ready, remaining):
                    raise self._down() or exc from None
                await asyncio.sleep(RESTART_RETRY_PAUSE_SECONDS)

    # ------------------------------------------------------------------ anvil's own controls

    def reset(self) -> None:
        self.control_call("anvil_reset")
        self._set_balances()
        self.moved_back()

    def mine(self, blocks: int = 1) -> None:
        self.control_call("anvil_mine", [hex(max(1, blocks))])
        self.watcher.wake()

    def set_balance(self, address: str, wei: int) -> None:
        self.control_call("anvil_setBalance", [address, hex(wei)])

    def close(self) -> None:
        super().close()
        self.process.stop()
