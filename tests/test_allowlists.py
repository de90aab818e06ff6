"""The allowlists (infura.md 2.3 and 2.4): the matching rules one by one, then over HTTP against a real server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from mockinfura.config import Allowlists
from mockinfura.gateway import allowlists as rules
from mockinfura.tokens import generate_key_pair, make_token
from tests.server import ServerProcess

REJECTED = b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"rejected due to project ID settings"}}\n'
TEXT_PLAIN = "text/plain; charset=utf-8"

A1 = "0x1937C5c515057553CCbd46D5866455cE66290284"  # mixed case on purpose: compared case-insensitively
A2 = "0x00000000000000000000000000000000000000a2"
A3 = "0x00000000000000000000000000000000000000a3"

# ---------------------------------------------------------------------------------------------------------------
# Origins


@pytest.mark.parametrize(
    ("entry", "origin", "allowed"),
    [
        ("https://*.example.com", "https://app.example.com", True),
        ("https://*.example.com", "https://example.com", False),  # * stands for exactly one label
        ("https://*.example.com", "https://a.b.example.com", False),
        ("https://*.example.com", "http://app.example.com", False),  # the scheme, when given, must match
        ("https://*.example.com", "https://app.example.com.evil.io", False),
        ("https://*.example.com", "https://appexample.com", False),
        ("https://*.example.com", "HTTPS://App.Example.COM", True),  # scheme and host compared case-insensitively
        ("*.example.com", "http://app.example.com", True),  # no scheme in the entry: any scheme
        ("*.example.com", "https://app.example.com", True),
        ("*.example.com", "https://example.com", False),
        ("example.com", "https://example.com", True),
        ("example.com", "http://example.com", True),
        ("example.com", "https://www.example.com", False),
        ("example.com", "https://evilexample.com", False),
        ("example.com", "https://example.com.evil.io", False),
        ("https://example.com", "http://example.com", False),
        ("https://", "https://anything.example.org", True),  # a scheme alone: every origin of that scheme
        ("https://", "https://localhost:8443", True),
        ("https://", "http://anything.example.org", False),
        ("chrome-extension://", "chrome-extension://abcdefghijklmnop", True),
        ("localhost:3000", "http://localhost:3000", True),  # host:port matches that port
        ("localhost:3000", "http://localhost:3001", False),
        ("localhost:3000", "http://localhost", False),
        ("http://localhost:3000", "https://localhost:3000", False),
        ("https://example.com:443", "https://example.com", True),  # the scheme's default port
        ("http://example.com:8080", "http://example.com:8080", True),
        ("http://example.com:8080", "http://example.com:8081", False),
        ("https://*.example.com:8443", "https://a.example.com:8443", True),
        ("https://*.example.com:8443", "https://a.example.com", False),
        ("http://[::1]:8545", "http://[::1]:8545", True),
        ("https://app.example.com", "https://app.example.com/", True),
        ("https://app.example.com", "https://app.example.com/path", False),  # an Origin has no path
        ("https://app.example.com", "null", False),  # opaque origins (file://, sandboxed iframes)
        ("https://*.example.com", "https://*.example.com", False),  # a wildcard in the request is not a match
        ("https://app.example.com", "app.example.com", False),  # an Origin always has a scheme
        ("https://app.example.com", "", False),
    ],
)
def test_origin_matching(entry: str, origin: str, allowed: bool) -> None:
    assert rules.validate_origin_entry(entry) is None
    assert rules.origin_allowed((entry,), origin) is allowed


def test_origin_entry_without_port_matches_any_port() -> None:
    """[choice] ORIGIN_ENTRY_WITHOUT_PORT_MATCHES_ANY_PORT: dev servers move ports."""
    assert rules.ORIGIN_ENTRY_WITHOUT_PORT_MATCHES_ANY_PORT is True
    assert rules.origin_allowed(("example.com",), "https://example.com:8443")
    assert rules.origin_allowed(("https://*.example.com",), "https://a.example.com:8443")


def test_origins_are_ored() -> None:
    entries = ("https://app.example.com", "http://localhost:3000")
    assert rules.origin_allowed(entries, "https://app.example.com")
    assert rules.origin_allowed(entries, "http://localhost:3000")
    assert not rules.origin_allowed(entries, "https://other.example.com")


def test_missing_origin_is_rejected() -> None:
    assert rules.REJECT_MISSING_ORIGIN is True
    assert not rules.origin_allowed(("https://",), None)
    assert rules.headers_refusal(Allowlists(origins=("https://",)), None, "ua") == (
        "no Origin header and an origin allowlist is set"
    )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("https://app.*.example.com", "left-most"),
        ("*", "left-most"),
        ("**.example.com", "left-most"),
        ("https://*example.com", "left-most"),
        ("*.*.example.com", "left-most"),
        ("https://example.com/path", "expected"),
        ("https://example.com:99999", "expected"),
        ("https://example.com:0", "expected"),
        ("exa mple.com", "expected"),
        ("", "expected"),
        ("example.com\n", "expected"),
        ("://example.com", "expected"),
    ],
)
def test_validate_origin_entry_errors(entry: str, problem: str) -> None:
    message = rules.validate_origin_entry(entry)
    assert message is not None and problem in message, message


@pytest.mark.parametrize("entry", ["https://*.example.com", "*.example.com", "https://", "localhost:3000",
                                   "http://[::1]:8545", "example.com", "https://example.com:443", "wss://"])
def test_validate_origin_entry_accepts(entry: str) -> None:
    assert rules.validate_origin_entry(entry) is None


# ---------------------------------------------------------------------------------------------------------------
# User agents and methods


@pytest.mark.parametrize(
    ("user_agent", "allowed"),
    [
        ("web3.py/7.0.0", True),
        ("Python/3.11 web3.py/7.0.0", True),  # a substring anywhere
        ("WEB3.PY/7", False),  # case-sensitive
        ("Web3.py/7", False),
        ("web3", False),
        ("", False),
        (None, False),  # [choice] no User-Agent header: rejected
        ("MyApp/1.2 (iOS)", True),
    ],
)
def test_user_agent_matching(user_agent: str | None, allowed: bool) -> None:
    assert rules.user_agent_allowed(("web3.py", "MyApp/"), user_agent) is allowed


def test_missing_user_agent_choice() -> None:
    assert rules.REJECT_MISSING_USER_AGENT is True
    assert rules.headers_refusal(Allowlists(user_agents=("x",)), None, None) == (
        "no User-Agent header and a user-agent allowlist is set"
    )


def test_method_matching() -> None:
    lists = Allowlists(methods=("eth_blockNumber", "eth_getBalance"))
    assert rules.call_refusal(lists, "eth_blockNumber", []) is None
    assert rules.call_refusal(lists, "eth_getBalance", [A1, "latest"]) is None
    assert rules.call_refusal(lists, "eth_chainId", []) == "method eth_chainId not in allowlist"
    assert rules.call_refusal(lists, "ETH_BLOCKNUMBER", []) is not None  # exact names
    assert rules.call_refusal(lists, "eth_blockNumber ", []) is not None


# ---------------------------------------------------------------------------------------------------------------
# Contract addresses


@pytest.mark.parametrize(
    ("method", "params", "addresses"),
    [
        ("eth_getBalance", [A1, "latest"], [A1]),
        ("eth_getCode", [A1, "latest"], [A1]),
        ("eth_getStorageAt", [A1, "0x0", "latest"], [A1]),
        ("eth_getTransactionCount", [A1, "pending"], [A1]),
        ("eth_getBalance", [], []),
        ("eth_getBalance", [42], []),
        ("eth_getBalance", {"address": A1}, []),  # by-name params: no params[0]
        ("eth_call", [{"to": A1, "data": "0x"}, "latest"], [A1]),
        ("eth_call", [{"from": A2, "data": "0x"}, "latest"], []),  # no `to`: refused when a list exists
        ("eth_call", [A1], []),
        ("eth_estimateGas", [{"to": A1, "from": A2}], [A1]),
        ("eth_estimateGas", [{"data": "0x60"}], []),
        ("eth_getLogs", [{"address": A1, "fromBlock": "0x0"}], [A1]),
        ("eth_getLogs", [{"address": [A1, A2]}], [A1, A2]),
        ("eth_getLogs", [{"fromBlock": "0x0"}], []),  # absent = rejected
        ("eth_getLogs", [{"address": []}], []),
        ("eth_getLogs", [{"address": [A1, 7]}], []),
        ("eth_getLogs", [], []),
        ("eth_blockNumber", [], None),  # other methods: not restricted by this list
        ("eth_sendRawTransaction", ["0x00"], None),
        ("eth_getTransactionReceipt", ["0x" + "00" * 32], None),
        ("eth_getProof", [A3, [], "latest"], None),
        ("eth_newFilter", [{"address": A3}], None),
    ],
)
def test_addresses_of_call(method: str, params: object, addresses: list[str] | None) -> None:
    assert rules.addresses_of_call(method, params) == addresses


def test_the_seven_address_methods() -> None:
    assert rules.ADDRESS_RESTRICTED_METHODS == {
        "eth_call", "eth_estimateGas", "eth_getLogs", "eth_getBalance", "eth_getCode", "eth_getStorageAt",
        "eth_getTransactionCount",
    }


def test_address_refusals() -> None:
    lists = Allowlists(addresses=(A1.lower(), A2))
    assert rules.call_refusal(lists, "eth_getBalance", [A1.upper().replace("0X", "0x"), "latest"]) is None
    assert rules.call_refusal(lists, "eth_getBalance", [A3, "latest"]) == f"address {A3} not in allowlist"
    assert rules.call_refusal(lists, "eth_getLogs", [{"address": [A1, A2]}]) is None
    assert rules.call_refusal(lists, "eth_getLogs", [{"address": [A1, A3]}]) == f"address {A3} not in allowlist"
    assert "names no contract address" in rules.call_refusal(lists, "eth_getLogs", [{}])
    assert "names no contract address" in rules.call_refusal(lists, "eth_call", [{"data": "0x"}, "latest"])
    assert rules.call_refusal(lists, "eth_blockNumber", []) is None


def test_types_are_anded() -> None:
    lists = Allowlists(methods=("eth_getBalance",), addresses=(A1.lower(),), origins=("https://a.example.com",),
                       user_agents=("web3.py",))
    assert rules.headers_refusal(lists, "https://a.example.com", "web3.py/7") is None
    assert rules.headers_refusal(lists, "https://b.example.com", "web3.py/7") is not None
    assert rules.headers_refusal(lists, "https://a.example.com", "curl/8") is not None
    assert rules.call_refusal(lists, "eth_getBalance", [A1, "latest"]) is None
    assert rules.call_refusal(lists, "eth_getBalance", [A2, "latest"]) is not None
    assert rules.call_refusal(lists, "eth_getCode", [A1, "latest"]) is not None


def test_wildcard_choice_is_one_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not rules.origin_allowed(("https://*.example.com",), "https://a.b.example.com")
    monkeypatch.setattr(rules, "WILDCARD_MATCHES_EXACTLY_ONE_LABEL", False)
    assert rules.origin_allowed(("https://*.example.com",), "https://a.b.example.com")
    assert not rules.origin_allowed(("https://*.example.com",), "https://example.com")


# ---------------------------------------------------------------------------------------------------------------
# The decision itself (gateway/access.py), without a server


@pytest.fixture(scope="module")
def es_pair() -> tuple[bytes, str]:

    private_pem, public_pem = generate_key_pair("ES256")
    return private_pem, public_pem.decode()


def decide(api_key: object, authorization: str | None, origin: str | None = None, user_agent: str | None = "ua"):
    from mockinfura.gateway.access import check_request
    from mockinfura.gateway.jwt import JwtVerifier

    return check_request(api_key=api_key, network="mainnet", authorization=authorization, origin=origin,
                         user_agent=user_agent, verifier=JwtVerifier(), now=time.time(), jwt_leeway=0)


def jwt_api_key(public_pem: str, allowlists: Allowlists) -> object:
    from mockinfura.config import ApiKeyConfig, JwtPublicKey
    from mockinfura.tokens import load_public_key

    loaded = load_public_key(public_pem)
    return ApiKeyConfig(key="9" * 32, allowlists=allowlists, jwt_public_keys=(
        JwtPublicKey(name="es", id="1" * 32, fingerprint=loaded.fingerprint, pem=loaded.pem, alg=loaded.alg),))


def test_decision_jwt_claims_replace(es_pair: tuple[bytes, str]) -> None:
    from mockinfura.gateway.access import JWT_ALLOWLIST_CLAIMS_REPLACE_KEY_ALLOWLISTS, Grant

    assert JWT_ALLOWLIST_CLAIMS_REPLACE_KEY_ALLOWLISTS is True
    api_key = jwt_api_key(es_pair[1], Allowlists(methods=("eth_blockNumber",), user_agents=("KeyAgent",)))
    bearer = "Bearer " + make_token(es_pair[0], "1" * 32, allowlists={"methods": ["eth_chainId"]})
    grant = decide(api_key, bearer, user_agent="other")
    assert isinstance(grant, Grant)
    assert grant.call_refusal("eth_chainId", []) is None
    assert grant.call_refusal("eth_blockNumber", []) is not None
    plain = decide(api_key, "Bearer " + make_token(es_pair[0], "1" * 32), user_agent="KeyAgent")
    assert plain.call_refusal("eth_blockNumber", []) is None and plain.call_refusal("eth_chainId", []) is not None


def test_decision_both_lists_when_the_choice_is_flipped(es_pair: tuple[bytes, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mockinfura.gateway import access

    monkeypatch.setattr(access, "JWT_ALLOWLIST_CLAIMS_REPLACE_KEY_ALLOWLISTS", False)
    api_key = jwt_api_key(es_pair[1], Allowlists(methods=("eth_blockNumber", "eth_chainId"),
                                                 user_agents=("KeyAgent",)))
    bearer = "Bearer " + make_token(es_pair[0], "1" * 32, allowlists={"methods": ["eth_chainId"]})
    assert decide(api_key, bearer, user_agent="other").status == 403  # the key's user-agent list applies too
    grant = decide(api_key, bearer, user_agent="KeyAgent/1")
    assert grant.call_refusal("eth_chainId", []) is None
    assert grant.call_refusal("eth_blockNumber", []) is not None  # the token's list
    assert grant.call_refusal("eth_getCode", []) is not None  # both


def test_decision_missing_secret_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from mockinfura.config import ApiKeyConfig
    from mockinfura.gateway import access

    api_key = ApiKeyConfig(key="8" * 32, secret="s")
    assert isinstance(decide(api_key, None), access.Grant)
    monkeypatch.setattr(access, "MISSING_SECRET_PASSES_WHEN_NOT_REQUIRED", False)
    assert decide(api_key, None).body == b"invalid project id or project secret\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer abc", ("bearer", "abc")),
        ("Bearer  abc", ("bearer", "abc")),  # the docs' own example: two spaces
        ("bearer abc", ("bearer", "abc")),
        ("BEARER\tabc", ("bearer", "abc")),
        ("Bearer", ("bearer", "")),
        ("Basic OnNlY3JldA==", ("basic", "secret")),  # base64(":secret")
        ("basic OnNlY3JldA==", ("basic", "secret")),
        ("Token abc", (None, None)),  # [choice] another scheme: as if absent
        ("abc.def.ghi", (None, None)),
    ],
)
def test_parse_authorization(value: str, expected: tuple[str | None, str | None]) -> None:
    from mockinfura.gateway.access import UNKNOWN_AUTH_SCHEME_IS_ABSENT, parse_authorization

    assert UNKNOWN_AUTH_SCHEME_IS_ABSENT is True
    credentials = parse_authorization(value)
    got = ("bearer", credentials.bearer_token) if credentials.bearer_token is not None else (
        ("basic", credentials.basic_password) if credentials.basic_password is not None else (None, None))
    assert got == expected


# ---------------------------------------------------------------------------------------------------------------
# Over HTTP

METHODS_KEY = "e0000000000000000000000000000001"
ADDRESSES_KEY = "e0000000000000000000000000000002"
ORIGINS_KEY = "e0000000000000000000000000000003"
AGENTS_KEY = "e0000000000000000000000000000004"
ALL_KEY = "e0000000000000000000000000000005"
JWT_KEY = "e0000000000000000000000000000006"
THIRTY_KEY = "e0000000000000000000000000000007"
OPEN_KEY = "e0000000000000000000000000000008"
JWT_KID = "ee000000000000000000000000000001"


@pytest.fixture(scope="module")
def jwt_private_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    private_pem, public_pem = generate_key_pair("ES256")
    path = tmp_path_factory.mktemp("allowlists") / "jwt.public.pem"
    path.write_bytes(public_pem)
    return private_pem, path


@pytest.fixture(scope="module")
def served(jwt_private_pem: tuple[bytes, Path]) -> ServerProcess:
    thirty = [f"method_{i}" for i in range(29)] + ["eth_blockNumber"]
    config = f"""
