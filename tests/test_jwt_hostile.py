"""Hostile JWTs against a real server (infura.md 2.2 and 2.3): each refused with Infura's exact 401 and a precise
`X-Mockinfura-Reason`; good tokens in every accepted shape pass.

Tokens are built by hand here (base64url, JSON, and signatures from `cryptography`), not with the code under test,
so that a bug in the mock's token helpers cannot hide a bug in its verifier.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.server import ServerProcess

# API keys of this module's server
JWT_KEY = "a0000000000000000000000000000001"  # require_jwt, an RS256 and an ES256 public key
OTHER_KEY = "b0000000000000000000000000000002"  # require_jwt, its own RS256 key pair
OPTIONAL_KEY = "c0000000000000000000000000000003"  # require_jwt off, one RS256 key
RSA_KID = "11111111111111111111111111111111"
EC_KID = "22222222222222222222222222222222"
OTHER_KID = "33333333333333333333333333333333"
OPTIONAL_KID = "44444444444444444444444444444444"

INVALID_JWT_BODY = b"invalid JWT\n"
TEXT_PLAIN = "text/plain; charset=utf-8"
REASON = "x-mockinfura-reason"
BLOCK_NUMBER = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}


# ---------------------------------------------------------------------------------------------------------------
# Hand-made JWTs


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_part(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return b64u(bytes(value))
    return b64u(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class KeyPair:
    private: Any
    kid: str
    alg: str

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def private_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def rsa_key(kid: str) -> KeyPair:
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid, "RS256")


def ec_key(kid: str, curve: ec.EllipticCurve | None = None) -> KeyPair:
    return KeyPair(ec.generate_private_key(curve or ec.SECP256R1()), kid, "ES256")


def sign_rsa(key: KeyPair, data: bytes, hash_alg: hashes.HashAlgorithm | None = None, pss: bool = False) -> bytes:
    hash_alg = hash_alg or hashes.SHA256()
    pad = padding.PSS(padding.MGF1(hash_alg), hash_alg.digest_size) if pss else padding.PKCS1v15()
    return key.private.sign(data, pad, hash_alg)


def sign_ec_der(key: KeyPair, data: bytes, hash_alg: hashes.HashAlgorithm | None = None) -> bytes:
    return key.private.sign(data, ec.ECDSA(hash_alg or hashes.SHA256()))


def sign_ec_raw(key: KeyPair, data: bytes, hash_alg: hashes.HashAlgorithm | None = None) -> bytes:
    r, s = decode_dss_signature(sign_ec_der(key, data, hash_alg))
    size = (key.private.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign_for(key: KeyPair) -> Callable[[bytes], bytes]:
    return (lambda d: sign_rsa(key, d)) if key.alg == "RS256" else (lambda d: sign_ec_raw(key, d))


def craft(header: Any, payload: Any, sign: Callable[[bytes], bytes] | None) -> str:
    """header.payload.signature; HEADER/PAYLOAD are JSON values (or raw bytes); SIGN None: empty signature."""
    signing_input = f"{json_part(header)}.{json_part(payload)}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64u(signature)}"


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"aud": "infura.io", "iat": now, "exp": now + 3600}
    for name, value in changes.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def header(key: KeyPair, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": key.alg, "typ": "JWT", "kid": key.kid}
    for name, value in changes.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


DROP = object()


def good_token(key: KeyPair, **claim_changes: Any) -> str:
    return craft(header(key), claims(**claim_changes), sign_for(key))


def replace_segment(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


def tweak_last_char(segment: str) -> str:
    """The same bytes under a different, non-canonical base64url string (the unused low bits set)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1])
    unused_bits = {2: 4, 3: 2}[len(segment) % 4]  # 1 or 2 bytes in the last quantum
    return segment[:-1] + alphabet[last | ((1 << unused_bits) - 1)]


# ---------------------------------------------------------------------------------------------------------------
# The server


