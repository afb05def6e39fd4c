"""The Binder environment: a CPU-only PyTorch, the course from this checkout, the smallest preset."""

import os
import re
import subprocess
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _requirements() -> list[str]:
    lines = [
        line.split("#")[0].strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
    ]
    return [line for line in lines if line]


def test_torch_comes_from_the_cpu_index_within_the_package_range():
    lines = _requirements()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    pins = {
        Requirement(line).name: Requirement(line) for line in lines if re.match(r"^[A-Za-z]", line)
    }
    # The versions this project is tested with satisfy the Binder ranges, and the package's own ranges.
    assert pins["torch"].specifier.contains(Version("2.14.1")) and pins[
        "torchvision"
    ].specifier.contains(Version("0.29.1"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name in ("torch", "torchvision"):
        declared = re.search(rf'"{name}([^"]*)"', pyproject).group(1)
        assert str(pins[name].specifier) == declared, (
            f"binder's {name} range differs from pyproject's"
        )


def test_the_course_is_installed_from_the_checkout():
    assert "." in _requirements()


def test_start_defaults_to_the_book_preset_and_keeps_a_users_choice():
    start = BINDER / "start"
    assert os.access(start, os.X_OK)
    env = {key: value for key, value in os.environ.items() if key != "RESNET_COURSE_PRESET"}
    shown = subprocess.run(
        [str(start), "env"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "RESNET_COURSE_PRESET=book" in shown.splitlines()
    chosen = subprocess.run(
        [str(start), "env"],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "RESNET_COURSE_PRESET": "cpu"},
    ).stdout
    assert "RESNET_COURSE_PRESET=cpu" in chosen.splitlines()
