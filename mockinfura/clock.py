"""The server clock: every time check (JWT exp/nbf, credit windows, filter expiry) reads it.

Tests and `/_mock/clock` move it; it never moves the host's clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def set(self, unix_time: float) -> None:
        self.offset = unix_time - time.time()

    def reset(self) -> None:
        self.offset = 0.0

    def as_dict(self) -> dict:
        now = self.now()
        return {
            "now": now,
            "iso": datetime.fromtimestamp(now, UTC).isoformat(),
            "offset": self.offset,
        }
