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
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mockinfura.config import ALLOWLIST_TYPES, Allowlists, ApiKeyConfig, JwtPublicKey
from mockinfura.tokens import JWT_AUDIENCE

ALLOWED_ALGORITHMS = ("RS256", "ES256")  # infura.md 2.2 [doc]: nothing else, HS256 and none included
JWT_TYP = "JWT"  # infura.md 2.2 [doc]
TYP_CASE_INSENSITIVE = True  # infura.md 2.2 [choice]: as RFC 7519 5.1 advises
TYP_REQUIRED = True  # infura.md 2.2: `typ` must be JWT, so a token without one is refused
AUD_LIST_ALLOWED = True  # infura.md 2.2 [choice]: `aud` may be a list that contains infura.io
NBF_ENFORCED = True  # infura.md 2.2 [choice]: `nbf` in the future is invalid (leeway: [server] jwt_leeway_seconds)
MAX_TOKEN_BYTES = 16 * 1024  # [choice] a longer Authorization value is refused before any decoding
VERDICT_CACHE_SIZE = 4096
ES256_SIGNATURE_BYTES = 64  # RFC 7518 3.4: raw r||s, 32 bytes each (not DER)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


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
    """Strict base64url (RFC 7515 2): no padding, no other characters, and the canonical encoding only.

    Base64 decoders ignore the unused low bits of the last character, so without the canonical check
    several different strings decode to the same signature: a mutated token would still pass.
    """
    if not _B64URL.fullmatch(part):
        raise JwtInvalid(f"bad base64url in {what}")
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise JwtInvalid(f"bad base64url in {what}") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != part:
        raise JwtInvalid(f"bad base64url in {what} (not the canonical encoding)")
    return raw


class _NotStrictJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _NotStrictJson("duplicate member name")
    return result


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Strict JSON (RFC 8259, UTF-8): no NaN/Infinity, no duplicate member names (RFC 7515 5.2)."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except _NotStrictJson as exc:
        raise JwtInvalid(f"{what} is not strict JSON ({exc})") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JwtInvalid(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise JwtInvalid(f"{what} is JSON but not an object")
    return value


def _numeric_date(payload: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 2) as a finite float; None when absent."""
    if name not in payload:
        return None
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JwtInvalid(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise JwtInvalid(f"{name} is not a finite number")
    return number


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
_JOSE_KEY_CACHE_SIZE = 256
_jose_registries: dict[str, Any] = {}


def _jose_key(public_key: JwtPublicKey) -> Any:
    key = _jose_keys.get(public_key.pem)
    if key is None:
        from joserfc.jwk import import_key

        key = import_key(public_key.pem, "RSA" if public_key.alg == "RS256" else "EC")
        if len(_jose_keys) >= _JOSE_KEY_CACHE_SIZE:
            _jose_keys.clear()
        _jose_keys[public_key.pem] = key
    return key


def _jose_registry(alg: str) -> Any:
    """joserfc's registry for exactly one algorithm. Header parameters it does not know are tolerated
    (as common JWT libraries do); the ones it knows are type-checked, and `crit` is honoured."""
    registry = _jose_registries.get(alg)
    if registry is None:
        from joserfc.jws import JWSRegistry

        registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
        _jose_registries[alg] = registry
    return registry


def _signature_length_problem(signature: bytes, public_key: JwtPublicKey, jose_key: Any) -> str | None:
    if public_key.alg == "ES256":
        if len(signature) == ES256_SIGNATURE_BYTES:
            return None
        if signature[:1] == b"\x30" and 68 <= len(signature) <= 72:
            return f"ES256 signature in DER form ({len(signature)} bytes); JWS needs raw r||s (64 bytes)"
        return f"signature is {len(signature)} bytes; ES256 needs 64 (raw r||s)"
    expected = (jose_key.raw_value.key_size + 7) // 8 if hasattr(jose_key, "raw_value") else None
    if expected is not None and len(signature) != expected:
        return f"signature is {len(signature)} bytes; RS256 with this {expected * 8}-bit key needs {expected}"
    return None


def verify_signature_and_claims(token: str, api_key: ApiKeyConfig) -> VerifiedToken:
    """Everything but the time checks. Raises JwtInvalid."""
    if len(token) > MAX_TOKEN_BYTES:
        raise JwtInvalid(f"token longer than {MAX_TOKEN_BYTES} bytes")
    if not token:
        raise JwtInvalid("Bearer with no token")
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
        if TYP_REQUIRED:
            raise JwtInvalid("typ missing")
    elif not isinstance(typ, str) or not (
        typ == JWT_TYP or (TYP_CASE_INSENSITIVE and typ.isascii() and typ.upper() == JWT_TYP)
    ):
        raise JwtInvalid(f"typ {str(typ)[:32]} is not JWT")
    kid = header.get("kid")
    if kid is None:
        raise JwtInvalid("kid missing")
    if not isinstance(kid, str):
        raise JwtInvalid("kid is not a string")
    public_key = next((k for k in api_key.jwt_public_keys if k.id == kid), None)
    if public_key is None:
        raise JwtInvalid(f"unknown kid {kid[:40]} (no such public key on this API key)")
    if public_key.alg != alg:
        raise JwtInvalid(f"alg {alg} does not match key {kid}, which is {public_key.alg}")
    payload = _json_object(_b64decode(parts[1], "payload"), "payload")
    signature = _b64decode(parts[2], "signature")
    if not signature:
        raise JwtInvalid("signature missing")
    jose_key = _jose_key(public_key)
    length_problem = _signature_length_problem(signature, public_key, jose_key)
    if length_problem:
        raise JwtInvalid(length_problem)

    from joserfc import jws
    from joserfc.errors import BadSignatureError, JoseError

    try:
        jws.deserialize_compact(token, jose_key, algorithms=[alg], registry=_jose_registry(alg))
    except BadSignatureError:
        raise JwtInvalid("bad signature") from None
    except (JoseError, ValueError, TypeError) as exc:
        raise JwtInvalid(f"signature not verifiable ({exc.__class__.__name__})") from None

    exp = _numeric_date(payload, "exp")
    if exp is None:
        raise JwtInvalid("exp missing")
    nbf = _numeric_date(payload, "nbf")
    _numeric_date(payload, "iat")  # allowed, not required; a NumericDate when present
    aud = payload.get("aud")
    if aud is None:
        raise JwtInvalid("aud missing")
    if not (aud == JWT_AUDIENCE or (AUD_LIST_ALLOWED and isinstance(aud, list) and JWT_AUDIENCE in aud)):
        raise JwtInvalid(f"aud mismatch (expected {JWT_AUDIENCE})")
    return VerifiedToken(kid=kid, exp=exp, nbf=nbf, allowlists=_allowlist_claims(payload))


def check_time(verified: VerifiedToken, now: float, leeway: float) -> None:
    """RFC 7519 4.1.4/4.1.5: valid while now < exp (+ leeway) and, with NBF_ENFORCED, now >= nbf (- leeway)."""
    if verified.exp <= now - leeway:
        raise JwtInvalid("jwt expired")
    if NBF_ENFORCED and verified.nbf is not None and verified.nbf > now + leeway:
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