[api_keys.methods]
key = "{METHODS_KEY}"
allowlists = {{ methods = ["eth_blockNumber", "eth_getBalance"] }}

[api_keys.addresses]
key = "{ADDRESSES_KEY}"
allowlists = {{ addresses = ["{A1}", "{A2}"] }}

[api_keys.origins]
key = "{ORIGINS_KEY}"
allowlists = {{ origins = ["https://*.example.com", "http://localhost:3000"] }}

[api_keys.agents]
key = "{AGENTS_KEY}"
allowlists = {{ user_agents = ["web3.py", "MyApp/"] }}

[api_keys.all]
key = "{ALL_KEY}"
[api_keys.all.allowlists]
methods = ["eth_blockNumber", "eth_getBalance", "eth_chainId"]
addresses = ["{A1}"]
origins = ["https://app.example.com"]
user_agents = ["web3.py"]

[api_keys.jwt]
key = "{JWT_KEY}"
allowlists = {{ methods = ["eth_blockNumber"], user_agents = ["KeyAgent"] }}
jwt_public_keys = [{{ name = "es", public_key = "{jwt_private_pem[1]}", id = "{JWT_KID}" }}]

[api_keys.thirty]
key = "{THIRTY_KEY}"
allowlists = {{ methods = {thirty!r} }}