@dataclass
class Keys:
    rsa: KeyPair
    ec: KeyPair
    other: KeyPair
    optional: KeyPair
    ec384: KeyPair


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(rsa_key(RSA_KID), ec_key(EC_KID), rsa_key(OTHER_KID), rsa_key(OPTIONAL_KID),
                ec_key("55555555555555555555555555555555", ec.SECP384R1()))


def _config(keys: Keys, folder: Path) -> str:
    for name, pair in (("rsa", keys.rsa), ("ec", keys.ec), ("other", keys.other), ("optional", keys.optional)):
        (folder / f"{name}.public.pem").write_bytes(pair.public_pem)
    ec_pem = keys.ec.public_pem.decode()
    return f"""
[api_keys.jwt]
key = "{JWT_KEY}"
require_jwt = true

[[api_keys.jwt.jwt_public_keys]]
name = "rsa"
public_key = "{folder / 'rsa.public.pem'}"
id = "{RSA_KID}"

[[api_keys.jwt.jwt_public_keys]]
name = "ec"
public_key = '''{ec_pem}'''
id = "{EC_KID}"

[api_keys.other]
key = "{OTHER_KEY}"
require_jwt = true

[[api_keys.other.jwt_public_keys]]
name = "other"
public_key = "{folder / 'other.public.pem'}"
id = "{OTHER_KID}"

[api_keys.optional]
key = "{OPTIONAL_KEY}"
require_jwt = false

[[api_keys.optional.jwt_public_keys]]
name = "optional"
public_key = "{folder / 'optional.public.pem'}"
id = "{OPTIONAL_KID}"
"""


