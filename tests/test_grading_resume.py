"""A class run stopped part-way and started again grades only what has no grade yet."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from resnet_course.grading import cli
from resnet_course.grading.exercises import EXERCISES
from resnet_course.grading.grader import CheckResult, GradingError, NotebookGrade
from resnet_course.grading.kept import from_record, to_record

ROOT = Path(__file__).resolve().parents[1]


def a_class(folder: Path, count: int = 5) -> list[cli.Submission]:
    solution = (ROOT / "exercises" / "solutions" / "01_basic_block.ipynb").read_bytes()
    for n in range(count):
        (folder / f"s{n}").mkdir(parents=True)
        (folder / f"s{n}" / "01_basic_block.ipynb").write_bytes(solution + b" " * n)
    return cli.find_submissions([str(folder)])


def options(csv: Path) -> argparse.Namespace:
    return argparse.Namespace(timeout=60, notebook_timeout=600, csv=str(csv))


def test_a_stopped_class_run_grades_only_what_is_missing(tmp_path, monkeypatch):
    submissions = a_class(tmp_path / "class")
    graded = []

    def grade(submission, *args):
        graded.append(submission.student)
        if stop_at_third and len(graded) == 3:
            raise KeyboardInterrupt  # Ctrl-C, a closed laptop
        if stop_at_third and len(graded) > 3:
            time.sleep(0.5)  # a notebook takes seconds: the stop comes before it ends
        return GradingError(f"{submission.path} graded by the test")

    monkeypatch.setattr(cli, "_grade", grade)
    stop_at_third = True
    with pytest.raises(KeyboardInterrupt):
        cli.grade_all(submissions, options(tmp_path / "book.csv"), isolate=True, jobs=1)
    assert len(graded) <= 4  # the notebooks not started were dropped
    assert len(list((tmp_path / "book.csv.grades").glob("*.json"))) == 2
    stop_at_third, graded[:] = False, []
    results = cli.grade_all(submissions, options(tmp_path / "book.csv"), isolate=True, jobs=1)
    assert sorted(graded) == ["s2", "s3", "s4"]  # s0 and s1 were kept by the stopped run
    assert all(isinstance(r, GradingError) for r in results) and len(results) == 5
    graded[:] = []
    cli.grade_all(submissions, options(tmp_path / "book.csv"), isolate=True, jobs=2)
    assert graded == []  # nothing left to grade
    (tmp_path / "class" / "s4" / "01_basic_block.ipynb").write_text("{}")  # a resubmission
    cli.grade_all(submissions, options(tmp_path / "book.csv"), isolate=True, jobs=1)
    assert graded == ["s4"]


def test_a_kept_grade_reads_back_as_it_was():
    exercise = EXERCISES["01_basic_block"]
    grade = NotebookGrade(
        Path("class/a/01_basic_block.ipynb"),
        exercise,
        [CheckResult(cell, 1, 2, ["an item: a reason"]) for cell in exercise.checks],
        ["a problem"],
        12.5,
        ["a note"],
        ["a flag"],
    )
    again = from_record(to_record(grade))
    assert again == grade and again.points == grade.points
    assert str(from_record(to_record(GradingError("boom")))) == "boom"
