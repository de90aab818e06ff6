"""Allowlist matching (spec infura.md 2.3 and 2.4): one function per allowlist type.

The same rules serve the key's allowlists and a JWT's allowlist claims.
"""

from __future__ import annotations

import re
from typing import Any

from mockinfura.config import Allowlists

# infura.md 2.4 [choice]: a request with no User-Agent / Origin header is rejected when that list exists.
REJECT_MISSING_USER_AGENT = True
REJECT_MISSING_ORIGIN = True
# [choice] an origin entry without a port matches the host on any port (localhost dev servers move ports).
ORIGIN_ENTRY_WITHOUT_PORT_MATCHES_ANY_PORT = True
# infura.md 2.4 [choice]: `*.example.com` matches exactly one label (a.example.com), not a.b.example.com.
WILDCARD_MATCHES_EXACTLY_ONE_LABEL = True

# infura.md 2.4: the methods the contract-address list restricts, and where each reads its address.
ACCOUNT_ADDRESS_METHODS = frozenset({"eth_getBalance", "eth_getCode", "eth_getStorageAt", "eth_getTransactionCount"})
CALL_ADDRESS_METHODS = frozenset({"eth_call", "eth_estimateGas"})
LOGS_ADDRESS_METHODS = frozenset({"eth_getLogs"})
ADDRESS_RESTRICTED_METHODS = ACCOUNT_ADDRESS_METHODS | CALL_ADDRESS_METHODS | LOGS_ADDRESS_METHODS

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST = re.compile(rf"(\*\.)?({_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:.]+\])(?::(\d{{1,5}}))?")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _split_origin(text: str) -> tuple[str | None, str | None, bool, int | None] | None:
    """(scheme, host, wildcard, port) of an origin or an origin entry; None if it is not one."""
    scheme = None
    match = _SCHEME.match(text)
    rest = text
    if match:
        scheme = match.group(1).lower()
        rest = text[match.end():]
    rest = rest.rstrip("/")
    if not rest:
        return (scheme, None, False, None) if scheme else None
    host_match = _HOST.fullmatch(rest)
    if not host_match:
        return None
    port = int(host_match.group(3)) if host_match.group(3) else None
    if port is not None and not 0 < port < 65536:
        return None
    return scheme, host_match.group(2).lower(), bool(host_match.group(1)), port


def validate_origin_entry(entry: str) -> str | None:
    """Why an origin allowlist entry is malformed, or None. Run once, when the config is read."""
    if "*" in entry:
        stripped = _SCHEME.sub("", entry, count=1)
        if not stripped.startswith("*.") or "*" in stripped[2:]:
            return "'*' may stand only as the left-most label, as in https://*.example.com"
    if _split_origin(entry) is None:
        return "expected [scheme://]host[:port], a scheme alone (https://), or *.domain"
    return None


def origin_allowed(entries: tuple[str, ...], origin: str | None) -> bool:
    if origin is None:
        return not REJECT_MISSING_ORIGIN
    parsed = _split_origin(origin.strip())
    if parsed is None or parsed[0] is None or parsed[1] is None or parsed[2]:
        return False
    scheme, host, _, port = parsed
    effective_port = port if port is not None else DEFAULT_PORTS.get(scheme)
    for entry in entries:
        allowed = _split_origin(entry)
        if allowed is None:
            continue
        entry_scheme, entry_host, wildcard, entry_port = allowed
        if entry_scheme is not None and entry_scheme != scheme:
            continue
        if entry_host is None:  # a scheme alone: every origin of that scheme
            return True
        if wildcard:
            label, _, parent = host.partition(".")
            if WILDCARD_MATCHES_EXACTLY_ONE_LABEL:
                if not label or parent != entry_host:
                    continue
            elif not host.endswith("." + entry_host):
                continue
        elif host != entry_host:
            continue
        if entry_port is None:
            if ORIGIN_ENTRY_WITHOUT_PORT_MATCHES_ANY_PORT or port is None:
                return True
            continue
        if entry_port == effective_port:
            return True
    return False


def user_agent_allowed(entries: tuple[str, ...], user_agent: str | None) -> bool:
    if user_agent is None:
        return not REJECT_MISSING_USER_AGENT
    return any(entry in user_agent for entry in entries)


def addresses_of_call(method: str, params: Any) -> list[str] | None:
    """The contract addresses a call touches, for the address allowlist.

    None when the method is not restricted by that list; a list (possibly empty, which is refused)
    otherwise.
    """
    if method not in ADDRESS_RESTRICTED_METHODS:
        return None
    first = params[0] if isinstance(params, list) and params else None
    if method in ACCOUNT_ADDRESS_METHODS:
        return [first] if isinstance(first, str) else []
    if method in CALL_ADDRESS_METHODS:
        to = first.get("to") if isinstance(first, dict) else None
        return [to] if isinstance(to, str) else []
    address = first.get("address") if isinstance(first, dict) else None
    if isinstance(address, str):
        return [address]
    if isinstance(address, list) and address and all(isinstance(a, str) for a in address):
        return address
    return []


def headers_refusal(allowlists: Allowlists, origin: str | None, user_agent: str | None) -> str | None:
    """Why the request's headers fail the allowlists, or None. Checked once per HTTP request or handshake."""
    if allowlists.origins and not origin_allowed(allowlists.origins, origin):
        if origin is None:
            return "no Origin header and an origin allowlist is set"
        return f"origin {origin!r} not in allowlist"
    if allowlists.user_agents and not user_agent_allowed(allowlists.user_agents, user_agent):
        return (
            f"user agent {user_agent!r} not in allowlist"
            if user_agent is not None
            else "no User-Agent header and a user-agent allowlist is set"
        )
    return None


def call_refusal(allowlists: Allowlists, method: str, params: Any) -> str | None:
    """Why one JSON-RPC call fails the method or address allowlists, or None."""
    if allowlists.methods and method not in allowlists.methods:
        return f"method {method} not in allowlist"
    if allowlists.addresses:
        addresses = addresses_of_call(method, params)
        if addresses is not None:
            if not addresses:
                return f"{method} names no contract address and an address allowlist is set"
            for address in addresses:
                if address.lower() not in allowlists.addresses:
                    return f"address {address} not in allowlist"
    return None
