"""The house stays in order: ruff, with the project's own configuration (pyproject.toml: pyflakes,
import order, a cap on McCabe complexity), passes over the code, the tests and the benchmarks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_ruff_passes_with_the_projects_configuration():
    done = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "taxi_pipeline", "taxi_pipeline_tests",
                           "benchmarks"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
