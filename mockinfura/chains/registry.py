"""The networks' chains: each built on first use, each served by its own worker thread.

One thread per chain keeps a chain's state consistent (one writer at a time) and keeps EVM work off
the event loop, so a slow call on one network never stalls the others or the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mockinfura.config import Config
from mockinfura.networks import CATALOGUE

# Answered on the event loop from the chain's own state, with no thread hop (the values are plain ints).
INLINE_METHODS = frozenset({"eth_chainId", "net_version", "eth_blockNumber"})
log = logging.getLogger("mockinfura")


class ChainSlot:
    """A network's chain and the worker thread that owns it."""

    def __init__(self, network: str, build: Callable[[], Any], block_time: float = 0.0) -> None:
        self.network = network
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"chain-{network}")
        self.chain: Any = None
        self._build = build
        self._ready = self.executor.submit(self._create)
        self.miner = IntervalMiner(self, block_time) if block_time > 0 else None

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


class IntervalMiner:
    """Interval mining (`[chain] block_time`): a block every `block_time` seconds, mined on the chain's worker.

    Transactions still mine at once (auto-mine stays on, as hardhat's `mining.auto` with `mining.interval`); the
    interval adds the blocks between them. A tick that comes while the worker is busy waits its turn; ticks missed
    meanwhile are skipped, not caught up.
    """

    def __init__(self, slot: ChainSlot, block_time: float) -> None:
        self.slot = slot
        self.block_time = block_time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"miner-{slot.network}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.slot.result()
        except Exception:  # the chain failed to build: its calls report it
            return
        next_due = time.monotonic() + self.block_time
        while not self._stop.wait(max(0.0, next_due - time.monotonic())):
            try:
                self.slot.executor.submit(_mine_one_block, self.slot.chain).result()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("interval mining failed on %s", self.slot.network)
            next_due = max(next_due + self.block_time, time.monotonic())

    def stop(self) -> None:
        self._stop.set()


def _evm_chain(chain: Any) -> Any:
    """The EVM chain behind canned fixtures, if any."""
    return chain if hasattr(chain, "export_state") and not hasattr(chain, "fallback") else getattr(chain, "fallback", None)


def _export(chain: Any) -> dict[str, Any] | None:
    target = _evm_chain(chain)  # anvil and upstream chains have no state to export: skipped
    return target.export_state() if target is not None and hasattr(target, "export_state") else None


def _import(chain: Any, state: dict[str, Any]) -> None:
    target = _evm_chain(chain)
    if target is not None and hasattr(target, "import_state"):
        target.import_state(state)


def _mine_one_block(chain: Any) -> None:
    target = chain if hasattr(chain, "mine") else getattr(chain, "fallback", None)
    if target is not None:  # a canned-only network has no chain to mine
        target.mine()


