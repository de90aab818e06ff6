"""`eth_subscribe` bookkeeping: which subscriptions watch which chain, and their notification frames.

Each built chain gets one listener (`EvmChain.listeners`), called on the chain's worker thread after every mined
block and every accepted transaction. The listener formats the payloads there, once per event (the header, the
block's logs), builds each subscriber's notification bytes, and hands them to the event loop in one
`call_soon_threadsafe`: the loop only forwards bytes, never touches the EVM.

Nothing here knows about WebSockets or API keys: a subscription delivers its frames to a callable that the
gateway supplies. Subscriptions are registered only once the reply that names them has been queued
(`activate`), so a client never sees a notification before the id it belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mockinfura.chains.registry import ChainRegistry
from mockinfura.rpc import params as p
from mockinfura.rpc.envelope import dump
from mockinfura.rpc.errors import INVALID_INPUT, METHOD_NOT_FOUND, RpcError, invalid_params

log = logging.getLogger("mockinfura")

NEW_HEADS = "newHeads"
LOGS = "logs"
NEW_PENDING_TRANSACTIONS = "newPendingTransactions"
SUBSCRIPTION_KINDS = (NEW_HEADS, LOGS, NEW_PENDING_TRANSACTIONS)
SUBSCRIPTION_ID_BYTES = 16  # infura.md 4: ids look like 0x9cef478923ff08bf67fde6c64013158d
# [choice] geth's words for the errors a subscription call can meet.
SUBSCRIPTION_NOT_FOUND = "subscription not found"
NOTIFICATIONS_UNSUPPORTED = "notifications not supported"

_FRAME_HEAD = b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
_FRAME_MIDDLE = b'","result":'
_FRAME_TAIL = b"}}"


def notification_frame(subscription_id: bytes, payload: bytes) -> bytes:
    """`{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":<id>,"result":<payload>}}`."""
    return _FRAME_HEAD + subscription_id + _FRAME_MIDDLE + payload + _FRAME_TAIL


def new_subscription_id() -> str:
    return "0x" + os.urandom(SUBSCRIPTION_ID_BYTES).hex()


@dataclass(eq=False)
class Subscription:
    id: str
    kind: str
    feed: ChainFeed
    # called on the event loop: deliver(subscription, frame, block number or None for a pending transaction)
    deliver: Callable[[Subscription, bytes, int | None], None]
    criteria: dict[str, Any] | None = None  # logs only: eth_newFilter's parsed address and topics
    active: bool = False
    id_bytes: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.id_bytes = self.id.encode()


def log_matches(criteria: dict[str, Any], formatted_log: dict[str, Any]) -> bool:
    """eth_newFilter's matching rule on a formatted log: any listed address, and each topic position."""
    addresses = criteria["addresses"]
    if addresses is not None and bytes.fromhex(formatted_log["address"][2:]) not in addresses:
        return False
    topics = criteria["topics"]
    log_topics = formatted_log["topics"]
    if len(topics) > len(log_topics):
        return False
    return all(wanted is None or int(log_topics[i], 16) in wanted for i, wanted in enumerate(topics))


def _watched_chain(chain: Any) -> Any:
    """The chain whose listeners see the blocks: the chain itself, or the EVM behind canned fixtures."""
    for candidate in (chain, getattr(chain, "fallback", None)):
        if candidate is not None and hasattr(candidate, "listeners") and hasattr(candidate, "format_header"):
            return candidate
    return None


