"""The Gradescope autograder, with no Gradescope: the zip's layout, and run_autograder on a laid-out
/autograder tree ($AUTOGRADER_ROOT) for a solution, a stub and a borrowed block."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from grader_notebooks import Style, notebook_for

from resnet_course.grading.exercises import EXERCISES
from resnet_course.grading.gradescope import build_zip

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = EXERCISES["01_basic_block"]
STATUSES, VISIBILITIES = (
    {"passed", "failed"},
    {"hidden", "after_due_date", "after_published", "visible"},
)


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    return build_zip(EXERCISE, tmp_path_factory.mktemp("zip") / "autograder.zip")


def test_the_zip_holds_gradescopes_scripts_and_the_course_without_its_solutions(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as archive:
        names = archive.namelist()
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        config = json.loads(archive.read("exercise.json"))
        setup = archive.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder", "exercise.json"} <= set(names)
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    assert "course/pyproject.toml" in names and "course/resnet_course/grading/grader.py" in names
    assert not [n for n in names if "solutions" in n or n.endswith(".ipynb")]
    assert config["exercise"] == "01_basic_block"
    assert f'"torch=={config["torch"]}"' in setup and "download.pytorch.org/whl/cpu" in setup
    assert "bubblewrap" in setup and '"/autograder/source/course[grade]"' in setup


def validate(results: dict) -> None:
    """Gradescope's results.json, as its documentation lays it out."""
    assert isinstance(results["score"], (int, float)) and isinstance(
        results["execution_time"], float
    )
    assert isinstance(results["output"], str) and isinstance(results["tests"], list)
    for test in results["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test), test
        assert test["status"] in STATUSES and test["visibility"] in VISIBILITIES
        assert 0 <= test["score"] <= test["max_score"] or test["max_score"] == 0
    scored = sum(test["score"] for test in results["tests"])
    assert scored == pytest.approx(results["score"], abs=0.06), (scored, results["score"])


def run_autograder(autograder_zip: Path, root: Path, notebook) -> dict:
    """Lay out Gradescope's tree under ``root``, submit ``notebook``, run run_autograder."""
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(root / "source")
    (root / "submission").mkdir(parents=True)
    nbformat.write(notebook, root / "submission" / "01_basic_block.ipynb")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    validate(results)
    return results


@pytest.mark.slow
def test_a_solution_earns_full_marks_a_stub_none_and_a_borrowed_block_a_staff_flag(
    autograder_zip, tmp_path
):
    solution = run_autograder(autograder_zip, tmp_path / "solution", notebook_for(Style()))
    assert solution["score"] == EXERCISE.points
    assert all(t["status"] == "passed" for t in solution["tests"] if t["max_score"] > 0)
    assert len([t for t in solution["tests"] if t["max_score"] > 0]) == EXERCISE.item_count

    stub = run_autograder(autograder_zip, tmp_path / "stub", notebook_for(Style(solution=False)))
    assert stub["score"] == 0
    failed = [t for t in stub["tests"] if t["status"] == "failed" and t["max_score"] > 0]
    assert failed and all("Hint:" in t["output"] for t in failed)

    borrowed = Style(
        replace=(
            (
                "class BasicBlock(nn.Module):",
                "from resnet_course.blocks import BasicBlock as _Course\n\n"
                "class BasicBlock(_Course):\n"
                "    def __init__(self, in_channels, planes, stride=1):\n"
                "        super().__init__(in_channels, planes, stride, shortcut='B')\n",
            ),
        )
    )
    flagged = run_autograder(autograder_zip, tmp_path / "borrowed", notebook_for(borrowed))
    (staff,) = [t for t in flagged["tests"] if t["visibility"] == "hidden"]
    assert "not code written in this notebook" in staff["output"]
    assert any("not code written in this notebook" in f for f in flagged["extra_data"]["flags"])
    assert all(t["visibility"] == "visible" for t in flagged["tests"] if t is not staff)


def test_a_submission_without_the_notebook_gets_one_sentence(autograder_zip, tmp_path):
    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(root / "source")
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "answers.txt").write_text("no notebook")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    subprocess.run(
        ["bash", str(root / "source" / "run_autograder")],
        cwd=root,
        env=env,
        check=True,
        timeout=300,
    )
    results = json.loads((root / "results" / "results.json").read_text())
    validate(results)
    assert results["score"] == 0 and "submit 01_basic_block.ipynb" in results["output"]


def test_a_check_that_partly_passed_scores_each_item_on_its_own():
    """Items of a check that ran pass unless named; a check that did not run fails every item."""
    from resnet_course.grading.checks import ALL_CHECKS
    from resnet_course.grading.grader import CheckResult, NotebookGrade
    from resnet_course.grading.gradescope import item_tests

    cell = EXERCISE.checks[0]
    items = ALL_CHECKS[cell.check].items
    partly = CheckResult(cell, len(items) - 1, len(items), [f"{items[0].name}: wrong shape"])
    others = [CheckResult(c, 0, c.item_count) for c in EXERCISE.checks[1:]]  # did not run
    tests = item_tests(NotebookGrade(Path("x.ipynb"), EXERCISE, [partly, *others], []))
    statuses = [t["status"] for t in tests]
    assert statuses[: len(items)] == ["failed"] + ["passed"] * (len(items) - 1)
    assert set(statuses[len(items) :]) == {"failed"}
    assert "wrong shape" in tests[0]["output"] and "Hint:" in tests[0]["output"]