@pytest.fixture(scope="module")
def served(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    folder = tmp_path_factory.mktemp("jwt-hostile")
    with ServerProcess(_config(keys, folder)) as process:
        yield process


@pytest.fixture(scope="module")
def client() -> httpx.Client:
    with httpx.Client(timeout=30) as c:
        yield c


def post(client: httpx.Client, served: ServerProcess, key: str, authorization: str | None,
         body: Any = BLOCK_NUMBER, **headers: str) -> httpx.Response:
    sent = dict(headers)
    if authorization is not None:
        sent["Authorization"] = authorization.rstrip()  # HTTP clients refuse trailing white space in a value
    return client.post(served.url(key), json=body, headers=sent)


def assert_invalid_jwt(response: httpx.Response, reason: str) -> None:
    """Exactly Infura's 401 `invalid JWT`; REASON is a regular expression the reason header must match whole."""
    assert response.status_code == 401, (response.status_code, response.text, response.headers.get(REASON))
    assert response.headers["content-type"] == TEXT_PLAIN
    assert response.content == INVALID_JWT_BODY
    assert re.fullmatch(reason, response.headers[REASON]), response.headers[REASON]


def assert_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, (response.status_code, response.text, response.headers.get(REASON))
    assert response.headers["content-type"] == "application/json"
    assert response.json()["result"].startswith("0x")


# ---------------------------------------------------------------------------------------------------------------
# The hostile tokens: (id, build(keys) -> token, reason as a regular expression)


def _hs256_with_rsa_pem(k: Keys) -> str:
    def sign(data: bytes) -> bytes:
        mac = hmac.HMAC(k.rsa.public_pem, hashes.SHA256())
        mac.update(data)
        return mac.finalize()

    return craft(header(k.rsa, alg="HS256"), claims(), sign)


def _hs256_with_rsa_der(k: Keys) -> str:
    """HS256 keyed with the DER SubjectPublicKeyInfo (the other form a confused verifier might use)."""
    der = k.rsa.private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def sign(data: bytes) -> bytes:
        mac = hmac.HMAC(der, hashes.SHA256())
        mac.update(data)
        return mac.finalize()

    return craft(header(k.rsa, alg="HS256"), claims(), sign)


def _tampered_header(k: Keys) -> str:
    token = good_token(k.rsa)
    return replace_segment(token, 0, json_part({**header(k.rsa), "extra": "x"}))


def _tampered_payload(k: Keys) -> str:
    token = good_token(k.rsa)
    return replace_segment(token, 1, json_part(claims(exp=int(time.time()) + 10 * 365 * 86400)))


def _payload_swapped_from_other_token(k: Keys) -> str:
    """Header and signature of one good token with the payload of another good token (methods claim dropped)."""
    restricted = good_token(k.rsa, methods=["eth_chainId"])
    free = good_token(k.rsa)
    return replace_segment(restricted, 1, free.split(".")[1])


def _truncated_signature(k: Keys) -> str:
    token = good_token(k.rsa)
    signature = base64.urlsafe_b64decode(token.split(".")[2] + "==")
    return replace_segment(token, 2, b64u(signature[:-3]))


def _truncated_signature_one_char(k: Keys) -> str:
    return good_token(k.rsa)[:-1]


def _garbage_signature(k: Keys) -> str:
    return replace_segment(good_token(k.rsa), 2, b64u(os.urandom(256)))


def _garbage_ec_signature(k: Keys) -> str:
    return replace_segment(good_token(k.ec), 2, b64u(os.urandom(64)))


def _noncanonical_signature(k: Keys) -> str:
    token = good_token(k.rsa)
    return replace_segment(token, 2, tweak_last_char(token.split(".")[2]))


def _es256_der(k: Keys) -> str:
    return craft(header(k.ec), claims(), lambda d: sign_ec_der(k.ec, d))


def _rs256_signature_under_es256_header(k: Keys) -> str:
    return craft(header(k.ec), claims(), lambda d: sign_rsa(k.rsa, d))


def _rs256_header_with_ec_kid(k: Keys) -> str:
    return craft(header(k.ec, alg="RS256"), claims(), lambda d: sign_rsa(k.rsa, d))


def _es256_signed_by_other_curve_key(k: Keys) -> str:
    signer = ec_key(EC_KID)  # a different P-256 key than the one uploaded under EC_KID
    return craft(header(k.ec), claims(), sign_for(signer))


def _signed_by_other_keys_private_key(k: Keys) -> str:
    """The right kid, but signed by another API key's private key."""
    return craft(header(k.rsa), claims(), lambda d: sign_rsa(k.other, d))


def _huge(k: Keys) -> str:
    return craft(header(k.rsa), claims(padding="x" * 100_000), sign_for(k.rsa))


def _header_padding(k: Keys) -> str:
    return "=" + good_token(k.rsa)


HOSTILE: list[tuple[str, Callable[[Keys], str], str]] = [
    ("alg-none", lambda k: craft(header(k.rsa, alg="none"), claims(), None), r"alg none not allowed"),
    ("alg-none-with-signature", lambda k: craft(header(k.rsa, alg="none"), claims(), sign_for(k.rsa)),
     r"alg none not allowed"),
    ("alg-None-capitalized", lambda k: craft(header(k.rsa, alg="None"), claims(), None), r"alg None not allowed"),
    ("alg-missing", lambda k: craft(header(k.rsa, alg=DROP), claims(), sign_for(k.rsa)), r"alg missing"),
    ("alg-lowercase-rs256", lambda k: craft(header(k.rsa, alg="rs256"), claims(), sign_for(k.rsa)),
     r"alg rs256 not allowed"),
    ("hs256-rsa-pem-as-secret", _hs256_with_rsa_pem, r"alg HS256 not allowed"),
    ("hs256-rsa-der-as-secret", _hs256_with_rsa_der, r"alg HS256 not allowed"),
    ("rs384", lambda k: craft(header(k.rsa, alg="RS384"), claims(), lambda d: sign_rsa(k.rsa, d, hashes.SHA384())),
     r"alg RS384 not allowed"),
    ("es384", lambda k: craft(header(k.ec384, alg="ES384", kid=EC_KID), claims(),
                              lambda d: sign_ec_raw(k.ec384, d, hashes.SHA384())), r"alg ES384 not allowed"),
    ("ps256", lambda k: craft(header(k.rsa, alg="PS256"), claims(), lambda d: sign_rsa(k.rsa, d, pss=True)),
     r"alg PS256 not allowed"),
    ("typ-wrong", lambda k: craft(header(k.rsa, typ="at+jwt"), claims(), sign_for(k.rsa)), r"typ at\+jwt is not JWT"),
    ("typ-jws", lambda k: craft(header(k.rsa, typ="JWS"), claims(), sign_for(k.rsa)), r"typ JWS is not JWT"),
    ("typ-not-a-string", lambda k: craft(header(k.rsa, typ=["JWT"]), claims(), sign_for(k.rsa)),
     r"typ \['JWT'\] is not JWT"),
    ("typ-missing", lambda k: craft(header(k.rsa, typ=DROP), claims(), sign_for(k.rsa)), r"typ missing"),
    ("kid-missing", lambda k: craft(header(k.rsa, kid=DROP), claims(), sign_for(k.rsa)), r"kid missing"),
    ("kid-unknown", lambda k: craft(header(k.rsa, kid="9" * 32), claims(), sign_for(k.rsa)),
     r"unknown kid 9{32} \(no such public key on this API key\)"),
    ("kid-of-another-api-key", lambda k: good_token(k.other), rf"unknown kid {OTHER_KID} .*"),
    ("kid-not-a-string", lambda k: craft(header(k.rsa, kid=1), claims(), sign_for(k.rsa)), r"kid is not a string"),
    ("kid-uppercase", lambda k: craft(header(k.rsa, kid=RSA_KID.upper().replace("1", "A")), claims(), sign_for(k.rsa)),
     r"unknown kid .*"),
    ("exp-missing", lambda k: good_token(k.rsa, exp=DROP), r"exp missing"),
    ("exp-past", lambda k: good_token(k.rsa, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
     r"jwt expired"),
    ("exp-past-es256", lambda k: good_token(k.ec, exp=int(time.time()) - 5), r"jwt expired"),
    ("exp-string", lambda k: good_token(k.rsa, exp=str(int(time.time()) + 3600)), r"exp is not a number"),
    ("exp-boolean", lambda k: good_token(k.rsa, exp=True), r"exp is not a number"),
    ("exp-overflows-float", lambda k: good_token(k.rsa, exp=10**400), r"exp is not a finite number"),
    ("exp-NaN", lambda k: craft(header(k.rsa), b'{"aud":"infura.io","exp":NaN}', sign_for(k.rsa)),
     r"payload is not strict JSON \(NaN is not JSON\)"),
    ("exp-duplicate-member", lambda k: craft(header(k.rsa), b'{"aud":"infura.io","exp":1,"exp":99999999999}',
                                             sign_for(k.rsa)), r"payload is not strict JSON \(duplicate member name\)"),
    ("aud-missing", lambda k: good_token(k.rsa, aud=DROP), r"aud missing"),
    ("aud-wrong", lambda k: good_token(k.rsa, aud="infura.com"), r"aud mismatch \(expected infura\.io\)"),
    ("aud-list-without-infura", lambda k: good_token(k.rsa, aud=["example.com", "INFURA.IO"]),
     r"aud mismatch \(expected infura\.io\)"),
    ("aud-substring", lambda k: good_token(k.rsa, aud="infura.io.evil.com"), r"aud mismatch .*"),
    ("nbf-future", lambda k: good_token(k.rsa, nbf=int(time.time()) + 3600),
     r"jwt not yet valid \(nbf in the future\)"),
    ("nbf-string", lambda k: good_token(k.rsa, nbf="soon"), r"nbf is not a number"),
    ("iat-string", lambda k: good_token(k.rsa, iat="now"), r"iat is not a number"),
    ("tampered-header", _tampered_header, r"bad signature"),
    ("tampered-payload", _tampered_payload, r"bad signature"),
    ("payload-swapped", _payload_swapped_from_other_token, r"bad signature"),
    ("signature-truncated", _truncated_signature, r"signature is 253 bytes; RS256 with this 2048-bit key needs 256"),
    ("signature-truncated-one-char", _truncated_signature_one_char, r"bad base64url in signature.*"),
    ("signature-garbage", _garbage_signature, r"bad signature"),
    ("signature-garbage-es256", _garbage_ec_signature, r"bad signature"),
    ("signature-empty", lambda k: replace_segment(good_token(k.rsa), 2, ""), r"signature missing"),
    ("signature-non-canonical-base64", _noncanonical_signature, r"bad base64url in signature \(not the canonical .*"),
    ("signature-of-other-private-key", _signed_by_other_keys_private_key, r"bad signature"),
    ("es256-signature-other-p256-key", _es256_signed_by_other_curve_key, r"bad signature"),
    ("es256-der-signature", _es256_der,
     r"ES256 signature in DER form \(\d+ bytes\); JWS needs raw r\|\|s \(64 bytes\)"),
    ("rs256-signature-under-es256-header", _rs256_signature_under_es256_header,
     r"signature is 256 bytes; ES256 needs 64 \(raw r\|\|s\)"),
    ("rs256-header-with-es256-kid", _rs256_header_with_ec_kid,
     rf"alg RS256 does not match key {EC_KID}, which is ES256"),
    ("bad-base64-header", lambda k: "eyJ!" + good_token(k.rsa)[4:], r"bad base64url in header"),
    ("bad-base64-payload", lambda k: replace_segment(good_token(k.rsa), 1, "e30*"), r"bad base64url in payload"),
    ("bad-base64-signature", lambda k: good_token(k.rsa) + "$", r"bad base64url in signature"),
    ("standard-base64-alphabet", lambda k: replace_segment(good_token(k.rsa), 2, "ab+/" * 86), r"bad base64url in .*"),
    ("base64-padding", _header_padding, r"bad base64url in header"),
    ("header-not-json", lambda k: replace_segment(good_token(k.rsa), 0, b64u(b"{alg: RS256}")), r"header is not JSON"),
    ("header-not-utf8", lambda k: replace_segment(good_token(k.rsa), 0, b64u(b'{"alg":"\xff"}')),
     r"header is not JSON"),
    ("header-json-array", lambda k: craft(["RS256", "JWT", RSA_KID], claims(), sign_for(k.rsa)),
     r"header is JSON but not an object"),
    ("header-json-string", lambda k: craft("RS256", claims(), sign_for(k.rsa)), r"header is JSON but not an object"),
    ("payload-json-array", lambda k: craft(header(k.rsa), [claims()], sign_for(k.rsa)),
     r"payload is JSON but not an object"),
    ("payload-json-number", lambda k: craft(header(k.rsa), 42, sign_for(k.rsa)), r"payload is JSON but not an object"),
    ("payload-json-null", lambda k: craft(header(k.rsa), None, sign_for(k.rsa)), r"payload is JSON but not an object"),
    ("claim-methods-string", lambda k: good_token(k.rsa, methods="eth_blockNumber"),
     r"allowlist claim methods is not an array of strings"),
    ("claim-origins-numbers", lambda k: good_token(k.rsa, origins=[1, 2]),
     r"allowlist claim origins is not an array of strings"),
    ("claim-user-agents-null", lambda k: good_token(k.rsa, user_agents=None),
     r"allowlist claim user_agents is not an array of strings"),
    ("claim-addresses-nested", lambda k: good_token(k.rsa, addresses=[["0x" + "00" * 20]]),
     r"allowlist claim addresses is not an array of strings"),
    ("claim-methods-object", lambda k: good_token(k.rsa, methods={"eth_blockNumber": True}),
     r"allowlist claim methods is not an array of strings"),
    ("token-100kb", _huge, r"token longer than 16384 bytes"),
    ("two-parts", lambda k: ".".join(good_token(k.rsa).split(".")[:2]), r"malformed token: .*"),
    ("four-parts", lambda k: good_token(k.rsa) + ".AAAA", r"malformed token: .*"),
    ("jwe-five-parts", lambda k: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", r"malformed token: .*"),
    ("not-a-jwt", lambda k: "hello", r"malformed token: .*"),
    ("empty-token", lambda k: "", r"Bearer with no token"),
]


def test_there_are_many_distinct_hostile_tokens(keys: Keys) -> None:
    tokens = {name: build(keys) for name, build, _ in HOSTILE}
    assert len(HOSTILE) >= 25
    assert len(set(tokens.values())) == len(tokens)  # every case is its own token


@pytest.mark.parametrize(("build", "reason"), [(b, r) for _, b, r in HOSTILE], ids=[n for n, _, _ in HOSTILE])
def test_hostile_token_is_refused(client: httpx.Client, served: ServerProcess, keys: Keys,
                                  build: Callable[[Keys], str], reason: str) -> None:
    token = build(keys)
    assert_invalid_jwt(post(client, served, JWT_KEY, f"Bearer {token}"), reason)
    # the verdict is cached: the same token again gets the same reply
    assert_invalid_jwt(post(client, served, JWT_KEY, f"Bearer {token}"), reason)


@pytest.mark.parametrize(("build", "reason"), [(b, r) for _, b, r in HOSTILE], ids=[n for n, _, _ in HOSTILE])
def test_hostile_token_is_refused_when_jwt_is_optional(client: httpx.Client, served: ServerProcess, keys: Keys,
                                                       build: Callable[[Keys], str], reason: str) -> None:
    """With "require JWT" off, a request that carries a bad JWT is still refused (infura.md 2.2).

    The same cases, built with the optional key's own pair in the RSA role (the EC cases name a kid that this key
    does not have, so they may be refused for that first).
    """
    token = build(dataclasses.replace(keys, rsa=keys.optional))
    assert_invalid_jwt(post(client, served, OPTIONAL_KEY, f"Bearer {token}"), rf"{reason}|unknown kid .*")


def test_missing_jwt_refused_when_required(client: httpx.Client, served: ServerProcess) -> None:
    assert_invalid_jwt(post(client, served, JWT_KEY, None), r"jwt required and missing")
    # another scheme carries no JWT
    assert_invalid_jwt(post(client, served, JWT_KEY, "Token abc"), r"jwt required and missing")


def test_optional_jwt_key(client: httpx.Client, served: ServerProcess, keys: Keys) -> None:
    assert_ok(post(client, served, OPTIONAL_KEY, None))  # no JWT: passes
    assert_ok(post(client, served, OPTIONAL_KEY, f"Bearer {good_token(keys.optional)}"))
    expired = good_token(keys.optional, exp=int(time.time()) - 1)
    assert_invalid_jwt(post(client, served, OPTIONAL_KEY, f"Bearer {expired}"), r"jwt expired")
    assert_invalid_jwt(post(client, served, OPTIONAL_KEY, "Bearer not.a.jwt"), r"bad base64url in .*|.*not JSON")
    assert_invalid_jwt(post(client, served, OPTIONAL_KEY, "Bearer"), r"Bearer with no token")
    # a token for another key's kid is invalid here too
    assert_invalid_jwt(post(client, served, OPTIONAL_KEY, f"Bearer {good_token(keys.rsa)}"), r"unknown kid .*")


GOOD: list[tuple[str, Callable[[Keys], tuple[str, str]]]] = [
    ("rs256", lambda k: (JWT_KEY, f"Bearer {good_token(k.rsa)}")),
    ("es256", lambda k: (JWT_KEY, f"Bearer {good_token(k.ec)}")),
    ("aud-list", lambda k: (JWT_KEY, f"Bearer {good_token(k.rsa, aud=['example.com', 'infura.io'])}")),
    ("typ-lowercase", lambda k: (JWT_KEY, f"Bearer {craft(header(k.ec, typ='jwt'), claims(), sign_for(k.ec))}")),
    ("typ-mixed-case", lambda k: (JWT_KEY, f"Bearer {craft(header(k.rsa, typ='Jwt'), claims(), sign_for(k.rsa))}")),
    ("bearer-two-spaces", lambda k: (JWT_KEY, f"Bearer  {good_token(k.rsa)}")),
    ("bearer-lowercase", lambda k: (JWT_KEY, f"bearer {good_token(k.ec)}")),
    ("bearer-uppercase-tab", lambda k: (JWT_KEY, f"BEARER\t{good_token(k.rsa)}")),
    ("no-iat", lambda k: (JWT_KEY, f"Bearer {good_token(k.rsa, iat=DROP)}")),
    ("nbf-past", lambda k: (JWT_KEY, f"Bearer {good_token(k.rsa, nbf=int(time.time()) - 10)}")),
    ("float-exp", lambda k: (JWT_KEY, f"Bearer {good_token(k.rsa, exp=time.time() + 600.5)}")),
    ("extra-claims", lambda k: (JWT_KEY, f"Bearer {good_token(k.rsa, sub='user-1', iss='my-backend', jti='x')}")),
    ("extra-header-field",
     lambda k: (JWT_KEY, f"Bearer {craft(header(k.rsa, cty='x', x='y'), claims(), sign_for(k.rsa))}")),
    ("other-key-own-kid", lambda k: (OTHER_KEY, f"Bearer {good_token(k.other)}")),
    ("optional-key-token", lambda k: (OPTIONAL_KEY, f"Bearer {good_token(k.optional)}")),
    ("empty-allowlist-claims-ok", lambda k: (JWT_KEY, f"Bearer {good_token(k.rsa, methods=['eth_blockNumber'])}")),
]


@pytest.mark.parametrize("build", [b for _, b in GOOD], ids=[n for n, _ in GOOD])
def test_good_token_passes(client: httpx.Client, served: ServerProcess, keys: Keys,
                           build: Callable[[Keys], tuple[str, str]]) -> None:
    api_key, authorization = build(keys)
    assert_ok(post(client, served, api_key, authorization))
    assert_ok(post(client, served, api_key, authorization))  # and from the verdict cache


def test_good_token_of_one_key_refused_on_another(client: httpx.Client, served: ServerProcess, keys: Keys) -> None:
    assert_invalid_jwt(post(client, served, OTHER_KEY, f"Bearer {good_token(keys.rsa)}"), rf"unknown kid {RSA_KID} .*")
    # the cached verdict for JWT_KEY does not leak to OTHER_KEY, nor the other way round
    token = good_token(keys.other)
    assert_ok(post(client, served, OTHER_KEY, f"Bearer {token}"))
    assert_invalid_jwt(post(client, served, JWT_KEY, f"Bearer {token}"), r"unknown kid .*")


def test_token_expires_on_the_server_clock(client: httpx.Client, served: ServerProcess, keys: Keys) -> None:
    """A cached good verdict is re-checked against the server clock on every use."""
    token = good_token(keys.ec, exp=int(time.time()) + 600)
    assert_ok(post(client, served, JWT_KEY, f"Bearer {token}"))
    clock = f"{served.base_url}/_mock/clock"
    try:
        assert client.post(clock, json={"advance": 601}).status_code == 200
        assert_invalid_jwt(post(client, served, JWT_KEY, f"Bearer {token}"), r"jwt expired")
        # nbf: a token not valid yet becomes valid when the clock reaches it
        later = good_token(keys.rsa, nbf=int(time.time()) + 1200, exp=int(time.time()) + 3600)
        assert_invalid_jwt(post(client, served, JWT_KEY, f"Bearer {later}"), r"jwt not yet valid .*")
        assert client.post(clock, json={"advance": 600}).status_code == 200
        assert_ok(post(client, served, JWT_KEY, f"Bearer {later}"))
    finally:
        client.post(clock, json={"reset": True})
    assert_ok(post(client, served, JWT_KEY, f"Bearer {token}"))


def test_reason_is_in_the_request_journal(client: httpx.Client, served: ServerProcess, keys: Keys) -> None:
    token = good_token(keys.rsa, aud="nope")
    response = post(client, served, JWT_KEY, f"Bearer {token}", **{"User-Agent": "journal-probe/1"})
    assert_invalid_jwt(response, r"aud mismatch .*")
    entries = client.get(f"{served.base_url}/_mock/requests", params={"key": JWT_KEY}).json()
    probe = [e for e in entries if e["user_agent"] == "journal-probe/1"]
    assert probe and probe[-1]["decision"] == "refused"
    assert probe[-1]["reason"] == response.headers[REASON]
    assert probe[-1]["status"] == 401


def test_refused_before_the_body_is_read(client: httpx.Client, served: ServerProcess, keys: Keys) -> None:
    """The JWT is checked before the body: a bad token with a body that is not JSON is still `invalid JWT`."""
    response = client.post(served.url(JWT_KEY), content=b"{not json",
                           headers={"Authorization": f"Bearer {good_token(keys.rsa, aud='x')}"})
    assert_invalid_jwt(response, r"aud mismatch .*")
    assert response.headers["vary"] == "Origin"


def test_server_survived(client: httpx.Client, served: ServerProcess) -> None:
    assert served.process.poll() is None
    assert client.get(f"{served.base_url}/_mock/health").json()["status"] == "ok"


# ---------------------------------------------------------------------------------------------------------------
# The verifier in-process: leeway, the bounded verdict cache


def _api_key_for(pair: KeyPair, key: str = "d" * 32) -> Any:
    from mockinfura.config import ApiKeyConfig, JwtPublicKey
    from mockinfura.tokens import load_public_key

    loaded = load_public_key(pair.public_pem.decode())
    return ApiKeyConfig(key=key, require_jwt=True, jwt_public_keys=(
        JwtPublicKey(name="k", id=pair.kid, fingerprint=loaded.fingerprint, pem=loaded.pem, alg=loaded.alg),))


def test_leeway(keys: Keys) -> None:
    from mockinfura.gateway.jwt import JwtInvalid, JwtVerifier

    api_key = _api_key_for(keys.ec)
    now = time.time()
    expired = good_token(keys.ec, exp=int(now) - 30)
    early = good_token(keys.ec, nbf=int(now) + 30)
    verifier = JwtVerifier()
    for token, reason in ((expired, "jwt expired"), (early, "jwt not yet valid (nbf in the future)")):
        with pytest.raises(JwtInvalid) as info:
            verifier.verify(token, api_key, now, 0)
        assert info.value.reason == reason
        assert verifier.verify(token, api_key, now, 60).kid == EC_KID  # the same cached verdict, another leeway
        with pytest.raises(JwtInvalid):
            verifier.verify(token, api_key, now, 10)


def test_verdict_cache_is_bounded_and_keyed_by_api_key(keys: Keys) -> None:
    from mockinfura.gateway.jwt import JwtInvalid, JwtVerifier

    api_key = _api_key_for(keys.ec)
    verifier = JwtVerifier(max_entries=3)
    tokens = [good_token(keys.ec, jti=str(i)) for i in range(6)]
    for token in tokens:
        verifier.verify(token, api_key, time.time(), 0)
    assert len(verifier._cache) == 3
    # a replaced key configuration (same key string, another public key) does not reuse the old verdicts
    replaced = _api_key_for(ec_key(EC_KID))
    with pytest.raises(JwtInvalid) as info:
        verifier.verify(tokens[-1], replaced, time.time(), 0)
    assert info.value.reason == "bad signature"
    # nor does another API key holding the same public key id
    assert verifier.verify(tokens[-1], _api_key_for(keys.ec, "e" * 32), time.time(), 0).kid == EC_KID
    # the 100 KB token is refused without being cached
    verifier = JwtVerifier()
    with pytest.raises(JwtInvalid):
        verifier.verify(_huge(keys), api_key, time.time(), 0)
    assert len(verifier._cache) == 0
