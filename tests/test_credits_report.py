"""`pytest --infura-credits`: what a test suite would spend on Infura, per test and per method."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
def test_reads(infura_w3):
    infura_w3.eth.block_number          # 80
    infura_w3.eth.block_number          # 80
    infura_w3.eth.chain_id              # 5 (web3 may cache it; one call at most)

def test_logs(infura_w3):
    infura_w3.eth.get_logs({"fromBlock": 0})   # 255

def test_no_mock():
    assert True
"""


def _lines(result: pytest.RunResult) -> list[str]:
    return [line.strip() for line in result.outlines]


@pytest.mark.parametrize("workers", [None, "2"])
def test_credits_report(pytester: pytest.Pytester, workers: str | None) -> None:
    pytester.makepyfile(SUITE)
    args = ["-p", "no:cacheprovider", "--infura-credits"] + (["-n", workers] if workers else [])
    result = pytester.runpytest_subprocess(*args, timeout=180)
    result.assert_outcomes(passed=3)
    lines = _lines(result)
    assert any("mockinfura: Infura credits" in line for line in lines)
    assert "255  test_credits_report.py::test_logs" in lines
    reads = next(line for line in lines if line.endswith("test_credits_report.py::test_reads"))
    assert int(reads.split()[0].replace(",", "")) in (160, 165)
    assert any(line.startswith("160  eth_blockNumber (2 calls)") for line in lines)
    assert any(line.startswith("255  eth_getLogs (1 calls)") for line in lines)
    total = next(line for line in lines if line.startswith("total:"))
    assert total in ("total: 415 credits over 2 tests", "total: 420 credits over 2 tests")


def test_no_report_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(passed=3)
    assert not any("Infura credits" in line for line in result.outlines)
