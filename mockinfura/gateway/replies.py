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


# infura.md 5: the replies to a key over its credit limits. 402 and 429 cost no credits.
RATE_LIMIT_REPLIES = {
    # kind: (HTTP status, event, message, details)
    "plan_daily": (402, -33000, "Payment Required",
                   "You have reached your daily credit limit. To continue making requests, upgrade your plan or "
                   "purchase additional credits"),
    "plan_throughput": (429, -33200, "Too Many Requests",
                        "You have surpassed your allowed throughput limit. Reduce the amount of requests per second or "
                        "upgrade for more capacity."),
    "key_throughput": (429, -33300, "Too Many Requests",
                       "You have surpassed your user-defined key throughput limit setting. To make more requests with "
                       "this key, review key setting configurations."),
    # [choice] status 429 and these details: nothing public quotes this reply
    "key_daily": (429, -33400, "Too Many Requests",
                  "You have surpassed your user-defined key daily credit limit setting. To make more requests with "
                  "this key, review key setting configurations."),
}
LEGACY_RATE_LIMIT_STATUS = 429
LEGACY_RATE_LIMIT_SEE = "https://infura.io/docs/ethereum/json-rpc/ratelimits"


def rate_limited(kind: str, call_id: object, *, style: str = "current", limit: int = 0, used: float = 0) -> Refusal:
    """Infura's 402/429 with the caller's id; `legacy` is the older -32005 shape ([choice] a setting)."""
    import json

    if style == "legacy":
        error = {"code": -32005, "message": "project ID request rate exceeded",
                 "data": {"rate": {"allowed_rps": limit, "backoff_seconds": 0, "current_rps": round(float(used), 1)},
                          "see": LEGACY_RATE_LIMIT_SEE}}
        status = LEGACY_RATE_LIMIT_STATUS
    else:
        status, event, message, details = RATE_LIMIT_REPLIES[kind]
        error = {"code": status, "event": event, "message": message, "details": details}
    body = json.dumps({"jsonrpc": "2.0", "id": call_id, "error": error}, separators=(",", ":")).encode()
    return Refusal(status, body, f"{kind.replace('_', ' ')} limit {limit} reached", content_type=APPLICATION_JSON,
                   rpc_code=error["code"], rpc_message=error["message"])


BATCH_TOO_LARGE_STATUS = 400  # [choice] Infura's batch limit is not public; the mock's is a setting


def batch_too_large(size: int, limit: int) -> Refusal:
    body = (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"batch of ' + str(size).encode()
            + b' calls is over the limit of ' + str(limit).encode() + b'"}}')
    return Refusal(BATCH_TOO_LARGE_STATUS, body, f"batch of {size} calls over {limit}", content_type=APPLICATION_JSON,
                   rpc_code=-32005, rpc_message=f"batch of {size} calls is over the limit of {limit}")
