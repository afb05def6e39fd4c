"""The tree stays clean under the linter configured in pyproject.toml (``[tool.ruff]``), and the
chapters formatted to their column (``chapters/ruff.toml``).

Skipped where ruff is not installed; it comes with the ``test`` extra. What is not linted yet,
and why, is listed in ``extend-exclude`` there.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (the [test] extra has it)")
def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ruff check . reports (fix them, or `ruff check --fix .`):\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (the [test] extra has it)")
def test_chapter_code_is_formatted():
    # chapters/ruff.toml sets the 76 columns the book's code cells show.
    done = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "chapters"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ruff format --check chapters (run `ruff format chapters`):\n{done.stdout[-4000:]}"
