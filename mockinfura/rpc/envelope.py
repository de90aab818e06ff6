"""The JSON-RPC envelope: a raw body to calls, and results to reply bytes.

The body is read as JSON whatever its Content-Type (web3.py sends none once a user sets headers).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from mockinfura.rpc.errors import INVALID_REQUEST, RpcError

_NO_ID = object()


class NotJson(ValueError):
    pass


@dataclass(slots=True)
class Call:
    """One request object of a body: valid (method set) or already an error (error set)."""

    id: Any
    method: str | None
    params: Any
    error: RpcError | None = None

    @property
    def wants_reply(self) -> bool:
        return self.id is not _NO_ID

    @property
    def reply_id(self) -> Any:
        return None if self.id is _NO_ID else self.id


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


MAX_JSON_DEPTH = 1024  # orjson's own limit; deeper JSON is `invalid json request`


def parse_json(body: bytes) -> Any:
    """orjson first (fast); the standard library only for what orjson reads differently but JSON allows: an integer
    id over 64 bits (orjson makes it a float) and a lone surrogate escape (orjson refuses it).

    The standard library recurses on the C stack, and py-ecc raises the interpreter's recursion limit to 100,000 when
    a chain is built: it only ever sees JSON nested MAX_JSON_DEPTH deep at most, or a deep body would crash the
    process."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not _SURROGATE_ESCAPE.search(body):
            raise NotJson(str(exc)) from None
        if _nesting(body) > MAX_JSON_DEPTH:
            raise NotJson(f"nested more than {MAX_JSON_DEPTH} deep") from None
    else:
        if not _has_float_id(document):
            return document
    try:
        document = json.loads(body, parse_constant=_reject_constant)
        if _SURROGATE_ESCAPE.search(body):  # only the standard library lets a lone surrogate through (orjson refuses)
            document = without_lone_surrogates(document)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise NotJson(str(exc)) from None
    return document


_STRING_OR_NOT_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[^\[\]{}]+')


def _nesting(body: bytes) -> int:
    """The deepest [ and { nesting of BODY outside its strings (on the rare standard-library path only)."""
    depth = deepest = 0
    for char in _STRING_OR_NOT_BRACKET.sub(b"", body):
        depth += 1 if char in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value: Any) -> Any:
    """A lone surrogate (`"\\ud800"`: valid JSON, not valid text) read as U+FFFD, as Go's encoding/json (geth's) reads
    it: no string the mock keeps (journal, usage) or echoes can then fail to encode as UTF-8."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    return value


def _has_float_id(document: Any) -> bool:
    """orjson reads an integer over 64 bits as a float; an id must come back exactly as sent."""
    if isinstance(document, dict):
        return isinstance(document.get("id"), float)
    if isinstance(document, list):
        return any(isinstance(item, dict) and isinstance(item.get("id"), float) for item in document)
    return False


def parse_calls(document: Any) -> tuple[bool, list[Call]]:
    """(is_batch, calls). A batch is a JSON array; anything else is one call."""
    if isinstance(document, list):
        return True, [_call(item) for item in document]
    return False, [_call(document)]


def _call(item: Any) -> Call:
    if not isinstance(item, dict):
        return Call(None, None, None, RpcError(INVALID_REQUEST, "invalid request: expected a JSON-RPC object"))
    call_id = item.get("id", _NO_ID)
    if call_id is not _NO_ID and not (call_id is None or isinstance(call_id, (str, int, float))) \
            or isinstance(call_id, bool):  # JSON-RPC 2.0: a string, a number or null; true/false are none of them
        return Call(None, None, None, RpcError(INVALID_REQUEST, "invalid request: id must be a string or a number"))
    method = item.get("method")
    if not isinstance(method, str) or not method:
        return Call(call_id, None, None, RpcError(INVALID_REQUEST, "invalid request: method must be a string"))
    params = item.get("params")
    if params is not None and not isinstance(params, (list, dict)):
        return Call(call_id, method, None, RpcError(INVALID_REQUEST, "invalid request: params must be an array or an object"))
    return Call(call_id, method, params if params is not None else [])


def result_reply(call_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "result": result}


def error_reply(call_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": error.as_error()}


def dump(document: Any) -> bytes:
    try:
        return orjson.dumps(document)
    except TypeError:  # an int over 64 bits, echoed from a caller's id
        return json.dumps(document, separators=(",", ":")).encode()
