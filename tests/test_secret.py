"""The API key secret, networks per key and the unknown-key reply (infura.md 1, 2.1, 2.4), over HTTP."""

from __future__ import annotations

import base64
import shutil
import subprocess

import httpx
import pytest

from mockinfura.tokens import generate_key_pair
from tests.server import ServerProcess

REQUIRED_KEY = "f0000000000000000000000000000001"
OPTIONAL_KEY = "f0000000000000000000000000000002"
OVERRIDE_KEY = "f0000000000000000000000000000003"
NO_OVERRIDE_KEY = "f0000000000000000000000000000004"
NETWORK_KEY = "f0000000000000000000000000000005"
PLAIN_KEY = "f0000000000000000000000000000006"
JWT_AND_SECRET_KEY = "f0000000000000000000000000000007"
UNKNOWN_KEY = "f00000000000000000000000000000ff"
SECRETS = {
    REQUIRED_KEY: "s3cret-required",
    OPTIONAL_KEY: "s3cret-optional",
    OVERRIDE_KEY: "override-me",
    NO_OVERRIDE_KEY: "no-override",
    NETWORK_KEY: "network-secret",
    JWT_AND_SECRET_KEY: "jwt-and-secret",
}

TEXT_PLAIN = "text/plain; charset=utf-8"
INVALID_SECRET = b"invalid project id or project secret\n"
INVALID_PROJECT_ID = b"invalid project id\n"
REJECTED = b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"rejected due to project ID settings"}}\n'
BLOCK_NUMBER = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}


def no_access(network: str) -> bytes:
    return (
        b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"project ID does not have access to '
        + network.encode()
        + b'"}}\n'
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    public = tmp_path_factory.mktemp("secret") / "jwt.public.pem"
    public.write_bytes(generate_key_pair("ES256")[1])
    config = f"""
[api_keys.required]
key = "{REQUIRED_KEY}"
secret = "{SECRETS[REQUIRED_KEY]}"
require_secret = true

[api_keys.optional]
key = "{OPTIONAL_KEY}"
secret = "{SECRETS[OPTIONAL_KEY]}"

[api_keys.override]
key = "{OVERRIDE_KEY}"
secret = "{SECRETS[OVERRIDE_KEY]}"
secret_overrides_allowlists = true
allowlists = {{ methods = ["eth_chainId"], user_agents = ["KeyAgent"] }}

[api_keys.no_override]
key = "{NO_OVERRIDE_KEY}"
secret = "{SECRETS[NO_OVERRIDE_KEY]}"
allowlists = {{ methods = ["eth_chainId"] }}

[api_keys.network]
key = "{NETWORK_KEY}"
secret = "{SECRETS[NETWORK_KEY]}"
require_secret = true
networks = ["sepolia", "base-mainnet"]

[api_keys.plain]
key = "{PLAIN_KEY}"

[api_keys.jwt_and_secret]
key = "{JWT_AND_SECRET_KEY}"
secret = "{SECRETS[JWT_AND_SECRET_KEY]}"
require_jwt = true
jwt_public_keys = [{{ name = "es", public_key = "{public}" }}]
"""
    with ServerProcess(config) as process:
        yield process


@pytest.fixture(scope="module")
def client() -> httpx.Client:
    with httpx.Client(timeout=30) as c:
        yield c


def basic(secret: str, user: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def post(client: httpx.Client, url: str, authorization: str | None = None, body: object = BLOCK_NUMBER,
         **headers: str) -> httpx.Response:
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.post(url, json=body, headers=headers)


def assert_invalid_secret(response: httpx.Response, reason: str | None = None) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers["content-type"] == TEXT_PLAIN
    assert response.content == INVALID_SECRET
    assert response.headers["vary"] == "Origin"
    if reason is not None:
        assert response.headers["x-mockinfura-reason"] == reason


def assert_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, (response.status_code, response.text, response.headers.get("x-mockinfura-reason"))
    assert response.json()["result"].startswith("0x")


def test_basic_auth_with_empty_user(client: httpx.Client, served: ServerProcess) -> None:
    url = served.url(REQUIRED_KEY)
    assert_ok(post(client, url, basic(SECRETS[REQUIRED_KEY])))
    # httpx's own Basic auth with an empty user name sends the same header
    assert_ok(client.post(url, json=BLOCK_NUMBER, auth=("", SECRETS[REQUIRED_KEY])))
    # the scheme word in any case
    assert_ok(post(client, url, basic(SECRETS[REQUIRED_KEY]).replace("Basic", "basic")))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_user_colon_secret(served: ServerProcess) -> None:
    """The docs' own command: curl --user :SECRET."""
    out = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--user", f":{SECRETS[REQUIRED_KEY]}",
         "-H", "Content-Type: application/json", "-d", '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
         served.url(REQUIRED_KEY)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    body, status = out.rsplit("\n", 1)
    assert status == "200"
    assert '"result":"0x1"' in body.replace(" ", "")
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "--user", ":wrong", "-d", "{}",
                          served.url(REQUIRED_KEY)], capture_output=True, text=True, timeout=30, check=True).stdout
    assert out == "invalid project id or project secret\n\n401"


