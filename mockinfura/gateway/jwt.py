"""JWT verification, Infura's rules (spec infura.md 2.2 and 2.3).

Every failure raises `JwtInvalid` with a precise reason (sent as `X-Mockinfura-Reason`); the reply is
always the same 401 `invalid JWT`. The structure is checked here, step by step, so that each hostile
token gets its own reason; joserfc checks the signature with the one algorithm the key allows.

A token string is verified once per API key configuration and the verdict cached (bounded); its time
claims (exp, nbf) are re-checked against the server clock on every use.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mockinfura.config import ALLOWLIST_TYPES, Allowlists, ApiKeyConfig, JwtPublicKey
from mockinfura.tokens import JWT_AUDIENCE

ALLOWED_ALGORITHMS = ("RS256", "ES256")  # infura.md 2.2 [doc]: nothing else, HS256 and none included
MAX_TOKEN_BYTES = 16 * 1024  # [choice] a longer Authorization value is refused before any decoding
VERDICT_CACHE_SIZE = 4096
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class JwtInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    kid: str
    exp: float
    nbf: float | None
    allowlists: Allowlists | None  # None: the token carries no allowlist claim


def _b64decode(part: str, what: str) -> bytes:
    if not _B64URL.match(part):
        raise JwtInvalid(f"bad base64url in {what}")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise JwtInvalid(f"bad base64url in {what}") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JwtInvalid(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise JwtInvalid(f"{what} is JSON but not an object")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _allowlist_claims(payload: dict[str, Any]) -> Allowlists | None:
    found: dict[str, tuple[str, ...]] = {}
    for name in ALLOWLIST_TYPES:
        if name not in payload:
            continue
        value = payload[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise JwtInvalid(f"allowlist claim {name} is not an array of strings")
        found[name] = tuple(v.lower() for v in value) if name == "addresses" else tuple(value)
    if not found:
        return None
    return Allowlists(**found)


_jose_keys: dict[str, Any] = {}


def _jose_key(public_key: JwtPublicKey) -> Any:
    key = _jose_keys.get(public_key.pem)
    if key is None:
        from joserfc.jwk import import_key

        key = import_key(public_key.pem, "RSA" if public_key.alg == "RS256" else "EC")
        _jose_keys[public_key.pem] = key
    return key


def verify_signature_and_claims(token: str, api_key: ApiKeyConfig) -> VerifiedToken:
    """Everything but the time checks. Raises JwtInvalid."""
    if len(token) > MAX_TOKEN_BYTES:
        raise JwtInvalid(f"token longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtInvalid("malformed token: expected three dot-separated parts")
    header = _json_object(_b64decode(parts[0], "header"), "header")
    alg = header.get("alg")
    if alg is None:
        raise JwtInvalid("alg missing")
    if alg not in ALLOWED_ALGORITHMS:
        raise JwtInvalid(f"alg {str(alg)[:32]} not allowed")
    typ = header.get("typ")
    if typ is None:
        raise JwtInvalid("typ missing")
    if not isinstance(typ, str) or typ.upper() != "JWT":  # RFC 7519 5.1: case-insensitive [choice]
        raise JwtInvalid(f"typ {str(typ)[:32]} is not JWT")
    kid = header.get("kid")
    if kid is None:
        raise JwtInvalid("kid missing")
    public_key = next((k for k in api_key.jwt_public_keys if k.id == kid), None)
    if public_key is None:
        raise JwtInvalid(f"unknown kid {str(kid)[:40]} (no such public key on this API key)")
    if public_key.alg != alg:
        raise JwtInvalid(f"alg {alg} does not match key {kid}, which is {public_key.alg}")
    payload = _json_object(_b64decode(parts[1], "payload"), "payload")
    _b64decode(parts[2], "signature")

    from joserfc import jws
    from joserfc.errors import BadSignatureError, JoseError

    try:
        jws.deserialize_compact(token, _jose_key(public_key), algorithms=[alg])
    except BadSignatureError:
        raise JwtInvalid("bad signature") from None
    except (JoseError, ValueError, TypeError) as exc:
        raise JwtInvalid(f"signature not verifiable ({exc.__class__.__name__})") from None

    if "exp" not in payload:
        raise JwtInvalid("exp missing")
    if not _number(payload["exp"]):
        raise JwtInvalid("exp is not a number")
    nbf = payload.get("nbf")
    if nbf is not None and not _number(nbf):
        raise JwtInvalid("nbf is not a number")
    aud = payload.get("aud")
    if aud is None:
        raise JwtInvalid("aud missing")
    if not (aud == JWT_AUDIENCE or (isinstance(aud, list) and JWT_AUDIENCE in aud)):
        raise JwtInvalid(f"aud mismatch (expected {JWT_AUDIENCE})")
    return VerifiedToken(kid=kid, exp=float(payload["exp"]), nbf=float(nbf) if nbf is not None else None,
                         allowlists=_allowlist_claims(payload))


def check_time(verified: VerifiedToken, now: float, leeway: float) -> None:
    if verified.exp <= now - leeway:
        raise JwtInvalid("jwt expired")
    if verified.nbf is not None and verified.nbf > now + leeway:
        raise JwtInvalid("jwt not yet valid (nbf in the future)")


class JwtVerifier:
    """Verifies tokens for API keys, caching verdicts per (key configuration, token)."""

    def __init__(self, max_entries: int = VERDICT_CACHE_SIZE) -> None:
        self._cache: OrderedDict[tuple[str, str], tuple[ApiKeyConfig, VerifiedToken | JwtInvalid]] = OrderedDict()
        self._max_entries = max_entries

    def verify(self, token: str, api_key: ApiKeyConfig, now: float, leeway: float) -> VerifiedToken:
        cache_key = (api_key.key, token)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] is api_key:
            verdict = cached[1]
            self._cache.move_to_end(cache_key)
        else:
            try:
                verdict = verify_signature_and_claims(token, api_key)
            except JwtInvalid as exc:
                verdict = exc
            if len(token) <= MAX_TOKEN_BYTES:
                self._cache[cache_key] = (api_key, verdict)
                if len(self._cache) > self._max_entries:
                    self._cache.popitem(last=False)
        if isinstance(verdict, JwtInvalid):
            raise JwtInvalid(verdict.reason)
        check_time(verdict, now, leeway)
        return verdict

    def forget(self, api_key: str) -> None:
        for cache_key in [k for k in self._cache if k[0] == api_key]:
            del self._cache[cache_key]
