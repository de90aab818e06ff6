"""The configuration file (spec interface.md section 3), validated once into typed objects.

Every problem is collected (not just the first) so that `mockinfura check` can list them all,
each naming the file, the key and the field.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

from mockinfura.networks import CATALOGUE

DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
OPEN_API_KEY = "0123456789abcdef0123456789abcdef"
DEMO_JWT_API_KEY = "fedcba9876543210fedcba9876543210"
API_KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")
JWT_KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
MAX_JWT_PUBLIC_KEYS = 3  # spec 2.2 [doc]
MAX_ALLOWLIST_ENTRIES = 30  # spec 2.4 [doc]
ALLOWLIST_TYPES = ("methods", "addresses", "origins", "user_agents")
PLANS = ("unlimited", "free", "developer", "team")
BACKENDS = ("evm", "canned", "anvil", "upstream")
DEFAULT_BACKEND_TIMEOUT_SECONDS = 10.0  # [networks.<name>] timeout: one call forwarded to anvil or an upstream
MAX_BACKEND_TIMEOUT_SECONDS = 3600.0  # a bounded wait, never a hang
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024  # interface.md section 7
UNITS = {"wei": 1, "gwei": 10**9, "ether": 10**18}


class ConfigError(Exception):
    """A configuration that cannot be served; `problems` has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ServerSettings:
    default_network: str = "mainnet"
    method_not_found_status: int = 200  # infura.md 3 [choice]: 200 (2024) vs 400 (2018)
    jwt_leeway_seconds: float = 0.0  # infura.md 2.2 [choice]
    rate_limit_style: str = "current"  # infura.md 5 [choice]: "current" or "legacy"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    control: str = "loopback"  # "loopback" or "open"
    control_token: str | None = None
    tls_names: tuple[str, ...] = ()  # `serve --tls`: more names (DNS or IP) for the server certificate
    # Limits that protect the process (each a setting; the defaults are generous for test suites).
    max_batch_size: int = 1000  # calls in one batch; more is refused whole (-32005)
    max_connections: int = 1000  # concurrent HTTP/WebSocket connections; more get 503
    ws_max_message_bytes: int = DEFAULT_MAX_BODY_BYTES  # a larger WebSocket message closes the socket (1009)
    keep_alive_seconds: float = 5.0  # an idle keep-alive connection is closed after this


LIMIT_MINIMUMS = {"max_body_bytes": 1024, "max_batch_size": 1, "max_connections": 8, "ws_max_message_bytes": 1024,
                  "keep_alive_seconds": 0.1}


@dataclass(frozen=True, slots=True)
class ChainSettings:
    mnemonic: str = DEFAULT_MNEMONIC
    accounts: int = 10
    balance: int = 10_000 * 10**18
    block_time: float = 0.0  # 0: a block per transaction only; N: also a block every N seconds (interval mining)


MIN_BLOCK_TIME_SECONDS = 0.01  # a smaller interval would only keep the chain threads busy


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    name: str
    backend: str = "evm"
    fixtures: tuple[Path, ...] = ()
    url: str | None = None  # backend = "upstream": the node's JSON-RPC URL (http:// or https://)
    anvil_path: str | None = None  # backend = "anvil": the binary (a path, or a name on PATH); None: `anvil` on PATH
    timeout: float = DEFAULT_BACKEND_TIMEOUT_SECONDS  # anvil/upstream: seconds for one forwarded call (502/504 after)


@dataclass(frozen=True, slots=True)
class Allowlists:
    methods: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    user_agents: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.methods or self.addresses or self.origins or self.user_agents)

    def as_dict(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name)) for name in ALLOWLIST_TYPES if getattr(self, name)}


