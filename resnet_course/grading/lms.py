"""Gradebooks a learning-management system imports: Canvas's, from a class's grades.

``python -m resnet_course grade submissions/ --gradebook canvas --csv grades.csv`` writes a CSV
that Canvas's gradebook import accepts: its five identifying columns (Student, ID, SIS User ID,
SIS Login ID, Section), a "Points Possible" row, and one column per exercise graded, with each
student's points out of the exercise's points. A new column makes a new assignment in Canvas;
an existing one is matched by its name.

Who a student is comes from their folder's name (``submissions/<student>/``), or from a roster:
a CSV as Canvas exports it (Student, ID, SIS User ID, SIS Login ID, Section), with a ``folder``
column where folders are not named by the SIS Login ID. Every student of the roster gets a row;
an exercise without a notebook is left blank (no grade yet), and a notebook that could not be
graded counts 0, its reason in the course's own gradebook.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .exercises import EXERCISES, Exercise, find_exercise

CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


@dataclass(frozen=True)
class Student:
    folder: str  # the submissions folder's name
    identity: dict[str, str]  # Canvas's identifying columns


def read_roster(path: str | os.PathLike) -> list[Student]:
    """The students of a roster CSV, in its order; one sentence for a roster Canvas could not use."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"Student", "SIS Login ID"} <= set(rows[0]):
        raise ValueError(
            f"{path} is not a roster: it needs at least the columns Student and SIS Login ID "
            "(a gradebook exported from Canvas has them), and a folder column where the "
            "submissions folders are named otherwise."
        )
    students = []
    for row in rows:
        if (row.get("Student") or "").strip() == "Points Possible":
            continue  # a Canvas export's second row
        folder = (row.get("folder") or row.get("SIS Login ID") or "").strip()
        identity = {column: (row.get(column) or "").strip() for column in CANVAS_IDENTITY}
        students.append(Student(folder, identity))
    return students


def exercise_of(result, path: Path) -> Exercise | None:
    """The exercise a graded notebook was, or the one its file name names where it was not graded."""
    exercise = getattr(result, "exercise", None)
    return exercise if exercise is not None else find_exercise(path.stem)


def column(exercise: Exercise) -> str:
    return f"Exercise {exercise.number}: {exercise.title}"


def canvas_rows(submissions, results, roster: list[Student] | None = None) -> list[list[str]]:
    """Canvas's header, its Points Possible row and one row per student.

    ``submissions`` and ``results`` are the grader's (a NotebookGrade, or the error that kept a
    notebook from being graded). A student with two notebooks of one exercise gets the higher score
    (the course's own gradebook and the grader's output name both).
    """
    points: dict[str, dict[str, float]] = {}
    for submission, result in zip(submissions, results):
        exercise = exercise_of(result, Path(submission.path))
        if exercise is None or submission.student == "-":
            continue
        score = float(getattr(result, "points", 0.0))
        mine = points.setdefault(submission.student, {})
        mine[exercise.name] = max(score, mine.get(exercise.name, 0.0))
    graded = sorted(
        {name for scores in points.values() for name in scores},
        key=lambda name: EXERCISES[name].number,
    )
    students = roster or [
        Student(
            folder,
            {**dict.fromkeys(CANVAS_IDENTITY, ""), "Student": folder, "SIS Login ID": folder},
        )
        for folder in sorted(points)
    ]
    header = [*CANVAS_IDENTITY, *(column(EXERCISES[name]) for name in graded)]
    possible = ["Points Possible", "", "", "", "", *(f"{EXERCISES[n].points:g}" for n in graded)]
    rows = [header, possible]
    for student in students:
        scores = points.get(student.folder, {})
        rows.append(
            [
                *(student.identity[c] for c in CANVAS_IDENTITY),
                *(f"{scores[name]:g}" if name in scores else "" for name in graded),
            ]
        )
    return rows


def unknown_folders(submissions, roster: list[Student]) -> list[str]:
    """Student folders that no roster row names: their grades would be lost, so they are named."""
    known = {student.folder for student in roster}
    return sorted({s.student for s in submissions if s.student not in known and s.student != "-"})


def write_rows(path: str | os.PathLike, rows: list[list[str]], cell=str) -> None:
    """Write ``rows`` to ``path`` atomically: a temporary file renamed over it."""
    handle = io.StringIO()
    writer = csv.writer(handle)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    target = os.path.abspath(path)
    descriptor, temporary = tempfile.mkstemp(
        prefix=".gradebook-", suffix=".csv", dir=os.path.dirname(target)
    )
    with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as out:
        out.write(handle.getvalue())
    os.replace(temporary, target)
