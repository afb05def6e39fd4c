"""The prepared GPU session (tools/gpu_session.sh): refuses a machine without CUDA, and every
command it would run is one the tools accept (it is run for real only when a GPU is lent)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tools import scale_study
from tools.bench import command as bench

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_session.sh"


def commands() -> list[list[str]]:
    """The tool invocations of the script, one per `-m tools.X` line (continuations joined)."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if "-m tools." in line and not line.lstrip().startswith("#"):
            words = shlex.split(line)
            found.append(words[words.index("-m") + 1 :])
    return found


def test_the_script_is_valid_shell():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_every_step_is_a_command_the_tools_accept():
    found = commands()
    assert [words[0] for words in found] == ["tools.bench"] * 2 + [
        "tools.scale_study",
        "tools.bench",
        "tools.scale_study",
    ]
    for words in found:
        if words[0] == "tools.bench":
            parser = argparse.ArgumentParser()
            bench.add_arguments(parser)
            args = parser.parse_args(words[1:])
            bench._parts(args)  # raises on an unknown part
        else:
            study_args = words[1:]
            configs = study_args[study_args.index("--configs") + 1].split(",")
            claims = study_args[study_args.index("--claims") + 1].split(",")
            assert set(configs) <= set(scale_study.CONFIGS) and set(claims) <= set(
                scale_study.CLAIMS
            )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_stops_with_one_sentence():
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert result.returncode == 1 and "no CUDA GPU here" in result.stderr
    assert "==" not in result.stdout  # no step started