def test_require_secret_on(client: httpx.Client, served: ServerProcess) -> None:
    url = served.url(REQUIRED_KEY)
    assert_invalid_secret(post(client, url), "API key secret required and missing")
    assert_invalid_secret(post(client, url, basic("wrong")), "wrong API key secret")
    assert_invalid_secret(post(client, url, basic(SECRETS[REQUIRED_KEY] + "x")))
    assert_invalid_secret(post(client, url, basic(SECRETS[REQUIRED_KEY][:-1])))
    assert_invalid_secret(post(client, url, basic(SECRETS[REQUIRED_KEY].upper())))  # case-sensitive
    assert_invalid_secret(post(client, url, basic("")))
    assert_invalid_secret(post(client, url, "Basic !!notbase64!!"))
    assert_invalid_secret(post(client, url, "Basic " + base64.b64encode(b"no-colon").decode()))
    # a JWT does not stand in for the secret
    assert_invalid_secret(post(client, url, "Bearer a.b.c"), "API key secret required and missing")


def test_require_secret_off(client: httpx.Client, served: ServerProcess) -> None:
    url = served.url(OPTIONAL_KEY)
    assert_ok(post(client, url))  # [choice] a missing secret passes when not required
    assert_ok(post(client, url, basic(SECRETS[OPTIONAL_KEY])))
    assert_invalid_secret(post(client, url, basic("wrong")), "wrong API key secret")  # a wrong one is still refused
    assert_invalid_secret(post(client, url, basic(SECRETS[REQUIRED_KEY])))  # another key's secret


def test_key_without_secret_refuses_basic(client: httpx.Client, served: ServerProcess) -> None:
    assert_ok(post(client, served.url(PLAIN_KEY)))
    assert_invalid_secret(post(client, served.url(PLAIN_KEY), basic("anything")), "this key has no secret")


def test_secret_overrides_allowlists(client: httpx.Client, served: ServerProcess) -> None:
    url = served.url(OVERRIDE_KEY)
    # without the secret the key's allowlists apply (method and user agent)
    response = post(client, url)
    assert response.status_code == 403 and response.content == REJECTED
    assert response.headers["content-type"] == TEXT_PLAIN
    # with it they are skipped
    response = post(client, url, basic(SECRETS[OVERRIDE_KEY]))
    assert_ok(response)
    entries = client.get(f"{served.base_url}/_mock/requests", params={"key": OVERRIDE_KEY}).json()
    assert entries[-1]["reason"] == "secret overrides allowlists"
    # a wrong secret is a 401, not a pass and not a 403
    assert_invalid_secret(post(client, url, basic("wrong")))


def test_secret_without_override_keeps_allowlists(client: httpx.Client, served: ServerProcess) -> None:
    url = served.url(NO_OVERRIDE_KEY)
    response = post(client, url, basic(SECRETS[NO_OVERRIDE_KEY]))
    assert response.status_code == 403 and response.content == REJECTED
    chain_id = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    assert post(client, url, basic(SECRETS[NO_OVERRIDE_KEY]), body=chain_id).json()["result"] == "0x1"