class ChainFeed:
    """One network's subscriptions, fed by one listener on its chain.

    The subscriber tuples are copied on write under a lock; the chain thread reads them without one.
    """

    def __init__(self, network: str, loop: asyncio.AbstractEventLoop) -> None:
        self.network = network
        self.loop = loop
        self.chain: Any = None  # set on the chain thread by `install`
        self._lock = threading.Lock()
        self._subscribers: dict[str, tuple[Subscription, ...]] = {kind: () for kind in SUBSCRIPTION_KINDS}

    # -- event loop side

    def add(self, subscription: Subscription) -> None:
        with self._lock:
            current = self._subscribers[subscription.kind]
            self._subscribers[subscription.kind] = (*current, subscription)
        subscription.active = True

    def remove(self, subscription: Subscription) -> bool:
        subscription.active = False
        with self._lock:
            current = self._subscribers[subscription.kind]
            if subscription not in current:
                return False
            self._subscribers[subscription.kind] = tuple(s for s in current if s is not subscription)
        return True

    def count(self) -> int:
        return sum(len(subs) for subs in self._subscribers.values())

    def _deliver(self, frames: list[tuple[Subscription, bytes]], block: int | None) -> None:
        for subscription, frame in frames:
            if subscription.active:  # unsubscribed since the chain thread built the frame: dropped
                subscription.deliver(subscription, frame, block)

    # -- chain thread side

    def install(self, chain: Any) -> None:
        """Hook this feed to CHAIN (on the chain's thread, once)."""
        watched = _watched_chain(chain)
        if watched is None:
            raise RpcError(METHOD_NOT_FOUND, NOTIFICATIONS_UNSUPPORTED)
        if self.chain is None:
            self.chain = watched
            watched.listeners.append(self.on_chain_event)

    def on_chain_event(self, event: str, value: Any) -> None:
        """The chain's listener. It must never raise: the chain is mid-`_mine` when it calls."""
        try:
            if event == "block":
                frames, block = self._block_frames(value), value
            elif event == "pending":
                frames, block = self._pending_frames(value), None
            else:
                return
            if frames:
                self.loop.call_soon_threadsafe(self._deliver, frames, block)
        except RuntimeError:  # the event loop is closed: the server is shutting down
            pass
        except Exception:
            log.exception("subscription feed for %s failed on %s %s", self.network, event, value)

    def _block_frames(self, number: int) -> list[tuple[Subscription, bytes]]:
        heads = self._subscribers[NEW_HEADS]
        log_watchers = self._subscribers[LOGS]
        frames: list[tuple[Subscription, bytes]] = []
        if heads:
            header = dump(self.chain.format_header(number))
            frames.extend((sub, notification_frame(sub.id_bytes, header)) for sub in heads)
        if log_watchers:
            logs = self.chain.block_logs(number)
            dumped: dict[int, bytes] = {}
            for formatted_log in logs:  # in log order, then subscription order: each client sees log order
                for sub in log_watchers:
                    if sub.criteria is not None and log_matches(sub.criteria, formatted_log):
                        payload = dumped.get(id(formatted_log))
                        if payload is None:
                            payload = dumped[id(formatted_log)] = dump(formatted_log)
                        frames.append((sub, notification_frame(sub.id_bytes, payload)))
        return frames

    def _pending_frames(self, tx_hash: str) -> list[tuple[Subscription, bytes]]:
        watchers = self._subscribers[NEW_PENDING_TRANSACTIONS]
        if not watchers:
            return []
        payload = dump(tx_hash)
        return [(sub, notification_frame(sub.id_bytes, payload)) for sub in watchers]


class SubscriptionHub:
    """Every network's feed; the one entry point for eth_subscribe and eth_unsubscribe."""

    def __init__(self, chains: ChainRegistry) -> None:
        self.chains = chains
        self._feeds: dict[str, ChainFeed] = {}

    def count(self) -> int:
        """Live (activated) subscriptions over every network."""
        return sum(feed.count() for feed in list(self._feeds.values()))

    async def subscribe(
        self, network: str, params: Any, deliver: Callable[[Subscription, bytes, int | None], None]
    ) -> Subscription:
        """A new, not yet active, subscription for eth_subscribe's PARAMS; raises RpcError if they are wrong."""
        if not isinstance(params, list) or not params:
            raise invalid_params("eth_subscribe: expected the subscription type as first argument")
        kind, options = params[0], params[1:]
        if kind not in SUBSCRIPTION_KINDS:
            shown = kind if isinstance(kind, str) else dump(kind).decode()
            raise RpcError(METHOD_NOT_FOUND, f'no "{shown}" subscription in eth namespace')
        feed = self._feed(network)
        criteria = await self.chains.slot(network).run(_prepare, feed, kind, options)
        return Subscription(new_subscription_id(), kind, feed, deliver, criteria)

    def activate(self, subscription: Subscription) -> None:
        subscription.feed.add(subscription)

    def cancel(self, subscription: Subscription) -> bool:
        return subscription.feed.remove(subscription)

    def _feed(self, network: str) -> ChainFeed:
        feed = self._feeds.get(network)
        if feed is None:
            feed = self._feeds[network] = ChainFeed(network, asyncio.get_running_loop())
        return feed


def _prepare(chain: Any, feed: ChainFeed, kind: str, options: list[Any]) -> dict[str, Any] | None:
    """On the chain thread: hook the feed, and read the options of KIND."""
    feed.install(chain)
    if kind == LOGS:
        if len(options) > 1:
            raise invalid_params("eth_subscribe: logs takes one filter object")
        return feed.chain.subscription_log_criteria(options[0] if options else {})
    if kind == NEW_PENDING_TRANSACTIONS:
        if len(options) > 1:
            raise invalid_params("eth_subscribe: newPendingTransactions takes at most one argument")
        if options and options[0] is not None and p.boolean(options[0], "fullTransactions"):
            # [choice] hashes only, as Infura documents; a request for full bodies is refused, not ignored
            raise RpcError(INVALID_INPUT, "newPendingTransactions with full transactions is not supported")
        return None
    if options:
        raise invalid_params(f"eth_subscribe: {kind} takes no arguments")
    return None
