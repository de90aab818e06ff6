"""Property-based: mutated JWTs and hostile request headers against a real server (infura.md 2.2-2.4).

- a token that differs from every valid token is never accepted: exactly 401 `invalid JWT`;
- random `Authorization`, `Origin` and `User-Agent` values never get a 5xx, and a 2xx only when the allowlists
  (checked here by an independent regular expression) allow it;
- the server stays up.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.server import ServerProcess
from tests.test_jwt_hostile import KeyPair, b64u, claims, craft, ec_key, good_token, header, rsa_key, sign_for

JWT_KEY = "d0000000000000000000000000000001"  # require_jwt, RS256 + ES256
OPTIONAL_KEY = "d0000000000000000000000000000002"  # require_jwt off, no allowlists
ALLOW_KEY = "d0000000000000000000000000000003"  # require_jwt, key allowlists on Origin and User-Agent
RSA_KID = "aa000000000000000000000000000001"
EC_KID = "aa000000000000000000000000000002"
OPTIONAL_KID = "aa000000000000000000000000000003"
ALLOW_KID = "aa000000000000000000000000000004"
ALLOWED_USER_AGENTS = ("web3.py", "Mozilla/")
INVALID_JWT_BODY = b"invalid JWT\n"
BLOCK_NUMBER = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None)

# The independent oracle for ALLOW_KEY's origin list: ["https://*.example.com", "http://localhost:3000"].
ORIGIN_ORACLE = re.compile(
    r"https://[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.example\.com(:\d{1,5})?/?|http://localhost:3000/?", re.IGNORECASE
)


@dataclass
class Material:
    rsa: KeyPair
    ec: KeyPair
    optional: KeyPair
    allow: KeyPair
    tokens: dict[str, tuple[str, str]]  # name: (api key, token)
    valid: frozenset[str]
    allow_token: str


@pytest.fixture(scope="module")
def material() -> Material:
    pairs = rsa_key(RSA_KID), ec_key(EC_KID), rsa_key(OPTIONAL_KID), ec_key(ALLOW_KID)
    rsa, ec, optional, allow = pairs
    exp = int(time.time()) + 7200
    tokens = {
        "rs256": (JWT_KEY, good_token(rsa, exp=exp)),
        "es256": (JWT_KEY, good_token(ec, exp=exp)),
        "rs256-claims": (JWT_KEY, good_token(rsa, exp=exp, methods=["eth_blockNumber", "eth_chainId"])),
        "es256-aud-list": (JWT_KEY, good_token(ec, exp=exp, aud=["x", "infura.io"])),
        "optional": (OPTIONAL_KEY, good_token(optional, exp=exp)),
        "optional-lower-typ": (OPTIONAL_KEY, craft(header(optional, typ="jwt"), claims(exp=exp), sign_for(optional))),
    }
    valid = frozenset(t for _, t in tokens.values())
    return Material(rsa, ec, optional, allow, tokens, valid, good_token(allow, exp=exp))


@pytest.fixture(scope="module")
def served(material: Material, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    folder: Path = tmp_path_factory.mktemp("jwt-fuzz")
    for name in ("rsa", "ec", "optional", "allow"):
        (folder / f"{name}.pem").write_bytes(getattr(material, name).public_pem)
    config = f"""
[api_keys.jwt]
key = "{JWT_KEY}"
require_jwt = true
jwt_public_keys = [
  {{ name = "rsa", public_key = "{folder / 'rsa.pem'}", id = "{RSA_KID}" }},
  {{ name = "ec", public_key = "{folder / 'ec.pem'}", id = "{EC_KID}" }},
]

[api_keys.optional]
key = "{OPTIONAL_KEY}"
jwt_public_keys = [{{ name = "optional", public_key = "{folder / 'optional.pem'}", id = "{OPTIONAL_KID}" }}]

