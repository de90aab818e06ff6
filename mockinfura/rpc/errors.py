"""JSON-RPC errors raised anywhere below the gateway and turned into error objects by the envelope."""

from __future__ import annotations

from typing import Any

from mockinfura.gateway.replies import method_not_found_message

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
INVALID_INPUT = -32000
RESOURCE_NOT_FOUND = -32001
LIMIT_EXCEEDED = -32005
EXECUTION_REVERTED = 3


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def method_not_found(method: str) -> RpcError:
    return RpcError(METHOD_NOT_FOUND, method_not_found_message(method))


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)
