"""The control plane, `/_mock/` (spec interface.md section 4): kept off Infura's paths, JSON in and out.

It answers loopback clients only, unless `[server] control = "open"` or the request carries the
configured `X-Mockinfura-Control-Token`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from mockinfura.config import ConfigError, api_key_from_dict
from mockinfura.networks import CATALOGUE
from mockinfura.rpc.envelope import Call, NotJson, dump, error_reply, parse_calls, parse_json, result_reply
from mockinfura.rpc.errors import INTERNAL_ERROR, INVALID_REQUEST, RpcError
from mockinfura.state import MockState

CONTROL_TOKEN_HEADER = "X-Mockinfura-Control-Token"


def _state(request: Request) -> MockState:
    return request.app.state.mock


async def require_control_access(request: Request) -> None:
    server = _state(request).config.server
    if server.control == "open":
        return
    token = request.headers.get(CONTROL_TOKEN_HEADER)
    if server.control_token and token and hmac.compare_digest(token.encode(), server.control_token.encode()):
        return
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise HTTPException(403, f"the control plane answers loopback clients only (or send {CONTROL_TOKEN_HEADER})")


class ControlError(BaseModel):
    """Every refusal of the control plane: what is wrong and, for a rejected API key or request, each problem."""

    error: str
    problems: list[str] | None = None


def _errors(**described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the refusals a route gives (`_404="no such key"`), all shaped as ControlError."""
    return {int(code.lstrip("_")): {"model": ControlError, "description": text} for code, text in described.items()}


BAD_INPUT = "a parameter or the body does not fit this schema"  # FastAPI's 422, reshaped by app._validation_error
router = APIRouter(prefix="/_mock", tags=["control plane"], dependencies=[Depends(require_control_access)],
                   responses=_errors(_403=f"not a loopback client (and no {CONTROL_TOKEN_HEADER})"))


@router.get("/health", summary="Ready check")
async def health(request: Request) -> dict[str, Any]:
    state = _state(request)
    return {
        "status": "ok",
        "networks": sorted(CATALOGUE),
        "built": sorted(state.chains.built()),
        "api_keys": len(state.api_keys),
        "websocket": request.app.state.websockets.counts(),  # {"connections": n, "subscriptions": m}
    }


@router.post(
    "/rpc/{network}",
    summary="JSON-RPC with no auth and no credits, plus the test controls",
    description="Every public method, plus evm_snapshot, evm_revert, evm_mine, evm_increaseTime, "
    "evm_setNextBlockTimestamp, anvil_/hardhat_ setBalance, setCode, setNonce, setStorageAt, and "
    "eth_accounts / eth_sendTransaction for the dev accounts. Single call or batch.",
    response_class=Response,
    responses={**_errors(_404="not a network of the catalogue", _422=BAD_INPUT),
               400: {"description": "the body is not JSON: a JSON-RPC parse error (-32700)",
                     "content": {"application/json": {"schema": {"type": "object"}}}}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": ["object", "array"]},
        "example": {"jsonrpc": "2.0", "id": 1, "method": "evm_snapshot", "params": []},
    }}}},
)
async def control_rpc(network: str, request: Request) -> Response:
    state = _state(request)
    if network not in CATALOGUE:
        raise HTTPException(404, f"unknown network {network!r}")
    raw = await request.body()
    try:
        document = parse_json(raw)
    except NotJson:
        return Response(dump({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}),
                        status_code=400, media_type="application/json")
    is_batch, calls = parse_calls(document)
    if is_batch and not calls:  # JSON-RPC 2.0: an empty batch is one Invalid Request error, not []
        return Response(dump(error_reply(None, RpcError(INVALID_REQUEST, "empty batch"))), media_type="application/json")
    out = []
    for call in calls:
        reply = await _control_reply(state, network, call)
        if call.wants_reply or call.error is not None or not is_batch:  # a batch's notifications get no reply
            out.append(reply)
    return Response(dump(out if is_batch else out[0]), media_type="application/json")


