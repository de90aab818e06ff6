"""Infura's WebSocket endpoints: `/ws/v3/<KEY>`, `/<network>/ws/v3/<KEY>` and the Host-header form (infura.md 4).

The handshake carries the checks that need only the URL and headers (`access.check_request`); a refused handshake
gets the HTTP reply it would get over HTTP, before the upgrade (the ASGI "websocket.http.response" extension).
Once open, every frame (text or binary) is one JSON-RPC call or a batch: the method and address allowlists and the
JWT's `exp` apply to each, the calls go to the same dispatch as HTTP's, and `eth_subscribe`/`eth_unsubscribe`
are answered here with `chains.subscriptions`. Credits are metered as over HTTP (infura.md 5): each frame is admitted
and charged like one HTTP request, and each notification costs its `[events]` price.

Each connection has one outbox and one writer task: replies and notifications leave in the order they were queued,
so a subscription's id always arrives before its first notification.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from mockinfura.chains.subscriptions import LOGS, SUBSCRIPTION_NOT_FOUND, Subscription, SubscriptionHub
from mockinfura.gateway import replies
from mockinfura.gateway.access import Grant
from mockinfura.gateway.replies import Refusal
from mockinfura.gateway.routes import (
    INVALID_USAGE_NAME,
    InfuraEndpoint,
    charge_refusal,
    decide,
    parse_infura_path,
    record_request,
    refusal_response,
)
from mockinfura.networks import CATALOGUE
from mockinfura.rpc.envelope import Call, NotJson, dump, error_reply, parse_calls, parse_json, result_reply
from mockinfura.rpc.errors import INTERNAL_ERROR, INVALID_INPUT, INVALID_REQUEST, RpcError
from mockinfura.rpc.methods import infura_refusal
from mockinfura.rpc.params import positional
from mockinfura.state import MockState

log = logging.getLogger("mockinfura")

# [choice] A refusal met inside an open socket is a JSON-RPC error: the 403s carry their own (-32002, "rejected due
# to project ID settings"); a 401's text becomes the message, with this code ({"code":-32002,"message":"invalid JWT"}).
SOCKET_REFUSAL_CODE = -32002
# [choice] A JWT that expires while its socket is open: the frame that finds it expired gets the error above, then
# the server closes the socket with JWT_EXPIRED_CLOSE_CODE: the token travels only on the handshake, so a client
# must reconnect with a fresh one. Notifications are checked too: the socket closes instead of sending one late.
CLOSE_WHEN_JWT_EXPIRES = True
JWT_EXPIRED_CLOSE_CODE = 1008  # policy violation
# [choice] A key changed at run time (/_mock/keys) while a socket is open: the handshake's checks run again on the
# next frame, with the handshake's headers; if they now refuse, that frame gets the refusal and the socket closes.
KEY_CHANGED_CLOSE_CODE = 1008
# infura.md 4 [doc, old]: idle connections are closed after an hour. [choice] Idle = no frame either way.
IDLE_TIMEOUT_SECONDS = 3600.0
IDLE_CLOSE_CODE = 1000
# [choice] A client that does not read: past this many queued frames it is dropped at once (the queue is discarded;
# the close frame is attempted for SLOW_CLIENT_CLOSE_WAIT_SECONDS, then the connection is simply closed).
MAX_QUEUED_FRAMES = 10_000
SLOW_CLIENT_CLOSE_CODE = 1013  # try again later
SLOW_CLIENT_CLOSE_WAIT_SECONDS = 1.0
# [choice] A frame that is not JSON gets the HTTP reply's error (infura.md 3), with id null; the socket stays open.
INVALID_JSON_ERROR = RpcError(INVALID_REQUEST, "invalid json request")
# infura.md 4 [doc]: the daily credit limit severs connections. [choice] A frame that meets it gets the 402/429 reply's
# JSON as its reply, a notification that meets it is not sent; then the socket closes with this code. A throughput
# limit only refuses frames (notifications are charged, never held back).
DAILY_LIMIT_KINDS = frozenset({"plan_daily", "key_daily"})
DAILY_LIMIT_CLOSE_CODE = 1008
# credits.toml [events]: a notification costs its event's price; `logs` at most once a block per subscription.
EVENT_USAGE_NAME = "eth_subscription:{kind}"  # [choice] the usage report's name for notification credits
# [choice] The journal's status for WebSocket entries: 101 for an accepted handshake, 200 for an answered frame, and
# for a refused frame the status the same refusal has over HTTP.
HANDSHAKE_ACCEPTED_STATUS = 101
CALL_ANSWERED_STATUS = 200


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


def socket_error(refusal: Refusal) -> RpcError:
    """The JSON-RPC error a handshake-level refusal becomes inside an open socket."""
    if refusal.rpc_code is not None:
        return RpcError(refusal.rpc_code, refusal.rpc_message or "")
    return RpcError(SOCKET_REFUSAL_CODE, refusal.body.decode(errors="replace").strip())


class Connection:
    """One open socket: its grant, its subscriptions and its outbox (event-loop side only)."""

    def __init__(self, websocket: WebSocket, network: str, key: str, grant: Grant, state: MockState) -> None:
        self.websocket = websocket
        self.network = network
        self.key = key
        self.grant = grant
        self.state = state
        self.subscriptions: dict[str, Subscription] = {}
        self.outbox: asyncio.Queue[bytes | _Close] = asyncio.Queue()
        self.closing = False
        self.overrun = asyncio.Event()  # set when the client fell MAX_QUEUED_FRAMES behind
        self.last_activity = time.monotonic()
        self.logs_charged_block: dict[str, int] = {}  # logs subscription id -> last block charged

    def jwt_expired(self, now: float | None = None) -> bool:
        exp = self.grant.jwt_exp
        now = self.state.clock.now() if now is None else now
        return exp is not None and exp <= now - self.state.config.server.jwt_leeway_seconds

    def send(self, frame: bytes) -> None:
        """Queue a reply (or a notification) behind everything queued before it."""
        if self.closing:
            return
        if self.outbox.qsize() >= MAX_QUEUED_FRAMES:
            self.closing = True
            self.overrun.set()
            return
        self.last_activity = time.monotonic()
        self.outbox.put_nowait(frame)

    def notify(self, subscription: Subscription, frame: bytes, block: int | None) -> None:
        """A subscription's notification (called on the event loop by the feed): checked, charged, queued."""
        if self.closing:
            return
        now = self.state.clock.now()
        if CLOSE_WHEN_JWT_EXPIRES and self.jwt_expired(now):
            self.close(JWT_EXPIRED_CLOSE_CODE, "invalid JWT: jwt expired")
            return
        meter = self.state.meter
        hit = meter.check(self.grant.api_key, now)
        if hit is not None and hit.kind in DAILY_LIMIT_KINDS:
            self.close(DAILY_LIMIT_CLOSE_CODE, f"daily credit limit reached ({hit.kind.replace('_', ' ')})")
            return
        if subscription.kind != LOGS or self.logs_charged_block.get(subscription.id) != block:
            if subscription.kind == LOGS and block is not None:
                self.logs_charged_block[subscription.id] = block
            price = meter.table.events.get(subscription.kind, 0)
            meter.settle(self.key, 0, [(EVENT_USAGE_NAME.format(kind=subscription.kind), price)], now)
        self.send(frame)

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued have gone out."""
        if not self.closing:
            self.closing = True
            self.outbox.put_nowait(_Close(code, reason[:120]))

    async def write_loop(self) -> None:
        websocket = self.websocket
        while True:
            item = await self.outbox.get()
            if isinstance(item, _Close):
                await websocket.close(item.code, item.reason)
                return
            await websocket.send_text(item.decode())


class WebSocketEndpoint:
    """The ASGI-level handler for every WebSocket request (Starlette `WebSocketRoute`)."""

    def __init__(self, state: MockState, hub: SubscriptionHub, http: InfuraEndpoint | None = None) -> None:
        self.state = state
        self.hub = hub
        self.http = http or InfuraEndpoint(state)  # the same dispatch (and rules) as HTTP's
        self.connections: set[Connection] = set()

    def counts(self) -> dict[str, int]:
        """Open sockets and live subscriptions: both return to zero when every client has gone."""
        return {"connections": len(self.connections), "subscriptions": self.hub.count()}

    # ------------------------------------------------------------------ handshake

    async def __call__(self, websocket: WebSocket) -> None:
        state = self.state
        server = state.config.server
        headers = websocket.headers
        target = parse_infura_path(websocket.url.path, headers.get("host"), server.default_network)
        if target is None or not target.websocket:
            await self._deny(websocket, replies.page_not_found(), None, None)
            return
        if not CATALOGUE[target.network].websocket:  # infura.md 1: Infura has no WebSocket for this network
            await self._deny(websocket, replies.page_not_found(), target.network, target.key,
                             f"network {target.network} has no WebSocket endpoint")
            return
        if target.key is None:
            await self._deny(websocket, replies.project_id_required(), target.network, None)
            return
        decision = decide(state, target.key, target.network, headers)
        if isinstance(decision, Refusal):
            await self._deny(websocket, decision, target.network, target.key)
            return
        await websocket.accept()
        self._journal(websocket, target.network, target.key, [], "allowed", decision.reason, HANDSHAKE_ACCEPTED_STATUS)
        connection = Connection(websocket, target.network, target.key, decision, state)
        self.connections.add(connection)
        try:
            await self._serve(connection)
        finally:
            connection.closing = True
            for subscription in connection.subscriptions.values():
                self.hub.cancel(subscription)
            connection.subscriptions.clear()
            self.connections.discard(connection)

    async def _deny(self, websocket: WebSocket, refusal: Refusal, network: str | None, key: str | None,
                    reason: str | None = None) -> None:
        if reason:
            refusal = Refusal(refusal.status, refusal.body, reason, refusal.content_type, refusal.headers,
                              refusal.rpc_code, refusal.rpc_message)
        credits = self._charge_refusal(key, refusal)
        self._journal(websocket, network, key, [], "refused", refusal.reason, refusal.status, credits)
        response = refusal_response(refusal)
        response.headers["vary"] = "Origin"  # infura.md 1: every reply
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(response)
        else:  # a server without the extension: the closest thing, a close naming the refusal
            await websocket.close(1008, refusal.body.decode(errors="replace").strip()[:120])

    def _charge_refusal(self, key: str | None, refusal: Refusal) -> int:
        return charge_refusal(self.state, key, refusal)

    def _refuse_frame(self, connection: Connection, refusal: Refusal, methods: list[str]) -> None:
        credits = self._charge_refusal(connection.key, refusal)
        self._journal(connection.websocket, connection.network, connection.key, methods, "refused", refusal.reason,
                      refusal.status, credits)

    def _journal(self, websocket: WebSocket, network: str | None, key: str | None, methods: list[str],
                 decision: str, reason: str, status: int, credits: int = 0) -> None:
        record_request(self.state, websocket, network, key, methods, decision, reason, status, credits, "websocket")

    # ------------------------------------------------------------------ open socket

    async def _serve(self, connection: Connection) -> None:
        tasks = (
            asyncio.create_task(connection.write_loop()),
            asyncio.create_task(self._read_loop(connection)),
            asyncio.create_task(connection.overrun.wait()),
        )
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except (asyncio.CancelledError, WebSocketDisconnect, OSError, RuntimeError):
                    pass  # the client went away mid-send, or the socket was already closed
                except Exception:
                    log.exception("websocket task failed")
        if connection.overrun.is_set():
            log.warning("dropping a WebSocket client %s frames behind", MAX_QUEUED_FRAMES)
            try:
                async with asyncio.timeout(SLOW_CLIENT_CLOSE_WAIT_SECONDS):
                    await connection.websocket.close(SLOW_CLIENT_CLOSE_CODE, "too many unread frames")
            except (TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
                pass  # the client reads nothing: returning lets the server close the connection

    async def _read_loop(self, connection: Connection) -> None:
        websocket = connection.websocket
        while not connection.closing:
            idle_for = time.monotonic() - connection.last_activity
            if idle_for >= IDLE_TIMEOUT_SECONDS:
                connection.close(IDLE_CLOSE_CODE, f"idle for {IDLE_TIMEOUT_SECONDS:.0f} s")
                return
            try:
                async with asyncio.timeout(IDLE_TIMEOUT_SECONDS - idle_for):
                    message = await websocket.receive()
            except TimeoutError:
                continue  # notifications may have kept it busy: the loop re-checks
            if message["type"] == "websocket.disconnect":
                return
            connection.last_activity = time.monotonic()
            raw = message.get("bytes")
            if raw is None:
                raw = (message.get("text") or "").encode()
            await self._handle(connection, raw)

    async def _handle(self, connection: Connection, raw: bytes) -> None:
        """One frame: a call or a batch, checked and charged like one HTTP request; its replies queued in order;
        the subscriptions it made started after them."""
        state = self.state
        server = state.config.server
        try:
            document = parse_json(raw)
        except NotJson as exc:
            self._refuse_frame(connection, replies.invalid_json(f"frame is not JSON: {str(exc)[:100]}"), [])
            connection.send(dump(error_reply(None, INVALID_JSON_ERROR)))
            return
        is_batch, calls = parse_calls(document)
        methods = [c.method for c in calls if c.method]
        if is_batch and not calls:
            connection.send(dump(error_reply(None, RpcError(INVALID_REQUEST, "empty batch"))))
            return
        if len(calls) > server.max_batch_size:
            refusal = replies.batch_too_large(len(calls), server.max_batch_size)
            self._refuse_frame(connection, refusal, [])
            connection.send(refusal.body)  # already a JSON-RPC error, id null
            return
        refusal, close_code = self._message_refusal(connection, calls)
        if refusal is not None:
            self._refuse_frame(connection, refusal, methods)
            error = socket_error(refusal)
            # the whole frame is refused, as a batch is over HTTP (infura.md 2.4 [choice]); each call says so
            self._reply(connection, is_batch, calls, [error_reply(c.reply_id, error) for c in calls])
            if close_code is not None:
                connection.close(close_code, f"{error.message}: {refusal.reason}")
            return
        meter = state.meter
        charges = [(c.method or INVALID_USAGE_NAME, meter.table.cost(c.method or "", connection.network)) for c in calls]
        reserved = sum(credits for _, credits in charges)
        hit = meter.admit(connection.grant.api_key, reserved, state.clock.now())
        if hit is not None:
            refusal = replies.rate_limited(hit.kind, calls[0].reply_id, style=server.rate_limit_style, limit=hit.limit,
                                           used=hit.used)
            self._refuse_frame(connection, refusal, methods)
            connection.send(refusal.body)  # Infura's 402/429 JSON, with the (first) call's id
            if hit.kind in DAILY_LIMIT_KINDS:
                connection.close(DAILY_LIMIT_CLOSE_CODE, f"daily credit limit reached ({hit.kind.replace('_', ' ')})")
            return
        started: list[Subscription] = []
        answers = [await self._answer_one(connection, call, started) for call in calls]
        credits = meter.settle(connection.key, reserved, charges, state.clock.now())
        self._journal(connection.websocket, connection.network, connection.key, methods, "allowed",
                      connection.grant.reason, CALL_ANSWERED_STATUS, credits)
        self._reply(connection, is_batch, calls, answers)
        for subscription in started:  # after the reply that names them: no notification can overtake it
            if subscription.id in connection.subscriptions and not connection.closing:
                self.hub.activate(subscription)

    def _message_refusal(self, connection: Connection, calls: list[Call]) -> tuple[Refusal | None, int | None]:
        """The refusal for this frame and, when the socket must close after it, the close code."""
        state = self.state
        if state.api_key(connection.key) is not connection.grant.api_key:
            decision = decide(state, connection.key, connection.network, connection.websocket.headers)
            if isinstance(decision, Refusal):
                return decision, KEY_CHANGED_CLOSE_CODE
            connection.grant = decision
        if connection.jwt_expired():
            return replies.invalid_jwt("jwt expired"), JWT_EXPIRED_CLOSE_CODE if CLOSE_WHEN_JWT_EXPIRES else None
        for call in calls:
            if call.error is None:
                refusal = connection.grant.call_refusal(call.method, call.params)
                if refusal is not None:
                    return refusal, None
        return None, None

    def _reply(self, connection: Connection, is_batch: bool, calls: list[Call], answers: list[dict[str, Any]]) -> None:
        # JSON-RPC: a call without an id gets no reply, unless it was not a valid call at all.
        out = [answer for call, answer in zip(calls, answers, strict=True)
               if call.wants_reply or call.error is not None]
        if is_batch:
            if out:
                connection.send(dump(out))
        elif out:
            connection.send(dump(out[0]))

    async def _answer_one(self, connection: Connection, call: Call, started: list[Subscription]) -> dict[str, Any]:
        if call.error is not None:
            return error_reply(call.reply_id, call.error)
        if call.method == "eth_subscribe":
            try:
                subscription = await self.hub.subscribe(connection.network, call.params, connection.notify)
            except RpcError as exc:
                return error_reply(call.reply_id, exc)
            except Exception as exc:  # a chain that failed to build, or a bug: a JSON-RPC error, as over HTTP
                log.exception("internal error answering eth_subscribe on %s", connection.network)
                return error_reply(call.reply_id, RpcError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}"))
            connection.subscriptions[subscription.id] = subscription
            started.append(subscription)
            return result_reply(call.reply_id, subscription.id)
        if call.method == "eth_unsubscribe":
            try:
                (subscription_id,) = positional(call.params, "eth_unsubscribe", 1)
            except RpcError as exc:
                return error_reply(call.reply_id, exc)
            subscription = connection.subscriptions.pop(subscription_id, None) \
                if isinstance(subscription_id, str) else None
            if subscription is None:  # geth: another connection's ids are not found either
                return error_reply(call.reply_id, RpcError(INVALID_INPUT, SUBSCRIPTION_NOT_FOUND))
            self.hub.cancel(subscription)
            connection.logs_charged_block.pop(subscription.id, None)
            return result_reply(call.reply_id, True)
        refusal = infura_refusal(call.method, websocket=True)
        if refusal is not None:
            return error_reply(call.reply_id, refusal)
        return await self.http.answer_one(connection.network, connection.grant, call)
