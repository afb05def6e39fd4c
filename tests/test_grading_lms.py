"""Canvas's gradebook import, from a class of ten: columns, the Points Possible row, values, a roster."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from resnet_course.grading.cli import Submission
from resnet_course.grading.exercises import EXERCISES
from resnet_course.grading.grader import GradingError
from resnet_course.grading.lms import (
    CANVAS_IDENTITY,
    canvas_rows,
    read_roster,
    unknown_folders,
    write_rows,
)

BASIC, PLAIN = EXERCISES["01_basic_block"], EXERCISES["02_plain_vs_residual"]


class Graded:
    """What canvas_rows reads of a NotebookGrade: its exercise and its points."""

    def __init__(self, exercise, points):
        self.exercise, self.points = exercise, points


def a_class():
    """Ten students: eight graded on both exercises, one whose notebook crashed, one missing one."""
    submissions, results = [], []
    for n in range(10):
        student = f"s{n:02d}"
        for exercise in (BASIC, PLAIN):
            if student == "s09" and exercise is PLAIN:
                continue  # handed nothing in for exercise 2
            path = Path("class") / student / f"{exercise.name}.ipynb"
            submissions.append(Submission(student, path))
            if student == "s08" and exercise is BASIC:
                results.append(GradingError(f"{path}: the kernel died in cell 3."))
            else:
                results.append(Graded(exercise, round(n * exercise.points / 10, 1)))
    return submissions, results


def test_a_canvas_import_has_its_columns_a_points_row_and_a_row_per_student(tmp_path):
    rows = canvas_rows(*a_class())
    header, possible, *students = rows
    assert header[:5] == list(CANVAS_IDENTITY)
    assert header[5:] == ["Exercise 1: " + BASIC.title, "Exercise 2: " + PLAIN.title]
    assert possible == ["Points Possible", "", "", "", "", f"{BASIC.points:g}", f"{PLAIN.points:g}"]
    by_name = {row[0]: row for row in students}
    assert len(students) == 10 and by_name["s03"][5:] == ["3", "3"]
    assert by_name["s08"][5] == "0"  # a notebook that could not be graded counts 0
    assert by_name["s09"][6] == ""  # no notebook: no grade yet, not a zero
    assert by_name["s03"][3] == "s03"  # the folder is the SIS Login ID without a roster
    path = tmp_path / "canvas.csv"
    write_rows(path, rows)
    assert list(csv.reader(path.open())) == rows


def test_a_roster_names_the_students_and_keeps_those_without_notebooks(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,folder\n"
        "    Points Possible,,,,,\n"
        '"Doe, Jane",101,9001,jdoe,A,s01\n'
        '"Roe, Rick",102,9002,rroe,A,\n'
    )
    students = read_roster(roster)
    assert [s.folder for s in students] == ["s01", "rroe"]
    header, _, jane, rick = canvas_rows(*a_class(), roster=students)
    assert jane[:5] == ["Doe, Jane", "101", "9001", "jdoe", "A"] and jane[5:] == ["1", "1"]
    assert rick[5:] == ["", ""]  # on the roster, no folder: a row without grades
    lost = unknown_folders(a_class()[0], students)
    assert "s02" in lost and "s01" not in lost


def test_a_file_that_is_not_a_roster_is_refused_in_one_sentence(tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,points\nalice,3\n")
    with pytest.raises(ValueError, match="not a roster: it needs at least the columns Student"):
        read_roster(wrong)
