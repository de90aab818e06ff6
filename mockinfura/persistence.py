"""State files (`serve --state FILE`, `/_mock/state`): chains, API keys, credit usage and the clock.

A dump is JSON. Writing is atomic: a temporary file in the same folder, fsync'd, then renamed over the
old one, so a crash mid-write leaves the previous file intact. Restoring is all or nothing: on any
problem the state before the restore is put back and the caller gets the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mockinfura.atomic_file import write_atomically
from mockinfura.config import ConfigError, api_key_from_dict
from mockinfura.networks import CATALOGUE
from mockinfura.state import MockState

STATE_FORMAT = "mockinfura-state"
STATE_VERSION = 1


class StateError(ValueError):
    pass


def _keys_dump(state: MockState) -> list[dict[str, Any]]:
    keys = []
    for api_key in state.api_keys.values():
        entry = api_key.as_dict()
        entry["jwt_public_keys"] = [
            {"name": k["name"], "id": k["id"], "public_key": k["public_key"]} for k in entry["jwt_public_keys"]
        ]
        keys.append(entry)
    return keys


def _envelope(state: MockState, chains: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "clock_offset": state.clock.offset,
        "api_keys": _keys_dump(state),
        "usage": state.meter.usage,
        "chains": chains,
    }


async def dump_state(state: MockState) -> dict[str, Any]:
    return _envelope(state, await state.chains.export_states())


def dump_state_blocking(state: MockState) -> dict[str, Any]:
    """The same, from a thread with no running event loop (at shutdown)."""
    return _envelope(state, state.chains.export_states_blocking())


def write_state_file(path: Path, document: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(document, separators=(",", ":")).encode())


def read_state_file(path: Path) -> dict[str, Any] | None:
    """The dump in PATH, None when the file does not exist yet; StateError when it is unusable."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file: {exc.strerror or exc}") from None
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"{path}: not a mockinfura state file (not JSON: {exc})") from None
    check_envelope(document, str(path))
    return document


def check_envelope(document: Any, source: str = "state") -> None:
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise StateError(f"{source}: not a mockinfura state dump (no \"format\": \"{STATE_FORMAT}\")")
    if document.get("version") != STATE_VERSION:
        raise StateError(f"{source}: unsupported state version {document.get('version')!r} (this mockinfura writes "
                         f"{STATE_VERSION})")
    chains = document.get("chains")
    if not isinstance(chains, dict) or any(name not in CATALOGUE or not isinstance(c, dict) for name, c in chains.items()):
        raise StateError(f"{source}: \"chains\" must map catalogue network names to chain dumps")
    if not isinstance(document.get("api_keys"), list) or not isinstance(document.get("usage"), dict):
        raise StateError(f"{source}: \"api_keys\" must be a list and \"usage\" an object")
    offset = document.get("clock_offset")
    if not isinstance(offset, (int, float)) or isinstance(offset, bool):
        raise StateError(f"{source}: \"clock_offset\" must be a number")


def _parse_keys(document: dict[str, Any], source: str) -> dict[str, Any]:
    keys = {}
    for index, entry in enumerate(document["api_keys"]):
        try:
            api_key = api_key_from_dict(entry, label=str(entry.get("label", f"key{index}")) if isinstance(entry, dict)
                                        else "key")
        except ConfigError as exc:
            raise StateError(f"{source}: api_keys[{index}]: " + "; ".join(exc.problems)) from None
        keys[api_key.key] = api_key
    return keys


async def restore_state(state: MockState, document: Any, source: str = "state") -> None:
    """Make the mock exactly as DOCUMENT says, or leave it as it was and raise StateError."""
    check_envelope(document, source)
    keys = _parse_keys(document, source)
    backup = await dump_state(state)
    try:
        await state.chains.import_states(document["chains"])
    except Exception as exc:
        await state.chains.import_states(backup["chains"])
        raise StateError(f"{source}: {exc}") from None
    apply_non_chain_state(state, document, keys)


def apply_non_chain_state(state: MockState, document: dict[str, Any], keys: dict[str, Any]) -> None:
    state.api_keys.clear()
    for api_key in keys.values():
        state.put_api_key(api_key)
    state.meter.clear()
    state.meter.usage.update(document["usage"])  # day totals, and so daily limits, carry over
    state.clock.offset = float(document["clock_offset"])


def load_at_start(state: MockState, document: dict[str, Any], source: str) -> None:
    """Apply a state file before serving: chains are restored when first built."""
    keys = _parse_keys(document, source)
    state.chains.pending_states = dict(document["chains"])
    apply_non_chain_state(state, document, keys)