[api_keys.open]
key = "{OPEN_KEY}"
""".replace("'", '"')
    with ServerProcess(config) as process:
        yield process


@pytest.fixture(scope="module")
def client() -> httpx.Client:
    with httpx.Client(timeout=30) as c:
        yield c


def call(method: str, params: list | None = None, id_: int = 1) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or []}


def send(client: httpx.Client, served: ServerProcess, key: str, body: object, *, user_agent: str | None = "web3.py/7",
         origin: str | None = None, authorization: str | None = None) -> httpx.Response:
    """POST BODY; USER_AGENT None sends no User-Agent header at all."""
    headers = {}
    if origin is not None:
        headers["Origin"] = origin
    if authorization is not None:
        headers["Authorization"] = authorization
    request = client.build_request("POST", served.url(key), json=body, headers=headers)
    if user_agent is None:
        del request.headers["User-Agent"]
    else:
        request.headers["User-Agent"] = user_agent
    return client.send(request)


def assert_rejected(response: httpx.Response) -> None:
    assert response.status_code == 403, (response.status_code, response.text)
    assert response.headers["content-type"] == TEXT_PLAIN
    assert response.content == REJECTED
    assert response.headers["vary"] == "Origin"
    assert response.headers["x-mockinfura-reason"]


def assert_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, (response.status_code, response.text, response.headers.get("x-mockinfura-reason"))
    assert response.headers["content-type"] == "application/json"


def test_exact_rejection_reply(client: httpx.Client, served: ServerProcess) -> None:
    response = send(client, served, METHODS_KEY, call("eth_chainId"))
    assert_rejected(response)
    assert response.headers["x-mockinfura-reason"] == "method eth_chainId not in allowlist"
    assert "id" not in response.json()


def test_methods_over_http(client: httpx.Client, served: ServerProcess) -> None:
    assert_ok(send(client, served, METHODS_KEY, call("eth_blockNumber")))
    assert_ok(send(client, served, METHODS_KEY, call("eth_getBalance", [A3, "latest"])))  # OR within the type
    assert_rejected(send(client, served, METHODS_KEY, call("eth_getCode", [A3, "latest"])))
    # the test controls are unknown methods on Infura's paths, and not in the list either
    assert_rejected(send(client, served, METHODS_KEY, call("evm_mine")))


def test_thirty_entries_are_allowed(client: httpx.Client, served: ServerProcess) -> None:
    assert_ok(send(client, served, THIRTY_KEY, call("eth_blockNumber")))
    assert_rejected(send(client, served, THIRTY_KEY, call("eth_chainId")))


def test_batch_refused_whole(client: httpx.Client, served: ServerProcess) -> None:
    response = send(client, served, METHODS_KEY, [call("eth_blockNumber", id_=1), call("eth_chainId", id_=2)])
    assert_rejected(response)
    response = send(client, served, METHODS_KEY, [call("eth_chainId", id_=1), call("eth_blockNumber", id_=2)])
    assert_rejected(response)
    both = send(client, served, METHODS_KEY, [call("eth_blockNumber", id_=1), call("eth_getBalance", [A1], id_=2)])
    assert_ok(both)
    assert [r["id"] for r in both.json()] == [1, 2]
    # addresses too: one call of the batch names a contract that is not listed
    batch = [call("eth_getBalance", [A1, "latest"], 1), call("eth_getBalance", [A3, "latest"], 2)]
    assert_rejected(send(client, served, ADDRESSES_KEY, batch))


def test_addresses_over_http(client: httpx.Client, served: ServerProcess) -> None:
    for params in ([A1, "latest"], [A1.lower(), "latest"], [A2.upper().replace("0X", "0x"), "latest"]):
        assert_ok(send(client, served, ADDRESSES_KEY, call("eth_getBalance", params)))
    assert_rejected(send(client, served, ADDRESSES_KEY, call("eth_getBalance", [A3, "latest"])))
    assert_ok(send(client, served, ADDRESSES_KEY, call("eth_getCode", [A1, "latest"])))
    assert_ok(send(client, served, ADDRESSES_KEY, call("eth_getStorageAt", [A1, "0x0", "latest"])))
    assert_ok(send(client, served, ADDRESSES_KEY, call("eth_getTransactionCount", [A2, "latest"])))
    assert_rejected(send(client, served, ADDRESSES_KEY, call("eth_getTransactionCount", [A3, "latest"])))
    assert_ok(send(client, served, ADDRESSES_KEY, call("eth_call", [{"to": A1, "data": "0x"}, "latest"])))
    assert_rejected(send(client, served, ADDRESSES_KEY, call("eth_call", [{"to": A3, "data": "0x"}, "latest"])))
    assert_rejected(send(client, served, ADDRESSES_KEY, call("eth_estimateGas", [{"data": "0x60"}])))
    assert_ok(send(client, served, ADDRESSES_KEY, call("eth_getLogs", [{"address": [A1, A2], "fromBlock": "0x0"}])))
    assert_rejected(send(client, served, ADDRESSES_KEY, call("eth_getLogs", [{"address": [A1, A3]}])))
    assert_rejected(send(client, served, ADDRESSES_KEY, call("eth_getLogs", [{"fromBlock": "0x0"}])))
    # methods outside the seven are not restricted by the address list
    assert_ok(send(client, served, ADDRESSES_KEY, call("eth_blockNumber")))
    assert_ok(send(client, served, ADDRESSES_KEY, call("eth_getBlockByNumber", ["latest", False])))


def test_origins_over_http(client: httpx.Client, served: ServerProcess) -> None:
    assert_ok(send(client, served, ORIGINS_KEY, call("eth_blockNumber"), origin="https://app.example.com"))
    assert_ok(send(client, served, ORIGINS_KEY, call("eth_blockNumber"), origin="http://localhost:3000"))
    assert_rejected(send(client, served, ORIGINS_KEY, call("eth_blockNumber"), origin="https://example.com"))
    assert_rejected(send(client, served, ORIGINS_KEY, call("eth_blockNumber"), origin="http://localhost:5173"))
    response = send(client, served, ORIGINS_KEY, call("eth_blockNumber"))
    assert_rejected(response)
    assert response.headers["x-mockinfura-reason"] == "no Origin header and an origin allowlist is set"


def test_user_agents_over_http(client: httpx.Client, served: ServerProcess) -> None:
    assert_ok(send(client, served, AGENTS_KEY, call("eth_blockNumber"), user_agent="web3.py/7.0"))
    assert_ok(send(client, served, AGENTS_KEY, call("eth_blockNumber"), user_agent="Dart MyApp/2"))
    assert_rejected(send(client, served, AGENTS_KEY, call("eth_blockNumber"), user_agent="Web3.py/7.0"))
    assert_rejected(send(client, served, AGENTS_KEY, call("eth_blockNumber"), user_agent="python-httpx/0.28"))
    response = send(client, served, AGENTS_KEY, call("eth_blockNumber"), user_agent=None)
    assert_rejected(response)
    assert response.headers["x-mockinfura-reason"] == "no User-Agent header and a user-agent allowlist is set"


def test_types_are_anded_over_http(client: httpx.Client, served: ServerProcess) -> None:
    good = {"origin": "https://app.example.com", "user_agent": "web3.py/7"}
    assert_ok(send(client, served, ALL_KEY, call("eth_getBalance", [A1, "latest"]), **good))
    assert_ok(send(client, served, ALL_KEY, call("eth_chainId"), **good))
    assert_rejected(send(client, served, ALL_KEY, call("eth_getBalance", [A2, "latest"]), **good))
    assert_rejected(send(client, served, ALL_KEY, call("eth_getCode", [A1, "latest"]), **good))
    assert_rejected(send(client, served, ALL_KEY, call("eth_chainId"), origin="https://b.example.com",
                         user_agent="web3.py/7"))
    assert_rejected(send(client, served, ALL_KEY, call("eth_chainId"), origin="https://app.example.com",
                         user_agent="ethers/6"))


def test_open_key_takes_anything(client: httpx.Client, served: ServerProcess) -> None:
    assert_ok(send(client, served, OPEN_KEY, call("eth_chainId"), user_agent=None))
    assert_ok(send(client, served, OPEN_KEY, call("eth_getLogs", [{"fromBlock": "0x0"}]), origin="null"))


def token(jwt_private_pem: tuple[bytes, Path], **allowlists: list[str]) -> str:
    return "Bearer " + make_token(jwt_private_pem[0], JWT_KID, allowlists=allowlists)


def test_jwt_without_claims_leaves_the_key_allowlists(client: httpx.Client, served: ServerProcess,
                                                      jwt_private_pem: tuple[bytes, Path]) -> None:
    bearer = token(jwt_private_pem)
    assert_ok(send(client, served, JWT_KEY, call("eth_blockNumber"), user_agent="KeyAgent/1", authorization=bearer))
    assert_rejected(send(client, served, JWT_KEY, call("eth_chainId"), user_agent="KeyAgent/1", authorization=bearer))
    assert_rejected(send(client, served, JWT_KEY, call("eth_blockNumber"), user_agent="web3.py", authorization=bearer))
    # and no JWT at all (the key does not require one): the key's lists too
    assert_ok(send(client, served, JWT_KEY, call("eth_blockNumber"), user_agent="KeyAgent/1"))
    assert_rejected(send(client, served, JWT_KEY, call("eth_chainId"), user_agent="KeyAgent/1"))


def test_jwt_claims_replace_the_key_allowlists(client: httpx.Client, served: ServerProcess,
                                               jwt_private_pem: tuple[bytes, Path]) -> None:
    bearer = token(jwt_private_pem, methods=["eth_chainId"])
    # the key's lists (eth_blockNumber, KeyAgent) are not evaluated; the token's are
    assert_ok(send(client, served, JWT_KEY, call("eth_chainId"), user_agent="anything", authorization=bearer))
    response = send(client, served, JWT_KEY, call("eth_blockNumber"), user_agent="KeyAgent/1", authorization=bearer)
    assert_rejected(response)
    assert response.headers["x-mockinfura-reason"] == "method eth_blockNumber not in allowlist"
    assert_rejected(send(client, served, JWT_KEY, [call("eth_chainId", id_=1), call("eth_blockNumber", id_=2)],
                         authorization=bearer))


def test_jwt_claims_of_every_type(client: httpx.Client, served: ServerProcess,
                                  jwt_private_pem: tuple[bytes, Path]) -> None:
    bearer = token(jwt_private_pem, origins=["https://*.dapp.io"], user_agents=["Wallet/"], addresses=[A3])
    ok = {"origin": "https://x.dapp.io", "user_agent": "Wallet/3", "authorization": bearer}
    assert_ok(send(client, served, JWT_KEY, call("eth_getBalance", [A3, "latest"]), **ok))
    assert_ok(send(client, served, JWT_KEY, call("eth_chainId"), **ok))  # no methods claim: any method
    assert_rejected(send(client, served, JWT_KEY, call("eth_getBalance", [A1, "latest"]), **ok))
    assert_rejected(send(client, served, JWT_KEY, call("eth_chainId"), **{**ok, "origin": "https://dapp.io"}))
    assert_rejected(send(client, served, JWT_KEY, call("eth_chainId"), **{**ok, "user_agent": "wallet/3"}))
    assert_rejected(send(client, served, JWT_KEY, call("eth_chainId"), **{**ok, "user_agent": None}))


def test_jwt_checked_before_allowlists(client: httpx.Client, served: ServerProcess,
                                       jwt_private_pem: tuple[bytes, Path]) -> None:
    """Order (infura.md 2): JWT, then allowlists: a bad token on a refused method is a 401, not a 403."""
    expired = "Bearer " + make_token(jwt_private_pem[0], JWT_KID, ttl=60, now=1_000_000)
    response = send(client, served, JWT_KEY, call("eth_chainId"), user_agent="curl", authorization=expired)
    assert response.status_code == 401
    assert response.content == b"invalid JWT\n"
    assert response.headers["x-mockinfura-reason"] == "jwt expired"
