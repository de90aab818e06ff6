"""The networks' chains: each built on first use, each served by its own worker thread.

One thread per chain keeps a chain's state consistent (one writer at a time) and keeps EVM work off
the event loop, so a slow call on one network never stalls the others or the gateway.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from mockinfura.config import Config
from mockinfura.networks import CATALOGUE

# Answered on the event loop from the chain's own state, with no thread hop (the values are plain ints).
INLINE_METHODS = frozenset({"eth_chainId", "net_version", "eth_blockNumber"})


class ChainSlot:
    """A network's chain and the worker thread that owns it."""

    def __init__(self, network: str, build: Callable[[], Any]) -> None:
        self.network = network
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"chain-{network}")
        self.chain: Any = None
        self._build = build
        self._ready = self.executor.submit(self._create)

    def _create(self) -> None:
        self.chain = self._build()

    def result(self) -> Any:
        """The built chain (blocks the calling thread until it is)."""
        self._ready.result()
        return self.chain

    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        if not self._ready.done():
            await asyncio.wrap_future(self._ready)
        return await loop.run_in_executor(self.executor, lambda: function(self.chain, *args, **kwargs))


class ChainRegistry:
    def __init__(self, config: Config, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self._slots: dict[str, ChainSlot] = {}
        self._lock = threading.Lock()

    def built(self) -> dict[str, ChainSlot]:
        return dict(self._slots)

    def slot(self, network: str) -> ChainSlot:
        slot = self._slots.get(network)
        if slot is None:
            with self._lock:
                slot = self._slots.get(network)
                if slot is None:
                    slot = ChainSlot(network, lambda: self._build(network))
                    self._slots[network] = slot
        return slot

    def _build(self, network: str) -> Any:
        settings = self.config.network_settings(network)
        chain_settings = self.config.chain
        chain = None
        if settings.backend == "evm":
            from mockinfura.chains.evm import EvmChain

            chain = EvmChain(
                CATALOGUE[network].chain_id,
                mnemonic=chain_settings.mnemonic,
                accounts=chain_settings.accounts,
                balance=chain_settings.balance,
                clock=self.clock,
            )
        if settings.fixtures or settings.backend == "canned":
            from mockinfura.chains.canned import CannedChain, load_fixtures

            chain = CannedChain(network, load_fixtures(settings.fixtures, network), fallback=chain)
        return chain

    async def call(self, network: str, method: str, params: Any, *, owner: str = "", control: bool = False) -> Any:
        slot = self.slot(network)
        chain = slot.chain
        if chain is not None and method in INLINE_METHODS and getattr(chain, "inline_safe", False):
            return chain.call(method, params, owner=owner, control=control)
        return await slot.run(lambda c: c.call(method, params, owner=owner, control=control))

    async def reset(self) -> None:
        for slot in list(self._slots.values()):
            await slot.run(lambda c: c.reset())

    def close(self) -> None:
        for slot in self._slots.values():
            slot.executor.shutdown(wait=False, cancel_futures=True)