async def _control_reply(state: MockState, network: str, call: Call) -> dict[str, Any]:
    if call.error is not None:
        return error_reply(call.reply_id, call.error)
    try:
        result = await state.chains.call(network, call.method, call.params, owner="_mock", control=True)
    except RpcError as exc:
        return error_reply(call.reply_id, exc)
    except Exception as exc:  # never a 500
        return error_reply(call.reply_id, RpcError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}"))
    return result_reply(call.reply_id, result)


JOURNAL_ENTRY_EXAMPLE = {
    "time": "2025-01-01T12:00:00.000Z", "network": "sepolia", "key": "0123456789abcdef0123456789abcdef",
    "methods": ["eth_blockNumber"], "client": "127.0.0.1:53412", "user_agent": "web3.py/7.0.0", "origin": None,
    "decision": "refused", "reason": "jwt expired", "status": 401, "credits": 0, "transport": "http",
}


@router.get(
    "/requests",
    summary="The request journal, newest last",
    description="Every Infura-facing request: time (server clock), network, key, methods, client, User-Agent, "
    "Origin, the auth decision (allowed or refused) and its reason, HTTP status, credits charged.",
    responses={200: {"content": {"application/json": {"example": [JOURNAL_ENTRY_EXAMPLE]}}}, **_errors(_422=BAD_INPUT)},
)
async def list_requests(
    request: Request,
    key: str | None = Query(None, description="only this API key's requests"),
    network: str | None = Query(None, description="only this network's requests"),
    method: str | None = Query(None, description="only requests with a call to this method"),
    decision: Literal["allowed", "refused"] | None = Query(None, description="only allowed or only refused ones"),
    limit: int | None = Query(None, ge=0, description="only the newest N (after the other filters)"),
) -> list[dict[str, Any]]:
    entries = _state(request).journal.entries(key=key, network=network, method=method, decision=decision, limit=limit)
    return [e.as_dict() for e in entries]


@router.delete("/requests", summary="Clear the request journal")
async def clear_requests(request: Request) -> dict[str, Any]:
    _state(request).journal.clear()
    return {"cleared": True}


@router.get("/keys", summary="Every API key")
async def list_keys(request: Request) -> list[dict[str, Any]]:
    return [k.as_dict() for k in _state(request).api_keys.values()]


def _key_from_body(entry: Any, key: str | None = None) -> Any:
    if not isinstance(entry, dict):
        raise HTTPException(400, "expected a JSON object shaped like a config [api_keys.<label>] entry")
    entry = dict(entry)
    if key is not None:
        if entry.setdefault("key", key) != key:
            raise HTTPException(400, f"the body's key {entry['key']!r} differs from the URL's {key!r}")
    entry.setdefault("key", secrets.token_hex(16))
    try:
        return api_key_from_dict(entry)
    except ConfigError as exc:
        raise HTTPException(400, {"error": "invalid API key", "problems": exc.problems}) from None


@router.post("/keys", summary="Create an API key (a random key when the body names none)", status_code=201,
             responses=_errors(_400="the body is not a valid API key (each problem listed)",
                               _409="the key exists (PUT replaces it)", _422=BAD_INPUT))
async def create_key(request: Request, entry: dict[str, Any] = Body(..., examples=[{"require_jwt": False}])) -> dict[str, Any]:
    state = _state(request)
    api_key = _key_from_body(entry)
    if state.api_key(api_key.key) is not None:
        raise HTTPException(409, f"API key {api_key.key} exists; PUT /_mock/keys/{api_key.key} replaces it")
    state.put_api_key(api_key)
    return api_key.as_dict()


@router.get("/keys/{key}", summary="One API key", responses=_errors(_404="no such API key", _422=BAD_INPUT))
async def get_key(key: str, request: Request) -> dict[str, Any]:
    api_key = _state(request).api_key(key)
    if api_key is None:
        raise HTTPException(404, f"no API key {key}")
    return api_key.as_dict()


@router.put("/keys/{key}", summary="Create (201) or replace (200) an API key",
            responses={201: {"description": "created"},
                       **_errors(_400="the body is not a valid API key (each problem listed)", _422=BAD_INPUT)})
