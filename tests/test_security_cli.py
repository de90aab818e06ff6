"""The security tooling as a user runs it (interface.md 2): `keygen`, `fingerprint`, `token`, `check`, and what `serve`
prints; fingerprints compared with the openssl pipeline of infura.md 2.2; tokens tried on a real server."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server import ServerProcess

pytestmark = pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
                                reason="openssl not installed")

RS_API_KEY = "c1000000000000000000000000000001"
ES_API_KEY = "c1000000000000000000000000000002"
RS_KID = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"
DEMO_API_KEY = "fedcba9876543210fedcba9876543210"
BLOCK_NUMBER = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
CHAIN_ID = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
REJECTED = b'{"jsonrpc":"2.0","error":{"code":-32002,"message":"rejected due to project ID settings"}}\n'
A1 = "0x1937c5c515057553ccbd46d5866455ce66290284"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mockinfura", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def openssl_fingerprint(private_pem: Path, kind: str) -> str:
    """infura.md 2.2: openssl rsa|ec -in private.pem -pubout -outform DER | openssl sha256 -binary | openssl base64"""
    pipeline = (f"openssl {kind} -in '{private_pem}' -pubout -outform DER 2>/dev/null | openssl sha256 -binary "
                "| openssl base64")
    return subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, check=True).stdout.strip()


def openssl_public_fingerprint(public_pem: Path) -> str:
    pipeline = f"openssl pkey -pubin -in '{public_pem}' -outform DER | openssl sha256 -binary | openssl base64"
    return subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, check=True).stdout.strip()


def printed(output: str, word: str) -> str:
    match = re.search(rf"^{word} (\S+)", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def decode_payload(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def decode_header(token: str) -> dict:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))


@dataclass
class Generated:
    folder: Path
    private: Path
    public: Path
    fingerprint: str
    default_id: str


def keygen(folder: Path, alg: str, name: str) -> Generated:
    result = cli("keygen", "--alg", alg, "--out", str(folder), "--name", name)
    assert result.returncode == 0, result.stderr
    private, public = folder / f"{name}.private.pem", folder / f"{name}.public.pem"
    return Generated(folder, private, public, printed(result.stdout, "fingerprint"), printed(result.stdout, "id"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Generated]:
    folder = tmp_path_factory.mktemp("keys") / "new folder"  # keygen makes the folder; a space in the path
    return {"RS256": keygen(folder, "RS256", "rs"), "ES256": keygen(folder, "ES256", "es")}


@pytest.fixture(scope="module")
def served(generated: dict[str, Generated]) -> ServerProcess:
    rs, es = generated["RS256"], generated["ES256"]
    config = f"""
[api_keys.rs]
key = "{RS_API_KEY}"
require_jwt = true
jwt_public_keys = [{{ name = "rs-key", public_key = "{rs.public}", id = "{RS_KID}" }}]

