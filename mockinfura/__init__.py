"""mockinfura: a local Infura for tests."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["MockInfura", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import mockinfura` (and the pytest plugin) stays cheap.
    if name == "MockInfura":
        from mockinfura.testing.server import MockInfura

        return MockInfura
    raise AttributeError(name)
