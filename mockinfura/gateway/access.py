"""The access decision, in the order Infura's settings apply (spec infura.md section 2, [choice]):

key exists -> network allowed for the key -> API key secret -> JWT -> allowlists -> (rate limits, metering.py)

`check_request` runs the checks that need only the URL and headers (also the WebSocket handshake);
`Grant.call_refusal` runs the per-call ones (method and address allowlists).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from mockinfura.config import Allowlists, ApiKeyConfig
from mockinfura.gateway import replies
from mockinfura.gateway.allowlists import call_refusal, headers_refusal
from mockinfura.gateway.jwt import JwtInvalid, JwtVerifier
from mockinfura.gateway.replies import Refusal

# infura.md 2.1 [choice]: with "require API key secret" off, a request without a secret passes (a wrong one never).
MISSING_SECRET_PASSES_WHEN_NOT_REQUIRED = True
# infura.md 2.3 [choice]: a valid JWT that carries at least one allowlist claim replaces the key's allowlists.
JWT_ALLOWLIST_CLAIMS_REPLACE_KEY_ALLOWLISTS = True


@dataclass(frozen=True, slots=True)
class Grant:
    api_key: ApiKeyConfig
    allowlists: Allowlists | None  # None: allowlists skipped (no list, or overridden by the secret)
    reason: str
    jwt_exp: float | None = None  # the token's exp, re-checked per message on a WebSocket
    also: Allowlists | None = None  # more lists that apply too (JWT_ALLOWLIST_CLAIMS_REPLACE_KEY_ALLOWLISTS off)

    def call_refusal(self, method: str, params: object) -> Refusal | None:
        for lists in (self.allowlists, self.also):
            if lists is not None:
                reason = call_refusal(lists, method, params)
                if reason:
                    return replies.rejected_by_settings(reason)
        return None


@dataclass(frozen=True, slots=True)
class Credentials:
    basic_password: str | None = None
    bearer_token: str | None = None
    malformed: str | None = None  # a Basic value that does not decode


# infura.md 2.2 [doc]: the scheme word in any case, then runs of white space (the docs' example has two spaces).
# [choice] An Authorization header with another scheme (or none) carries neither a secret nor a JWT: it is
# treated as absent, so a key that requires neither lets it pass and a key that requires one refuses it.
UNKNOWN_AUTH_SCHEME_IS_ABSENT = True
_SPACE = " \t"  # RFC 9110 5.6.3: the white space of HTTP fields


def parse_authorization(value: str | None) -> Credentials:
    """`Basic base64(":" + secret)` or `Bearer <jwt>`; the scheme word in any case, runs of spaces after it."""
    if not value:
        return Credentials()
    # No regular expression here: this runs on every request, and a lazy pattern over a JWT costs tens of µs.
    text = value.strip(_SPACE)
    cut = len(text)
    for space in _SPACE:
        found = text.find(space)
        if 0 <= found < cut:
            cut = found
    scheme, rest = text[:cut].lower(), text[cut:].strip(_SPACE)
    if scheme == "bearer":
        return Credentials(bearer_token=rest)
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return Credentials(malformed="Basic credentials are not base64 of user:secret")
        if ":" not in decoded:
            return Credentials(malformed="Basic credentials have no ':' between user and secret")
        # The user name is meant to be empty (curl --user :SECRET); only the secret is compared.
        return Credentials(basic_password=decoded.partition(":")[2])
    if UNKNOWN_AUTH_SCHEME_IS_ABSENT:
        return Credentials()
    return Credentials(malformed=f"unknown Authorization scheme {scheme[:20]!r}")


def check_request(
    *,
    api_key: ApiKeyConfig | None,
    network: str,
    authorization: str | None,
    origin: str | None,
    user_agent: str | None,
    verifier: JwtVerifier,
    now: float,
    jwt_leeway: float,
) -> Grant | Refusal:
    if api_key is None:
        return replies.invalid_project_id()
    if api_key.networks is not None and network not in api_key.networks:
        return replies.network_not_allowed(network)

    credentials = parse_authorization(authorization)
    secret_ok = False
    if credentials.malformed:
        return replies.invalid_secret(credentials.malformed)
    if credentials.basic_password is not None:
        if api_key.secret is None or not hmac.compare_digest(
            credentials.basic_password.encode(), api_key.secret.encode()
        ):
            return replies.invalid_secret("wrong API key secret" if api_key.secret else "this key has no secret")
        secret_ok = True
    elif api_key.require_secret or not MISSING_SECRET_PASSES_WHEN_NOT_REQUIRED:
        return replies.invalid_secret("API key secret required and missing")

    jwt_exp = None
    jwt_allowlists = None
    reason = "secret ok" if secret_ok else "open key"
    if credentials.bearer_token is not None:
        try:
            verified = verifier.verify(credentials.bearer_token, api_key, now, jwt_leeway)
        except JwtInvalid as exc:
            return replies.invalid_jwt(exc.reason)
        jwt_exp = verified.exp
        jwt_allowlists = verified.allowlists
        reason = f"jwt ok (kid {verified.kid})"
    elif api_key.require_jwt:
        return replies.invalid_jwt("jwt required and missing")

    also = None
    if secret_ok and api_key.secret_overrides_allowlists:
        return Grant(api_key, None, "secret overrides allowlists", jwt_exp)
    if jwt_allowlists is None:
        allowlists = api_key.allowlists
    elif JWT_ALLOWLIST_CLAIMS_REPLACE_KEY_ALLOWLISTS:
        allowlists = jwt_allowlists
    else:  # the alternative reading: the key's lists and the token's both apply
        if not api_key.allowlists.is_empty():
            key_refusal = headers_refusal(api_key.allowlists, origin, user_agent)
            if key_refusal:
                return replies.rejected_by_settings(key_refusal)
            also = api_key.allowlists
        allowlists = jwt_allowlists
    if allowlists.is_empty() and also is None:
        return Grant(api_key, None, reason, jwt_exp)
    refusal = headers_refusal(allowlists, origin, user_agent)
    if refusal:
        return replies.rejected_by_settings(refusal)
    source = "jwt allowlists" if jwt_allowlists is not None else "key allowlists"
    return Grant(api_key, allowlists, f"{reason}; {source}", jwt_exp, also)