[api_keys.allow]
key = "{ALLOW_KEY}"
require_jwt = true
jwt_public_keys = [{{ name = "allow", public_key = "{folder / 'allow.pem'}", id = "{ALLOW_KID}" }}]
allowlists = {{ origins = ["https://*.example.com", "http://localhost:3000"], user_agents = {list(ALLOWED_USER_AGENTS)!r} }}
""".replace("'", '"')
    with ServerProcess(config) as process:
        yield process


@pytest.fixture(scope="module")
def client() -> httpx.Client:
    with httpx.Client(timeout=30) as c:
        yield c


# ---------------------------------------------------------------------------------------------------------------
# Strategies

TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ODD_CHARS = ".=+/ ~!\"{}%\\,:;'*"
# Visible ASCII and inner spaces: what an HTTP client lets through in a header value.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=80).map(
    str.strip
).filter(bool)


@st.composite
def mutation(draw: st.DrawFn, token: str, others: list[str]) -> str:
    kind = draw(st.sampled_from(["substitute", "delete", "insert", "truncate", "append", "segment", "case", "swap",
                                 "dots", "repeat"]))
    n = len(token)
    if kind == "substitute":
        i = draw(st.integers(0, n - 1))
        c = draw(st.sampled_from(TOKEN_CHARS + ODD_CHARS).filter(lambda c: c != token[i]))
        return token[:i] + c + token[i + 1:]
    if kind == "delete":
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(i + 1, min(n, i + 8)))
        return token[:i] + token[j:]
    if kind == "insert":
        i = draw(st.integers(0, n))
        return token[:i] + draw(st.text(st.sampled_from(TOKEN_CHARS + ODD_CHARS), min_size=1, max_size=4)) + token[i:]
    if kind == "truncate":
        return token[: draw(st.integers(0, n - 1))]
    if kind == "append":
        return token + draw(st.text(st.sampled_from(TOKEN_CHARS + ".="), min_size=1, max_size=8))
    if kind == "segment":  # one segment taken from another valid token
        other = draw(st.sampled_from(others)).split(".")
        i = draw(st.integers(0, 2))
        parts = token.split(".")
        parts[i] = other[i]
        return ".".join(parts)
    if kind == "case":
        letters = [i for i, c in enumerate(token) if c.isalpha()]
        i = draw(st.sampled_from(letters))
        return token[:i] + token[i].swapcase() + token[i + 1:]
    if kind == "swap":
        parts = token.split(".")
        i, j = draw(st.sampled_from([(0, 1), (1, 2), (0, 2)]))
        parts[i], parts[j] = parts[j], parts[i]
        return ".".join(parts)
    if kind == "dots":
        return draw(st.sampled_from([token.replace(".", "..", 1), "." + token, token.replace(".", "")]))
    # repeat a segment
    parts = token.split(".")
    i = draw(st.integers(0, 2))
    parts[i] = parts[i] + parts[i]
    return ".".join(parts)


schemes = st.sampled_from(["Bearer ", "bearer ", "BEARER ", "Bearer  ", "Bearer\t"])


# ---------------------------------------------------------------------------------------------------------------
# Properties


@FUZZ
@given(data=st.data())
def test_mutated_token_is_never_accepted(client: httpx.Client, served: ServerProcess, material: Material,
                                         data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(material.tokens)), label="token")
    api_key, token = material.tokens[name]
    others = sorted(material.valid - {token})
    mutated = data.draw(mutation(token, others), label="mutated").strip()
    if mutated in material.valid:  # not a mutation at all (or another token the key accepts)
        return
    headers = {"Authorization": (data.draw(schemes, label="scheme") + mutated).strip()}
    if data.draw(st.booleans(), label="with origin"):
        headers["Origin"] = data.draw(header_text, label="origin")
    if data.draw(st.booleans(), label="with user agent"):
        headers["User-Agent"] = data.draw(header_text, label="user agent")
    response = client.post(served.url(api_key), json=BLOCK_NUMBER, headers=headers)
    assert response.status_code == 401, (response.status_code, response.headers.get("x-mockinfura-reason"))
    assert response.content == INVALID_JWT_BODY
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-mockinfura-reason"]


@FUZZ
@given(data=st.data())
def test_random_authorization_never_passes_a_jwt_key(client: httpx.Client, served: ServerProcess,
                                                     data: st.DataObject) -> None:
    value = data.draw(st.one_of(
        header_text,
        st.builds(lambda s, t: s + t, st.sampled_from(["Bearer ", "Basic ", "bearer  ", "Digest "]), header_text),
        st.builds(lambda parts: "Bearer " + ".".join(parts),
                  st.lists(st.text(st.sampled_from(TOKEN_CHARS), max_size=40), min_size=1, max_size=5)),
        st.builds(lambda h, p: f"Bearer {b64u(h)}.{b64u(p)}.", st.binary(max_size=60), st.binary(max_size=60)),
    ), label="authorization")
    response = client.post(served.url(JWT_KEY), json=BLOCK_NUMBER, headers={"Authorization": value.strip()})
    assert response.status_code == 401, (value, response.status_code, response.text)
    assert response.content in (INVALID_JWT_BODY, b"invalid project id or project secret\n")


@FUZZ
@given(data=st.data())
def test_allowlist_headers_with_a_valid_token(client: httpx.Client, served: ServerProcess, material: Material,
                                              data: st.DataObject) -> None:
    token = material.allow_token  # one token throughout: its cached verdict meets every header combination
    good_origins = ["https://app.example.com", "https://x-1.example.com:8443", "http://localhost:3000",
                    "HTTPS://App.Example.COM"]
    bad_origins = ["https://example.com", "https://a.b.example.com", "http://app.example.com",
                   "http://localhost:3001", "https://app.example.com.evil.io", "null", "https://*.example.com"]
    origin = data.draw(st.one_of(st.none(), st.sampled_from(good_origins + bad_origins), header_text), label="origin")
    user_agent = data.draw(st.one_of(
        st.none(), st.sampled_from(["web3.py/7.0", "Mozilla/5.0", "WEB3.PY", "curl/8", "mozilla/5.0"]), header_text,
        st.builds(lambda a, b: a + "web3.py" + b, header_text, header_text),
    ), label="user agent")
    scheme = data.draw(schemes, label="scheme")
    headers = {"Authorization": f"{scheme}{token}"}
    if origin is not None:
        headers["Origin"] = origin
    if user_agent is not None:
        headers["User-Agent"] = user_agent
    else:
        headers["User-Agent"] = ""  # httpx sends its own unless told; an empty value stands for "none" below
    response = client.post(served.url(ALLOW_KEY), json=BLOCK_NUMBER, headers=headers)
    assert response.status_code in (200, 403), (response.status_code, response.text)
    origin_ok = origin is not None and ORIGIN_ORACLE.fullmatch(origin.strip()) is not None
    agent_ok = bool(user_agent) and any(entry in user_agent for entry in ALLOWED_USER_AGENTS)
    if response.status_code == 200:
        assert origin_ok and agent_ok, (origin, user_agent)
    else:
        assert response.content == (
            b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"rejected due to project ID settings"}}\n'
        )
    if origin in good_origins and user_agent in ("web3.py/7.0", "Mozilla/5.0"):
        assert response.status_code == 200


def test_server_stays_up(client: httpx.Client, served: ServerProcess, material: Material) -> None:
    assert served.process.poll() is None
    assert client.get(f"{served.base_url}/_mock/health").json()["status"] == "ok"
    for api_key, token in material.tokens.values():
        response = client.post(served.url(api_key), json=BLOCK_NUMBER, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.headers.get("x-mockinfura-reason")
    journal = client.get(f"{served.base_url}/_mock/requests").json()
    assert all(entry["status"] < 500 for entry in journal)
