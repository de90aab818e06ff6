"""Start the real `mockinfura serve` as a subprocess on 127.0.0.1, port 0, as a user would."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
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
        self.base_url = self._wait_for_listening_line()
        self.port = int(self.base_url.rsplit(":", 1)[1])

    @property
    def tmp_dir(self) -> Path:
        return Path(self._tmp.name)

    def _wait_for_listening_line(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.1):
                if self.process.poll() is not None:
                    break
                continue
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if line.startswith("mockinfura listening on "):
                # the key lines follow at once; read them too
                while selector.select(timeout=0.2):
                    more = self.process.stdout.readline()
                    if not more:
                        break
                    self.lines.append(more.rstrip("\n"))
                return line.split()[-1]
        self.process.kill()
        raise RuntimeError(f"server did not start: {self.process.stderr.read()}")

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
