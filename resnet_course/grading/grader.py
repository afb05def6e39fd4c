"""Grading one notebook: put the canonical check cells back, run it under nbval, read the reports.

As nbgrader does, the grader trusts nothing in the student's copy of a check
cell: it finds each check cell (by cell id, by its metadata, or by the call it
makes) and replaces it with the canonical one from :mod:`.exercises`, stored
output included. The notebook then runs under ``pytest --nbval-lax`` in the
current Python environment, in a fresh kernel; a small plugin records each
cell's outcome and output, from which the scores are read.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .exercises import EXERCISES, METADATA_KEY, CheckCell, Exercise, find_exercise
from .nbval_record import LOG_ENV
from .report import parse_report

DEFAULT_TIMEOUT = 600  # seconds per cell; exercise 2's training takes about a minute on a laptop CPU


class GradingError(Exception):
    """A notebook that cannot be graded at all; the message is one sentence for the student."""


@dataclass
class CheckResult:
    cell: CheckCell
    passed: int
    total: int
    failed_items: list[str] = field(default_factory=list)


@dataclass
class NotebookGrade:
    path: Path
    exercise: Exercise
    checks: list[CheckResult]
    problems: list[str]  # one sentence each: errors, time-outs, missing or broken check cells

    @property
    def passed(self) -> int:
        return sum(check.passed for check in self.checks)

    @property
    def total(self) -> int:
        return sum(check.total for check in self.checks)

    @property
    def points(self) -> float:
        return round(self.exercise.points * self.passed / self.total, 1) if self.total else 0.0

    @property
    def all_passed(self) -> bool:
        return self.passed == self.total and not self.problems


# --- reading and restoring -------------------------------------------------------------------


def read_notebook(path: Path) -> nbformat.NotebookNode:
    if not path.exists():
        raise GradingError(f"{path} does not exist.")
    if path.is_dir() or path.suffix != ".ipynb":
        raise GradingError(f"{path} is not a Jupyter notebook (an .ipynb file).")
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # NotJSONError, ValidationError, UnicodeDecodeError, OSError...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise GradingError(f"{path} could not be read as a notebook ({reason[:120]}).") from None
    if not isinstance(notebook.get("cells"), list):
        raise GradingError(f"{path} could not be read as a notebook (it has no list of cells).")
    return notebook


def identify_exercise(notebook: nbformat.NotebookNode, path: Path) -> Exercise:
    """The exercise named in the notebook's metadata, else by its file name, else by its check cells."""
    named = notebook.metadata.get(METADATA_KEY, {}).get("exercise")
    for candidate in (named, path.stem):
        exercise = find_exercise(candidate) if isinstance(candidate, str) else None
        if exercise is not None:
            return exercise
    for exercise in EXERCISES.values():
        if any(find_check_cell(notebook, cell) is not None for cell in exercise.checks):
            return exercise
    raise GradingError(
        f"{path} is not one of the course's exercises (neither its metadata nor its file name names one of "
        f"{', '.join(EXERCISES)})."
    )


def find_check_cell(notebook: nbformat.NotebookNode, check: CheckCell) -> int | None:
    """The index of ``check``'s cell: by id, by metadata, or by the call it makes (Colab drops ids)."""
    cells = notebook.cells
    for matches in (
        lambda cell: cell.get("id") == check.id,
        lambda cell: cell.get("metadata", {}).get(METADATA_KEY, {}).get("check") == check.id,
        lambda cell: cell.get("cell_type") == "code" and check.call in cell.get("source", ""),
    ):
        for index, cell in enumerate(cells):
            if matches(cell):
                return index
    return None


def restore_check_cells(notebook: nbformat.NotebookNode, exercise: Exercise) -> dict[str, int]:
    """Replace every check cell with its canonical version, in place.

    Returns where each check cell now is, as its index among the code cells (as
    nbval counts them); a check cell that was not found is left out.
    """
    _give_every_cell_an_id(notebook)
    positions = {}
    for check in exercise.checks:
        index = find_check_cell(notebook, check)
        if index is None:
            continue
        code_cells_before = sum(cell.cell_type == "code" for cell in notebook.cells[:index])
        notebook.cells[index] = check.cell(execution_count=code_cells_before + 1)
        positions[check.id] = code_cells_before
    canonical_ids = {check.id for check in exercise.checks}
    for index, cell in enumerate(notebook.cells):  # a student's copy of a check cell must not share its id
        if cell.id in canonical_ids and cell.get("metadata", {}).get(METADATA_KEY, {}).get("check") != cell.id:
            cell.id = f"cell-{index}"
    notebook.metadata.setdefault(METADATA_KEY, {})["exercise"] = exercise.name
    return positions


def _give_every_cell_an_id(notebook: nbformat.NotebookNode) -> None:
    # Notebooks saved by Colab are nbformat 4.0-4.4, whose cells have no ids.
    notebook.nbformat, notebook.nbformat_minor = 4, max(notebook.get("nbformat_minor", 0), 5)
    seen = set()
    for index, cell in enumerate(notebook.cells):
        if not cell.get("id") or cell.id in seen:
            cell.id = f"cell-{index}"
        seen.add(cell.id)


# --- running ---------------------------------------------------------------------------------


