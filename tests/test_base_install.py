"""What a chapter, a dashboard or a check cell imports works with the package's declared dependencies alone.

The tools' dependencies (nbformat, nbclient, nbval, pytest, the book's Sphinx stack, Playwright)
are made unimportable in a child interpreter; the package, its dashboards and its checks must
import, and `info` must run. `grade` then says in one sentence what to install.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS_ONLY = [
    "nbval",
    "pytest",
    "nbformat",
    "nbclient",
    "myst_nb",
    "jupyter_book",
    "sphinx",
    "playwright",
    "yaml",
]

SCRIPT = f"""
import sys
for name in {TOOLS_ONLY!r}:
    sys.modules[name] = None  # import name -> ImportError, as on a base install
import resnet_course, resnet_course.widgets, resnet_course.grading, resnet_course.runs
import resnet_course.evidence, resnet_course.claims, resnet_course.analysis, resnet_course.plots
from resnet_course.grading import check_basic_block
from resnet_course.__main__ import main
assert main(["info"]) == 0
assert main(["grade", "missing.ipynb"]) == 2
"""


def test_the_package_imports_and_info_runs_without_the_tools():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "preset" in done.stdout and "Traceback" not in done.stderr
    assert "needs" in done.stderr and "pip install" in done.stderr


@pytest.mark.slow
def test_the_wheel_ships_the_package_and_its_subpackages_and_not_the_tools(tmp_path):
    # Built from a copy, so the build leaves nothing in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("resnet_course", "tools"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "wheel"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "wheel").glob("resnet_course-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"resnet_course"}, top
    expected = {
        "resnet_course/__init__.py",
        "resnet_course/evidence.py",
        "resnet_course/grading/__init__.py",
    }
    expected |= {
        f"resnet_course/{p.relative_to(ROOT / 'resnet_course').as_posix()}"
        for p in (ROOT / "resnet_course").rglob("__init__.py")
    }
    assert expected <= set(names), expected - set(names)
