"""The running mock's state: config, API keys, clock, chains, journal. No HTTP here."""

from __future__ import annotations

from pathlib import Path

from mockinfura.chains.registry import ChainRegistry
from mockinfura.clock import Clock
from mockinfura.config import ApiKeyConfig, Config
from mockinfura.gateway.jwt import JwtVerifier
from mockinfura.gateway.metering import Meter
from mockinfura.journal import Journal


class MockState:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.clock = Clock()
        self.api_keys: dict[str, ApiKeyConfig] = dict(config.api_keys)
        self.chains = ChainRegistry(config, self.clock.now)
        self.verifier = JwtVerifier()
        self.journal = Journal()
        self.meter = Meter()
        self.state_file: Path | None = None  # serve --state FILE

    def api_key(self, key: str | None) -> ApiKeyConfig | None:
        return self.api_keys.get(key) if key else None

    def put_api_key(self, api_key: ApiKeyConfig) -> None:
        self.api_keys[api_key.key] = api_key
        self.verifier.forget(api_key.key)

    def delete_api_key(self, key: str) -> bool:
        self.verifier.forget(key)
        return self.api_keys.pop(key, None) is not None

    async def reset(self) -> None:
        """Every chain back to genesis; journal and usage cleared; keys and clock kept."""
        await self.chains.reset()
        self.journal.clear()
        self.meter.clear()
