"""Credits and rate limits as Infura meters them (spec infura.md section 5, credits.toml).

Admission and charging happen together, on the event loop with no await in between, so concurrent
callers cannot race past a limit: a call is refused once the credits already used in its window
have reached the limit; the call that crosses the limit is still served and charged ([choice]).
"""

from __future__ import annotations

import tomllib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mockinfura.config import ApiKeyConfig
from mockinfura.networks import CATALOGUE

CREDITS_FILE = Path(__file__).parent.parent / "data" / "credits.toml"
PER_SECOND_WINDOW_SECONDS = 1.0
LEGACY_SEE_URL = "https://infura.io/docs/ethereum/json-rpc/ratelimits"


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    per_day: int  # 0: no limit
    per_second: int


@dataclass(frozen=True, slots=True)
class CreditTable:
    default: int
    client_error: int
    methods: dict[str, int]
    events: dict[str, int]
    plans: dict[str, Plan]
    network_methods: dict[str, dict[str, int]] = field(default_factory=dict)

    def cost(self, method: str, network: str | None = None) -> int:
        """Network-specific price, else Ethereum's, else the default."""
        if network is not None:
            specific = self.network_methods.get(network)
            if specific and method in specific:
                return specific[method]
        return self.methods.get(method, self.default)

    @classmethod
    def load(cls, path: Path = CREDITS_FILE) -> CreditTable:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        plans = {"unlimited": Plan("unlimited", 0, 0)}
        for name, limits in document.get("plans", {}).items():
            plans[name] = Plan(name, int(limits["per_day"]), int(limits["per_second"]))
        network_methods = {
            name: {m: int(c) for m, c in table.get("methods", {}).items()}
            for name, table in document.get("networks", {}).items()
            if name in CATALOGUE
        }
        return cls(
            default=int(document["default"]),
            client_error=int(document["client_error"]),
            methods={m: int(c) for m, c in document.get("methods", {}).items()},
            events={e: int(c) for e, c in document.get("events", {}).items()},
            plans=plans,
            network_methods=network_methods,
        )


@dataclass(frozen=True, slots=True)
class LimitHit:
    """Which limit refused a call; `replies.rate_limited` turns it into Infura's reply."""

    kind: str  # "plan_daily", "key_daily", "plan_throughput", "key_throughput"
    limit: int
    used: float


@dataclass
class _KeyMeter:
    window: deque = field(default_factory=deque)  # (time, credits) of the last second
    window_total: int = 0
    day: str = ""
    day_total: int = 0


_day_cache: tuple[int, int, str] = (0, -1, "")  # (start, end) of the cached UTC day, and its name


def utc_day(unix: float) -> str:
    """The UTC day of UNIX as YYYY-MM-DD; formatted once a day, not once a request."""
    global _day_cache
    start, end, name = _day_cache
    if not start <= unix < end:
        day_start = int(unix // 86_400) * 86_400
        name = datetime.fromtimestamp(day_start, UTC).strftime("%Y-%m-%d")
        _day_cache = (day_start, day_start + 86_400, name)
    return name


class Meter:
    def __init__(self, table: CreditTable | None = None) -> None:
        self.table = table or CreditTable.load()
        self._meters: dict[str, _KeyMeter] = {}
        # usage[key][day] = {"credits": n, "methods": {method: {"calls": n, "credits": n}}}
        self.usage: dict[str, dict[str, dict[str, Any]]] = {}

    def cost_of(self, methods: list[str], network: str | None) -> int:
        return sum(self.table.cost(m, network) for m in methods)

    def _meter(self, key: str, now: float) -> _KeyMeter:
        meter = self._meters.get(key)
        if meter is None:
            meter = self._meters[key] = _KeyMeter()
        day = utc_day(now)
        if meter.day != day:  # a new day, or a new meter: start from what the usage report holds for it
            meter.day = day
            meter.day_total = self.usage.get(key, {}).get(day, {}).get("credits", 0)
        window = meter.window
        while window and window[0][0] <= now - PER_SECOND_WINDOW_SECONDS:
            meter.window_total -= window.popleft()[1]
        return meter

    def check(self, api_key: ApiKeyConfig, now: float) -> LimitHit | None:
        """The limit that refuses a new call now, if any. Daily before per-second, plan before key."""
        plan = self.table.plans.get(api_key.plan)
        if plan is None or (not plan.per_day and not plan.per_second and not api_key.credits_per_day
                            and not api_key.credits_per_second):
            return None
        meter = self._meter(api_key.key, now)
        if plan.per_day and meter.day_total >= plan.per_day:
            return LimitHit("plan_daily", plan.per_day, meter.day_total)
        if api_key.credits_per_day and meter.day_total >= api_key.credits_per_day:
            return LimitHit("key_daily", api_key.credits_per_day, meter.day_total)
        if plan.per_second and meter.window_total >= plan.per_second:
            return LimitHit("plan_throughput", plan.per_second, meter.window_total)
        if api_key.credits_per_second and meter.window_total >= api_key.credits_per_second:
            return LimitHit("key_throughput", api_key.credits_per_second, meter.window_total)
        return None

    def admit(self, api_key: ApiKeyConfig, credits: int, now: float) -> LimitHit | None:
        """Refuse (a LimitHit) or admit and reserve CREDITS at once: no caller can slip in between."""
        hit = self.check(api_key, now)
        if hit is None:
            self._add(api_key.key, credits, now)
        return hit

    def _add(self, key: str, credits: int, now: float) -> None:
        if not credits:
            return
        meter = self._meter(key, now)
        meter.window.append((now, credits))
        meter.window_total += credits
        meter.day_total += credits

    def settle(self, key: str, reserved: int, charges: list[tuple[str, int]], now: float) -> int:
        """Record what a request finally cost, per method; corrects the reservation made at admission."""
        total = sum(c for _, c in charges)
        self._add(key, total - reserved, now)
        day = self.usage.setdefault(key, {}).setdefault(utc_day(now), {"credits": 0, "methods": {}})
        day["credits"] += total
        for method, credits in charges:
            entry = day["methods"].setdefault(method, {"calls": 0, "credits": 0})
            entry["calls"] += 1
            entry["credits"] += credits
        return total

    def report(self) -> dict[str, Any]:
        return {"keys": {key: {"days": days} for key, days in self.usage.items()}}

    def clear(self) -> None:
        self._meters.clear()
        self.usage.clear()