async def put_key(key: str, request: Request, response: Response, entry: dict[str, Any] = Body(...)) -> dict[str, Any]:
    state = _state(request)
    api_key = _key_from_body(entry, key)
    if state.api_key(key) is None:
        response.status_code = 201
    state.put_api_key(api_key)
    return api_key.as_dict()


@router.delete("/keys/{key}", summary="Delete an API key", responses=_errors(_404="no such API key", _422=BAD_INPUT))
async def delete_key(key: str, request: Request) -> dict[str, Any]:
    if not _state(request).delete_api_key(key):
        raise HTTPException(404, f"no API key {key}")
    return {"deleted": key}


@router.get("/usage", summary="Credits used per key, per UTC day, per method")
async def usage(request: Request) -> dict[str, Any]:
    return _state(request).meter.report()


CLOCK_EXAMPLE = {"now": 1735732800.0, "iso": "2025-01-01T12:00:00+00:00", "offset": 3600.0}


@router.get("/clock", summary="The server clock (JWT exp/nbf, credit days)",
            responses={200: {"content": {"application/json": {"example": CLOCK_EXAMPLE}}}})
async def get_clock(request: Request) -> dict[str, Any]:
    return _state(request).clock.as_dict()


@router.post("/clock", summary='Move the clock: {"advance": s} or {"set": unix} or {"reset": true}',
             description="Moves only the mock's clock (JWT exp/nbf/iat checks, credit days), never the host's. "
             "Replies with the clock after the change.",
             responses={200: {"content": {"application/json": {"example": CLOCK_EXAMPLE}}},
                        **_errors(_400="not one of the three changes", _422=BAD_INPUT)})
async def move_clock(request: Request, change: dict[str, Any] = Body(..., examples=[{"advance": 3600}])) -> dict[str, Any]:
    clock = _state(request).clock
    if len(change) != 1:
        raise HTTPException(400, 'expected exactly one of {"advance": seconds}, {"set": unix_time}, {"reset": true}')
    (action, value), = change.items()
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e12
    if action == "advance" and numeric:
        clock.advance(float(value))
    elif action == "set" and numeric and value >= 0:
        clock.set(float(value))
    elif action == "reset" and value is True:
        clock.reset()
    else:
        raise HTTPException(400, 'expected {"advance": seconds}, {"set": unix_time >= 0} or {"reset": true}')
    return clock.as_dict()


@router.post("/reset", summary="Every chain back to genesis; journal and usage cleared; keys kept")
async def reset(request: Request) -> dict[str, Any]:
    await _state(request).reset()
    return {"reset": True}


@router.get("/state", summary="Download a dump of chains, keys, usage and clock")
async def get_state(request: Request) -> Response:
    from mockinfura.persistence import dump_state

    return Response(dump(await dump_state(_state(request))), media_type="application/json")


@router.post(
    "/state",
    summary="Restore a dump from GET /_mock/state (all or nothing)",
    responses=_errors(_400="the body is not JSON, or not a dump this server can load (nothing changed)"),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def restore_state(request: Request) -> dict[str, Any]:
    from mockinfura.persistence import StateError, restore_state

    try:
        document = parse_json(await request.body())
    except NotJson:
        raise HTTPException(400, "the body is not JSON") from None
    try:
        await restore_state(_state(request), document, "request body")
    except StateError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"restored": True}


@router.post("/state/save", summary="Write the state to the --state file now (atomically; 2xx: the file is complete)",
             responses=_errors(_409="the server was started without --state FILE", _503="the file cannot be written"))
async def save_state(request: Request) -> dict[str, Any]:
    from mockinfura.persistence import dump_state, write_state_file

    state = _state(request)
    if state.state_file is None:
        raise HTTPException(409, "the server was started without --state FILE")
    document = await dump_state(state)
    try:
        await asyncio.to_thread(write_state_file, state.state_file, document)
    except OSError as exc:
        raise HTTPException(503, f"cannot write {state.state_file}: {exc.strerror or exc}") from None
    return {"saved": str(state.state_file)}


async def http_exception_handler(request: Request, exc: HTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}
    return JSONResponse(detail, status_code=exc.status_code)
