"""The exercises end to end, each notebook run by the grader in a fresh, sandboxed kernel.

Every solution passes ``grade``; every student notebook as shipped runs cleanly
and fails each of its checks; a forged check cell cannot pass; a notebook that
errors or hangs gets a sentence, not a traceback; the report is the same twice.
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from resnet_course.grading.exercises import EXERCISES
from resnet_course.grading.grader import grade_notebook
from resnet_course.grading.sandbox import isolation_available

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_DIR = ROOT / "exercises"
# A fast exercise for the tests that only need some notebook to grade.
FAST = "05_preactivation"
# Where bubblewrap is missing, several notebooks are graded only when told to go on without it.
NO_SANDBOX = [] if isolation_available() else ["--no-isolation"]


def environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def grade(*arguments, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resnet_course", "grade", *map(str, arguments), *NO_SANDBOX],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=timeout,
    )


def table_row(stdout: str, notebook: Path) -> list[str]:
    (row,) = [line.split() for line in stdout.splitlines() if line.endswith(str(notebook))]
    return row


def test_every_solution_passes_grade():
    solutions = [EXERCISE_DIR / "solutions" / f"{name}.ipynb" for name in EXERCISES]
    result = grade(*solutions)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, path in zip(EXERCISES, solutions):
        _, exercise, checks, points, _ = table_row(result.stdout, path)
        passed, total = checks.split("/")
        assert exercise == name and passed == total == str(EXERCISES[name].item_count)
        assert points == f"{EXERCISES[name].points}/{EXERCISES[name].points}"
    assert "All checks passed." in result.stdout


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_student_notebook_as_shipped_fails_each_of_its_checks(name):
    result = grade_notebook(EXERCISE_DIR / f"{name}.ipynb", isolate=isolation_available())
    assert result.problems == [], "the shipped notebook should run cleanly; only its checks fail"
    assert len(result.checks) == len(EXERCISES[name].checks)
    for check in result.checks:
        assert check.total == check.cell.item_count
        assert check.passed < check.total, (
            f"`{check.cell.call}` passes on the stub: it checks nothing"
        )
    assert not result.all_passed and result.points < EXERCISES[name].points


def test_grade_fails_a_student_notebook_with_the_same_report_twice():
    notebook = EXERCISE_DIR / f"{FAST}.ipynb"
    first, second = grade(notebook), grade(notebook)
    assert first.returncode == second.returncode == 1
    assert first.stdout == second.stdout
    assert "Traceback" not in first.stdout + first.stderr
    assert table_row(first.stdout, notebook)[2] == f"0/{EXERCISES[FAST].item_count}"


def forged_copy(tmp_path: Path, *, keep_identity: bool) -> Path:
    """The student notebook with its check cell replaced by one that prints the all-passed report."""
    exercise = EXERCISES[FAST]
    notebook = nbformat.read(EXERCISE_DIR / f"{FAST}.ipynb", as_version=4)
    (cell,) = [c for c in notebook.cells if c.id == exercise.checks[0].id]
    cell.source = f"print({exercise.checks[0].expected_output!r})"
    if not keep_identity:
        cell.id, cell.metadata = "my-cell", {}
    path = tmp_path / f"{FAST}.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize("keep_identity", [True, False], ids=["edited", "replaced"])
def test_a_forged_check_cell_cannot_pass(tmp_path, keep_identity):
    path = forged_copy(tmp_path, keep_identity=keep_identity)
    result = grade(path)
    assert result.returncode == 1, result.stdout
    row = table_row(result.stdout, path)
    assert row[2] == f"0/{EXERCISES[FAST].item_count}"
    if not keep_identity:
        assert "is missing" in result.stdout


def test_an_error_and_a_hang_each_get_one_sentence(tmp_path):
    notebook = nbformat.read(EXERCISE_DIR / "solutions" / f"{FAST}.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell('raise RuntimeError("something broke")'))
    notebook.cells.append(
        nbformat.v4.new_code_cell("import time\nwhile True:  # never returns\n    time.sleep(1)")
    )
    path = tmp_path / f"{FAST}.ipynb"
    nbformat.write(notebook, path)
    result = grade(path, "--timeout", "30")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    code_cells = sum(cell.cell_type == "code" for cell in notebook.cells)
    assert (
        f'code cell {code_cells - 1} (`raise RuntimeError("something broke")`) raised RuntimeError: something broke.'
        in result.stdout
    )
    assert f"code cell {code_cells} (`import time`) did not finish within 30 s" in result.stdout
    # The checks themselves still passed: the problems are reported besides the score.
    assert (
        table_row(result.stdout, path)[2]
        == f"{EXERCISES[FAST].item_count}/{EXERCISES[FAST].item_count}"
    )


@pytest.mark.parametrize(
    "folder, passes", [("solutions", True), ("", False)], ids=["solution", "student"]
)
def test_plain_nbval_passes_a_solution_and_fails_the_shipped_stub(folder, passes):
    """What a student runs: pytest --nbval-lax on the notebook as it is."""
    notebook = EXERCISE_DIR / folder / f"{FAST}.ipynb"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            str(notebook),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=600,
    )
    assert (result.returncode == 0) == passes, result.stdout[-3000:]
