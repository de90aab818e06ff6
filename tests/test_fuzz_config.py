"""Property-based fuzzing of config documents (issue 8, part 1): whatever the document, `parse_config` returns a
Config or raises ConfigError, never anything else; every problem line starts with the source and names a field.

Documents are random TOML-able tables mixing valid and invalid fields and values in every section (`[server]`,
`[chain]`, `[networks.*]`, `[api_keys.*]` with allowlists and JWT public keys, junk PEMs included). The same
documents, written as TOML, go through `mockinfura check FILE` a handful of times: exit 0 or 2, never a traceback.
API keys given as JSON at run time (`api_key_from_dict`, the control plane's reader) get the same treatment, with
the strings JSON allows and TOML does not (lone surrogates).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mockinfura.config import (
    ALLOWLIST_TYPES,
    LIMIT_MINIMUMS,
    Config,
    ConfigError,
    ServerSettings,
    api_key_from_dict,
    parse_balance,
    parse_config,
)
from mockinfura.networks import CATALOGUE
from mockinfura.tokens import DEMO_PRIVATE_KEY_PATH, DEMO_PUBLIC_KEY_PATH

# Examples per property (the README's "inputs tried" adds these up).
EXAMPLES = {"parse_config": 1500, "api_key_from_dict": 400, "balances": 300, "check_cli": 12}
SOURCE = "fuzz.toml"
REPO = Path(__file__).resolve().parent.parent
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")


FUZZ_SCALE = float(os.environ.get("MOCKINFURA_FUZZ_SCALE", "1"))  # e.g. 10 for a deeper run by hand; CI: 1


def fuzz(name: str):
    return settings(max_examples=max(1, int(EXAMPLES[name] * FUZZ_SCALE)), derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------- values

DEMO_PUBLIC_PEM = DEMO_PUBLIC_KEY_PATH.read_text()
DEMO_PRIVATE_PEM = DEMO_PRIVATE_KEY_PATH.read_text()
JUNK_PEMS = [
    "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----",
    "-----BEGIN PUBLIC KEY-----\n" + "A" * 5000 + "\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "-----BEGIN RSA PUBLIC KEY-----\nMAoCAwEAAQIDAQAB\n-----END RSA PUBLIC KEY-----",
    DEMO_PUBLIC_PEM.replace("A", "B", 3),
    DEMO_PUBLIC_PEM[: len(DEMO_PUBLIC_PEM) // 2],
    DEMO_PRIVATE_PEM,
    "-----BEGIN\x00 PUBLIC KEY-----",
    "-----BEGIN PUBLIC KEY-----\n\u00e9\u00e9\n-----END PUBLIC KEY-----",
]

toml_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # TOML strings: any scalar value
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-5, 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    toml_text,
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(toml_text, children, max_size=3),
    max_leaves=8,
)


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value for the field, sometimes anything TOML can hold."""
    return st.one_of(valid, valid, valid, toml_values)


def table(fields: dict[str, st.SearchStrategy], *, junk: bool = True) -> st.SearchStrategy:
    """A table with any subset of FIELDS (each value from its strategy) and sometimes an unknown field."""
    base = st.fixed_dictionaries({}, optional={name: maybe(strategy) for name, strategy in fields.items()})
    if not junk:
        return base
    extra = st.dictionaries(st.sampled_from(["unknown", "Max_Body_Bytes", "", " ", "key ", "allowlist"]) | toml_text,
                            toml_values, max_size=1)
    return st.tuples(base, extra).map(lambda pair: {**pair[1], **pair[0]})


sizes = st.one_of(st.integers(-1, 10**9), st.sampled_from([0, 1, 7, 8, 1023, 1024, 2**63 - 1]))
seconds = st.one_of(st.floats(-1, 10**6), st.sampled_from([0, 0.001, 0.1, float("inf"), float("nan"), -0.0]),
                    st.integers(-1, 10**6))
