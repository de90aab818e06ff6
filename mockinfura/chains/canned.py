"""Canned replies (spec interface.md section 5), answered before the chain behind them.

A fixture file is a JSON list of `{"method", "params"?, "result" | "error", "network"?, "times"?}`.
A folder means every `*.json` file in it, in name order. A call no entry matches goes to the
fallback chain, or gets -32601 when there is none (`backend = "canned"`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mockinfura.rpc.errors import RpcError, method_not_found

_ANY = object()
ENTRY_FIELDS = ("method", "params", "result", "error", "network", "times", "id", "jsonrpc")


class FixtureError(ValueError):
    pass


@dataclass
class CannedEntry:
    method: str
    params: Any  # _ANY: any params
    result: Any
    error: dict[str, Any] | None
    times: int | None
    source: str
    remaining: int | None = None
    normalized_params: Any = None

    def __post_init__(self) -> None:
        self.remaining = self.times
        self.normalized_params = normalize_params(self.params) if self.params is not _ANY else _ANY


def normalize_params(value: Any) -> Any:
    """Params compared with hex strings in lower case: web3.py sends checksummed addresses, recordings may not."""
    if isinstance(value, str):
        return value.lower() if value.startswith(("0x", "0X")) else value
    if isinstance(value, list):
        return [normalize_params(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize_params(v) for k, v in value.items()}
    return value


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("*.json"))
    return [path]


def load_fixtures(paths: tuple[Path, ...] | list[Path], network: str) -> list[CannedEntry]:
    """Every entry for NETWORK in the files and folders given; raises FixtureError naming file and entry."""
    entries: list[CannedEntry] = []
    for path in paths:
        for file in _files(Path(path)):
            try:
                document = json.loads(file.read_text(encoding="utf-8"))
            except OSError as exc:
                raise FixtureError(f"{file}: cannot read: {exc.strerror or exc}") from None
            except (ValueError, UnicodeDecodeError) as exc:
                raise FixtureError(f"{file}: not valid JSON: {exc}") from None
            if not isinstance(document, list):
                raise FixtureError(f"{file}: expected a JSON list of fixture entries")
            for index, raw in enumerate(document):
                entry = parse_entry(raw, f"{file}[{index}]")
                entry_network = raw.get("network", network)
                if entry_network == network:
                    entries.append(entry)
    return entries


def parse_entry(raw: Any, where: str) -> CannedEntry:
    if not isinstance(raw, dict):
        raise FixtureError(f"{where}: expected an object")
    unknown = [name for name in raw if name not in ENTRY_FIELDS]
    if unknown:
        raise FixtureError(f"{where}: unknown field {unknown[0]!r} (expected {', '.join(ENTRY_FIELDS[:6])})")
    method = raw.get("method")
    if not isinstance(method, str) or not method:
        raise FixtureError(f"{where}.method: expected a method name")
    if ("result" in raw) == ("error" in raw):
        raise FixtureError(f"{where}: give exactly one of result and error")
    error = raw.get("error")
    if error is not None and not (
        isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
    ):
        raise FixtureError(f"{where}.error: expected {{\"code\": int, \"message\": str, \"data\"?: ...}}")
    times = raw.get("times")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise FixtureError(f"{where}.times: expected a positive integer")
    network = raw.get("network")
    if network is not None and not isinstance(network, str):
        raise FixtureError(f"{where}.network: expected a network name")
    params = raw.get("params", _ANY)
    return CannedEntry(method, params, raw.get("result"), error, times, where)


class CannedChain:
    inline_safe = False

    def __init__(self, network: str, entries: list[CannedEntry], fallback: Any = None) -> None:
        self.network = network
        self.entries = entries
        self.fallback = fallback

    def match(self, method: str, params: Any) -> CannedEntry | None:
        wanted = normalize_params(params if params is not None else [])
        for entry in self.entries:
            if entry.method != method or entry.remaining == 0:
                continue
            if entry.params is not _ANY and entry.normalized_params != wanted:
                continue
            return entry
        return None

    def call(self, method: str, params: Any, *, owner: str = "", control: bool = False) -> Any:
        entry = self.match(method, params)
        if entry is not None:
            if entry.remaining is not None:
                entry.remaining -= 1
            if entry.error is not None:
                raise RpcError(entry.error["code"], entry.error["message"], entry.error.get("data"))
            return entry.result
        if self.fallback is not None:
            return self.fallback.call(method, params, owner=owner, control=control)
        raise method_not_found(method)

    def reset(self) -> None:
        for entry in self.entries:
            entry.remaining = entry.times
        if self.fallback is not None:
            self.fallback.reset()

    def __getattr__(self, name: str) -> Any:
        # snapshot, revert, mine, set_balance, dev_keys ... belong to the chain behind the fixtures
        fallback = self.__dict__.get("fallback")
        if fallback is None:
            raise AttributeError(f"network {self.__dict__.get('network')} has only canned replies, no chain ({name})")
        return getattr(fallback, name)
