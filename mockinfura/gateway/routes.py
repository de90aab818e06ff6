"""Infura's HTTP endpoints: `POST /v3/<KEY>` and `POST /<network>/v3/<KEY>` (spec infura.md section 1).

This module speaks HTTP only: it reads the request, asks `access` for a decision, hands the calls
to the chains and shapes the reply. The per-request path stays lean: no pydantic, orjson for JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from mockinfura.gateway import replies
from mockinfura.gateway.access import Grant, check_request
from mockinfura.gateway.replies import Refusal
from mockinfura.journal import JournalEntry, iso_time
from mockinfura.networks import CATALOGUE
from mockinfura.rpc.envelope import Call, NotJson, dump, error_reply, parse_calls, parse_json, result_reply
from mockinfura.rpc.errors import INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, RpcError
from mockinfura.rpc.methods import infura_refusal
from mockinfura.state import MockState

log = logging.getLogger("mockinfura")
JSON_HEADERS = {"content-type": "application/json"}
FREE_STATUSES = (402, 429)  # infura.md 5: 402, 429 and 5xx replies cost nothing
REFUSED_USAGE_NAME = "(refused)"  # [choice] the usage report's name for 4xx refusals' 5 credits
INVALID_USAGE_NAME = "(invalid request)"


@dataclass(frozen=True, slots=True)
class InfuraPath:
    network: str
    key: str | None  # None: the URL has no key
    websocket: bool


def parse_infura_path(path: str, host: str | None, default_network: str) -> InfuraPath | None:
    """The network and key a path names, or None for a path Infura does not serve (404).

    The network comes from a path prefix, else the Host header's first label, else the default
    (infura.md 1 [choice]).
    """
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":  # one trailing slash is ignored: /v3/ is /v3
        segments = segments[:-1]
    network = None
    if segments and segments[0] in CATALOGUE:
        network, segments = segments[0], segments[1:]
    websocket = bool(segments) and segments[0] == "ws"
    if websocket:
        segments = segments[1:]
    if not segments or segments[0] != "v3" or len(segments) > 2:
        return None
    key = segments[1] if len(segments) == 2 and segments[1] else None
    if network is None:
        network = network_from_host(host) or default_network
    return InfuraPath(network, key, websocket)


def network_from_host(host: str | None) -> str | None:
    if not host:
        return None
    label = host.split(".", 1)[0].split(":", 1)[0].lower()
    return label if label in CATALOGUE else None


def refusal_response(refusal: Refusal) -> Response:
    headers = {replies.REASON_HEADER: _header_safe(refusal.reason), **refusal.headers}
    return Response(refusal.body, status_code=refusal.status, media_type=refusal.content_type, headers=headers)


def _header_safe(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:300]


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over LIMIT bytes (nothing of it is used then)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def decide(state: MockState, key: str | None, network: str, headers: Mapping[str, str]) -> Grant | Refusal:
    """The request-level access decision (access.check_request) for KEY on NETWORK, from the request's headers;
    the same for an HTTP request, a WebSocket handshake and a socket whose key changed."""
    return check_request(
        api_key=state.api_key(key),
        network=network,
        authorization=headers.get("authorization"),
        origin=headers.get("origin"),
        user_agent=headers.get("user-agent"),
        verifier=state.verifier,
        now=state.clock.now(),
        jwt_leeway=state.config.server.jwt_leeway_seconds,
    )


def header_map(scope: dict) -> dict[str, str]:
    """The request's headers as a plain dict, read once (the first of repeated names wins, as Starlette's get)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(scope["headers"])}


def record_request(
    state: MockState, connection: HTTPConnection, network: str | None, key: str | None, methods: list[str],
    decision: str, reason: str, status: int, credits: int = 0, transport: str = "http",
) -> None:
    """One journal entry for an HTTP request or a WebSocket handshake or message."""
    headers = getattr(connection.state, "header_map", None) or connection.headers
    client = connection.client
    state.journal.record(JournalEntry(
        time=iso_time(state.clock.now()),
        network=network,
        key=key,
        methods=methods,
        client=f"{client.host}:{client.port}" if client else None,
        user_agent=headers.get("user-agent"),
        origin=headers.get("origin"),
        decision=decision,
        reason=reason,
        status=status,
        credits=credits,
        transport=transport,
    ))


def charge_refusal(state: MockState, key: str | None, refusal: Refusal) -> int:
    """infura.md 5 [choice]: a 4xx refusal charges 5 credits to the key it names, if that key exists; 402 and 429
    cost nothing."""
    if not (400 <= refusal.status < 500) or refusal.status in FREE_STATUSES or state.api_key(key) is None:
        return 0
    meter = state.meter
    return meter.settle(key, 0, [(REFUSED_USAGE_NAME, meter.table.client_error)], state.clock.now())


