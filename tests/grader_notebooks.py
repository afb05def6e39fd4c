"""Build exercise notebooks for the grader's tests from compact definitions, and grade a batch of them.

A notebook is exercise ``name``'s solution (or stub) with some of its code cells replaced
(``replace``: a marker string in the cell -> new source) and extra cells inserted before
the first check cell (``extra``) or before the cell holding a marker (``before``). A batch is
one ``python -m resnet_course grade`` run over a class folder (one student per notebook),
with ``--jobs 2 --csv``, so kernels start two at a time and the tests read the same table
and gradebook an instructor would.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from resnet_course.grading.sandbox import isolation_available

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_DIR = ROOT / "exercises"


@dataclass(frozen=True)
class Style:
    extra: tuple[str, ...] = ()  # cells inserted before the first check cell
    replace: tuple[tuple[str, str], ...] = ()  # (marker in a code cell, its new source)
    before: tuple[tuple[str, str], ...] = ()  # (marker in a code cell, a cell inserted before it)
    drop: tuple[str, ...] = ()  # cells holding these markers are removed
    exercise: str = "01_basic_block"
    solution: bool = True


def notebook_for(style: Style) -> nbformat.NotebookNode:
    folder = EXERCISE_DIR / "solutions" if style.solution else EXERCISE_DIR
    notebook = nbformat.read(folder / f"{style.exercise}.ipynb", as_version=4)
    notebook.cells = [c for c in notebook.cells if not any(m in c.source for m in style.drop)]
    for marker, source in style.before:
        index = next(
            i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and marker in c.source
        )
        notebook.cells.insert(index, nbformat.v4.new_code_cell(source))
    for marker, source in style.replace:
        (cell,) = [c for c in notebook.cells if c.cell_type == "code" and marker in c.source]
        cell.source = source
    first_check = next(
        i for i, cell in enumerate(notebook.cells) if cell.get("id", "").startswith("check-")
    )
    for offset, source in enumerate(style.extra):
        notebook.cells.insert(first_check + offset, nbformat.v4.new_code_cell(source))
    return notebook


@dataclass
class Batch:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    rows: dict[str, dict] = field(default_factory=dict)  # student -> gradebook row

    def table_row(self, student: str) -> list[str]:
        (row,) = [
            line.split() for line in self.stdout.splitlines() if line.startswith(student + " ")
        ]
        return row


def grade_batch(
    folder: Path, styles: dict[str, Style], *options: str, timeout: float = 900
) -> Batch:
    """Write one notebook per style (the style's name is the student's) and grade them all at once."""
    for student, style in styles.items():
        (folder / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook_for(style), folder / student / f"{style.exercise}.ipynb")
    gradebook = folder.parent / f"{folder.name}-gradebook.csv"
    command = [sys.executable, "-m", "resnet_course", "grade", str(folder), "--csv", str(gradebook)]
    if not isolation_available():  # the grader would refuse a class (the tests say what it does)
        command.append("--no-isolation")
    started = time.monotonic()
    result = subprocess.run(
        [*command, "--jobs", "2", *options],
        capture_output=True,
        text=True,
        cwd=folder.parent,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    batch = Batch(result.returncode, result.stdout, result.stderr, time.monotonic() - started)
    if gradebook.exists():
        batch.rows = {row["student"]: row for row in csv.DictReader(gradebook.open())}
    return batch


def full_marks(batch: Batch, student: str) -> bool:
    row = batch.rows[student]
    return row["checks_passed"] == row["checks_total"] and row["points"] == row["max_points"]