network_names = st.one_of(st.sampled_from(sorted(CATALOGUE)), st.sampled_from(["Mainnet", "solana", "", "main net"]))
server_fields = {
    "default_network": network_names,
    "method_not_found_status": st.sampled_from([200, 400, 404, 0, -200]),
    "jwt_leeway_seconds": seconds,
    "rate_limit_style": st.sampled_from(["current", "legacy", "Legacy", ""]),
    "control": st.sampled_from(["loopback", "open", "closed", ""]),
    "control_token": toml_text,
    "tls_names": st.lists(st.sampled_from(["localhost", "127.0.0.1", "::1", "*.example.com", "a..b", "", "x" * 300,
                                           "mainnet.infura.io", "-bad-.com", "1.2.3.4.5"]) | toml_text, max_size=4),
    **{name: (seconds if isinstance(getattr(ServerSettings(), name), float) else sizes) for name in LIMIT_MINIMUMS},
}
mnemonics = st.one_of(
    st.sampled_from([
        "test test test test test test test test test test test junk",
        "test test test test test test test test test test test test",  # bad checksum
        "abandon " * 11 + "about",
        "abandon " * 23 + "art",
        "", "  ", "junk", "TEST test test test test test test test test test test junk",
    ]),
    st.lists(st.sampled_from(["test", "junk", "abandon", "zoo", "wrong", "notaword", "\u00e9"]), min_size=11,
             max_size=25).map(" ".join),
    toml_text,
)
balances = st.one_of(
    st.sampled_from(["10000 ether", "5 gwei", "123 wei", "123", "1.5 ether", "0.0000000000000000001 ether",
                     "-1 ether", "1e3 ether", "1 ETHER", "ether", "1 2 ether", "nan ether", "inf ether", "1e100000 ether",
                     "", "0x10 wei", "1_000 ether"]),
    st.integers(-5, 2**300),
    st.floats(allow_nan=True),
)
chain_fields = {"mnemonic": mnemonics, "accounts": st.integers(-2, 1200), "balance": balances, "block_time": seconds}
fixture_paths = st.sampled_from(["fixtures/nowhere", str(REPO / "fixtures" / "mainnet"), str(REPO / "fixtures"),
                                 "", ".", "/dev/null", "a\x00b", "../" * 40, "\u00e9/\u00e9", "x" * 5000])
network_fields = {
    "backend": st.sampled_from(["evm", "canned", "anvil", "upstream", "geth", ""]),
    "fixtures": st.lists(fixture_paths, max_size=2),
    "url": st.sampled_from(["http://127.0.0.1:8546", "https://node.example/rpc", "ftp://x", "http://", "", "http://a b",
                            "http://\x00"]),
    "anvil_path": st.sampled_from(["anvil", "/nonexistent/anvil", "bin/anvil", "", "a\x00b", "~/anvil"]),
    "timeout": seconds,
}
hex32 = st.binary(min_size=16, max_size=16).map(bytes.hex)
api_key_strings = st.one_of(hex32, hex32.map(str.upper), st.sampled_from(["", "0" * 31, "0" * 33, "g" * 32]), toml_text)
addresses = st.one_of(st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
                      st.sampled_from(["0x", "0x123", "1937c5c515057553ccbd46d5866455ce66290284", ""]))
origins = st.sampled_from(["https://*.example.com", "http://localhost:3000", "https://", "*", "*.example.com",
                           "https://a.*.example.com", "https://**.x", "example.com:99999", "http://[::1]:80", "",
                           "https://example.com/path", "mailto:x", "https://*"])


def allowlist_entries(entries: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.lists(entries, max_size=4), st.lists(entries, min_size=29, max_size=32))


allowlist_fields = {
    "methods": allowlist_entries(st.sampled_from(["eth_chainId", "eth_getBalance", ""]) | toml_text),
    "addresses": allowlist_entries(addresses),
    "origins": allowlist_entries(origins | toml_text),
    "user_agents": allowlist_entries(st.sampled_from(["web3.py", "Mozilla/", ""]) | toml_text),
}
jwt_public_key_tables = table({
    "name": toml_text,
    "public_key": st.one_of(st.sampled_from([DEMO_PUBLIC_PEM, str(DEMO_PUBLIC_KEY_PATH), str(DEMO_PRIVATE_KEY_PATH),
                                             "keys/none.pem", "", " ", "/", "a\x00b.pem", "-----BEGIN"]),
                            st.sampled_from(JUNK_PEMS)),
    "id": st.one_of(hex32, st.sampled_from(["", "ABC", "0" * 32])),
})
api_key_fields = {
    "key": api_key_strings,
    "label": toml_text,
    "secret": st.sampled_from(["s3cret", "", " ", "\x00"]) | toml_text,
    "require_secret": st.booleans(),
    "require_jwt": st.booleans(),
    "secret_overrides_allowlists": st.booleans(),
    "networks": st.lists(network_names, max_size=3),
    "plan": st.sampled_from(["unlimited", "free", "developer", "team", "enterprise", ""]),
    "credits_per_second": sizes,
    "credits_per_day": sizes,
    "allowlists": table({name: allowlist_entries_strategy for name, allowlist_entries_strategy in allowlist_fields.items()}),
    "jwt_public_keys": st.lists(jwt_public_key_tables, max_size=4),
}
api_key_tables = table(api_key_fields)
documents = st.fixed_dictionaries({}, optional={
    "server": maybe(table(server_fields)),
    "chain": maybe(table(chain_fields)),
    "networks": maybe(st.dictionaries(network_names | toml_text, maybe(table(network_fields)), max_size=3)),
    "api_keys": maybe(st.dictionaries(toml_text, maybe(api_key_tables), max_size=3)),
    "unknown_section": toml_values,
})



