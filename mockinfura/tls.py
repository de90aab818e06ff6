"""HTTPS and WSS for `mockinfura serve --tls` (issue 6): a local test CA and a certificate for Infura's own names.

The CA is created once in a folder the user chooses (`--ca-dir`, `$MOCKINFURA_CA_DIR`, else `./mockinfura-ca`) and
reused afterwards:

- `ca.pem`: the CA certificate, the one file clients trust (`SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE` for Python,
  `NODE_EXTRA_CA_CERTS` for Node);
- `ca.key`: its private key (mode 0600). Anyone holding it can impersonate any name to a client that trusts
  `ca.pem`: it is a test CA, never trust it outside a dev or CI environment.

Each `serve --tls` issues a fresh server certificate (EC P-256, signed by the CA) for `*.infura.io`, `infura.io`,
`localhost`, `<network>.localhost` for each network, `127.0.0.1`, `::1`, the listening host when it is a specific
name or address, and the config's `[server] tls_names`. It is written to a private temporary folder (not to the CA
folder, so that two servers sharing one CA never race on it) and removed when the server stops.

Everything that can go wrong with the user's paths raises `TlsError` with a one-line message (the CLI prints it and
exits non-zero). `cryptography` is imported only when a certificate is needed.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CA_DIR = "mockinfura-ca"  # relative to the working directory
CA_DIR_ENV = "MOCKINFURA_CA_DIR"
CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca.key"
LOCK_NAME = ".mockinfura-ca.lock"
DEFAULT_NAMES = ("*.infura.io", "infura.io", "localhost", "127.0.0.1", "::1")  # then <network>.localhost, each
MAX_TLS_NAMES = 100
CA_VALIDITY_DAYS = 3650
SERVER_VALIDITY_DAYS = 397  # the longest that browsers and Apple clients accept for a server certificate
BACKDATE = datetime.timedelta(days=1)  # tolerate a client clock a little behind the server's

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")  # "_": docker service names may have one


class TlsError(Exception):
    """A CA folder, CA file or name that cannot be used; the message is one line."""


def tls_name_problem(name: object) -> str | None:
    """Why NAME cannot go into the server certificate (as a DNS name or an IP address), or None."""
    if not isinstance(name, str):
        return f"expected a host name or IP address as a string, got {type(name).__name__}"
    if not name:
        return "an empty name"
    if name != name.strip():
        return f"{name!r} has surrounding spaces"
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(name)
        return None
    if len(name) > 253:
        return f"{name[:40]!r}... is longer than 253 characters"
    if name != name.lower():
        return f"{name!r} must be lowercase"
    if name.endswith("."):
        return f"{name!r}: leave out the trailing dot"
    labels = name.split(".")
    for index, label in enumerate(labels):
        if label == "*" and index == 0 and len(labels) >= 2:
            continue
        if "*" in label:
            return f"{name!r}: a wildcard must be the whole leftmost label, as in \"*.example.com\""
        if not _LABEL.match(label):
            return f"{name!r} is not a valid host name (labels of a-z, 0-9, _ and inner hyphens, 1 to 63 characters)"
    if all(label.isdigit() for label in labels):
        return f"{name!r} is neither a valid IP address nor a host name"
    return None


def certificate_names(extra: tuple[str, ...] | list[str] = (), host: str | None = None) -> list[str]:
    """The names the server certificate covers: the defaults, the listening HOST when specific, then EXTRA."""
    from mockinfura.networks import CATALOGUE

    # OpenSSL does not match "*.localhost" (a wildcard needs two labels after it): each network's name is listed
    names = [*DEFAULT_NAMES, *(f"{network}.localhost" for network in CATALOGUE)]
    if host and host not in ("0.0.0.0", "::", "") and tls_name_problem(host) is None:
        names.append(host.lower())
    names.extend(extra)
    seen: dict[str, None] = {}
    for name in names:
        key = str(ipaddress.ip_address(name)) if _is_ip(name) else name.lower()
        seen.setdefault(key, None)
    return list(seen)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def default_ca_dir(flag: str | None = None) -> Path:
    """--ca-dir, else $MOCKINFURA_CA_DIR, else ./mockinfura-ca (as an absolute path)."""
    chosen = flag or os.environ.get(CA_DIR_ENV) or DEFAULT_CA_DIR
    return Path(os.path.abspath(os.path.expanduser(chosen)))


@dataclass
class TlsFiles:
    """What `serve --tls` needs: the server's cert and key files (temporary), and the CA certificate to show."""

    ca_cert: Path
    certfile: Path
    keyfile: Path
    names: list[str]
    created_ca: bool
    _tmp_dir: Path | None = field(default=None, repr=False)

    def cleanup(self) -> None:
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None


