"""Running the app under uvicorn on a socket we bind ourselves (so port 0 reports its real port)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any


class BindError(OSError):
    pass


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # With protocol 0 plain asyncio never sets TCP_NODELAY on accepted sockets (it checks the protocol), and
    # Nagle + delayed ACKs then cost ~40 ms per loopback request; uvloop sets it either way.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def make_server(
    app: Any, *, log_level: str = "warning", ssl_certfile: str | None = None, ssl_keyfile: str | None = None
) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # The CLI installs its own handlers (so that SIGTERM ends in exit 0, not a re-raised signal);
            # a server in a thread must not touch signals at all.
            yield

    from mockinfura.config import ServerSettings

    state = getattr(app, "state", None)
    settings = state.config.server if state is not None and hasattr(state, "config") else ServerSettings()
    config = uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="off", timeout_graceful_shutdown=3,
        ws_max_size=settings.ws_max_message_bytes,
        limit_concurrency=settings.max_connections,
        proxy_headers=False,  # the client address is the peer's: X-Forwarded-For cannot pose as loopback
        timeout_keep_alive=settings.keep_alive_seconds,
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,  # `serve --tls`: HTTPS and WSS (mockinfura/tls.py)
    )
    return Server(config)


async def serve(
    app: Any, sock: socket.socket, on_ready: Callable[[], None], stop: asyncio.Event, *,
    ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
) -> None:
    server = make_server(app, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.005)
    on_ready()
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await task
    stop_wait.cancel()