[api_keys.es]
key = "{ES_API_KEY}"
require_jwt = true
jwt_public_keys = [{{ name = "es-key", public_key = "{es.public}" }}]   # no id: the derived one
"""
    with ServerProcess(config) as process:
        yield process


@pytest.fixture(scope="module")
def client() -> httpx.Client:
    with httpx.Client(timeout=30) as c:
        yield c


# ---------------------------------------------------------------------------------------------------------------
# keygen and fingerprint


@pytest.mark.parametrize(("alg", "kind", "header"), [("RS256", "rsa", "PRIVATE KEY"), ("ES256", "ec", "PRIVATE KEY")])
def test_keygen_writes_a_pair_and_its_fingerprint(generated: dict[str, Generated], alg: str, kind: str,
                                                  header: str) -> None:
    pair = generated[alg]
    assert pair.private.read_text().startswith(f"-----BEGIN {header}-----")
    assert pair.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert pair.private.stat().st_mode & 0o077 == 0  # the private key is not readable by others
    assert pair.fingerprint == openssl_fingerprint(pair.private, kind)
    assert pair.fingerprint == openssl_public_fingerprint(pair.public)
    assert re.fullmatch(r"[0-9a-f]{32}", pair.default_id)
    text = subprocess.run(["openssl", "pkey", "-in", str(pair.private), "-noout", "-text"], capture_output=True,
                          text=True, check=True).stdout
    assert ("2048 bit" in text) if alg == "RS256" else ("prime256v1" in text or "P-256" in text)


def test_keygen_defaults(tmp_path: Path) -> None:
    result = cli("keygen", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "jwt.private.pem").exists() and (tmp_path / "jwt.public.pem").exists()
    assert printed(result.stdout, "fingerprint") == openssl_fingerprint(tmp_path / "jwt.private.pem", "rsa")


def test_keygen_bad_input(tmp_path: Path) -> None:
    result = cli("keygen", "--alg", "HS256", "--out", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("keygen", "--out", str(blocker / "sub"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert str(blocker) in result.stderr


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_fingerprint_of_public_and_private(generated: dict[str, Generated], alg: str) -> None:
    pair = generated[alg]
    kind = "rsa" if alg == "RS256" else "ec"
    for path in (pair.private, pair.public):
        result = cli("fingerprint", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == openssl_fingerprint(pair.private, kind) == pair.fingerprint


def test_fingerprint_of_keys_made_by_openssl(tmp_path: Path) -> None:
    """Keys in the forms openssl writes: PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, PKCS#8."""
    rsa_traditional = tmp_path / "rsa.pem"
    ec_sec1 = tmp_path / "ec.pem"
    rsa_pkcs8 = tmp_path / "rsa8.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(rsa_traditional), "2048"], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(ec_sec1)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(rsa_traditional), "-out", str(rsa_pkcs8)],
                   check=True, capture_output=True)
    assert "BEGIN RSA PRIVATE KEY" in rsa_traditional.read_text()
    assert "BEGIN EC PRIVATE KEY" in ec_sec1.read_text()
    for path, kind in ((rsa_traditional, "rsa"), (ec_sec1, "ec"), (rsa_pkcs8, "rsa")):
        result = cli("fingerprint", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == openssl_fingerprint(path, kind)
        public = tmp_path / f"{path.stem}.pub.pem"
        subprocess.run(["openssl", kind, "-in", str(path), "-pubout", "-out", str(public)], check=True,
                       capture_output=True)
        assert cli("fingerprint", str(public)).stdout.strip() == openssl_fingerprint(path, kind)


def test_fingerprint_of_any_key_type(tmp_path: Path) -> None:
    """The fingerprint is defined for any key, also one Infura would not take for a JWT (RSA-1024, P-384)."""
    for name, command, kind in (
        ("rsa1024.pem", ["openssl", "genrsa", "-out", "{out}", "1024"], "rsa"),
        ("p384.pem", ["openssl", "ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "{out}"], "ec"),
    ):
        path = tmp_path / name
        subprocess.run([part.format(out=path) for part in command], check=True, capture_output=True)
        result = cli("fingerprint", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == openssl_fingerprint(path, kind)


def test_fingerprint_of_an_encrypted_key(tmp_path: Path) -> None:
    path = tmp_path / "encrypted.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256",
                    "-pass", "pass:pw", "-out", str(path)], check=True, capture_output=True)
    result = cli("fingerprint", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and "encrypted" in result.stderr


def test_fingerprint_bad_input(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    for path in (garbage, tmp_path / "missing.pem", tmp_path):
        result = cli("fingerprint", str(path))
        assert result.returncode == 2, (path, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert str(path) in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# token


def make(pair: Generated, kid: str, *extra: str) -> str:
    result = cli("token", "--private-key", str(pair.private), "--kid", kid, *extra)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.count(".") == 2
    return token


def post(client: httpx.Client, url: str, token: str, body: dict = BLOCK_NUMBER, **headers: str) -> httpx.Response:
    return client.post(url, json=body, headers={"Authorization": f"Bearer {token}", **headers})


def startup_lines(process: ServerProcess, expected: int) -> list[str]:
    """The lines `serve` printed when ready. They come in one write; the harness may have left some of them in its
    pipe reader's buffer, so read on (in a thread, never blocking the test for long)."""
    lines = list(process.lines)
    done = threading.Event()

    def read() -> None:
        while len(lines) < expected:
            line = process.process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(10)
    return lines


def test_serve_prints_key_ids_and_fingerprints(served: ServerProcess, generated: dict[str, Generated]) -> None:
    text = "\n".join(startup_lines(served, 5))  # the listening line, then each key and its JWT key
    rs, es = generated["RS256"], generated["ES256"]
    assert f"jwt key rs-key: id {RS_KID} fingerprint {rs.fingerprint}" in text
    assert f"jwt key es-key: id {es.default_id} fingerprint {es.fingerprint}" in text
    assert served.lines[0] == f"mockinfura listening on {served.base_url}"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_token_is_accepted(client: httpx.Client, served: ServerProcess, generated: dict[str, Generated],
                           alg: str) -> None:
    pair = generated[alg]
    api_key, kid = (RS_API_KEY, RS_KID) if alg == "RS256" else (ES_API_KEY, pair.default_id)
    token = make(pair, kid)
    header, payload = decode_header(token), decode_payload(token)
    assert header == {"alg": alg, "typ": "JWT", "kid": kid}
    assert payload["aud"] == "infura.io"
    assert payload["exp"] - payload["iat"] == 3600
    response = post(client, served.url(api_key), token)
    assert response.status_code == 200, response.headers.get("x-mockinfura-reason")
    # the token of one key is not accepted by the other API key
    other = ES_API_KEY if api_key == RS_API_KEY else RS_API_KEY
    assert post(client, served.url(other), token).status_code == 401


def test_token_allowlist_claims_are_enforced(client: httpx.Client, served: ServerProcess,
                                             generated: dict[str, Generated]) -> None:
    token = make(generated["RS256"], RS_KID, "--methods", "eth_chainId", "eth_getBalance",
                 "--addresses", A1, "--origins", "https://*.dapp.io", "http://localhost:3000",
                 "--user-agents", "Wallet/", "--ttl", "120")
    payload = decode_payload(token)
    assert payload["methods"] == ["eth_chainId", "eth_getBalance"]
    assert payload["addresses"] == [A1]
    assert payload["origins"] == ["https://*.dapp.io", "http://localhost:3000"]
    assert payload["user_agents"] == ["Wallet/"]
    assert payload["exp"] - payload["iat"] == 120
    url = served.url(RS_API_KEY)
    ok = {"Origin": "https://app.dapp.io", "User-Agent": "Wallet/2"}
    assert post(client, url, token, CHAIN_ID, **ok).status_code == 200
    balance = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [A1, "latest"]}
    assert post(client, url, token, balance, **ok).status_code == 200
    other_balance = {**balance, "params": ["0x" + "22" * 20, "latest"]}
    for body, headers in ((BLOCK_NUMBER, ok), (other_balance, ok), (CHAIN_ID, {**ok, "Origin": "https://dapp.io"}),
                          (CHAIN_ID, {**ok, "User-Agent": "curl/8"})):
        response = post(client, url, token, body, **headers)
        assert response.status_code == 403 and response.content == REJECTED, (body, headers)


def test_token_ttl_and_the_server_clock(client: httpx.Client, served: ServerProcess,
                                        generated: dict[str, Generated]) -> None:
    token = make(generated["ES256"], generated["ES256"].default_id, "--ttl", "30")
    url = served.url(ES_API_KEY)
    assert post(client, url, token).status_code == 200
    try:
        client.post(f"{served.base_url}/_mock/clock", json={"advance": 31}).raise_for_status()
        response = post(client, url, token)
        assert response.status_code == 401 and response.headers["x-mockinfura-reason"] == "jwt expired"
    finally:
        client.post(f"{served.base_url}/_mock/clock", json={"reset": True})


def test_token_bad_input(tmp_path: Path, generated: dict[str, Generated]) -> None:
    pair = generated["RS256"]
    cases = [
        (("--private-key", str(pair.private)), "--kid"),
        (("--kid", RS_KID), "--private-key"),
        (("--private-key", str(pair.private), "--kid", RS_KID, "--ttl", "0"), "--ttl"),
        (("--private-key", str(tmp_path / "missing.pem"), "--kid", RS_KID), "missing.pem"),
        (("--private-key", str(pair.public), "--kid", RS_KID), str(pair.public)),
        (("--demo", "--private-key", str(pair.private)), "--demo"),
    ]
    for args, named in cases:
        result = cli("token", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert named in result.stderr, (args, result.stderr)
        assert result.stdout == ""


def test_token_demo_against_the_embedded_default(client: httpx.Client, server: ServerProcess) -> None:
    """`token --demo` signs for the embedded default's JWT key (started with no config)."""
    assert server.config_path is None
    result = cli("token", "--demo")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    demo_keys = client.get(f"{server.base_url}/_mock/keys/{DEMO_API_KEY}").json()["jwt_public_keys"]
    assert [k["id"] for k in demo_keys] == [decode_header(token)["kid"]]
    response = post(client, server.url(DEMO_API_KEY), token)
    assert response.status_code == 200, response.headers.get("x-mockinfura-reason")
    assert response.json()["result"].startswith("0x")
    # without the token the demo key refuses
    response = client.post(server.url(DEMO_API_KEY), json=BLOCK_NUMBER)
    assert response.status_code == 401 and response.content == b"invalid JWT\n"
    # and with claims
    result = cli("token", "--demo", "--methods", "eth_chainId")
    limited = result.stdout.strip()
    assert post(client, server.url(DEMO_API_KEY), limited, CHAIN_ID).status_code == 200
    assert post(client, server.url(DEMO_API_KEY), limited).content == REJECTED


# ---------------------------------------------------------------------------------------------------------------
# check


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "mockinfura.toml"
    path.write_text(text)
    return cli("check", str(path))


def assert_problem(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert any(all(word in line for word in words) for line in lines), (words, result.stderr)


def key_entry(generated: dict[str, Generated], count: int) -> str:
    entries = [f'{{ name = "k{i}", public_key = "{generated["RS256"].public}", id = "{i:032x}" }}'
               for i in range(count)]
    return f"[{', '.join(entries)}]"


def test_check_accepts_a_good_config(tmp_path: Path, generated: dict[str, Generated]) -> None:
    result = check(tmp_path, f"""
[api_keys.three]
key = "{RS_API_KEY}"
require_jwt = true
jwt_public_keys = {key_entry(generated, 3)}
allowlists = {{ methods = {json.dumps([f"m{i}" for i in range(30)])} }}
""")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_fourth_public_key(tmp_path: Path, generated: dict[str, Generated]) -> None:
    result = check(tmp_path, f"""
[api_keys.rotating]
key = "{RS_API_KEY}"
jwt_public_keys = {key_entry(generated, 4)}
""")
    assert_problem(result, "api_keys.rotating.jwt_public_keys", "at most 3")


def test_check_thirty_first_allowlist_entry(tmp_path: Path) -> None:
    entries = {
        "methods": [f"eth_method{i}" for i in range(31)],
        "addresses": [f"0x{i:040x}" for i in range(31)],
        "origins": [f"https://app{i}.example.com" for i in range(31)],
        "user_agents": [f"agent{i}" for i in range(31)],
    }
    tables = "\n".join(f"""
[api_keys.long_{kind}]
key = "{i:032x}"
allowlists = {{ {kind} = {json.dumps(values)} }}
""" for i, (kind, values) in enumerate(entries.items(), start=1))
    result = check(tmp_path, tables)
    for kind in entries:
        assert_problem(result, f"api_keys.long_{kind}.allowlists.{kind}", "at most 30")


def test_check_unreadable_or_junk_pem(tmp_path: Path) -> None:
    missing = tmp_path / "keys" / "nope.public.pem"
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    result = check(tmp_path, f"""
[api_keys.lost]
key = "{RS_API_KEY}"
jwt_public_keys = [{{ name = "lost", public_key = "keys/nope.public.pem" }}]

[api_keys.junk]
key = "{ES_API_KEY}"
jwt_public_keys = [{{ name = "junk", public_key = "{junk}" }}]
""")
    assert_problem(result, "api_keys.lost.jwt_public_keys[0].public_key", str(missing))  # relative to the config
    assert_problem(result, "api_keys.junk.jwt_public_keys[0].public_key", str(junk))


def test_check_private_key_as_public_key(tmp_path: Path, generated: dict[str, Generated]) -> None:
    private = generated["ES256"].private
    result = check(tmp_path, f"""
[api_keys.oops]
key = "{RS_API_KEY}"
jwt_public_keys = [{{ name = "oops", public_key = "{private}" }}]
""")
    assert_problem(result, "api_keys.oops.jwt_public_keys[0].public_key", str(private), "private key")


def test_check_secret_and_jwt_both_required(tmp_path: Path, generated: dict[str, Generated]) -> None:
    result = check(tmp_path, f"""
[api_keys.both]
key = "{RS_API_KEY}"
secret = "s"
require_secret = true
require_jwt = true
jwt_public_keys = {key_entry(generated, 1)}
""")
    assert_problem(result, "api_keys.both.require_jwt", "both")


def test_check_reports_every_problem(tmp_path: Path, generated: dict[str, Generated]) -> None:
    result = check(tmp_path, f"""
[api_keys.a]
key = "{RS_API_KEY}"
jwt_public_keys = {key_entry(generated, 4)}

[api_keys.b]
key = "{ES_API_KEY}"
allowlists = {{ user_agents = {json.dumps([f"u{i}" for i in range(31)])} }}
""")
    assert_problem(result, "api_keys.a.jwt_public_keys", "at most 3")
    assert_problem(result, "api_keys.b.allowlists.user_agents", "at most 30")


def test_serve_refuses_a_bad_config(tmp_path: Path, generated: dict[str, Generated]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"""
[api_keys.rotating]
key = "{RS_API_KEY}"
jwt_public_keys = {key_entry(generated, 4)}
""")
    result = cli("serve", "--port", "0", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "api_keys.rotating.jwt_public_keys" in result.stderr
