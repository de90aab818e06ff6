"""API keys made at run time for a test: each with its own JWT key pair, able to sign tokens and build clients."""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from web3 import Web3

    from mockinfura.testing.server import MockInfura

JWT_KEY_NAME = "pytest"
DEFAULT_TOKEN_TTL_SECONDS = 3600


class KeyOptions(TypedDict, total=False):
    """What `infura_key(...)` / `MockInfura.create_key(...)` take; absent means the server's default."""

    require_jwt: bool
    secret: str | bool | None  # True: a random secret
    require_secret: bool
    secret_overrides_allowlists: bool
    allowlists: dict[str, list[str]]
    networks: list[str]
    plan: str
    credits_per_second: int
    credits_per_day: int
    jwt_alg: Literal["RS256", "ES256"]
    label: str
    key: str  # a chosen 32-hex key; default: a random one


PASSED_THROUGH = ("require_jwt", "require_secret", "secret_overrides_allowlists", "allowlists", "networks", "plan",
                  "credits_per_second", "credits_per_day", "label", "key")


class KeyPairPool:
    """JWT key pairs for test keys. RSA generation costs 40-100 ms, so a pair comes back to the pool when its API
    key is deleted and is reused by a later key: two live keys never share a pair, so a token made for one
    is never accepted by another."""

    def __init__(self) -> None:
        self._spare: dict[str, list[tuple[bytes, bytes]]] = {}
        self._lock = threading.Lock()

    def take(self, alg: str) -> tuple[bytes, bytes]:
        with self._lock:
            spare = self._spare.get(alg)
            if spare:
                return spare.pop()
        from mockinfura.tokens import generate_key_pair

        return generate_key_pair(alg)

    def give_back(self, alg: str, pair: tuple[bytes, bytes]) -> None:
        with self._lock:
            self._spare.setdefault(alg, []).append(pair)


def key_entry(options: KeyOptions, public_pem: bytes) -> dict[str, Any]:
    """The control plane's JSON for a new key (an `api_keys` entry of the config)."""
    unknown = set(options) - set(KeyOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown API key option(s): {', '.join(sorted(unknown))} "
                        f"(expected: {', '.join(KeyOptions.__annotations__)})")
    entry: dict[str, Any] = {name: options[name] for name in PASSED_THROUGH if options.get(name) is not None}
    secret = options.get("secret")
    if secret is True:
        entry["secret"] = secrets.token_hex(16)
    elif isinstance(secret, str):
        entry["secret"] = secret
    elif secret not in (None, False):
        raise TypeError(f"secret must be None, True or a string, not {secret!r}")
    entry["jwt_public_keys"] = [{"name": JWT_KEY_NAME, "public_key": public_pem.decode()}]
    return entry


@dataclass
class ApiKeyHandle:
    """A key on the running mock: `.key`, `.secret`, `.url()`, `.jwt()`, `.web3()`."""

    infura: MockInfura
    key: str
    secret: str | None
    require_secret: bool
    alg: str
    kid: str
    private_key: bytes = field(repr=False)  # PEM; its public half is registered on the key as JWT_KEY_NAME
    public_key: bytes = field(repr=False)
    entry: dict[str, Any] = field(repr=False, default_factory=dict)  # the server's reply at creation
    deleted: bool = False

    def url(self, network: str = "mainnet") -> str:
        return self.infura.url(network, key=self.key)

    def ws_url(self, network: str = "mainnet") -> str:
        return self.infura.ws_url(network, key=self.key)

    def jwt(
        self,
        ttl: float = DEFAULT_TOKEN_TTL_SECONDS,
        *,
        methods: list[str] | None = None,
        addresses: list[str] | None = None,
        origins: list[str] | None = None,
        user_agents: list[str] | None = None,
        now: float | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token this key accepts: `iat` = the server clock's now (or NOW), `exp` = iat + TTL.

        Allowlist claims narrow what the token may do; extra CLAIMS (or header fields) go in as given,
        which is how a test makes a token that must be refused (`aud="other"`, `exp=...`).
        """
        from mockinfura.tokens import make_token

        allowlists = {"methods": methods, "addresses": addresses, "origins": origins, "user_agents": user_agents}
        issued = self.infura.clock_now() if now is None else now
        return make_token(self.private_key, self.kid, ttl=ttl, now=issued, allowlists=allowlists, header=header,
                          **claims)

    def authorization(self, jwt: bool | str | None = None) -> str | None:
        """The Authorization header value: a JWT (Bearer), the secret (Basic), or None.

        JWT=None picks: the secret when the key requires one, else a fresh JWT. A string is sent as the token.
        """
        if isinstance(jwt, str):
            return f"Bearer {jwt}"
        if jwt is None:
            jwt = not (self.require_secret and self.secret)
        if jwt:
            return f"Bearer {self.jwt()}"
        if self.secret:
            return "Basic " + base64.b64encode(f":{self.secret}".encode()).decode()
        return None

    def web3(self, network: str = "mainnet", jwt: bool | str | None = None, *, headers: dict[str, str] | None = None,
             timeout: float = 30.0) -> Web3:
        """A `Web3` on this key. Its provider sends the Authorization header (see `authorization`) and keeps
        web3.py's own `Content-Type: application/json` and `User-Agent`; it never retries refusals."""
        from mockinfura.testing.server import make_web3

        extra = dict(headers or {})
        authorization = self.authorization(jwt)
        if authorization:
            extra.setdefault("Authorization", authorization)
        return make_web3(self.url(network), headers=extra, timeout=timeout)

    def delete(self, *, missing_ok: bool = True) -> bool:
        """Delete the key from the server (the infura_key fixture does this after the test)."""
        if self.deleted:
            return False
        removed = self.infura.admin.keys.remove(self.key, missing_ok=missing_ok)
        self.deleted = True
        self.infura.key_pairs.give_back(self.alg, (self.private_key, self.public_key))
        return removed


class KeyFactory:
    """The `infura_key` fixture: `infura_key(require_jwt=True, ...)` makes a key; all are deleted by `cleanup`."""

    def __init__(self, infura: MockInfura) -> None:
        self.infura = infura
        self.created: list[ApiKeyHandle] = []

    def __call__(self, **options: Any) -> ApiKeyHandle:
        handle = self.infura.create_key(**options)
        self.created.append(handle)
        return handle

    def cleanup(self) -> None:
        for handle in reversed(self.created):
            handle.delete(missing_ok=True)
        self.created.clear()
