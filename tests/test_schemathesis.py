"""Schemathesis against the control plane's own OpenAPI schema (issue 8, part 1), on a live server on 127.0.0.1.

Every operation of `/openapi.json` gets generated requests (fixed seed, bounded examples); the checks: no 5xx, the
status code is one the schema declares, and the body and content type conform to what it declares for that status.
The destructive routes (`POST /_mock/reset`, `POST /_mock/state` restore, `DELETE /_mock/requests`, key deletes)
run too: the server is this module's own. After them the server still answers.
"""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server import ServerProcess
from tests.test_fuzz_http import StderrDrain, unexpected_server_log

OPEN_KEY = "0123456789abcdef0123456789abcdef"
EXAMPLES_PER_OPERATION = int(50 * float(os.environ.get("MOCKINFURA_FUZZ_SCALE", "1")))  # 10 for a deeper run
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def control_server(tmp_path_factory: pytest.TempPathFactory):
    state_file = tmp_path_factory.mktemp("schemathesis") / "state.json"
    with ServerProcess(extra_args=("--state", str(state_file))) as process:  # so that POST /_mock/state/save works
        drain = StderrDrain(process)
        yield process
        assert process.process.poll() is None, "the server died"
        unexpected = unexpected_server_log(drain.text_after_stop())
        assert not unexpected, unexpected[-3000:]  # no exception inside the server either


@pytest.fixture(scope="module")
def control_schema(control_server: ServerProcess):
    """The schema as the live server serves it."""
    return schemathesis.openapi.from_url(control_server.base_url + "/openapi.json")


def operation_cases() -> list:
    """(operation, generation mode) pairs, read from the app's schema without a server (pytest needs them at
    collection time): every operation with valid data, and those that take a body or a query with invalid data."""
    from mockinfura.app import create_app
    from mockinfura.config import parse_config

    document = create_app(parse_config({})).fastapi.openapi()  # type: ignore[attr-defined]
    cases = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            cases.append(pytest.param(label, GenerationMode.POSITIVE, id=f"positive-{label}"))
            # a bare string in the path has no invalid value: negative data needs a body or a query parameter
            if operation.get("requestBody") or any(p["in"] != "path" for p in operation.get("parameters", [])):
                cases.append(pytest.param(label, GenerationMode.NEGATIVE, id=f"negative-{label}"))
    return cases


# schemathesis's own pytest integration (`schemathesis.pytest.from_fixture`) does not run under pytest 9 (it sets
# `request.node._nodeid`): each operation is driven here with its strategies, under a fixed seed.
@pytest.mark.parametrize(("label", "mode"), operation_cases())
def test_control_plane_conforms_to_its_schema(control_schema, control_server: ServerProcess, label: str,
                                             mode: GenerationMode) -> None:
    operation = control_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the live server's schema"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        case.call_and_validate(base_url=control_server.base_url, checks=CHECKS, timeout=30)
        assert control_server.process.poll() is None, "the server died"

    run()


def test_server_still_answers_after_the_control_plane_fuzz(control_server: ServerProcess) -> None:
    with httpx.Client(timeout=30) as client:
        assert client.get(control_server.base_url + "/_mock/health").json()["status"] == "ok"
        reply = client.post(control_server.url(OPEN_KEY), json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        assert reply.json()["result"] == "0x1"