class ChainRegistry:
    def __init__(self, config: Config, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self._slots: dict[str, ChainSlot] = {}
        self._lock = threading.Lock()
        self.pending_states: dict[str, dict[str, Any]] = {}  # loaded from a state file, applied when built

    def built(self) -> dict[str, ChainSlot]:
        return dict(self._slots)

    def slot(self, network: str) -> ChainSlot:
        slot = self._slots.get(network)
        if slot is None:
            with self._lock:
                slot = self._slots.get(network)
                if slot is None:
                    slot = ChainSlot(network, lambda: self._build(network), self.config.chain.block_time)
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
        elif settings.backend == "upstream":
            from mockinfura.chains.upstream import UpstreamChain

            chain = UpstreamChain(network, CATALOGUE[network].chain_id, settings.url, timeout=settings.timeout)
        elif settings.backend == "anvil":
            from mockinfura.chains.anvil import AnvilChain

            chain = AnvilChain(network, CATALOGUE[network].chain_id, mnemonic=chain_settings.mnemonic,
                               accounts=chain_settings.accounts, balance=chain_settings.balance,
                               anvil_path=settings.anvil_path, timeout=settings.timeout)
        saved = self.pending_states.pop(network, None)
        if saved is not None and chain is not None and hasattr(chain, "import_state"):
            chain.import_state(saved)
        if settings.fixtures or settings.backend == "canned":
            from mockinfura.chains.canned import CannedChain, load_fixtures

            chain = CannedChain(network, load_fixtures(settings.fixtures, network), fallback=chain)
        return chain

    def genesis_answer(self, network: str, method: str, params: Any) -> Any:
        """What a network not built yet answers without building it (a chain at genesis), or None.

        Only for the embedded chain with no fixtures, no saved state and no interval mining; the chain is then built
        in the background, so a first `eth_chainId` or `eth_blockNumber` does not wait for py-evm to load.
        """
        if network in self._slots or method not in INLINE_METHODS or params not in ([], None):
            return None
        settings = self.config.network_settings(network)
        if settings.backend != "evm" or settings.fixtures or network in self.pending_states or self.config.chain.block_time:
            return None
        self.slot(network)  # build it now, on its own thread
        chain_id = CATALOGUE[network].chain_id
        return {"eth_chainId": hex(chain_id), "net_version": str(chain_id), "eth_blockNumber": "0x0"}[method]

    async def call(self, network: str, method: str, params: Any, *, owner: str = "", control: bool = False) -> Any:
        answer = self.genesis_answer(network, method, params)
        if answer is not None:
            return answer
        slot = self.slot(network)
        chain = slot.chain
        if chain is not None:
            if method in INLINE_METHODS and getattr(chain, "inline_safe", False):
                return chain.call(method, params, owner=owner, control=control)
            acall = getattr(type(chain), "acall", None)  # anvil, upstream: forwarded from the event loop, no thread hop
            if acall is not None:
                return await acall(chain, method, params, owner=owner, control=control)
        return await slot.run(lambda c: c.call(method, params, owner=owner, control=control))

    def start_backends(self) -> None:
        """Build now every network served by anvil or an upstream node, and check the upstreams' chain ids.

        For `mockinfura serve`, before it listens. Raises BackendError (mockinfura.chains.upstream): anvil missing
        or not starting, a chain id mismatch. An upstream not reachable yet is only logged: it is checked on first
        contact instead.
        """
        from mockinfura.chains.upstream import BackendError, UpstreamError

        for network, settings in self.config.networks.items():
            if settings.backend not in ("anvil", "upstream"):
                continue
            chain = self.slot(network).result()
            target = getattr(chain, "fallback", None) or chain  # behind canned fixtures, if any
            try:
                target.verify()
            except BackendError:
                raise
            except UpstreamError as exc:
                log.warning("network %s: %s (its chain id is checked on first contact)", network, exc.message)

    async def reset(self) -> None:
        self.pending_states.clear()
        for slot in list(self._slots.values()):
            await slot.run(lambda c: c.reset())

    async def export_states(self) -> dict[str, dict[str, Any]]:
        """Every chain that has state: the built ones (read on their own threads) and those loaded but not yet used."""
        states = dict(self.pending_states)
        for network, slot in list(self._slots.items()):
            state = await slot.run(_export)
            if state is not None:
                states[network] = state
        return states

    def export_states_blocking(self) -> dict[str, dict[str, Any]]:
        """The same from a thread with no event loop (at shutdown)."""
        states = dict(self.pending_states)
        for network, slot in list(self._slots.items()):
            state = slot.executor.submit(lambda s=slot: _export(s.result())).result()
            if state is not None:
                states[network] = state
        return states

    async def import_states(self, states: dict[str, dict[str, Any]]) -> None:
        """Make every chain exactly as in STATES: networks it names are restored (built now if need be, so that a
        dump that does not fit fails here), the others reset."""
        self.pending_states = {}
        for network in states:
            self.slot(network)
        for network, slot in list(self._slots.items()):
            if network in states:
                await slot.run(_import, states[network])
            else:
                await slot.run(lambda c: c.reset())

    def close(self) -> None:
        for slot in self._slots.values():
            if slot.miner is not None:
                slot.miner.stop()
            slot.executor.shutdown(wait=False, cancel_futures=True)
            slot._ready.add_done_callback(lambda _, s=slot: _close_chain(s))  # anvil processes, upstream pools


def _close_chain(slot: ChainSlot) -> None:
    close = getattr(slot.chain, "close", None) if slot.chain is not None else None
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("closing the chain of %s failed", slot.network)
