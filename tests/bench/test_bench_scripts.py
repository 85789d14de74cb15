"""Every benchmark script starts: its imports (benchlib reaches into src/, tests/kit and the roles) resolve.

The benchmarks take minutes and run on demand, so nothing else in `./dev test` would notice a script that
no longer starts until someone needs its figures.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if path.name != "benchlib.py")


def test_every_script_is_found() -> None:
    assert "chain.py" in SCRIPTS
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_starts(script: str) -> None:
    # As the docs run them: `.venv/bin/python bench/X.py`, from anywhere, with no PYTHONPATH.
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
