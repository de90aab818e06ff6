"""The testing toolkit: `MockInfura` (the mock in a thread of this process), its `Admin` (the control plane as
Python calls) and the pytest plugin (`plugin.py`, loaded through the `pytest11` entry point).

Names are imported on first use, so that loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "MockInfura": "mockinfura.testing.server",
    "StartError": "mockinfura.testing.server",
    "IsolationError": "mockinfura.testing.server",
    "DevAccount": "mockinfura.testing.server",
    "Checkpoint": "mockinfura.testing.server",
    "Admin": "mockinfura.testing.admin",
    "AdminError": "mockinfura.testing.admin",
    "ApiKeyHandle": "mockinfura.testing.keys",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(module), name)