class InfuraEndpoint:
    """The ASGI-level handler for every path that is not the control plane's."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    def _journal(
        self, request: Request, network: str | None, key: str | None, methods: list[str], decision: str,
        reason: str, status: int, credits: int = 0,
    ) -> None:
        record_request(self.state, request, network, key, methods, decision, reason, status, credits)

    def _refuse(self, request: Request, refusal: Refusal, network: str | None, key: str | None,
                methods: list[str]) -> Response:
        credits = charge_refusal(self.state, key, refusal)
        self._journal(request, network, key, methods, "refused", refusal.reason, refusal.status, credits)
        return refusal_response(refusal)

    async def __call__(self, request: Request) -> Response:
        state = self.state
        server = state.config.server
        headers = header_map(request.scope)
        request.state.header_map = headers
        target = parse_infura_path(request.scope["path"], headers.get("host"), server.default_network)
        if target is None or target.websocket:
            return self._refuse(request, replies.page_not_found(), None, None, [])
        if request.method != "POST":
            return self._refuse(request, replies.page_not_found(), target.network, target.key, [])
        if target.key is None:
            return self._refuse(request, replies.project_id_required(), target.network, None, [])
        decision = decide(state, target.key, target.network, headers)
        if isinstance(decision, Refusal):
            return self._refuse(request, decision, target.network, target.key, [])
        body = await read_body(request, server.max_body_bytes)
        if body is None:
            return self._refuse(request, replies.body_too_large(server.max_body_bytes), target.network, target.key, [])
        try:
            document = parse_json(body)
        except NotJson as exc:
            return self._refuse(request, replies.invalid_json(f"body is not JSON: {str(exc)[:100]}"), target.network,
                                target.key, [])
        is_batch, calls = parse_calls(document)
        if len(calls) > server.max_batch_size:
            return self._refuse(request, replies.batch_too_large(len(calls), server.max_batch_size), target.network,
                                target.key, [])
        methods = [c.method for c in calls if c.method]
        for call in calls:
            if call.error is None:
                refusal = decision.call_refusal(call.method, call.params)
                if refusal is not None:
                    return self._refuse(request, refusal, target.network, target.key, methods)
        meter = state.meter
        charges = [(c.method or INVALID_USAGE_NAME, meter.table.cost(c.method or "", target.network)) for c in calls]
        reserved = sum(credits for _, credits in charges)
        hit = meter.admit(decision.api_key, reserved, state.clock.now())
        if hit is not None:
            first_id = calls[0].reply_id if calls else None
            refusal = replies.rate_limited(hit.kind, first_id, style=server.rate_limit_style, limit=hit.limit,
                                           used=hit.used)
            return self._refuse(request, refusal, target.network, target.key, methods)
        status, payload = await self.answer(target.network, decision, is_batch, calls)
        if status >= 500:  # infura.md 5: a 5xx reply (the node behind failed: 502/504) costs nothing
            charges = []
        elif status >= 400:  # a 4xx reply (a -32601 configured as 400) costs 5, not the calls' price
            charges = [(REFUSED_USAGE_NAME, meter.table.client_error)]
        credits = meter.settle(target.key, reserved, charges, state.clock.now())
        self._journal(request, target.network, target.key, methods, "allowed", decision.reason, status, credits)
        return Response(payload, status_code=status, headers=JSON_HEADERS)

    async def answer(self, network: str, grant: Grant, is_batch: bool, calls: list[Call]) -> tuple[int, bytes]:
        """(HTTP status, reply bytes) for the calls of one request, in order."""
        if is_batch and not calls:
            return 200, dump(error_reply(None, RpcError(INVALID_REQUEST, "empty batch")))
        replies_out = []
        failed: list[int] = []  # HTTP statuses of calls the node behind failed (UpstreamError: 502 or 504)
        for call in calls:
            reply = await self.answer_one(network, grant, call, failed)
            # JSON-RPC 2.0: a notification gets no reply in a batch, but an invalid call always does (id null)
            if call.wants_reply or call.error is not None or not is_batch:
                replies_out.append(reply)
        if is_batch:
            # [choice] a batch takes the node's failure status (the worst) only when every call of it failed so
            # (the node was down or slow for all); else 200 with each failure as its call's error
            return (max(failed) if failed and len(failed) == len(calls) else 200), dump(replies_out)
        reply = replies_out[0]
        status = 200
        error = reply.get("error")
        if failed:  # infura.md 3: 502 (node unreachable), 504 (node too slow)
            status = failed[0]
        elif error is not None and error.get("code") == METHOD_NOT_FOUND:
            status = self.state.config.server.method_not_found_status
        return status, dump(reply)

    async def answer_one(self, network: str, grant: Grant, call: Call,
                         failed: list[int] | None = None) -> dict[str, Any]:
        if call.error is not None:
            return error_reply(call.reply_id, call.error)
        refusal = infura_refusal(call.method)
        if refusal is not None:
            return error_reply(call.reply_id, refusal)
        try:
            result = await self.state.chains.call(network, call.method, call.params, owner=grant.api_key.key)
        except RpcError as exc:
            http_status = getattr(exc, "http_status", None)  # chains/upstream.py UpstreamError
            if http_status is not None and failed is not None:
                failed.append(http_status)
            return error_reply(call.reply_id, exc)
        except Exception as exc:  # a bug below the gateway: a JSON-RPC error, never a 500
            log.exception("internal error answering %s on %s", call.method, network)
            return error_reply(call.reply_id, RpcError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}"))
        return result_reply(call.reply_id, result)


class VaryOrigin:
    """ASGI middleware: `Vary: Origin` on every HTTP reply, as Infura sends (infura.md 1 [seen])."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_vary(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"vary", b"Origin")]
            await send(message)

        await self.app(scope, receive, send_with_vary)
