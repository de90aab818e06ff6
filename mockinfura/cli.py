"""The `mockinfura` command (spec interface.md section 2)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

EXIT_USAGE = 2


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"mockinfura: {message}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mockinfura", description="A local Infura for tests.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve Infura's endpoints until SIGINT/SIGTERM")
    serve.add_argument("--config", help="TOML config (default: $MOCKINFURA_CONFIG, else the embedded default)")
    serve.add_argument("--host", help="default: $MOCKINFURA_HOST, else 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: $MOCKINFURA_PORT, else 8545; 0 picks a free port")
    serve.add_argument("--state", metavar="FILE", help="load chains, keys, usage and clock from FILE at start; write them "
                       "there on SIGTERM/SIGINT and on POST /_mock/state/save")
    serve.add_argument("--tls", action="store_true", default=None,
                       help="HTTPS and WSS with a certificate for *.infura.io, localhost, 127.0.0.1 and [server] "
                       "tls_names, issued by a local test CA (default: $MOCKINFURA_TLS, else off)")
    serve.add_argument("--ca-dir", metavar="DIR", help="with --tls: the test CA's folder, created once and reused "
                       "(default: $MOCKINFURA_CA_DIR, else ./mockinfura-ca); clients trust DIR/ca.pem")

    check = commands.add_parser("check", help="validate a config file")
    check.add_argument("file")

    keygen = commands.add_parser("keygen", help="write a JWT key pair NAME.private.pem / NAME.public.pem")
    keygen.add_argument("--alg", choices=("RS256", "ES256"), default="RS256")
    keygen.add_argument("--out", default=".", help="folder to write to (default: .)")
    keygen.add_argument("--name", default="jwt", help="file name stem (default: jwt)")

    token = commands.add_parser("token", help="print a JWT that Infura would accept")
    token.add_argument("--private-key", help="PEM private key (RSA 2048+ for RS256, P-256 for ES256)")
    token.add_argument("--kid", help="the public key's ID on the API key")
    token.add_argument("--demo", action="store_true", help="sign with the shipped demo key (the default config's JWT key)")
    token.add_argument("--ttl", type=float, default=3600, help="seconds until exp (default 3600)")
    for name in ("methods", "addresses", "origins", "user-agents"):
        token.add_argument(f"--{name}", nargs="+", metavar=name.rstrip("s").upper().replace("-", "_"),
                           help=f"the token's {name.replace('-', '_')} allowlist claim")

    fingerprint = commands.add_parser("fingerprint", help="print the Infura fingerprint of a public or private PEM")
    fingerprint.add_argument("file")

    record = commands.add_parser("record", help="a recording proxy: forwards JSON-RPC to an upstream and writes "
                                 "the exchanges as canned fixtures when stopped (SIGINT/SIGTERM)")
    record.add_argument("--upstream", required=True, metavar="URL", help="the JSON-RPC endpoint to forward to")
    record.add_argument("--out", required=True, metavar="FILE", help="the fixture file to write (JSON)")
    record.add_argument("--port", type=int, default=8545, help="port on 127.0.0.1 (default 8545; 0 picks a free one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"serve": cmd_serve, "check": cmd_check, "keygen": cmd_keygen, "token": cmd_token,
               "fingerprint": cmd_fingerprint, "record": cmd_record}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 0


def cmd_check(args: argparse.Namespace) -> int:
    from mockinfura.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.file}: ok ({len(config.api_keys)} API keys, {len(config.networks)} configured networks)")
    return 0


def _listening_lines(config: object, host: str, port: int, scheme: str = "http") -> list[str]:
    shown = f"[{host}]" if ":" in host else host
    base = f"{scheme}://{shown}:{port}"
    lines = [f"mockinfura listening on {base}"]
    for api_key in config.api_keys.values():  # type: ignore[attr-defined]
        lines.append(f"  {api_key.label or 'key'}: {base}/v3/{api_key.key}")
        for jwt_key in api_key.jwt_public_keys:
            lines.append(f"    jwt key {jwt_key.name}: id {jwt_key.id} fingerprint {jwt_key.fingerprint} ({jwt_key.alg})")
    return lines


def cmd_serve(args: argparse.Namespace) -> int:
    from mockinfura.config import ConfigError, load_config

    config_path = args.config or os.environ.get("MOCKINFURA_CONFIG") or None
    host = args.host or os.environ.get("MOCKINFURA_HOST") or "127.0.0.1"
    port = args.port
    if port is None:
        env_port = os.environ.get("MOCKINFURA_PORT", "8545")
        if not env_port.isdigit():
            return _fail(f"MOCKINFURA_PORT must be a port number, got {env_port!r}")
        port = int(env_port)
    if not 0 <= port <= 65535:
        return _fail(f"--port must be between 0 and 65535, got {port}")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return _fail("invalid config:" + (" " if len(exc.problems) == 1 else "\n") + "\n".join(exc.problems))
    env_tls = os.environ.get("MOCKINFURA_TLS", "").strip().lower()
    if env_tls not in ("", "0", "false", "no", "off", "1", "true", "yes", "on"):
        return _fail(f"MOCKINFURA_TLS must be 1/true/yes/on or 0/false/no/off, got {env_tls!r}")
    use_tls = args.tls or env_tls in ("1", "true", "yes", "on")
    if args.ca_dir and not use_tls:
        return _fail("--ca-dir goes with --tls")
    tls_files = None
    if use_tls:
        import atexit

        from mockinfura.tls import TlsError, certificate_names, default_ca_dir, prepare_tls

        try:
            tls_files = prepare_tls(default_ca_dir(args.ca_dir), certificate_names(config.server.tls_names, host))
        except TlsError as exc:
            return _fail(str(exc), 1)
        atexit.register(tls_files.cleanup)  # the server certificate's temporary folder

    from mockinfura.serving import BindError, bind_socket, serve

    try:
        sock = bind_socket(host, port)
    except BindError as exc:
        return _fail(str(exc), 1)
    from mockinfura.app import create_app

    app = create_app(config)
    real_port = sock.getsockname()[1]
    if args.state:
        problem = _load_state_file(app.state, Path(args.state))
        if problem:
            sock.close()
            return _fail(problem)
    from mockinfura.chains.upstream import BackendError

    try:
        app.state.chains.start_backends()  # anvil processes, upstream chain-id checks: before listening
    except BackendError as exc:
        sock.close()
        app.state.chains.close()
        return _fail(str(exc))

    def ready() -> None:
        lines = _listening_lines(config, host, real_port, "https" if tls_files else "http")
        if tls_files is not None:
            ca = tls_files.ca_cert
            if tls_files.created_ca:
                lines.append(f"created a new test CA in {ca.parent} (never trust it outside dev and CI)")
            lines.append(f"CA certificate: {ca}")
            lines.append(f"  trust it with SSL_CERT_FILE={ca} or REQUESTS_CA_BUNDLE={ca} (Python), "
                         f"NODE_EXTRA_CA_CERTS={ca} (Node)")
        print("\n".join(lines), flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(app, sock, ready, stop, ssl_certfile=tls_files and str(tls_files.certfile),
                    ssl_keyfile=tls_files and str(tls_files.keyfile))

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(run())
    if args.state:
        from mockinfura.persistence import dump_state_blocking, write_state_file

        try:
            write_state_file(Path(args.state), dump_state_blocking(app.state))
        except OSError as exc:
            app.state.chains.close()
            return _fail(f"cannot write the state file {args.state}: {exc.strerror or exc}", 1)
    app.state.chains.close()
    return 0


def _load_state_file(state: object, path: Path) -> str | None:
    """Apply a --state file before serving; the reason it cannot be used, or None."""
    from mockinfura.persistence import StateError, load_at_start, read_state_file

    if not path.parent.is_dir():
        return f"--state {path}: the folder {path.parent} does not exist"
    try:
        document = read_state_file(path)
        if document is None:
            state.state_file = path  # type: ignore[attr-defined]
            return None
        load_at_start(state, document, str(path))  # type: ignore[arg-type]
        for network in list(state.chains.pending_states):  # type: ignore[attr-defined]
            state.chains.slot(network).result()  # type: ignore[attr-defined]  # a bad dump fails here, not later
    except StateError as exc:
        return str(exc)
    except ValueError as exc:
        return f"{path}: {exc}"
    state.state_file = path  # type: ignore[attr-defined]
    return None


def cmd_keygen(args: argparse.Namespace) -> int:
    from mockinfura.tokens import fingerprint_of_pem, generate_key_pair, load_public_key

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        private_pem, public_pem = generate_key_pair(args.alg)
        private_path = out / f"{args.name}.private.pem"
        public_path = out / f"{args.name}.public.pem"
        private_path.write_bytes(private_pem)
        private_path.chmod(0o600)
        public_path.write_bytes(public_pem)
    except OSError as exc:
        return _fail(f"cannot write the key pair to {out}: {exc.strerror or exc}", 1)
    loaded = load_public_key(public_pem.decode())
    print(f"wrote {private_path} and {public_path} ({args.alg})")
    print(f"fingerprint {fingerprint_of_pem(public_pem)}")
    print(f"id {loaded.default_id} (the id mockinfura assigns when the config gives none)")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from mockinfura.tokens import DEMO_PRIVATE_KEY_PATH, PublicKeyError, demo_key_id, make_token

    if args.demo:
        if args.private_key:
            return _fail("--demo signs with the shipped demo key; leave out --private-key")
        private_path, kid = DEMO_PRIVATE_KEY_PATH, args.kid or demo_key_id()
    else:
        if not args.private_key or not args.kid:
            return _fail("token needs --private-key FILE and --kid ID (or --demo)")
        private_path, kid = Path(args.private_key), args.kid
    if args.ttl <= 0:
        return _fail(f"--ttl must be positive, got {args.ttl}")
    try:
        private_pem = Path(private_path).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {private_path}: {exc.strerror or exc}")
    allowlists = {"methods": args.methods, "addresses": args.addresses, "origins": args.origins,
                  "user_agents": args.user_agents}
    try:
        print(make_token(private_pem, kid, ttl=args.ttl, allowlists=allowlists))
    except PublicKeyError as exc:
        return _fail(f"{private_path}: {exc}")
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from mockinfura.tokens import PublicKeyError, fingerprint_of_pem

    try:
        pem = Path(args.file).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")
    try:
        print(fingerprint_of_pem(pem))
    except PublicKeyError as exc:
        return _fail(f"{args.file}: {exc}")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from mockinfura.recorder import run_recorder

    return run_recorder(args.upstream, Path(args.out), args.port)
