"""The request journal: every Infura-facing request, with its auth decision, reason, status and credits."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

JOURNAL_MAX_ENTRIES = 10_000  # [choice] the oldest entries go first past this


@dataclass(slots=True)
class JournalEntry:
    time: str
    network: str | None
    key: str | None
    methods: list[str]
    client: str | None
    user_agent: str | None
    origin: str | None
    decision: str  # "allowed" or "refused"
    reason: str
    status: int
    credits: int = 0
    transport: str = "http"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    def __init__(self, max_entries: int = JOURNAL_MAX_ENTRIES) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=max_entries)

    def record(self, entry: JournalEntry) -> None:
        self._entries.append(entry)

    def clear(self) -> None:
        self._entries.clear()

    def entries(
        self, *, key: str | None = None, network: str | None = None, method: str | None = None,
        decision: str | None = None, limit: int | None = None,
    ) -> list[JournalEntry]:
        """The entries that match every filter given, oldest first; LIMIT keeps the newest N of them."""
        # A copy first: `deque.copy()` is atomic, iterating the deque while another thread records is not.
        selected = [
            e for e in self._entries.copy()
            if (key is None or e.key == key)
            and (network is None or e.network == network)
            and (method is None or method in e.methods)
            and (decision is None or e.decision == decision)
        ]
        if limit is not None:
            selected = selected[-limit:] if limit > 0 else []
        return selected

    def __len__(self) -> int:
        return len(self._entries)


_second_cache: tuple[int, str] = (-1, "")


def iso_time(unix: float) -> str:
    """ISO-8601 UTC with milliseconds; the part down to the second is formatted once a second."""
    global _second_cache
    second = int(unix // 1)
    if _second_cache[0] != second:
        _second_cache = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second_cache[1]}.{min(999, int((unix - second) * 1000)):03d}Z"
