"""`mockinfura record`: a recording proxy (spec interface.md sections 2 and 5).

It answers JSON-RPC at `/` and at `/v3/<KEY>` (also `/<network>/v3/<KEY>`), forwards each request as is to
the upstream URL, replies with the upstream's answer, and writes the exchanges as canned fixtures when it
stops (SIGINT/SIGTERM), so that `backend = "canned"` with `fixtures = [FILE]` answers the same.

What is written, [choice]s:
- one entry per distinct (method, params), params exactly as the client sent them (absent params: `[]`);
- a call answered differently over time (eth_blockNumber...) gets one entry per run of equal answers, each
  with `times` = the run's length except the last run's, which answers from then on: a replay gives the
  same sequence of answers;
- JSON-RPC errors are recorded as `error` entries, except rate-limit errors (-32005); replies with an
  HTTP error status (auth refusals, 429...) are forwarded but not recorded, save -32601 (unknown method);
- notifications (no id) and replies that are not JSON are forwarded but not recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mockinfura.atomic_file import write_atomically

RECORDER_HOST = "127.0.0.1"
UPSTREAM_TIMEOUT_SECONDS = 60.0
NOT_RECORDED_ERROR_CODES = frozenset({-32005})  # [choice] a rate limit is the upstream's mood, not an answer
METHOD_NOT_FOUND = -32601
FORWARDED_HEADERS = ("authorization", "origin", "user-agent")  # so the upstream's own auth and allowlists apply
PROXY_PATH = re.compile(r"^/(?:(?:[a-z0-9-]+/)?v3/[^/]*/?)?$")


@dataclass(frozen=True, slots=True)
class Exchange:
    method: str
    params: Any
    outcome: str  # "result" or "error"
    answer: Any


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Recording:
    """The exchanges seen so far, in order; `fixture_entries()` is what the fixture file holds."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def add(self, method: str, params: Any, outcome: str, answer: Any) -> None:
        self.exchanges.append(Exchange(method, params, outcome, answer))

    def fixture_entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        last_run: dict[str, tuple[str, dict[str, Any]]] = {}  # call -> (answer, its entry)
        for exchange in self.exchanges:
            call = _canonical([exchange.method, exchange.params])
            answer = _canonical([exchange.outcome, exchange.answer])
            previous = last_run.get(call)
            if previous is not None and previous[0] == answer:
                previous[1]["times"] += 1
                continue
            entry = {"method": exchange.method, "params": exchange.params, exchange.outcome: exchange.answer, "times": 1}
            entries.append(entry)
            last_run[call] = (answer, entry)
        for _, entry in last_run.values():  # the last answer of each call stays for good
            del entry["times"]
        return entries

    def write(self, path: Path) -> int:
        """Write the fixture file atomically; the number of entries."""
        entries = self.fixture_entries()
        write_atomically(path, (json.dumps(entries, indent=2) + "\n").encode())
        return len(entries)


def record_exchange(recording: Recording, request_document: Any, status: int, reply_document: Any) -> None:
    """Pair each call of a request with its reply (by id, in order) and record what is worth replaying."""
    calls = request_document if isinstance(request_document, list) else [request_document]
    if isinstance(reply_document, list):
        replies = reply_document
    elif isinstance(request_document, list):
        return  # a batch answered by one object: a refusal of the whole batch
    else:
        replies = [reply_document]
    by_id: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
    for reply in replies:
        if isinstance(reply, dict) and "id" in reply:
            by_id[_canonical(reply["id"])].append(reply)
    for call in calls:
        if not isinstance(call, dict) or "id" not in call or not isinstance(call.get("method"), str):
            continue
        queue = by_id.get(_canonical(call["id"]))
        if not queue:
            continue
        reply = queue.popleft()
        params = call.get("params")
        params = [] if params is None else params
        if "error" in reply and isinstance(reply["error"], dict):
            code = reply["error"].get("code")
            if code in NOT_RECORDED_ERROR_CODES or (status != 200 and code != METHOD_NOT_FOUND):
                continue
            recording.add(call["method"], params, "error", reply["error"])
        elif "result" in reply and status == 200:
            recording.add(call["method"], params, "result", reply["result"])


