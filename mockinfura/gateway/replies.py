"""Every reply Infura gives when it says no, in one place (spec infura.md sections 1-3).

A `Refusal` is the exact status, headers and body; the gateway turns it into an HTTP response
(or, over an open WebSocket, into a JSON-RPC error frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"
REASON_HEADER = "X-Mockinfura-Reason"  # infura.md 2.2 [choice]: the mock says why


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    body: bytes
    reason: str
    content_type: str = TEXT_PLAIN
    headers: dict[str, str] = field(default_factory=dict)
    rpc_code: int | None = None  # the JSON-RPC error this refusal becomes inside an open WebSocket
    rpc_message: str | None = None


def project_id_required() -> Refusal:
    return Refusal(401, b"project id required in the url\n", "no API key in the URL")


def invalid_project_id(reason: str = "unknown API key") -> Refusal:
    return Refusal(
        401,
        b"invalid project id\n",
        reason,
        headers={"Www-Authenticate": 'Basic realm="Auth failure, invalid project id"'},
    )


def invalid_secret(reason: str) -> Refusal:
    return Refusal(401, b"invalid project id or project secret\n", reason)


def invalid_jwt(reason: str) -> Refusal:
    return Refusal(401, b"invalid JWT\n", reason)


REJECTED_BY_SETTINGS_MESSAGE = "rejected due to project ID settings"


def rejected_by_settings(reason: str) -> Refusal:
    return Refusal(
        403,
        b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"rejected due to project ID settings"}}\n',
        reason,
        rpc_code=-32002,
        rpc_message=REJECTED_BY_SETTINGS_MESSAGE,
    )


NETWORK_NOT_ALLOWED_STATUS = 403  # infura.md 2.4 [choice]


def network_not_allowed(network: str) -> Refusal:
    message = f"project ID does not have access to {network}"
    body = b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"' + message.encode() + b'"}}\n'
    return Refusal(
        NETWORK_NOT_ALLOWED_STATUS,
        body,
        f"network {network} not enabled for this key",
        rpc_code=-32002,
        rpc_message=message,
    )


def page_not_found() -> Refusal:
    return Refusal(404, b"404 page not found\n", "no such path")


INVALID_JSON_STATUS = 400  # infura.md 3 [seen body; status choice]
INVALID_JSON_BODY = b'{"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid json request"}}'


def invalid_json(reason: str = "body is not JSON") -> Refusal:
    return Refusal(INVALID_JSON_STATUS, INVALID_JSON_BODY, reason, content_type=APPLICATION_JSON)


def body_too_large(limit: int) -> Refusal:
    body = (
        b'{"jsonrpc":"2.0","error":{"code":-32600,"message":"request body larger than '
        + str(limit).encode()
        + b' bytes"}}'
    )
    return Refusal(413, body, f"body over {limit} bytes", content_type=APPLICATION_JSON)


def method_not_found_message(method: str) -> str:
    return f"The method {method} does not exist/is not available"
