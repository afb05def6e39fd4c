"""The tree stays clean under the linter configured in pyproject.toml (``[tool.ruff]``), and
formatted by ``ruff format`` (chapters to their column, ``chapters/ruff.toml``).

Skipped where ruff is not installed; it comes with the ``test`` extra. What is not linted yet,
and why, is listed in ``extend-exclude`` there.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None,
    reason="ruff is not installed (the [test] extra has it)",
)
def test_ruff_finds_nothing():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"ruff check . reports (fix them, or `ruff check --fix .`):\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None,
    reason="ruff is not installed (the [test] extra has it)",
)
def test_the_tree_is_formatted():
    # The package, tools, tests and the Python in Markdown at 100 columns; chapters/ruff.toml sets
    # the 76 that the book's code cells show.
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"ruff format --check . reports (run `ruff format .`):\n{done.stdout[-4000:]}"
    )
