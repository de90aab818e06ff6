"""Forwarding JSON-RPC to a node over HTTP: the `upstream` backend, and the HTTP client the recorder shares.

`backend = "upstream"` puts the gateway (Infura's auth, allowlists, refusals, credits, journal) in front of any
JSON-RPC node the user runs (anvil, hardhat, geth --dev...):

    [networks.sepolia]
    backend = "upstream"
    url = "http://127.0.0.1:8546"
    timeout = 10            # seconds for one forwarded call (connect + request + reply)

Clients. Calls from the event loop (every HTTP and WebSocket call, once the chain is built: `ChainRegistry.call`
uses `UpstreamChain.acall`) go through `AsyncHttpClient`, a small HTTP/1.1 keep-alive pool on asyncio protocols
with httptools' C parser: no thread hop, no chain-thread serialisation (the node orders its own writes), about
a tenth of httpx's cost per request. Calls made on a thread (the chain's worker: the first call while the chain is
built, canned fixtures in front of it, the pytest plugin's snapshot/revert, interval mining, the head watcher)
go through `SyncHttpClient`, a pool of `http.client` connections (the cheapest blocking client measured here,
ahead of urllib3's PoolManager and httpx.Client).

Failures (infura.md 3): an upstream that refuses or drops the connection, or replies with something that is not a
JSON-RPC reply, is `UpstreamError` with HTTP 502; one that does not answer within `timeout` seconds is HTTP 504.
Both are JSON-RPC errors -32603 with a message naming the failure. An idle keep-alive connection the node closed is
retried once on a fresh connection (nothing was received on it, so the call was not answered).

Methods: on Infura's paths the eth_/net_/web3_/debug_/trace_ methods are forwarded (the gateway has refused the
private-key methods and the test controls already), eth_accounts is [] and eth_chainId is answered here; the control
plane forwards everything (anvil_*, evm_*, eth_sendTransaction with the node's unlocked accounts). Filter ids stay
with the API key that made them (another key gets "filter not found"); their expiry is the node's. A read right
after a send sees the transaction mined, as on the in-memory chain (see MINED_WAIT_SECONDS).

Subscriptions: [choice] polling, not a WebSocket to the node (which needs no WebSocket then, and the notifications
keep geth's shapes made here). The chain's `listeners` (driven for `eth_subscribe` by `chains/subscriptions.py`) are
fed by a head watcher thread, started by the first subscription, that polls `eth_blockNumber` every
`HEAD_POLL_SECONDS` and is woken at once after a transaction or a test control sent through mockinfura. Latency:
blocks mined through mockinfura are notified one `eth_blockNumber` round trip (plus the block's header and logs
read) after the call that mined them, about a millisecond on loopback; blocks mined by others (an interval-mining
node, another client) within `HEAD_POLL_SECONDS` (50 ms). Pending transactions are notified for transactions sent
through mockinfura only.

Chain id: the upstream's `eth_chainId` must equal the network's. `mockinfura serve` checks it before listening
(`ChainRegistry.start_backends`, exit 2 on a mismatch); an upstream that is not reachable yet is checked on first
contact instead, and until it passes every call gets a 502 naming the mismatch.

Reset: a generic node cannot go back to genesis. When the upstream supports `evm_snapshot`, mockinfura takes one at
first contact and `reset()` (`/_mock/reset`, the pytest plugin's rollback of a network first used in a test)
reverts to it, i.e. to the state the node had when mockinfura first talked to it; otherwise reset logs a warning
and does nothing. The plugin's per-test isolation uses `evm_snapshot`/`evm_revert` (anvil, hardhat, ganache); on a
node without them, `snapshot()` returns None and tests are not isolated (a warning is logged once).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import itertools
import logging
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from mockinfura.rpc import params as p
from mockinfura.rpc.envelope import NotJson, dump, parse_json
from mockinfura.rpc.errors import INTERNAL_ERROR, METHOD_NOT_FOUND, RpcError, invalid_params, method_not_found

log = logging.getLogger("mockinfura")

DEFAULT_TIMEOUT_SECONDS = 10.0  # [networks.<name>] timeout: one forwarded call, connect + request + reply
POOL_MAX_IDLE = 64  # idle keep-alive connections kept per upstream (per event loop, and for the threads)
HEAD_POLL_SECONDS = 0.05  # how often the head watcher polls eth_blockNumber while a subscription listens
MAX_BLOCKS_PER_CHECK = 1024  # a jump of more blocks at once (anvil_mine 10000) notifies only the last ones
MAX_TRACKED_FILTERS = 10_000  # filter id -> API key, so that a key cannot read another key's filters
# Read-your-writes, as on the in-memory chain (which mines a transaction before answering its send): anvil mines just
# after it answers, so a read right after a send could race the block. The send is answered at once; the next call
# that is not a send first waits until the newest transaction sent is mined (one eth_getTransactionReceipt, rarely
# more): anvil mines every ready transaction of its pool at once, so the older ones are then mined too. A transaction
# not mined within MINED_WAIT_SECONDS (it waits for a missing nonce; the node mines at intervals) is waited for no more.
MINED_WAIT_SECONDS = 0.1
MINED_POLL_SECONDS = 0.001
BAD_GATEWAY = 502
GATEWAY_TIMEOUT = 504
# Methods forwarded on Infura's paths (control=False); the gateway has already refused the private-key methods and
# the test controls (rpc/methods.py). Everything is forwarded on the control plane (`/_mock/rpc/<network>`).
PUBLIC_PREFIXES = ("eth_", "net_", "web3_", "debug_", "trace_")
NOT_ON_PUBLIC_PATHS = frozenset({"eth_sendUnsignedTransaction", "eth_sendTransaction", "eth_sign",
                                 "eth_signTransaction", "eth_signTypedData", "eth_signTypedData_v4", "eth_coinbase"})
SENDS = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})
FILTER_CREATORS = frozenset({"eth_newFilter", "eth_newBlockFilter", "eth_newPendingTransactionFilter"})
FILTER_READERS = frozenset({"eth_getFilterChanges", "eth_getFilterLogs", "eth_uninstallFilter"})
# Calls after which the head may have moved back: the head watcher takes the new head as seen (no notification).
HEAD_RESETS = frozenset({"evm_revert", "anvil_revert", "anvil_reset", "hardhat_reset", "anvil_rollback",
                         "debug_setHead", "anvil_loadState"})
# geth's newHeads payload is its types.Header JSON: these fields, in this order, `hash` last (as EvmChain sends).
NEW_HEADS_FIELDS = (
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
    "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
    "baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot",
    "requestsHash", "hash",
)
FILTER_NOT_FOUND = "filter not found"


class UpstreamError(RpcError):
    """The node behind did not answer: JSON-RPC -32603, and the HTTP status of the reply (502 or 504).

    `unreachable`: no connection, or the connection dropped with no reply (the node may be restarting).
    """

    def __init__(self, message: str, http_status: int = BAD_GATEWAY, *, unreachable: bool = False) -> None:
        super().__init__(INTERNAL_ERROR, message)
        self.http_status = http_status
        self.unreachable = unreachable


class BackendError(UpstreamError):
    """A chain backend that cannot serve (anvil missing or not starting, a chain id mismatch)."""


class HttpReply(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Target:
    """Where an upstream URL points: scheme, host, port, request path, Host header, basic auth."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self.url = url
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        shown_host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.tls else 80
        self.host_header = shown_host if self.port == default_port else f"{shown_host}:{self.port}"
        self.authorization = None
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.authorization = "Basic " + base64.b64encode(user_pass.encode()).decode()
        # the URL as shown in messages: no credentials
        self.shown = f"{parts.scheme}://{self.host_header}{parts.path or '/'}"

    def request_head(self, length: int, headers: Mapping[str, str] | None) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host_header}"]
        names = set()
        for name, value in (headers or {}).items():
            names.add(name.lower())
            lines.append(f"{name}: {value}")
        if "content-type" not in names:
            lines.append("Content-Type: application/json")
        if "user-agent" not in names:
            lines.append("User-Agent: mockinfura")
        if self.authorization and "authorization" not in names:
            lines.append(f"Authorization: {self.authorization}")
        lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _unreachable(target: Target, exc: BaseException) -> UpstreamError:
    if isinstance(exc, ConnectionRefusedError):
        return UpstreamError(f"upstream unreachable: connection refused by {target.shown}", unreachable=True)
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return UpstreamError(f"upstream unreachable: {target.shown}: {reason}", unreachable=True)


