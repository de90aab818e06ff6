from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.server import ServerProcess

OPEN_KEY = "0123456789abcdef0123456789abcdef"
JWT_KEY = "fedcba9876543210fedcba9876543210"
CONTRACTS = Path(__file__).parent / "contracts"


@pytest.fixture(scope="session")
def server():
    """The embedded default config, served by the real CLI on a free port."""
    with ServerProcess() as process:
        yield process


@pytest.fixture(scope="session")
def http():
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def counter_artifact() -> dict:
    return json.loads((CONTRACTS / "counter.json").read_text())


def rpc(client: httpx.Client, url: str, method: str, params: list | None = None, **kwargs) -> httpx.Response:
    return client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, **kwargs)