def _kernel_environment(log: Path) -> dict[str, str]:
    """The grader's environment, plus the log path, and the course importable in the kernel."""
    env = dict(os.environ)
    env[LOG_ENV] = str(log)
    # Run from a source checkout, the kernel must import this same package, not fall back to installing it.
    package_parent = str(Path(__file__).resolve().parents[2])
    installed_paths = {str(Path(p).resolve()) for p in site.getsitepackages() + [site.getusersitepackages()]}
    if package_parent not in installed_paths:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_under_nbval(notebook_path: Path, timeout: float, verbose: bool = False) -> list[dict]:
    """Run ``pytest --nbval-lax`` on the notebook; return one record per code cell that ran or failed to."""
    workdir = notebook_path.parent
    log = workdir / "cells.jsonl"
    ini = workdir / "pytest.ini"
    ini.write_text("[pytest]\n")  # keeps pytest away from any project configuration around the notebook
    command = [
        sys.executable, "-m", "pytest", str(notebook_path), "--nbval-lax", "--nbval-current-env",
        f"--nbval-cell-timeout={timeout:g}", "--nbval-kernel-startup-timeout=180",
        "-p", "resnet_course.grading.nbval_record", "-p", "no:cacheprovider",
        "-c", str(ini), "--rootdir", str(workdir), "-q", "--color=no",
    ]
    cells = len(nbformat.read(notebook_path, as_version=4).cells)
    try:
        completed = subprocess.run(
            command, cwd=workdir, env=_kernel_environment(log), capture_output=True, text=True,
            timeout=timeout * (cells + 1) + 300,  # a last resort; nbval enforces the per-cell limit
        )
    except subprocess.TimeoutExpired:
        raise GradingError("did not finish running within the time limit.") from None
    if verbose:
        print(completed.stdout + completed.stderr, file=sys.stderr)
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if not records:
        lines = [line for line in (completed.stdout + completed.stderr).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"pytest exited with status {completed.returncode}"
        raise GradingError(f"could not be run under nbval ({last[:160]}).")
    return records


# --- scoring ---------------------------------------------------------------------------------


def _first_line(source: str, limit: int = 48) -> str:
    line = next((line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("#")), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _cell_problem(number: int, source: str, record: dict, timeout: float) -> str:
    where = f"code cell {number} (`{_first_line(source)}`)"
    if record["error"] == "timeout":
        return f"{where} did not finish within {timeout:g} s (grade --timeout sets a longer limit)."
    return f"{where} raised {record['error']}."


def score(notebook: nbformat.NotebookNode, exercise: Exercise, records: list[dict], positions: dict[str, int],
          timeout: float) -> tuple[list[CheckResult], list[str]]:
    """Each check's result, read from its cell's report, and the problems worth a sentence each."""
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    by_cell = {record["cell"]: record for record in records}
    results, problems = [], []
    for check in exercise.checks:
        if check.id not in positions:
            results.append(CheckResult(check, 0, check.item_count))
            problems.append(f"the check cell `{check.call}` is missing; copy it back from a fresh copy of the exercise.")
            continue
        record = by_cell.get(positions[check.id])
        report = parse_report(record["output"]) if record else None
        if record is None or record["outcome"] == "not run":
            problems.append(f"the check `{check.call}` did not run.")
        elif record["error"] == "timeout":
            problems.append(f"the check `{check.call}` did not finish within {timeout:g} s.")
            report = None
        elif report is None or report.check != check.check:
            error = record["error"] if record["error"] not in ("", "output differs") else "no report"
            problems.append(f"the check `{check.call}` failed to run: {error}.")
            report = None
        elif record["outcome"] == "failed" and report.all_passed:
            problems.append(f"the check `{check.call}` printed more than its report.")
        if report is None:
            results.append(CheckResult(check, 0, check.item_count))
        else:
            failed = [item.name for item in report.items if not item.passed]
            results.append(CheckResult(check, report.passed, report.total, failed))
    failures = [index for index in sorted(by_cell)
                if index not in positions.values() and by_cell[index]["outcome"] == "failed"]
    timeouts = [index for index in failures if by_cell[index]["error"] == "timeout"]
    errors = [index for index in failures if index not in timeouts]
    sentences = [_cell_problem(index + 1, code_cells[index].source, by_cell[index], timeout) for index in timeouts]
    if errors:
        # The first error explains the rest (a NameError after it, say): one sentence, and a count.
        first = _cell_problem(errors[0] + 1, code_cells[errors[0]].source, by_cell[errors[0]], timeout)
        more = len(errors) - 1
        sentences.append(first[:-1] + (f" ({more} more cell{'s' if more > 1 else ''} failed after it)." if more else "."))
    problems[:0] = sentences
    return results, problems


def grade_notebook(path: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT, verbose: bool = False) -> NotebookGrade:
    """Grade one exercise notebook; raises :class:`GradingError` if it cannot be graded at all."""
    path = Path(path)
    notebook = read_notebook(path)
    exercise = identify_exercise(notebook, path)
    positions = restore_check_cells(notebook, exercise)
    with tempfile.TemporaryDirectory(prefix="resnet-course-grade-") as workdir:
        restored = Path(workdir) / f"{exercise.name}.ipynb"
        nbformat.write(notebook, restored)
        try:
            records = run_under_nbval(restored, timeout, verbose)
        except GradingError as error:
            raise GradingError(f"{path} {error}") from None
    checks, problems = score(notebook, exercise, records, positions, timeout)
    return NotebookGrade(path, exercise, checks, problems)
