"""Reading JSON-RPC params: each reader raises -32602 with a message that says what was wrong."""

from __future__ import annotations

import re
from typing import Any

from mockinfura.rpc.errors import invalid_params

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")
_QUANTITY = re.compile(r"^0x(0|[1-9a-fA-F][0-9a-fA-F]*)$")
BLOCK_TAGS = ("latest", "earliest", "pending", "safe", "finalized")
MAX_DATA_HEX_CHARS = 2 * 1024 * 1024  # 1 MiB of bytes in a single data field


def positional(params: Any, method: str, required: int, optional: int = 0) -> list[Any]:
    """params as a list of required + optional entries (missing optional ones are None)."""
    if params is None:
        params = []
    if not isinstance(params, list):
        raise invalid_params(f"{method}: params must be an array")
    if len(params) < required:
        raise invalid_params(f"{method}: missing value for required argument {len(params)}")
    if len(params) > required + optional:
        raise invalid_params(f"{method}: too many arguments, want at most {required + optional}")
    return params + [None] * (required + optional - len(params))


def quantity(value: Any, what: str) -> int:
    if isinstance(value, str) and _QUANTITY.match(value) and len(value) <= 66:
        return int(value, 16)
    raise invalid_params(f"invalid {what}: expected a hex quantity such as 0x1a, got {_show(value)}")


def data(value: Any, what: str) -> bytes:
    if isinstance(value, str) and _HEX.match(value) and len(value) % 2 == 0 and len(value) <= MAX_DATA_HEX_CHARS:
        return bytes.fromhex(value[2:])
    raise invalid_params(f"invalid {what}: expected 0x-prefixed hex bytes, got {_show(value)}")


def fixed_data(value: Any, what: str, size: int) -> bytes:
    raw = data(value, what)
    if len(raw) != size:
        raise invalid_params(f"invalid {what}: expected {size} bytes, got {len(raw)}")
    return raw


def address(value: Any, what: str = "address") -> bytes:
    return fixed_data(value, what, 20)


def hash32(value: Any, what: str = "hash") -> bytes:
    return fixed_data(value, what, 32)


def boolean(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise invalid_params(f"invalid {what}: expected true or false, got {_show(value)}")


def block_id(value: Any, what: str = "block") -> int | str | bytes:
    """A block tag, number, or EIP-1898 object; bytes means a block hash."""
    if value is None:
        return "latest"
    if isinstance(value, str):
        if value in BLOCK_TAGS:
            return value
        if _QUANTITY.match(value) and len(value) <= 18:
            return int(value, 16)
        if len(value) == 66 and _HEX.match(value):
            return bytes.fromhex(value[2:])
    if isinstance(value, dict):
        if "blockHash" in value:
            return hash32(value["blockHash"], "blockHash")
        if "blockNumber" in value:
            return block_id(value["blockNumber"], "blockNumber")
    raise invalid_params(
        f"invalid {what}: expected a block number, a tag ({', '.join(BLOCK_TAGS)}) or a block hash, got {_show(value)}"
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
