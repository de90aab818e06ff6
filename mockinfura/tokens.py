"""JWT key material: key pairs, Infura fingerprints and key ids, and tokens Infura would accept.

Used by the CLI (`keygen`, `token`, `fingerprint`), the config loader and the pytest plugin.
Verification of incoming tokens lives in `gateway/jwt.py`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_PUBLIC_KEY_PATH = DEMO_DIR / "demo.public.pem"
# Public knowledge: shipped so that `mockinfura token --demo` works out of the box. Never use it anywhere real.
DEMO_PRIVATE_KEY_PATH = DEMO_DIR / "demo.private.pem"
JWT_AUDIENCE = "infura.io"
DEFAULT_TTL_SECONDS = 3600


class PublicKeyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class LoadedPublicKey:
    pem: str
    alg: str
    fingerprint: str
    default_id: str


def _public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _alg_for(public_key: Any) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise PublicKeyError(f"an RSA key of {public_key.key_size} bits is too short (at least 2048)")
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise PublicKeyError(f"an EC key must be on P-256 for ES256, this one is on {public_key.curve.name}")
        return "ES256"
    raise PublicKeyError(f"unsupported key type {type(public_key).__name__} (Infura takes RSA or EC P-256 keys)")


def fingerprint_of_der(der: bytes) -> str:
    """Infura's fingerprint: base64(SHA-256(DER SubjectPublicKeyInfo)), as the openssl pipeline prints."""
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def key_id_of_der(der: bytes) -> str:
    """The id the mock assigns to an uploaded key when the config gives none: stable across restarts."""
    return hashlib.sha256(b"mockinfura-jwt-key-id:" + der).hexdigest()[:32]


def load_public_key(pem: str) -> LoadedPublicKey:
    """A public key PEM (SubjectPublicKeyInfo), checked; raises PublicKeyError saying what is wrong."""
    data = pem.strip().encode(errors="replace")  # a lone surrogate (JSON allows one) cannot be PEM: refused below
    if b"PRIVATE KEY" in data:
        raise PublicKeyError("this is a private key; upload the public key (mockinfura keygen writes NAME.public.pem)")
    try:
        public_key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise PublicKeyError(f"not a PEM public key ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    alg = _alg_for(public_key)
    der = _public_der(public_key)
    normalized = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return LoadedPublicKey(
        pem=normalized.decode(), alg=alg, fingerprint=fingerprint_of_der(der), default_id=key_id_of_der(der)
    )


def load_private_key(pem: bytes) -> Any:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PublicKeyError(f"not an unencrypted PEM private key ({str(exc)[:120]})") from None
    _alg_for(key.public_key())
    return key


def fingerprint_of_pem(pem: bytes) -> str:
    """The fingerprint of a public or private PEM (of any key type: the fingerprint does not depend on it)."""
    if b"PRIVATE KEY" in pem:
        try:
            public_key = serialization.load_pem_private_key(pem, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise PublicKeyError(f"not an unencrypted PEM private key ({str(exc)[:120]})") from None
    else:
        try:
            public_key = serialization.load_pem_public_key(pem.strip())
        except (ValueError, TypeError) as exc:
            raise PublicKeyError(f"not a PEM key ({str(exc)[:120]})") from None
    return fingerprint_of_der(_public_der(public_key))


def generate_key_pair(alg: str = "RS256") -> tuple[bytes, bytes]:
    """(private PEM, public PEM) for RS256 (RSA 2048) or ES256 (P-256)."""
    if alg == "RS256":
        private_key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"alg must be RS256 or ES256, not {alg!r}")
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def make_token(
    private_pem: bytes,
    kid: str,
    *,
    ttl: float = DEFAULT_TTL_SECONDS,
    now: float | None = None,
    allowlists: dict[str, list[str]] | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A JWT that Infura would accept: alg from the key type, typ JWT, aud infura.io, exp = now + ttl."""
    from joserfc import jwt
    from joserfc.jwk import import_key

    private_key = load_private_key(private_pem)
    alg = _alg_for(private_key.public_key())
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {"aud": JWT_AUDIENCE, "iat": issued, "exp": int(issued + ttl)}
    for name, values in (allowlists or {}).items():
        if values is not None:
            payload[name] = list(values)
    payload.update(claims)
    jose_key = import_key(private_pem, "RSA" if alg == "RS256" else "EC")
    return jwt.encode({"alg": alg, "typ": "JWT", "kid": kid, **(header or {})}, payload, jose_key, algorithms=[alg])


def demo_key_id() -> str:
    return load_public_key(DEMO_PUBLIC_KEY_PATH.read_text()).default_id