def prepare_tls(ca_dir: str | os.PathLike[str], names: list[str]) -> TlsFiles:
    """Load (or create once) the CA in CA_DIR and issue a server certificate for NAMES. Raises TlsError."""
    for name in names:
        problem = tls_name_problem(name)
        if problem:
            raise TlsError(f"cannot issue a certificate for {name!r}: {problem}")
    directory = Path(ca_dir)
    ca_key, ca_cert, created = load_or_create_ca(directory)
    key_pem, cert_pem = issue_server_certificate(ca_key, ca_cert, names)
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix="mockinfura-tls-"))
    except OSError as exc:
        raise TlsError(f"cannot create a temporary folder for the server certificate: {_reason(exc)}") from None
    files = TlsFiles(ca_cert=directory / CA_CERT_NAME, certfile=tmp_dir / "server.pem", keyfile=tmp_dir / "server.key",
                     names=list(names), created_ca=created, _tmp_dir=tmp_dir)
    try:
        _write_private(files.keyfile, key_pem)
        files.certfile.write_bytes(cert_pem)  # the leaf alone: clients hold the CA (sending it would add nothing)
        _check_loadable(files)
    except OSError as exc:
        files.cleanup()
        raise TlsError(f"cannot write the server certificate to {tmp_dir}: {_reason(exc)}") from None
    except Exception:
        files.cleanup()
        raise
    return files


def _check_loadable(files: TlsFiles) -> None:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(files.certfile), str(files.keyfile))
    except ssl.SSLError as exc:  # pragma: no cover - would be a bug in issue_server_certificate
        raise TlsError(f"the issued server certificate does not load: {exc}") from None


# --- the CA -------------------------------------------------------------------------------------------------------


def load_or_create_ca(directory: Path) -> tuple[Any, Any, bool]:
    """(CA private key, CA certificate, created now?) from DIRECTORY, creating the CA there when it has none."""
    if directory.exists() and not directory.is_dir():
        raise TlsError(f"the CA path {directory} is not a directory")
    cert_path, key_path = directory / CA_CERT_NAME, directory / CA_KEY_NAME
    if cert_path.exists() and key_path.exists():
        return (*_load_ca(cert_path, key_path), False)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TlsError(f"cannot create the CA directory {directory}: {_reason(exc)}") from None
    with _locked(directory):
        has_cert, has_key = cert_path.exists(), key_path.exists()
        if has_cert and has_key:  # another process created it while we waited
            return (*_load_ca(cert_path, key_path), False)
        if has_cert or has_key:
            present, missing = (cert_path, key_path) if has_cert else (key_path, cert_path)
            raise TlsError(f"{present} exists but {missing.name} is missing: restore it, or remove {present.name} "
                           f"to create a new CA (clients must then trust the new {CA_CERT_NAME})")
        key, cert = create_ca()
        try:
            _write_private(key_path, _private_pem(key))
            _write_atomic(cert_path, _pem_of(cert), 0o644)
        except OSError as exc:
            with contextlib.suppress(OSError):
                key_path.unlink()
            raise TlsError(f"cannot write the CA to {directory}: {_reason(exc)}") from None
        return key, cert, True


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the CA folder, so that servers starting together create one CA, not two."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TlsError(f"cannot write to the CA directory {directory}: {_reason(exc)}") from None
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock, creation is still atomic per file
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def create_ca() -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    suffix = secrets.token_hex(4)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mockinfura (test only, never trust in production)"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"mockinfura test CA {socket.gethostname()[:24]} {suffix}"),
    ])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _load_ca(cert_path: Path, key_path: Path) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        cert_bytes, key_bytes = cert_path.read_bytes(), key_path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the CA in {cert_path.parent}: {_reason(exc)}") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_bytes)
    except ValueError:
        raise TlsError(f"{cert_path} is not a PEM certificate (remove it and {CA_KEY_NAME} to create a new CA)") from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except (ValueError, TypeError):
        raise TlsError(f"{key_path} is not an unencrypted PEM private key") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise TlsError(f"{key_path}: the CA key must be an EC or RSA key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise TlsError(f"{key_path} does not belong to {cert_path}")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise TlsError(f"{cert_path} is not a CA certificate (no basicConstraints CA:TRUE)")
    now = _now()
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise TlsError(f"{cert_path} is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                       f"{cert.not_valid_after_utc:%Y-%m-%d}): remove it and {CA_KEY_NAME} to create a new CA")
    return key, cert


# --- the server certificate --------------------------------------------------------------------------------------


def issue_server_certificate(ca_key: Any, ca_cert: Any, names: list[str]) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for NAMES, signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in names:
        if _is_ip(name):
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        else:
            alt_names.append(x509.DNSName(name))
    now = _now()
    not_after = min(now + datetime.timedelta(days=SERVER_VALIDITY_DAYS), ca_cert.not_valid_after_utc)
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "infura.io (mockinfura)")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - BACKDATE, ca_cert.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(authority, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _private_pem(key), _pem_of(cert)


# --- helpers -------------------------------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _pem_of(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _private_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o600)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it (0644 for the CA certificate that clients read)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