def test_secret_then_jwt(client: httpx.Client, served: ServerProcess) -> None:
    """Order secret -> JWT: a key with a secret that requires a JWT still wants the JWT after a good secret."""
    url = served.url(JWT_AND_SECRET_KEY)
    response = post(client, url, basic(SECRETS[JWT_AND_SECRET_KEY]))
    assert response.status_code == 401 and response.content == b"invalid JWT\n"
    assert response.headers["x-mockinfura-reason"] == "jwt required and missing"
    assert_invalid_secret(post(client, url, basic("wrong")))


def test_network_limited_key(client: httpx.Client, served: ServerProcess) -> None:
    secret = basic(SECRETS[NETWORK_KEY])
    for network in ("mainnet", "polygon-mainnet", "base-sepolia"):
        response = post(client, served.url(NETWORK_KEY, network), secret)
        assert response.status_code == 403, response.text
        assert response.content == no_access(network)
        assert response.headers["vary"] == "Origin"
    # the default network (mainnet) when the URL names none
    assert post(client, served.url(NETWORK_KEY), secret).content == no_access("mainnet")
    # the network from the Host header's first label
    response = post(client, served.url(NETWORK_KEY), secret, Host=f"linea-mainnet.localhost:{served.port}")
    assert response.content == no_access("linea-mainnet")
    response = post(client, served.url(NETWORK_KEY), secret, Host=f"sepolia.localhost:{served.port}")
    assert response.json()["result"].startswith("0x")
    assert_ok(post(client, served.url(NETWORK_KEY, "sepolia"), secret))
    assert_ok(post(client, served.url(NETWORK_KEY, "base-mainnet"), secret))


def test_network_checked_before_secret(client: httpx.Client, served: ServerProcess) -> None:
    assert post(client, served.url(NETWORK_KEY, "mainnet")).content == no_access("mainnet")
    assert post(client, served.url(NETWORK_KEY, "mainnet"), basic("wrong")).content == no_access("mainnet")
    assert_invalid_secret(post(client, served.url(NETWORK_KEY, "sepolia")))
    assert_invalid_secret(post(client, served.url(NETWORK_KEY, "sepolia"), basic("wrong")))


@pytest.mark.parametrize("key", [UNKNOWN_KEY, "abc", "F0000000000000000000000000000001", REQUIRED_KEY + "0"])
def test_unknown_key(client: httpx.Client, served: ServerProcess, key: str) -> None:
    for authorization in (None, basic(SECRETS[REQUIRED_KEY]), "Bearer a.b.c"):
        response = post(client, served.url(key), authorization)
        assert response.status_code == 401
        assert response.content == INVALID_PROJECT_ID
        assert response.headers["content-type"] == TEXT_PLAIN
        assert response.headers["www-authenticate"] == 'Basic realm="Auth failure, invalid project id"'
        assert response.headers["vary"] == "Origin"


def test_no_key_in_the_url(client: httpx.Client, served: ServerProcess) -> None:
    for path in ("/v3/", "/v3", "/sepolia/v3/"):
        response = client.post(f"{served.base_url}{path}", json=BLOCK_NUMBER)
        assert response.status_code == 401
        assert response.content == b"project id required in the url\n"
        assert response.headers["vary"] == "Origin"


def test_vary_origin_on_every_reply(client: httpx.Client, served: ServerProcess) -> None:
    replies = [
        post(client, served.url(PLAIN_KEY)),  # 200
        post(client, served.url(REQUIRED_KEY)),  # 401 secret
        post(client, served.url(OVERRIDE_KEY)),  # 403 allowlists
        post(client, served.url(NETWORK_KEY, "mainnet")),  # 403 network
        post(client, served.url(UNKNOWN_KEY)),  # 401 unknown key
        client.get(f"{served.base_url}/nothing/here"),  # 404
        client.post(served.url(PLAIN_KEY), content=b"not json"),  # 400
    ]
    assert [r.status_code for r in replies] == [200, 401, 403, 403, 401, 404, 400]
    for response in replies:
        assert response.headers["vary"] == "Origin"