def plain(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """Any subset of FIELDS, each from its own (mostly valid) strategy: documents that often parse."""
    return st.fixed_dictionaries({}, optional=fields)


plausible_api_keys = plain({**api_key_fields, "allowlists": plain(allowlist_fields),
                            "jwt_public_keys": st.lists(plain({"name": toml_text, "public_key": st.sampled_from(
                                [DEMO_PUBLIC_PEM, str(DEMO_PUBLIC_KEY_PATH)] + JUNK_PEMS[:2])}), max_size=2)})
plausible_documents = st.fixed_dictionaries({}, optional={
    "server": plain(server_fields),
    "chain": plain({**chain_fields, "mnemonic": st.just("test test test test test test test test test test test junk")}),
    "networks": st.dictionaries(st.sampled_from(sorted(CATALOGUE)), plain({"backend": st.just("evm")}), max_size=2),
    "api_keys": st.dictionaries(st.text(max_size=8), plausible_api_keys, max_size=2),
})
any_documents = st.one_of(documents, plausible_documents)

# ---------------------------------------------------------------------------------------------- the oracle

def assert_problem_lines(problems: list[str], source: str, document: dict[str, Any]) -> None:
    """Every line: `<source>: <field>: <message>`, the field a dotted path that starts at a top-level name."""
    assert problems, "a ConfigError with no problem in it"
    tops = tuple(document) or ("",)
    for line in problems:
        assert line.startswith(f"{source}: "), line
        rest = line[len(source) + 2:]
        assert any(rest.startswith(top) and rest[len(top):len(top) + 1] in (".", ":", "[") for top in tops), line
        field, sep, message = rest.partition(": ")
        assert field and sep and message, line
        assert not TRACEBACK.search(line), line


def assert_config_sane(config: Config) -> None:
    """A Config that parsed holds only values the server can use."""
    server = config.server
    for name in ("jwt_leeway_seconds", "keep_alive_seconds"):
        value = getattr(server, name)
        assert math.isfinite(value) and value >= 0, (name, value)
    for name, minimum in LIMIT_MINIMUMS.items():
        assert getattr(server, name) >= minimum, name
    assert math.isfinite(config.chain.block_time) and config.chain.block_time >= 0
    assert 1 <= config.chain.accounts <= 1000
    assert 0 <= config.chain.balance < 2**256
    for network in config.networks.values():
        assert math.isfinite(network.timeout) and network.timeout > 0, network
    for api_key in config.api_keys.values():
        assert re.fullmatch(r"[0-9a-f]{32}", api_key.key), api_key.key
        assert len(api_key.jwt_public_keys) <= 3
        for name in ALLOWLIST_TYPES:
            assert len(getattr(api_key.allowlists, name)) <= 30


def parse(document: dict[str, Any], base_dir: Path) -> Config | ConfigError:
    try:
        return parse_config(document, source=SOURCE, base_dir=base_dir)
    except ConfigError as exc:
        return exc


@fuzz("parse_config")
@given(document=any_documents)
def test_parse_config_returns_a_config_or_names_each_problem(document: dict[str, Any]) -> None:
    outcome = parse(document, REPO)
    if isinstance(outcome, ConfigError):
        event("ConfigError")
        assert_problem_lines(outcome.problems, SOURCE, document)
        assert str(outcome) == "\n".join(outcome.problems)
    else:
        event("Config")
        assert_config_sane(outcome)


@fuzz("api_key_from_dict")
@given(entry=st.one_of(
    api_key_tables,
    table({name: st.one_of(strategy, st.text(max_size=10)) for name, strategy in api_key_fields.items()}),
    st.text(max_size=20).map(lambda s: {"key": "0" * 32, "label": s, "secret": s + "\ud800",
                                        "allowlists": {"methods": [s + "\udfff"]}}),
    st.text(max_size=10).map(lambda s: {"key": "0" * 32, "jwt_public_keys": [{"name": s,
                                                                               "public_key": "-----BEGIN\ud800"}]}),
    toml_values,
))
def test_runtime_api_keys_are_read_the_same_way(entry: Any) -> None:
    """The control plane's POST/PUT /_mock/keys reader: a key, or ConfigError; the JSON it gets may hold lone
    surrogates, which TOML cannot."""
    try:
        api_key = api_key_from_dict(entry)
    except ConfigError as exc:
        event("ConfigError")
        assert exc.problems
        for line in exc.problems:
            assert line.startswith("request body: "), line
            assert not TRACEBACK.search(line), line
    else:
        event("ApiKeyConfig")
        assert re.fullmatch(r"[0-9a-f]{32}", api_key.key)
        json.dumps(api_key.as_dict(), ensure_ascii=False).encode("utf-8")  # the control plane can show it


def test_api_key_from_dict_survives_surrogates_in_a_pem_and_a_path() -> None:
    for public_key in ("-----BEGIN PUBLIC KEY-----\ud800", "keys/\udfff.pem", "a\x00b.pem"):
        with pytest.raises(ConfigError, match="public_key"):
            api_key_from_dict({"key": "0" * 32, "jwt_public_keys": [{"public_key": public_key}]})


@fuzz("balances")
@given(wei=st.integers(0, 2**256 - 1) | st.sampled_from([0, 1, 2**256 - 1, 10**28 + 1]), unit=st.sampled_from(
    ["wei", "gwei", "ether"]))
def test_balances_are_exact_to_the_wei(wei: int, unit: str) -> None:
    """`[chain] balance`: an amount in any unit is read exactly (no rounding to 28 digits), or refused past 2**256."""
    scale = {"wei": 1, "gwei": 10**9, "ether": 10**18}[unit]
    whole, fraction = divmod(wei, scale)
    text = f"{whole}.{fraction:0{len(str(scale)) - 1}d} {unit}" if scale > 1 else f"{wei} wei"
    assert parse_balance(text) == wei
    assert parse_balance(f"{wei} {unit}") == wei * scale if wei * scale < 2**256 else True
    if wei * scale >= 2**256:
        with pytest.raises(ValueError):
            parse_balance(f"{wei} {unit}")
    assert parse_balance(wei) == wei


# ---------------------------------------------------------------------------------------------- the CLI

def toml_string(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """VALUE as a one-line TOML value (tables inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(document: dict[str, Any]) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in document.items())


def run_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mockinfura", "check", str(path)], capture_output=True, text=True,
                          timeout=60, cwd=path.parent)


def assert_check_outcome(result: subprocess.CompletedProcess, path: Path) -> None:
    assert result.returncode in (0, 2), (result.returncode, result.stderr[-2000:])
    assert not TRACEBACK.search(result.stderr + result.stdout), result.stderr[-2000:]
    if result.returncode == 2:
        lines = [line for line in result.stderr.splitlines() if line]
        assert lines and all(line.startswith(f"{path}: ") for line in lines), result.stderr


@fuzz("check_cli")
@given(document=any_documents)
def test_mockinfura_check_exits_0_or_2_never_a_traceback(document: dict[str, Any], tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("check")
    path = folder / "fuzz.toml"
    text = toml_document(document)
    try:
        tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        event("not TOML (written as such anyway)")
    path.write_text(text, encoding="utf-8")
    assert_check_outcome(run_check(path), path)


@pytest.mark.parametrize("content", [
    b"[server\n", b"\xff\xfe\x00garbage", b"server = 1\nserver = 2\n", b'[chain]\nbalance = "1 ether"\n[chain]\n',
    b"a = \"\\ud800\"\n", b"\x00", b"[" * 5000, b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n",
    b'[networks.mainnet]\nfixtures = ["a\\u0000b"]\n', b'[[api_keys.k.jwt_public_keys]]\npublic_key = "a\\u0000b"\n',
])
def test_mockinfura_check_on_files_that_are_not_configs(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    assert_check_outcome(run_check(path), path)


def test_mockinfura_check_on_paths_that_are_not_files(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.toml", tmp_path):
        result = run_check(path)
        assert result.returncode == 2 and not TRACEBACK.search(result.stderr), result.stderr
        assert result.stderr.startswith(f"{path}: "), result.stderr