def _timed_out(target: Target, timeout: float) -> UpstreamError:
    return UpstreamError(f"upstream timed out: no reply from {target.shown} within {timeout:g} s", GATEWAY_TIMEOUT)


def _dropped(target: Target) -> UpstreamError:
    return UpstreamError(f"upstream failed: {target.shown} closed the connection without a reply", unreachable=True)


# ---------------------------------------------------------------------------------------------------------------
# asyncio client


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        import httptools

        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[HttpReply] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.closed = False
        self.received = False  # any byte of the current reply
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError: not HTTP
            self._fail(exc)
            self.abort()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("closed by the upstream"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        reply = HttpReply(self.parser.get_status_code(), self.headers, b"".join(self.body))
        self.headers, self.body = {}, []
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class AsyncHttpClient:
    """POSTs to one URL over pooled keep-alive connections, on the event loop it is first used on."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS, *, max_idle: int = POOL_MAX_IDLE) -> None:
        self.target = Target(url)
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: deque[_Connection] = deque()
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.target.tls else None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> HttpReply:
        """The upstream's HTTP reply to BODY; raises UpstreamError (502: unreachable or dropped, 504: too slow)."""
        loop = asyncio.get_running_loop()
        self.loop = loop
        deadline = loop.time() + self.timeout
        payload = self.target.request_head(len(body), headers) + body
        for attempt in (0, 1):
            conn, reused = await self._acquire(loop, deadline)
            waiter = conn.waiter = loop.create_future()
            conn.received = False
            timer = loop.call_at(deadline, _expire, waiter)
            conn.transport.write(payload)  # type: ignore[union-attr]
            try:
                reply = await waiter
            except TimeoutError:
                conn.abort()
                raise _timed_out(self.target, self.timeout) from None
            except Exception as exc:
                conn.abort()
                if reused and not conn.received and attempt == 0:
                    continue  # an idle connection the upstream had closed: the call never reached it
                if isinstance(exc, OSError) and not isinstance(exc, ConnectionResetError):
                    raise _unreachable(self.target, exc) from None
                if not isinstance(exc, OSError):
                    raise UpstreamError(f"upstream failed: {self.target.shown} did not reply in HTTP: {exc}") from None
                raise _dropped(self.target) from None
            finally:
                timer.cancel()
            if conn.keep_alive and not conn.closed and len(self._idle) < self.max_idle:
                self._idle.append(conn)
            else:
                conn.abort()
            return reply
        raise _dropped(self.target)  # pragma: no cover - the loop returns or raises

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> tuple[_Connection, bool]:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        target = self.target
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    _Connection, target.host, target.port, ssl=self._ssl,
                    server_hostname=target.host if self._ssl else None,
                )
        except TimeoutError:
            raise _timed_out(target, self.timeout) from None
        except (OSError, ssl.SSLError) as exc:
            raise _unreachable(target, exc) from None
        return conn, False

    def close_now(self) -> None:
        """Close the idle connections (on the client's event loop)."""
        while self._idle:
            self._idle.pop().abort()

    def close(self) -> None:
        """Close from any thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            self._idle.clear()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.close_now()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.close_now)

    async def aclose(self) -> None:
        self.close_now()


# ---------------------------------------------------------------------------------------------------------------
# blocking client


class SyncHttpClient:
    """The same over `http.client`, for threads; thread-safe. The timeout bounds connect and each socket read."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS, *, max_idle: int = 8) -> None:
        self.target = Target(url)
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        target = self.target
        if target.tls:
            return http.client.HTTPSConnection(target.host, target.port, timeout=self.timeout), False
        return http.client.HTTPConnection(target.host, target.port, timeout=self.timeout), False

    def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> HttpReply:
        target = self.target
        sent_headers = {"Host": target.host_header, "Content-Type": "application/json", "User-Agent": "mockinfura",
                        **(headers or {})}
        if target.authorization and not any(k.lower() == "authorization" for k in sent_headers):
            sent_headers["Authorization"] = target.authorization
        for attempt in (0, 1):
            conn, reused = self._take()
            try:
                conn.request("POST", target.path, body, sent_headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                conn.close()
                raise _timed_out(target, self.timeout) from None
            except ConnectionRefusedError as exc:
                conn.close()
                raise _unreachable(target, exc) from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if reused and attempt == 0:
                    continue
                raise _dropped(target) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _unreachable(target, exc) if isinstance(exc, OSError) else UpstreamError(
                    f"upstream failed: {target.shown} did not reply in HTTP: {exc}") from None
            if response.will_close:
                conn.close()
            else:
                with self._lock:
                    if len(self._idle) < self.max_idle:
                        self._idle.append(conn)
                        conn = None  # type: ignore[assignment]
                if conn is not None:
                    conn.close()
            return HttpReply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        raise _dropped(target)  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# ---------------------------------------------------------------------------------------------------------------
# JSON-RPC over those


def decode_reply(target: Target, reply: HttpReply, method: str) -> Any:
    """The result of a single JSON-RPC reply; RpcError for the node's own JSON-RPC error, UpstreamError otherwise."""
    try:
        document = parse_json(reply.body)
    except NotJson:
        document = None
    if isinstance(document, dict) and ("result" in document or "error" in document):
        error = document.get("error")
        if error is None:
            return document.get("result")
        if isinstance(error, dict) and isinstance(error.get("code"), int):
            if error["code"] == METHOD_NOT_FOUND:  # Infura's words, as the in-memory chain says them
                raise method_not_found(method)
            raise RpcError(error["code"], str(error.get("message", "")), error.get("data"))
    if not 200 <= reply.status < 300:
        raise UpstreamError(f"upstream failed: {target.shown} replied HTTP {reply.status} to {method}")
    raise UpstreamError(f"upstream failed: {target.shown} sent a reply to {method} that is not JSON-RPC: "
                        f"{reply.body[:80]!r}")


class _Listeners(list):
    """The chain's listeners; the first one added starts the head watcher."""

    def __init__(self, on_first: Callable[[], None]) -> None:
        super().__init__()
        self._on_first = on_first

    def append(self, listener: Any) -> None:
        super().append(listener)
        if len(self) == 1:
            self._on_first()


class HeadWatcher:
    """Feeds ("block", n) to the chain's listeners for each new head, polled and woken after local writes."""

    def __init__(self, chain: UpstreamChain) -> None:
        self.chain = chain
        self.reported: int | None = None
        self.generation = 0  # bumped by `saw`, so that a check racing with a revert does not undo it
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        with contextlib.suppress(RpcError):  # unreachable now: the first check takes the head then
            self.reported = self.chain.block_number()
        self._thread = threading.Thread(target=self._run, name=f"heads-{self.chain.network}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        if self._thread is not None:
            self._wake.set()

    def saw(self, head: int) -> None:
        """The head moved to HEAD by a call of ours that is not a new block (a revert, a reset)."""
        self.generation += 1
        self.reported = head

    def _run(self) -> None:
        backoff = HEAD_POLL_SECONDS
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
                backoff = HEAD_POLL_SECONDS
            except RpcError:  # the upstream is down or slow: poll less often until it is back
                backoff = min(backoff * 2, 1.0)
            except Exception:
                log.exception("head watcher for %s failed", self.chain.network)
                backoff = 1.0

    def check(self) -> None:
        with self._lock:
            generation = self.generation
            head = self.chain.block_number()
            reported = self.reported
            if reported is None or head <= reported or generation != self.generation:
                if reported is None or head < reported:
                    self.reported = head  # went back (a revert by another client): take it as seen
                return
            for number in range(max(reported + 1, head - MAX_BLOCKS_PER_CHECK + 1), head + 1):
                for listener in list(self.chain.listeners):
                    listener("block", number)
            if generation == self.generation:
                self.reported = head

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


class UpstreamChain:
    """A network served by a JSON-RPC node over HTTP (see the module docstring)."""

    inline_safe = False  # eth_blockNumber must not be answered with blocking I/O on the event loop
    snapshot_at_first_contact = True  # the state reset() goes back to (anvil resets with anvil_reset instead)

    def __init__(self, network: str, chain_id: int, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.network = network
        self.chain_id = chain_id
        self.timeout = timeout
        self.dev_keys: dict[bytes, Any] = {}  # the node's keys are its own: eth_accounts on the control plane
        self.listeners: list[Callable[[str, Any], None]] = _Listeners(self._start_watching)
        self.watcher = HeadWatcher(self)
        self._ids = itertools.count(1)
        self._filter_owners: OrderedDict[str, str] = OrderedDict()
        self._unmined: OrderedDict[str, float] = OrderedDict()  # tx hash -> when to stop waiting for it, oldest first
        self._verified = False
        self._base_snapshot: str | None = None  # taken at first contact when the node has evm_snapshot
        self._warned_no_snapshot = False
        self._set_url(url)

    def _set_url(self, url: str) -> None:
        self.url = url
        self.target = Target(url)
        old_sync = getattr(self, "sync", None)
        old_async = getattr(self, "_async", None)
        self.sync = SyncHttpClient(url, self.timeout)
        self._async: AsyncHttpClient | None = None
        if old_sync is not None:
            old_sync.close()
        if old_async is not None:
            old_async.close()

    # ------------------------------------------------------------------ transport

    def _body(self, method: str, params: Any) -> bytes:
        return dump({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})

    def _aclient(self) -> AsyncHttpClient:
        client = self._async
        running = asyncio.get_running_loop()
        if client is None or client.loop is not running:
            if client is not None:
                client.close()
            client = self._async = AsyncHttpClient(self.url, self.timeout)
            client.loop = running
        return client

    def raw_call(self, method: str, params: Any = None) -> Any:
        """One call to the upstream, as is, from a thread."""
        reply = self._post_sync(self._body(method, [] if params is None else params))
        return decode_reply(self.target, reply, method)

    async def araw_call(self, method: str, params: Any = None) -> Any:
        reply = await self._post_async(self._body(method, [] if params is None else params))
        return decode_reply(self.target, reply, method)

    def _post_sync(self, body: bytes) -> HttpReply:
        return self.sync.post(body)

    async def _post_async(self, body: bytes) -> HttpReply:
        return await self._aclient().post(body)

    # ------------------------------------------------------------------ chain id

    def _check_chain_id(self, answer: Any) -> None:
        try:
            found = int(answer, 16)
        except (TypeError, ValueError):
            raise BackendError(f"upstream {self.target.shown} answered eth_chainId with {answer!r}, "
                               "not a chain id") from None
        if found != self.chain_id:
            raise BackendError(
                f"upstream chain id mismatch: {self.target.shown} serves chain id {found}, but network "
                f"{self.network} is chain id {self.chain_id}: point [networks.{self.network}] url at a node of "
                f"chain id {self.chain_id} (anvil --chain-id {self.chain_id})")
        self._verified = True

    def verify(self) -> None:
        """Check the upstream's chain id now, from a thread; raises BackendError (mismatch) or UpstreamError."""
        if not self._verified:
            self._check_chain_id(self.raw_call("eth_chainId"))
            if self.snapshot_at_first_contact:
                self._take_base_snapshot()

    async def averify(self) -> None:
        if not self._verified:
            self._check_chain_id(await self.araw_call("eth_chainId"))
            if self.snapshot_at_first_contact and self._base_snapshot is None:
                with contextlib.suppress(RpcError):
                    snapshot = await self.araw_call("evm_snapshot")
                    if self._base_snapshot is None:
                        self._base_snapshot = snapshot

    def _take_base_snapshot(self) -> None:
        if self._base_snapshot is None:
            with contextlib.suppress(RpcError):
                self._base_snapshot = self.raw_call("evm_snapshot")

    # ------------------------------------------------------------------ calls

    def _local(self, method: str, params: Any, owner: str, control: bool) -> tuple[bool, Any]:
        """(True, answer) for what is answered here; raises for what is refused; (False, None) to forward."""
        if method == "eth_chainId":
            return True, hex(self.chain_id)
        if not control:
            if method == "eth_accounts":
                return True, []  # infura.md 3: Infura holds no keys
            if not method.startswith(PUBLIC_PREFIXES) or method in NOT_ON_PUBLIC_PATHS:
                raise method_not_found(method)
            if method in FILTER_READERS and isinstance(params, list) and params and isinstance(params[0], str):
                if self._filter_owners.get(params[0].lower(), owner) != owner:
                    if method == "eth_uninstallFilter":
                        return True, False
                    raise RpcError(-32000, FILTER_NOT_FOUND)
        return False, None

    def _prepare(self, method: str, params: Any) -> Any:
        """Params as the upstream takes them."""
        # anvil's evm_mine reads {"blocks": n} only beside an explicit "timestamp" (null for none); a node that
        # takes no options object (hardhat) refuses the object either way
        if method == "evm_mine" and isinstance(params, list) and params and isinstance(params[0], dict):
            return [{"timestamp": None, **params[0]}, *params[1:]]
        return params

    def _after(self, method: str, params: Any, result: Any, owner: str) -> bool:
        """Bookkeeping after a forwarded call; True when the head may have moved back (resync it)."""
        if method in FILTER_CREATORS and isinstance(result, str):
            owners = self._filter_owners
            owners[result.lower()] = owner
            if len(owners) > MAX_TRACKED_FILTERS:
                owners.popitem(last=False)
        elif method == "eth_uninstallFilter" and isinstance(params, list) and params and isinstance(params[0], str):
            self._filter_owners.pop(params[0].lower(), None)
        if method in SENDS and isinstance(result, str):
            self._unmined[result] = time.monotonic() + MINED_WAIT_SECONDS
        if method in HEAD_RESETS:
            return True
        if not self.listeners:
            return False
        if method in SENDS and isinstance(result, str):
            for listener in list(self.listeners):
                listener("pending", result)
            self.watcher.wake()
        elif not method.startswith(PUBLIC_PREFIXES):  # a test control (evm_mine, anvil_setBalance...)
            self.watcher.wake()
        return False

    def call(self, method: str, params: Any, *, owner: str = "", control: bool = False) -> Any:
        """Answer one JSON-RPC call from a thread."""
        if not self._verified:
            self.verify()
        local, answer = self._local(method, params, owner, control)
        if local:
            return answer
        if self._unmined and method not in SENDS:
            self._settle()
        result = self.raw_call(method, self._prepare(method, params))
        if self._after(method, params, result, owner):
            self.moved_back()
        return result

    def _settled(self, target: str, mined: bool) -> bool:
        """After a receipt poll for TARGET: True when the calls waiting on it can go on."""
        unmined = self._unmined
        give_up = unmined.get(target)
        if give_up is None:  # settled by another call meanwhile
            return True
        if mined or time.monotonic() >= give_up:
            with contextlib.suppress(KeyError):
                while unmined.popitem(last=False)[0] != target:  # TARGET and everything sent before it
                    pass
            return True
        return False

    def _settle(self) -> None:
        with contextlib.suppress(StopIteration, RuntimeError):
            target = next(reversed(self._unmined))  # the newest transaction sent
            while True:
                try:
                    mined = self.raw_call("eth_getTransactionReceipt", [target]) is not None
                except RpcError:
                    mined = True  # nothing to wait for on a node that cannot say
                if self._settled(target, mined):
                    return
                time.sleep(MINED_POLL_SECONDS)

    async def _asettle(self) -> None:
        with contextlib.suppress(StopIteration, RuntimeError):
            target = next(reversed(self._unmined))
            while True:
                try:
                    mined = await self.araw_call("eth_getTransactionReceipt", [target]) is not None
                except RpcError:
                    mined = True
                if self._settled(target, mined):
                    return
                await asyncio.sleep(MINED_POLL_SECONDS)

    async def acall(self, method: str, params: Any, *, owner: str = "", control: bool = False) -> Any:
        """Answer one JSON-RPC call on the event loop (ChainRegistry.call uses this once the chain is built)."""
        if not self._verified:
            await self.averify()
        local, answer = self._local(method, params, owner, control)
        if local:
            return answer
        if self._unmined and method not in SENDS:
            await self._asettle()
        result = await self.araw_call(method, self._prepare(method, params))
        if self._after(method, params, result, owner):
            self._unmined.clear()
            with contextlib.suppress(RpcError):
                self.watcher.saw(int(await self.araw_call("eth_blockNumber"), 16))
        return result

    # ------------------------------------------------------------------ the chain interface (registry, plugin)

    def block_number(self) -> int:
        return int(self.raw_call("eth_blockNumber"), 16)

    def control_call(self, method: str, params: Any = None) -> Any:
        """A call of the chain interface below (from a thread): after the transactions sent are mined."""
        if self._unmined:
            self._settle()
        return self.raw_call(method, params)

    def moved_back(self) -> None:
        """After a revert or a reset: the transactions waited for are gone, the head is where it is."""
        self._unmined.clear()
        with contextlib.suppress(RpcError):
            self.watcher.saw(self.block_number())

    def snapshot(self) -> str | None:
        """An evm_snapshot id, or None when the upstream has no snapshots (the test is then not isolated)."""
        try:
            return self.control_call("evm_snapshot")
        except UpstreamError:
            raise
        except RpcError as exc:
            if not self._warned_no_snapshot:
                self._warned_no_snapshot = True
                log.warning("network %s: the upstream %s has no evm_snapshot (%s): tests on it are not isolated",
                            self.network, self.target.shown, exc.message)
            return None

    def revert(self, snapshot_id: str) -> bool:
        reverted = bool(self.control_call("evm_revert", [snapshot_id]))
        self.moved_back()
        return reverted

    def reset(self) -> None:
        """Back to the state at first contact (see the module docstring); a warning when that is not possible."""
        if self._base_snapshot is None:
            log.warning("network %s: cannot reset the upstream %s (it had no evm_snapshot at first contact)",
                        self.network, self.target.shown)
            return
        self.control_call("evm_revert", [self._base_snapshot])
        self._base_snapshot = None
        self._take_base_snapshot()
        self.moved_back()

    def mine(self, blocks: int = 1) -> None:
        for _ in range(max(1, min(blocks, 10_000))):
            self.control_call("evm_mine")
        self.watcher.wake()

    def set_balance(self, address: str, wei: int) -> None:
        try:
            self.control_call("anvil_setBalance", [address, hex(wei)])
        except UpstreamError:
            raise
        except RpcError:
            self.raw_call("hardhat_setBalance", [address, hex(wei)])

    def close(self) -> None:
        self.watcher.stop()
        self.sync.close()
        if self._async is not None:
            self._async.close()

    # ------------------------------------------------------------------ subscriptions (chains/subscriptions.py)

    def _start_watching(self) -> None:
        self.watcher.start()

    def format_header(self, number: int) -> dict[str, Any]:
        block = self.raw_call("eth_getBlockByNumber", [hex(number), False]) or {}
        return {name: block[name] for name in NEW_HEADS_FIELDS if name in block}

    def block_logs(self, number: int) -> list[dict[str, Any]]:
        return self.raw_call("eth_getLogs", [{"fromBlock": hex(number), "toBlock": hex(number)}]) or []

    def subscription_log_criteria(self, value: Any) -> dict[str, Any]:
        """A logs subscription's `{addresses, topics}` in the shape `subscriptions.log_matches` reads."""
        return log_criteria(value, "eth_subscribe")


def log_criteria(value: Any, method: str) -> dict[str, Any]:
    """eth_newFilter's address and topics, parsed (the in-memory chain's rules and messages)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise invalid_params(f"{method}: the filter must be an object")
    address = value.get("address")
    if address is None:
        addresses = None
    elif isinstance(address, list):
        addresses = {p.address(a) for a in address}
    else:
        addresses = {p.address(address)}
    topics = value.get("topics") or []
    if not isinstance(topics, list) or len(topics) > 4:
        raise invalid_params(f"{method}: topics must be an array of at most 4 entries")
    parsed: list[set[int] | None] = []
    for topic in topics:
        if topic is None:
            parsed.append(None)
        elif isinstance(topic, list):
            parsed.append({int.from_bytes(p.hash32(t, "topic"), "big") for t in topic}
                          if all(t is not None for t in topic) else None)
        else:
            parsed.append({int.from_bytes(p.hash32(topic, "topic"), "big")})
    return {"addresses": addresses, "topics": parsed}
