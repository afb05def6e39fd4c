"""A Gradescope autograder for one exercise: the zip an instructor uploads, and what runs inside it.

``python -m resnet_course autograder exercises/01_basic_block.ipynb --out autograder.zip`` builds
the zip Gradescope's "Configure Autograder" page takes:

* ``setup.sh`` (Gradescope runs it once, as root, when it builds the image): Python, bubblewrap,
  CPU-only torch and torchvision at the versions the zip was built with, and the course itself,
  shipped in the zip (``course/``, the package without the solutions) with its grading extra;
* ``run_autograder`` (run for every submission): grades ``submission/*.ipynb`` with the course's
  grader and writes ``results/results.json`` in Gradescope's format;
* ``exercise.json``: which exercise this autograder grades.

``results.json`` holds the score, the run's time and one test per check item (its name, score,
maximum, status and, where it failed, what went wrong and the hint a student reads), one visible
test for problems of the run (a time-out, a dead kernel, a missing check cell), and the grader's
flags in a test only staff see, and in ``extra_data``. Within Gradescope's container the
notebook still runs in the bubblewrap sandbox where the container allows one (no network, a user
other than root); where it does not, it runs as a plain process, and the staff test says so.

Everything lives under ``$AUTOGRADER_ROOT`` (``/autograder`` by default), so the whole layout can
be tested on any machine.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from .checks import ALL_CHECKS
from .exercises import EXERCISES, Exercise, find_exercise
from .grader import GradingError, NotebookGrade, grade_notebook

VISIBLE, STAFF_ONLY = "visible", "hidden"


def autograder_root() -> Path:
    return Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))


# --- what runs for each submission ---------------------------------------------------------------


def item_tests(grade: NotebookGrade) -> list[dict]:
    """One Gradescope test per check item, each worth its share of the exercise's points."""
    exercise = grade.exercise
    items = [
        (check_result, item)
        for check_result in grade.checks
        for item in ALL_CHECKS[check_result.cell.check].items
    ]
    share = exercise.points / len(items) if items else 0.0
    tests = []
    for number, (check_result, item) in enumerate(items, start=1):
        failure = next(
            (
                f
                for f in check_result.failed_items
                if f == item.name or f.startswith(item.name + ":")
            ),
            None,
        )
        # A check that did not run names no item: every one of its items failed. One that ran
        # names each item that failed, so the others passed.
        ran = bool(check_result.failed_items) or check_result.passed == check_result.total
        passed = ran and failure is None
        output = ""
        if not passed:
            detail = failure.split(":", 1)[1].strip() if failure and ":" in failure else ""
            output = "\n".join(
                part for part in (detail, f"Hint: {item.hint}" if item.hint else "") if part
            )
        tests.append(
            {
                "number": str(number),
                "name": f"{check_result.cell.call}: {item.name}",
                "score": round(share if passed else 0.0, 4),
                "max_score": round(share, 4),
                "status": "passed" if passed else "failed",
                "output": output,
                "visibility": VISIBLE,
            }
        )
    return tests


def results(grade: NotebookGrade | GradingError, seconds: float, *, sandboxed: bool) -> dict:
    """Gradescope's ``results.json`` for one graded (or ungradable) notebook."""
    if isinstance(grade, GradingError):
        return {
            "score": 0.0,
            "execution_time": round(seconds, 1),
            "output": f"The notebook could not be graded: {grade}",
            "tests": [],
            "extra_data": {"flags": [], "sandboxed": sandboxed},
        }
    tests = item_tests(grade)
    problems = list(grade.problems) + list(grade.notes)
    if problems:
        tests.append(
            {
                "name": "How the notebook ran",
                "score": 0.0,
                "max_score": 0.0,
                "status": "failed" if grade.problems else "passed",
                "output": "\n".join(problems),
                "visibility": VISIBLE,
            }
        )
    staff = list(grade.flags) + ([] if sandboxed else ["the notebook ran without the sandbox"])
    tests.append(
        {
            "name": "Flags for the instructor (not scored)",
            "score": 0.0,
            "max_score": 0.0,
            "status": "passed",
            "output": "\n".join(staff) or "none",
            "visibility": STAFF_ONLY,
        }
    )
    return {
        "score": grade.points,
        "execution_time": round(seconds, 1),
        "output": (
            f"{grade.passed} of {grade.total} checks passed: {grade.points:g} of "
            f"{grade.exercise.points} points. A full mark means your code computes the block at "
            "points the grader drew after your notebook ran."
        ),
        "tests": tests,
        "extra_data": {"flags": list(grade.flags), "sandboxed": sandboxed},
    }


