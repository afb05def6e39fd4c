"""The dashboards under ipywidgets 7.7, the version Colab ships, with its classic-notebook extension.

ipywidgets 7.7.x, widgetsnbextension 3.6 and jupyterlab_widgets 1.x are installed
into a folder of their own and put first on the path of a second pytest run of
tests/test_widgets.py: Train, Stop, Clear, redraws, a real kernel's click, and a
notebook's saved widget state, all under 7.7 instead of the 8.x this venv has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
COLAB_WIDGETS = [
    "ipywidgets==7.7.*",
    "widgetsnbextension==3.6.*",
    "jupyterlab_widgets>=1,<2",
    "ipython_genutils",
]


@pytest.fixture(scope="module")
def ipywidgets7(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("ipywidgets7")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(folder),
            *COLAB_WIDGETS,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if installed.returncode != 0:
        pytest.skip(
            f"ipywidgets 7.7 could not be installed (no package index?): {installed.stderr.strip()[-200:]}"
        )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}


def test_the_dashboards_pass_their_tests_under_ipywidgets_7(ipywidgets7):
    version = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ipywidgets, resnet_course.widgets; print(ipywidgets.__version__)",
        ],
        capture_output=True,
        text=True,
        env=ipywidgets7,
        cwd=ROOT,
        timeout=120,
    )
    assert version.stdout.strip().startswith("7.7."), version.stdout + version.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_widgets.py", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        env=ipywidgets7,
        cwd=ROOT,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1], (
        result.stdout[-500:]
    )
