"""The chains behind the gateway. py-evm is imported only when a network is first used."""

from __future__ import annotations

import threading

_import_lock = threading.Lock()


def import_pyevm() -> None:
    """Import py-evm once, under a lock: two threads importing its package at once see half-built modules."""
    with _import_lock:
        import eth.vm.spoof  # noqa: F401
        import eth_tester.backends.pyevm.main  # noqa: F401