def configured_exercise(root: Path) -> Exercise:
    config = json.loads((root / "source" / "exercise.json").read_text())
    return EXERCISES[config["exercise"]]


def submitted_notebook(root: Path, exercise: Exercise) -> Path | None:
    """The submission's notebook for ``exercise``: the one named after it, else the only one."""
    found = sorted(
        p for p in (root / "submission").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )
    named = [p for p in found if find_exercise(p.stem) is exercise]
    if named:
        return named[0]
    return found[0] if len(found) == 1 else None


def run_autograder(root: Path | None = None) -> dict:
    """Grade the submission under ``root`` and write ``results/results.json``; returns it."""
    from .sandbox import isolation_available

    root = root or autograder_root()
    started = time.monotonic()
    exercise = configured_exercise(root)
    notebook = submitted_notebook(root, exercise)
    sandboxed = isolation_available()
    if notebook is None:
        outcome: NotebookGrade | GradingError = GradingError(
            f"no notebook of {exercise.name} was found in the submission; submit "
            f"{exercise.name}.ipynb (the exercise's notebook, with your code in it)."
        )
    else:
        try:
            outcome = grade_notebook(notebook, isolate=sandboxed)
        except GradingError as error:
            outcome = error
    report = results(outcome, time.monotonic() - started, sandboxed=sandboxed)
    folder = root / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(report, indent=1))
    return report


# --- the zip an instructor uploads ---------------------------------------------------------------

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
set -euo pipefail
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python3-pip bubblewrap
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
# CPU-only torch at the versions this autograder was built with (no GPU on Gradescope).
/autograder/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu \\
    "torch=={torch}" "torchvision=={torchvision}"
/autograder/venv/bin/pip install "/autograder/source/course[grade]"
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission, from /autograder.
exec "${AUTOGRADER_PYTHON:-/autograder/venv/bin/python}" -m resnet_course.grading.gradescope
"""


def _course_files(package: Path) -> list[tuple[Path, str]]:
    """The course's package and its project file, as (file, name in the zip) pairs."""
    root = package.parent
    files = [
        (root / "pyproject.toml", "course/pyproject.toml"),
        (root / "README.md", "course/README.md"),
    ]
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append((path, f"course/{package.name}/{path.relative_to(package)}"))
    return [(path, name) for path, name in files if path.exists()]


def build_zip(exercise: Exercise, out: Path) -> Path:
    """Write the autograder zip for ``exercise`` to ``out``."""
    import torch
    import torchvision

    import resnet_course

    package = Path(resnet_course.__file__).resolve().parent
    versions = {
        "torch": torch.__version__.split("+")[0],
        "torchvision": torchvision.__version__.split("+")[0],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkstemp(prefix=".autograder-", suffix=".zip", dir=out.parent)[1])
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in (("setup.sh", SETUP.format(**versions)), ("run_autograder", RUN)):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16  # executable, as Gradescope needs
            archive.writestr(info, text)
        archive.writestr(
            "exercise.json", json.dumps({"exercise": exercise.name, **versions}, indent=1)
        )
        for path, name in _course_files(package):
            archive.write(path, name)
    os.replace(temporary, out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "exercise", help="the exercise's notebook (exercises/01_basic_block.ipynb) or name"
    )
    parser.add_argument("--out", default="autograder.zip", help="where to write the zip")


def main(args: argparse.Namespace) -> int:
    exercise = find_exercise(Path(args.exercise).stem)
    if exercise is None:
        print(
            f"autograder: {args.exercise!r} is not one of the course's exercises "
            f"({', '.join(EXERCISES)}).",
            file=sys.stderr,
        )
        return 2
    path = build_zip(exercise, Path(args.out))
    print(f"Gradescope autograder for {exercise.name} written to {path}.")
    return 0


if __name__ == "__main__":  # run_autograder's entry point
    report = run_autograder()
    print(report["output"])
