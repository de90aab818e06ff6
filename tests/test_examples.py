"""The README's pytest example is a real file: run it as a user would, with no conftest of ours."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_readme_example_passes_as_is() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYTEST_", "PYTHONPATH"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "examples/", "-q", "-p", "no:cacheprovider", "-W", "error::pytest.PytestWarning"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
    assert not (REPO / "examples" / "conftest.py").exists()
