"""web3.py against JWT-requiring keys, the way its docs say to send a token: `request_kwargs` headers.

web3.py then sends only those headers (no `Content-Type`); the mock must read the body as JSON anyway
(interface.md 7). Runs on the embedded default server (its demo JWT key) plus one ES256 key added at run time.
"""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
import requests
from web3 import HTTPProvider, Web3

from mockinfura.tokens import DEMO_PRIVATE_KEY_PATH, demo_key_id, generate_key_pair, load_public_key, make_token
from tests.server import ServerProcess

DEMO_API_KEY = "fedcba9876543210fedcba9876543210"
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # the first account of the default mnemonic


def web3_with(url: str, token: str, session: requests.Session | None = None, **headers: str) -> Web3:
    provider = HTTPProvider(url, request_kwargs={"headers": {"Authorization": f"Bearer {token}", **headers}},
                            exception_retry_configuration=None, session=session)
    return Web3(provider)


def demo_token(**kwargs: object) -> str:
    return make_token(DEMO_PRIVATE_KEY_PATH.read_bytes(), demo_key_id(), **kwargs)


@pytest.fixture(scope="module")
def es256_key(server: ServerProcess) -> tuple[str, bytes, str]:
    """(API key, private PEM, kid) of an ES256 key added to the running server, removed afterwards."""
    private_pem, public_pem = generate_key_pair("ES256")
    api_key = secrets.token_hex(16)
    entry = {"require_jwt": True, "jwt_public_keys": [{"name": "web3-es", "public_key": public_pem.decode()}]}
    with httpx.Client(timeout=30) as client:
        reply = client.put(f"{server.base_url}/_mock/keys/{api_key}", json=entry)
        assert reply.status_code == 201, reply.text  # PUT of a key that did not exist creates it
        kid = reply.json()["jwt_public_keys"][0]["id"]
        assert kid == load_public_key(public_pem.decode()).default_id
        yield api_key, private_pem, kid
        client.delete(f"{server.base_url}/_mock/keys/{api_key}")


def test_rs256_token_in_request_kwargs(server: ServerProcess) -> None:
    w3 = web3_with(server.url(DEMO_API_KEY), demo_token())
    assert w3.is_connected()
    assert w3.eth.chain_id == 1
    assert isinstance(w3.eth.block_number, int)
    assert w3.eth.get_balance(DEV_ACCOUNT) > 0
    sepolia = web3_with(server.url(DEMO_API_KEY, "sepolia"), demo_token())
    assert sepolia.eth.chain_id == 11155111


def test_web3_sends_no_content_type(server: ServerProcess) -> None:
    """The premise: with request_kwargs headers, web3.py sends no Content-Type, and the mock answers anyway."""
    sent: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: sent.append(response.request))
    w3 = web3_with(server.url(DEMO_API_KEY), demo_token(), session=session)
    assert w3.eth.chain_id == 1
    assert sent and "Content-Type" not in sent[-1].headers
    assert sent[-1].headers["Authorization"].startswith("Bearer ")


def test_es256_token_in_request_kwargs(server: ServerProcess, es256_key: tuple[str, bytes, str]) -> None:
    api_key, private_pem, kid = es256_key
    w3 = web3_with(server.url(api_key), make_token(private_pem, kid))
    assert w3.eth.chain_id == 1
    assert isinstance(w3.eth.block_number, int)
    # a batch is one HTTP request, one JWT check
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block_number())
        batch.add(w3.eth.get_balance(DEV_ACCOUNT))
        number, balance = batch.execute()
    assert isinstance(number, int) and balance > 0


def test_expired_token_raises_http_401(server: ServerProcess) -> None:
    expired = demo_token(now=time.time() - 7200, ttl=3600)
    w3 = web3_with(server.url(DEMO_API_KEY), expired)
    with pytest.raises(requests.HTTPError) as info:
        w3.eth.block_number  # noqa: B018
    response = info.value.response
    assert response.status_code == 401
    assert response.text == "invalid JWT\n"
    assert response.headers["X-Mockinfura-Reason"] == "jwt expired"


def test_token_of_another_key_raises(server: ServerProcess, es256_key: tuple[str, bytes, str]) -> None:
    api_key, private_pem, kid = es256_key
    w3 = web3_with(server.url(DEMO_API_KEY), make_token(private_pem, kid))
    with pytest.raises(requests.HTTPError) as info:
        w3.eth.chain_id  # noqa: B018
    assert info.value.response.status_code == 401
    assert info.value.response.headers["X-Mockinfura-Reason"].startswith("unknown kid")


def test_no_token_raises(server: ServerProcess) -> None:
    w3 = Web3(HTTPProvider(server.url(DEMO_API_KEY), exception_retry_configuration=None))
    with pytest.raises(requests.HTTPError) as info:
        w3.eth.chain_id  # noqa: B018
    assert info.value.response.status_code == 401
    assert info.value.response.headers["X-Mockinfura-Reason"] == "jwt required and missing"


def test_token_allowlist_claims_with_web3(server: ServerProcess) -> None:
    # with request_kwargs headers, web3.py sends only those: the User-Agent is requests' unless given here
    token = demo_token(allowlists={"methods": ["eth_chainId"], "user_agents": ["MyDapp/"]})
    w3 = web3_with(server.url(DEMO_API_KEY), token, **{"User-Agent": "MyDapp/1.0"})
    assert w3.eth.chain_id == 1
    plain = web3_with(server.url(DEMO_API_KEY), token)
    with pytest.raises(requests.HTTPError) as info:
        plain.eth.chain_id  # noqa: B018
    assert info.value.response.status_code == 403
    assert info.value.response.headers["X-Mockinfura-Reason"].startswith("user agent 'python-requests/")
    with pytest.raises(requests.HTTPError) as info:
        w3.eth.block_number  # noqa: B018
    assert info.value.response.status_code == 403
    assert info.value.response.text == (
        '{"jsonrpc":"2.0","error":{"code":-32002,"message":"rejected due to project ID settings"}}\n'
    )