@dataclass(frozen=True, slots=True)
class JwtPublicKey:
    name: str
    id: str
    fingerprint: str
    pem: str
    alg: str  # "RS256" or "ES256", from the key type


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    key: str
    label: str = ""
    secret: str | None = None
    require_secret: bool = False
    require_jwt: bool = False
    secret_overrides_allowlists: bool = False
    networks: tuple[str, ...] | None = None  # None: every network
    plan: str = "unlimited"
    credits_per_second: int = 0
    credits_per_day: int = 0
    allowlists: Allowlists = field(default_factory=Allowlists)
    jwt_public_keys: tuple[JwtPublicKey, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The key as the control plane shows it: the config's shape plus key ids and fingerprints."""
        return {
            "key": self.key,
            "label": self.label,
            "secret": self.secret,
            "require_secret": self.require_secret,
            "require_jwt": self.require_jwt,
            "secret_overrides_allowlists": self.secret_overrides_allowlists,
            "networks": list(self.networks) if self.networks is not None else None,
            "plan": self.plan,
            "credits_per_second": self.credits_per_second,
            "credits_per_day": self.credits_per_day,
            "allowlists": self.allowlists.as_dict(),
            "jwt_public_keys": [
                {"name": k.name, "id": k.id, "fingerprint": k.fingerprint, "alg": k.alg, "public_key": k.pem}
                for k in self.jwt_public_keys
            ],
        }


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    chain: ChainSettings = field(default_factory=ChainSettings)
    networks: dict[str, NetworkSettings] = field(default_factory=dict)
    api_keys: dict[str, ApiKeyConfig] = field(default_factory=dict)  # by key string
    source: str = "<embedded default>"

    def network_settings(self, name: str) -> NetworkSettings:
        return self.networks.get(name) or NetworkSettings(name=name)


class _Reader:
    """Collects problems while reading one TOML document."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        # one problem, one line: a label or a value with a line break in it must not split it
        self.problems.append(_one_line(f"{self.source}: {where}: {message}"))

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.problem(where, f"expected a table, got {_kind(value)}")
        return {}

    def known(self, table: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for name in table:
            if name not in allowed:
                self.problem(
                    f"{where}.{name}" if where else name,
                    f"unknown field (expected one of: {', '.join(allowed)})",
                )

    def boolean(self, table: dict[str, Any], name: str, where: str, default: bool) -> bool:
        value = table.get(name, default)
        if isinstance(value, bool):
            return value
        self.problem(f"{where}.{name}", f"expected true or false, got {_kind(value)}")
        return default

    def string(self, table: dict[str, Any], name: str, where: str, default: Any) -> Any:
        value = table.get(name, default)
        if value is None or isinstance(value, str):
            return value
        self.problem(f"{where}.{name}", f"expected a string, got {_kind(value)}")
        return default

    def number(
        self, table: dict[str, Any], name: str, where: str, default: float, *, integer: bool = False
    ) -> Any:
        value = table.get(name, default)
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            self.problem(f"{where}.{name}", f"expected {'an integer' if integer else 'a number'}, got {_kind(value)}")
            return default
        if value < 0:
            self.problem(f"{where}.{name}", f"must not be negative, got {value}")
            return default
        if isinstance(value, float) and not math.isfinite(value):  # TOML has nan and inf
            self.problem(f"{where}.{name}", f"expected a finite number, got {value}")
            return default
        return value

    def string_list(self, table: dict[str, Any], name: str, where: str) -> tuple[str, ...] | None:
        if table.get(name) is None:  # absent (or JSON null, as the control plane shows "all networks")
            return None
        value = table[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{where}.{name}", f"expected a list of strings, got {_kind(value)}")
            return None
        return tuple(value)


def _one_line(text: str) -> str:
    """TEXT with every character that is not printable (line breaks of any kind included) escaped as in repr."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def mnemonic_problem(mnemonic: str) -> str | None:
    """Why MNEMONIC is not a valid BIP-39 English mnemonic, or None.

    Checked here from eth-account's word list, without importing eth-account (slow to import).
    """
    import hashlib
    import importlib.util

    words = mnemonic.split()
    if len(words) not in (12, 15, 18, 21, 24):
        return f"expected a BIP-39 mnemonic of 12, 15, 18, 21 or 24 words, got {len(words)}"
    spec = importlib.util.find_spec("eth_account")
    if spec is None or not spec.submodule_search_locations:
        return None
    wordlist = Path(spec.submodule_search_locations[0]) / "hdaccount" / "wordlist" / "english.txt"
    index = {word: i for i, word in enumerate(wordlist.read_text().split())}
    unknown = [w for w in words if w not in index]
    if unknown:
        return f"{unknown[0]!r} is not a BIP-39 English word"
    bits = "".join(format(index[w], "011b") for w in words)
    checksum_bits = len(bits) // 33
    entropy = int(bits[:-checksum_bits], 2).to_bytes((len(bits) - checksum_bits) // 8, "big")
    expected = format(hashlib.sha256(entropy).digest()[0], "08b")[:checksum_bits]
    if bits[-checksum_bits:] != expected:
        return "the mnemonic's checksum is wrong (a word is mistyped or out of order)"
    return None


def parse_balance(value: Any) -> int:
    """`10000 ether`, `5 gwei`, `123 wei`, `123` or an integer, to wei."""
    if isinstance(value, bool):
        raise ValueError("expected an amount such as \"10000 ether\"")
    if isinstance(value, int):
        amount, unit = Decimal(value), "wei"
    elif isinstance(value, str):
        parts = value.split()
        if len(parts) == 1:
            parts.append("wei")
        if len(parts) != 2 or parts[1].lower() not in UNITS:
            raise ValueError(f"expected an amount such as \"10000 ether\", got {value!r}")
        try:
            amount = Decimal(parts[0])
        except InvalidOperation:
            raise ValueError(f"expected an amount such as \"10000 ether\", got {value!r}") from None
        unit = parts[1].lower()
    else:
        raise ValueError(f"expected an amount such as \"10000 ether\", got {_kind(value)}")
    if not amount.is_finite():  # Decimal reads "nan" and "inf"
        raise ValueError(f"expected an amount such as \"10000 ether\", got {value!r}")
    if amount and not -19 <= amount.adjusted() <= 80:  # below a wei or far past 2**256 (Decimal would over/underflow)
        raise ValueError(f"not a whole, non-negative number of wei below 2**256: {value!r}")
    with localcontext() as context:
        context.prec = 200  # exact: the default 28 digits would round a balance of 2**256 - 1 wei
        wei = amount * UNITS[unit]
    if wei < 0 or wei >= 2**256 or wei != int(wei):
        raise ValueError(f"not a whole, non-negative number of wei below 2**256: {value!r}")
    return int(wei)


def load_config(path: str | Path | None) -> Config:
    """The config at PATH, or the embedded default for None. Raises ConfigError."""
    if path is None:
        return default_config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: the config file is not UTF-8 text"]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError([f"{path}: not valid TOML: arrays or tables nested too deeply"]) from None
    return parse_config(document, source=str(path), base_dir=path.parent)


def parse_config(document: dict[str, Any], *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    reader = _Reader(source, base_dir or Path.cwd())
    reader.known(document, "", ("server", "chain", "networks", "api_keys"))
    server = _read_server(reader, reader.table(document.get("server", {}), "server"))
    chain = _read_chain(reader, reader.table(document.get("chain", {}), "chain"))
    networks: dict[str, NetworkSettings] = {}
    for name, table in reader.table(document.get("networks", {}), "networks").items():
        settings = _read_network(reader, name, reader.table(table, f"networks.{name}"))
        if settings is not None:
            networks[name] = settings
    api_keys: dict[str, ApiKeyConfig] = {}
    for label, table in reader.table(document.get("api_keys", {}), "api_keys").items():
        api_key = read_api_key(reader, label, reader.table(table, f"api_keys.{label}"))
        if api_key is None:
            continue
        if api_key.key in api_keys:
            reader.problem(f"api_keys.{label}.key", f"{api_key.key} is already used by api_keys.{api_keys[api_key.key].label}")
            continue
        api_keys[api_key.key] = api_key
    if reader.problems:
        raise ConfigError(reader.problems)
    if "api_keys" not in document:  # [choice] a config that names no keys serves the embedded default's keys
        api_keys = dict(default_config().api_keys)
    return Config(server=server, chain=chain, networks=networks, api_keys=api_keys, source=source)


def _read_server(reader: _Reader, table: dict[str, Any]) -> ServerSettings:
    reader.known(table, "server", ServerSettings.__slots__)
    defaults = ServerSettings()
    default_network = reader.string(table, "default_network", "server", defaults.default_network)
    if default_network not in CATALOGUE:
        reader.problem("server.default_network", f"unknown network {default_network!r}")
        default_network = defaults.default_network
    status = reader.number(table, "method_not_found_status", "server", 200, integer=True)
    if status not in (200, 400):
        reader.problem("server.method_not_found_status", f"expected 200 or 400, got {status}")
        status = 200
    style = reader.string(table, "rate_limit_style", "server", "current")
    if style not in ("current", "legacy"):
        reader.problem("server.rate_limit_style", f"expected \"current\" or \"legacy\", got {style!r}")
        style = "current"
    control = reader.string(table, "control", "server", "loopback")
    if control not in ("loopback", "open"):
        reader.problem("server.control", f"expected \"loopback\" or \"open\", got {control!r}")
        control = "loopback"
    limits: dict[str, Any] = {}
    for name, minimum in LIMIT_MINIMUMS.items():
        default = getattr(defaults, name)
        value = reader.number(table, name, "server", default, integer=isinstance(default, int))
        if value < minimum:
            reader.problem(f"server.{name}", f"must be at least {minimum}, got {value}")
            value = default
        limits[name] = value
    return ServerSettings(
        default_network=default_network,
        method_not_found_status=status,
        jwt_leeway_seconds=float(reader.number(table, "jwt_leeway_seconds", "server", 0.0)),
        rate_limit_style=style,
        control=control,
        control_token=reader.string(table, "control_token", "server", None),
        tls_names=_read_tls_names(reader, table),
        **limits,
    )


def _read_tls_names(reader: _Reader, table: dict[str, Any]) -> tuple[str, ...]:
    from mockinfura.tls import MAX_TLS_NAMES, tls_name_problem

    names = reader.string_list(table, "tls_names", "server") or ()
    if len(names) > MAX_TLS_NAMES:
        reader.problem("server.tls_names", f"at most {MAX_TLS_NAMES} names, got {len(names)}")
    for index, name in enumerate(names):
        problem = tls_name_problem(name)
        if problem:
            reader.problem(f"server.tls_names[{index}]", problem)
    return names


def _read_chain(reader: _Reader, table: dict[str, Any]) -> ChainSettings:
    reader.known(table, "chain", ("mnemonic", "accounts", "balance", "block_time"))
    defaults = ChainSettings()
    mnemonic = reader.string(table, "mnemonic", "chain", defaults.mnemonic)
    problem = mnemonic_problem(mnemonic)
    if problem:
        reader.problem("chain.mnemonic", problem)
        mnemonic = defaults.mnemonic
    accounts = reader.number(table, "accounts", "chain", defaults.accounts, integer=True)
    if not 1 <= accounts <= 1000:
        reader.problem("chain.accounts", f"expected 1 to 1000, got {accounts}")
        accounts = defaults.accounts
    balance = defaults.balance
    if "balance" in table:
        try:
            balance = parse_balance(table["balance"])
        except ValueError as exc:
            reader.problem("chain.balance", str(exc))
    block_time = reader.number(table, "block_time", "chain", 0.0)
    if 0 < block_time < MIN_BLOCK_TIME_SECONDS:
        reader.problem("chain.block_time", f"expected 0 (no interval mining) or at least {MIN_BLOCK_TIME_SECONDS}"
                       f" seconds, got {block_time}")
        block_time = 0.0
    return ChainSettings(mnemonic=mnemonic, accounts=accounts, balance=balance, block_time=float(block_time))


def _read_network(reader: _Reader, name: str, table: dict[str, Any]) -> NetworkSettings | None:
    where = f"networks.{name}"
    if name not in CATALOGUE:
        reader.problem(where, f"unknown network (known: {', '.join(CATALOGUE)})")
        return None
    reader.known(table, where, ("backend", "fixtures", "url", "anvil_path", "timeout"))
    backend = reader.string(table, "backend", where, "evm")
    if backend not in BACKENDS:
        reader.problem(f"{where}.backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
        backend = "evm"
    backend_fields = _read_backend_fields(reader, where, backend, table)
    fixtures = reader.string_list(table, "fixtures", where) or ()
    paths = []
    for entry in fixtures:
        path = Path(entry)
        if not path.is_absolute():
            path = reader.base_dir / path
        try:
            exists = path.exists()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte, text that is not a file name
            reader.problem(f"{where}.fixtures", f"cannot use {str(path)[:200]!r}: {getattr(exc, 'strerror', None) or exc}")
            continue
        if not exists:
            reader.problem(f"{where}.fixtures", f"no such file or folder: {path}")
            continue
        paths.append(path)
    if paths:
        from mockinfura.chains.canned import FixtureError, load_fixtures

        try:
            load_fixtures(paths, name)
        except FixtureError as exc:
            reader.problem(f"{where}.fixtures", str(exc))
    return NetworkSettings(name=name, backend=backend, fixtures=tuple(paths), **backend_fields)


def _read_backend_fields(reader: _Reader, where: str, backend: str, table: dict[str, Any]) -> dict[str, Any]:
    """url (upstream), anvil_path (anvil) and timeout (both), each only where its backend uses it."""
    fields: dict[str, Any] = {}
    for name, owner in (("url", "upstream"), ("anvil_path", "anvil"), ("timeout", None)):
        if name in table and backend not in ((owner,) if owner else ("anvil", "upstream")):
            wanted = f'"{owner}"' if owner else '"anvil" or "upstream"'
            reader.problem(f"{where}.{name}", f'only for backend = {wanted}; this network\'s backend is "{backend}"')
    url = reader.string(table, "url", where, None)
    if backend == "upstream":
        if url is None:
            reader.problem(f"{where}.url", "backend = \"upstream\" needs the node's url, e.g. \"http://127.0.0.1:8546\"")
        elif not _http_url(url):
            reader.problem(f"{where}.url", f"expected an http:// or https:// URL, got {url!r}")
        else:
            fields["url"] = url
    anvil_path = reader.string(table, "anvil_path", where, None)
    if anvil_path is not None and (not anvil_path.strip() or any(ord(c) < 32 or c == "\x7f" for c in anvil_path)):
        reader.problem(f"{where}.anvil_path", f"expected a path or a command name, got {anvil_path!r}")
        anvil_path = None
    if backend == "anvil" and anvil_path:
        path = Path(anvil_path).expanduser()
        if len(path.parts) > 1 and not path.is_absolute():  # a relative path is the config file's; a bare name: PATH
            path = reader.base_dir / path
        fields["anvil_path"] = str(path)
    if "timeout" in table:
        timeout = reader.number(table, "timeout", where, DEFAULT_BACKEND_TIMEOUT_SECONDS)
        if not 0 < timeout <= MAX_BACKEND_TIMEOUT_SECONDS:  # (NaN fails this too)
            reader.problem(f"{where}.timeout", f"must be more than 0 and at most {MAX_BACKEND_TIMEOUT_SECONDS:g} "
                           f"seconds, got {timeout}")
        else:
            fields["timeout"] = float(timeout)
    return fields


def _http_url(url: str) -> bool:
    """An http(s) URL with a host, a valid port and no spaces or control characters."""
    from urllib.parse import urlsplit

    if not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", url) or any(ord(c) < 32 or c == "\x7f" for c in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return bool(parts.hostname)


API_KEY_FIELDS = (
    "key", "secret", "require_secret", "require_jwt", "secret_overrides_allowlists", "networks",
    "plan", "credits_per_second", "credits_per_day", "allowlists", "jwt_public_keys", "label",
)


def read_api_key(reader: _Reader, label: str, table: dict[str, Any]) -> ApiKeyConfig | None:
    where = f"api_keys.{label}"
    reader.known(table, where, API_KEY_FIELDS)
    before = len(reader.problems)
    key = table.get("key")
    if not isinstance(key, str) or not API_KEY_PATTERN.match(key):
        reader.problem(f"{where}.key", f"expected 32 lowercase hex characters, got {key!r}")
    secret = reader.string(table, "secret", where, None)
    if secret == "":
        reader.problem(f"{where}.secret", "must not be empty (leave it out for no secret)")
    require_secret = reader.boolean(table, "require_secret", where, False)
    require_jwt = reader.boolean(table, "require_jwt", where, False)
    if require_secret and not secret:
        reader.problem(f"{where}.require_secret", "is true but the key has no secret")
    if require_secret and require_jwt:
        # infura.md 2.2 [choice]: Basic and Bearer share the one Authorization header.
        reader.problem(
            f"{where}.require_jwt",
            "a key cannot require both a secret and a JWT: both travel in the one Authorization header",
        )
    networks = reader.string_list(table, "networks", where)
    for network in networks or ():
        if network not in CATALOGUE:
            reader.problem(f"{where}.networks", f"unknown network {network!r}")
    plan = reader.string(table, "plan", where, "unlimited")
    if plan not in PLANS:
        reader.problem(f"{where}.plan", f"expected one of {', '.join(PLANS)}, got {plan!r}")
    per_second = reader.number(table, "credits_per_second", where, 0, integer=True)
    per_day = reader.number(table, "credits_per_day", where, 0, integer=True)
    allowlists = _read_allowlists(reader, where, reader.table(table.get("allowlists", {}), f"{where}.allowlists"))
    jwt_keys = _read_jwt_public_keys(reader, where, table.get("jwt_public_keys", []))
    if require_jwt and not jwt_keys:
        reader.problem(f"{where}.require_jwt", "is true but the key has no jwt_public_keys to verify tokens with")
    if len(reader.problems) > before:
        return None
    return ApiKeyConfig(
        key=key,
        label=str(table.get("label", label)),
        secret=secret,
        require_secret=require_secret,
        require_jwt=require_jwt,
        secret_overrides_allowlists=reader.boolean(table, "secret_overrides_allowlists", where, False),
        networks=networks,
        plan=plan,
        credits_per_second=per_second,
        credits_per_day=per_day,
        allowlists=allowlists,
        jwt_public_keys=jwt_keys,
    )


def _read_allowlists(reader: _Reader, where: str, table: dict[str, Any]) -> Allowlists:
    where = f"{where}.allowlists"
    reader.known(table, where, ALLOWLIST_TYPES)
    values: dict[str, tuple[str, ...]] = {}
    for name in ALLOWLIST_TYPES:
        entries = reader.string_list(table, name, where) or ()
        if len(entries) > MAX_ALLOWLIST_ENTRIES:
            reader.problem(f"{where}.{name}", f"at most {MAX_ALLOWLIST_ENTRIES} entries, got {len(entries)}")
        values[name] = entries
    from mockinfura.gateway.allowlists import validate_origin_entry

    for entry in values["origins"]:
        problem = validate_origin_entry(entry)
        if problem:
            reader.problem(f"{where}.origins", f"{entry!r}: {problem}")
    for entry in values["addresses"]:
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", entry):
            reader.problem(f"{where}.addresses", f"{entry!r}: expected a 0x-prefixed 20-byte hex address")
    for name in ("methods", "user_agents"):
        if any(not entry for entry in values[name]):
            reader.problem(f"{where}.{name}", "entries must not be empty")
    return Allowlists(
        methods=values["methods"],
        addresses=tuple(a.lower() for a in values["addresses"]),
        origins=values["origins"],
        user_agents=values["user_agents"],
    )


def _read_jwt_public_keys(reader: _Reader, where: str, value: Any) -> tuple[JwtPublicKey, ...]:
    from mockinfura.tokens import PublicKeyError, load_public_key

    where = f"{where}.jwt_public_keys"
    if not isinstance(value, list):
        reader.problem(where, f"expected an array of tables ([[...jwt_public_keys]]), got {_kind(value)}")
        return ()
    if len(value) > MAX_JWT_PUBLIC_KEYS:
        reader.problem(where, f"at most {MAX_JWT_PUBLIC_KEYS} public keys per API key, got {len(value)}")
    keys: list[JwtPublicKey] = []
    for index, entry in enumerate(value):
        entry_where = f"{where}[{index}]"
        if not isinstance(entry, dict):
            reader.problem(entry_where, f"expected a table, got {_kind(entry)}")
            continue
        reader.known(entry, entry_where, ("name", "public_key", "id"))
        name = reader.string(entry, "name", entry_where, f"key{index + 1}")
        source = entry.get("public_key")
        if not isinstance(source, str) or not source.strip():
            reader.problem(f"{entry_where}.public_key", "expected a PEM file path or the PEM text")
            continue
        if "-----BEGIN" in source:
            pem, origin = source, "the PEM text"
        else:
            path = Path(source)
            if not path.is_absolute():
                path = reader.base_dir / path
            origin = str(path)
            try:
                pem = path.read_text(encoding="utf-8")
            except (OSError, ValueError) as exc:  # ValueError: not UTF-8, a NUL byte, a lone surrogate in the name
                reader.problem(f"{entry_where}.public_key", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
                continue
        try:
            loaded = load_public_key(pem)
        except PublicKeyError as exc:
            reader.problem(f"{entry_where}.public_key", f"{origin}: {exc}")
            continue
        key_id = entry.get("id", loaded.default_id)
        if not isinstance(key_id, str) or not JWT_KEY_ID_PATTERN.match(key_id):
            reader.problem(f"{entry_where}.id", f"expected 32 lowercase hex characters, got {key_id!r}")
            continue
        if any(k.id == key_id for k in keys):
            reader.problem(f"{entry_where}.id", f"{key_id} is used twice on this API key")
            continue
        keys.append(JwtPublicKey(name=name, id=key_id, fingerprint=loaded.fingerprint, pem=loaded.pem, alg=loaded.alg))
    return tuple(keys)


def api_key_from_dict(entry: dict[str, Any], *, label: str = "runtime") -> ApiKeyConfig:
    """An API key given as JSON at run time (control plane), validated as the config's are."""
    from mockinfura.rpc.envelope import without_lone_surrogates

    reader = _Reader("request body", Path.cwd())
    if not isinstance(entry, dict):
        raise ConfigError(["request body: expected a JSON object"])
    entry = without_lone_surrogates(entry)  # JSON allows "\ud800"; a key that kept one could never be shown again
    label = str(entry.pop("label", label))
    api_key = read_api_key(reader, label, entry)
    if reader.problems or api_key is None:
        raise ConfigError(reader.problems)
    return api_key


def default_config() -> Config:
    """The embedded default: every catalogue network, the open key and the demo JWT key."""
    from mockinfura.tokens import DEMO_PUBLIC_KEY_PATH, load_public_key

    demo = load_public_key(DEMO_PUBLIC_KEY_PATH.read_text())
    api_keys = {
        OPEN_API_KEY: ApiKeyConfig(key=OPEN_API_KEY, label="open"),
        DEMO_JWT_API_KEY: ApiKeyConfig(
            key=DEMO_JWT_API_KEY,
            label="demo-jwt",
            require_jwt=True,
            jwt_public_keys=(
                JwtPublicKey(name="demo", id=demo.default_id, fingerprint=demo.fingerprint, pem=demo.pem, alg=demo.alg),
            ),
        ),
    }
    return Config(api_keys=api_keys)


def with_api_key(config: Config, api_key: ApiKeyConfig) -> Config:
    return replace(config, api_keys={**config.api_keys, api_key.key: api_key})