class RecorderApp:
    """The proxy as a bare ASGI app (no framework: it has one route)."""

    def __init__(self, upstream: str, recording: Recording) -> None:
        self.upstream = upstream
        self.recording = recording
        self._client: Any = None

    async def _http(self) -> Any:
        if self._client is None:  # the upstream backend's keep-alive client (mockinfura/chains/upstream.py)
            from mockinfura.chains.upstream import AsyncHttpClient

            self._client = AsyncHttpClient(self.upstream, UPSTREAM_TIMEOUT_SECONDS)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if not PROXY_PATH.match(scope["path"]):
            await _send(send, 404, {"error": "the recorder answers at / and /v3/<KEY>"})
            return
        if scope["method"] != "POST":
            await _send(send, 405, {"error": "POST JSON-RPC here"})
            return
        try:
            request_document = json.loads(body)
        except ValueError:
            await _send(send, 400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}})
            return
        headers = {"content-type": "application/json"}
        for name, value in scope["headers"]:
            decoded = name.decode("latin-1").lower()
            if decoded in FORWARDED_HEADERS:
                headers[decoded] = value.decode("latin-1")
        from mockinfura.chains.upstream import UpstreamError

        client = await self._http()
        try:
            upstream = await client.post(bytes(body), headers)
        except UpstreamError as exc:  # 502 (unreachable, dropped) or 504 (no reply within the timeout)
            error = {"code": -32603, "message": f"mockinfura record: {exc.message}"}
            await _send(send, exc.http_status, {"jsonrpc": "2.0", "id": None, "error": error})
            return
        try:
            reply_document = json.loads(upstream.body)
        except ValueError:
            pass
        else:
            record_exchange(self.recording, request_document, upstream.status, reply_document)
        content_type = upstream.headers.get("content-type", "application/json")
        await _send_raw(send, upstream.status, upstream.body, content_type)


async def _send(send: Any, status: int, document: Any) -> None:
    await _send_raw(send, status, json.dumps(document).encode(), "application/json")


async def _send_raw(send: Any, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode("latin-1")), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def check_arguments(upstream: str, out: Path, port: int) -> str | None:
    """The problem with the flags, or None."""
    if not re.match(r"^https?://[^/\s]+", upstream):
        return f"--upstream must be an http:// or https:// URL, got {upstream!r}"
    if not 0 <= port <= 65535:
        return f"--port must be between 0 and 65535, got {port}"
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        return f"--out {out}: the folder {folder} does not exist"
    if out.is_dir():
        return f"--out {out} is a folder; give a file name"
    if not os.access(folder, os.W_OK):
        return f"--out {out}: the folder {folder} is not writable"
    return None


def run_recorder(upstream: str, out: Path, port: int) -> int:
    """Serve the proxy until SIGINT/SIGTERM, then write OUT. The exit code."""
    problem = check_arguments(upstream, out, port)
    if problem:
        print(f"mockinfura: {problem}", file=sys.stderr)
        return 2
    from mockinfura.serving import BindError, bind_socket, serve

    try:
        sock = bind_socket(RECORDER_HOST, port)
    except BindError as exc:
        print(f"mockinfura: {exc}", file=sys.stderr)
        return 1
    recording = Recording()
    app = RecorderApp(upstream, recording)
    real_port = sock.getsockname()[1]

    def ready() -> None:
        print(f"mockinfura listening on http://{RECORDER_HOST}:{real_port}", flush=True)
        print(f"  recording to {out}: forwarding to {upstream}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await serve(app, sock, ready, stop)
        finally:
            await app.aclose()

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(run())
    else:
        uvloop.run(run())
    try:
        count = recording.write(out)
    except OSError as exc:
        print(f"mockinfura: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {count} fixture entries ({len(recording.exchanges)} calls) to {out}", flush=True)
    return 0
