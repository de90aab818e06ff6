"""Start the real `mockinfura serve` as a subprocess on 127.0.0.1, port 0, as a user would."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

START_TIMEOUT_SECONDS = 30.0


class ServerProcess:
    def __init__(self, config_text: str | None = None, *, extra_args: tuple[str, ...] = (), env: dict | None = None):
        self.config_path: Path | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="mockinfura-test-")
        args = [sys.executable, "-m", "mockinfura", "serve", "--port", "0", *extra_args]
        if config_text is not None:
            self.config_path = Path(self._tmp.name) / "mockinfura.toml"
            self.config_path.write_text(config_text)
            args += ["--config", str(self.config_path)]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})}, cwd=self._tmp.name,
        )
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []  # drained on a thread: a full pipe would block the server's logging
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self.base_url = self._wait_for_listening_line()
        self.port = int(self.base_url.rsplit(":", 1)[1])

    @property
    def tmp_dir(self) -> Path:
        return Path(self._tmp.name)

    def _drain_stderr(self) -> None:
        try:
            for line in self.process.stderr:
                self.stderr_lines.append(line.rstrip("\n"))
        except (ValueError, OSError):  # closed by stop()
            pass

    @property
    def stderr(self) -> str:
        """What the server wrote to stderr so far (all of it once the process has exited and been waited for)."""
        if self.process.poll() is not None:
            self._stderr_thread.join(timeout=5)
        return "\n".join(self.stderr_lines)

    def _wait_for_listening_line(self) -> str:
        """Read stdout on a thread (a selector on a buffered pipe misses lines already in the buffer)."""
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            try:
                for line in self.process.stdout:
                    lines.put(line.rstrip("\n"))
            except (ValueError, OSError):  # the pipe was closed by stop()
                pass
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        listening = None
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2 if listening else 0.5)
            except queue.Empty:
                if listening:  # the key lines follow the listening line at once
                    return listening
                if self.process.poll() is not None:
                    break
                continue
            if line is None:
                break
            self.lines.append(line)
            if line.startswith("mockinfura listening on "):
                listening = line.split()[-1]
        if listening:
            return listening
        self.process.kill()
        self.process.wait()
        raise RuntimeError(f"server did not start: {self.stderr}")

    def url(self, key: str, network: str | None = None) -> str:
        prefix = f"/{network}" if network else ""
        return f"{self.base_url}{prefix}/v3/{key}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()
        self._tmp.cleanup()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
