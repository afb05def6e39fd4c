"""Whatever a class folder holds: links, special files, huge files, odd names, two notebooks of one exercise.

Each is refused or reported in one sentence, and what is printed or written is escaped. None of
these tests starts a kernel: they read files and format tables.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from resnet_course.grading import grader
from resnet_course.grading.cli import (
    Submission,
    csv_cell,
    duplicate_notes,
    find_submissions,
    format_table,
    printable,
    write_gradebook,
)
from resnet_course.grading.grader import GradingError, read_notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "exercises" / "solutions" / "01_basic_block.ipynb"


def test_a_link_to_a_solution_is_refused_not_followed(tmp_path):
    link = tmp_path / "01_basic_block.ipynb"
    link.symlink_to(SOLUTION)
    with pytest.raises(GradingError, match="is a symbolic link; .* not followed"):
        read_notebook(link)
    assert read_notebook(SOLUTION).cells  # the file itself reads


def test_special_files_are_refused_without_being_read(tmp_path):
    pipe = tmp_path / "pipe.ipynb"
    os.mkfifo(pipe)  # reading it would wait for a writer forever
    with pytest.raises(GradingError, match="not a regular file"):
        read_notebook(pipe)
    device = tmp_path / "zero.ipynb"
    device.symlink_to("/dev/zero")  # would grow the grader without end
    with pytest.raises(GradingError, match="symbolic link"):
        read_notebook(device)


def test_a_notebook_over_the_size_limit_is_refused(tmp_path):
    huge = tmp_path / "huge.ipynb"
    with huge.open("wb") as handle:
        handle.truncate(grader.MAX_NOTEBOOK_BYTES + 1)  # sparse: no disk used
    with pytest.raises(GradingError, match="larger than the 20 MB a notebook may be"):
        read_notebook(huge)


def test_a_class_folder_lists_links_and_does_not_walk_into_them(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "01_basic_block.ipynb").write_bytes(SOLUTION.read_bytes())
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "01_basic_block.ipynb").symlink_to(SOLUTION)
    (tmp_path / "carol").symlink_to(ROOT / "exercises" / "solutions", target_is_directory=True)
    found = {(s.student, s.path.name) for s in find_submissions([str(tmp_path)])}
    assert found == {
        ("alice", "01_basic_block.ipynb"),
        ("bob", "01_basic_block.ipynb"),
        ("-", "carol"),
    }


def test_names_are_printed_safely():
    evil = "mallory\n-   ok  10/10\x1b[2J"
    assert printable(evil) == "mallory\\n-   ok  10/10\\x1b[2J"
    table = format_table([(evil, "01_basic_block", "3/3", "10/10", "class/x.ipynb")])
    assert len(table.splitlines()) == 3  # the header, its rule, one row: no forged row
    assert "\x1b" not in table


def test_the_gradebook_cannot_carry_a_formula(tmp_path):
    assert csv_cell('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert csv_cell("+1") == "'+1" and csv_cell("@sum") == "'@sum" and csv_cell("-2") == "'-2"
    assert csv_cell("alice") == "alice" and csv_cell(10) == "10"
    error = GradingError("class/=cmd.ipynb could not be read as a notebook (boom).")
    path = tmp_path / "gradebook.csv"
    write_gradebook(str(path), [Submission("=cmd|' /C calc'!A0", Path("x.ipynb"))], [error])
    (row,) = list(csv.DictReader(path.open()))
    assert row["student"].startswith("'=") and "\x1b" not in path.read_text()


def test_two_notebooks_of_one_exercise_are_reported():
    class Graded(grader.NotebookGrade):
        def __init__(self, path):  # only what duplicate_notes reads
            self.path, self.exercise = path, type("E", (), {"name": "01_basic_block"})()

    subs = [
        Submission("dave", Path("c/dave/a.ipynb")),
        Submission("dave", Path("c/dave/b.ipynb")),
        Submission("erin", Path("c/erin/a.ipynb")),
    ]
    notes = duplicate_notes(subs, [Graded(s.path) for s in subs])
    assert len(notes) == 1 and "dave handed in 2 notebooks of 01_basic_block" in notes[0]


def test_the_judging_seed_is_drawn_after_the_kernel_ran_and_never_sent_to_it(monkeypatch, tmp_path):
    """The kernel gets one seed; the points every graph is judged at come from another, drawn later."""
    events = []

    def fake_run(notebook, probes, seed, *args, **kwargs):
        events.append(("kernel", seed))
        return grader.NotebookRun()

    def fake_judge(exercise, evidence, seed, present, cells, probe_seed=None):
        events.append(("judge", seed, probe_seed))
        return [], [], []

    monkeypatch.setattr(grader, "run_notebook", fake_run)
    monkeypatch.setattr(grader, "judge_checks", fake_judge)
    path = tmp_path / "01_basic_block.ipynb"
    path.write_bytes(SOLUTION.read_bytes())
    grader.grade_notebook(path, isolate=False)
    (kernel, kernel_seed), (judge, judge_seed, probe_seed) = events
    assert (kernel, judge) == ("kernel", "judge")
    assert probe_seed == kernel_seed and judge_seed != kernel_seed


@pytest.mark.parametrize(
    "name", sorted(__import__("resnet_course.grading.exercises", fromlist=["EXERCISES"]).EXERCISES)
)
def test_an_exercises_own_cells_raise_no_flag(name):
    """The shipped notebook and its solution raise no flag: a flag is about what a student wrote."""
    import nbformat

    from resnet_course.grading.advice import flags_for
    from resnet_course.grading.exercises import EXERCISES

    for folder in (ROOT / "exercises", ROOT / "exercises" / "solutions"):
        notebook = nbformat.read(folder / f"{name}.ipynb", as_version=4)
        cells = [
            (number, cell.source)
            for number, cell in enumerate(
                (c for c in notebook.cells if c.cell_type == "code"), start=1
            )
            if not cell.get("id", "").startswith("check-")
        ]
        assert flags_for(cells, EXERCISES[name]) == [], folder
    # and a line a student adds is still flagged
    added = [(99, "from resnet_course.blocks import BasicBlock as Borrowed")]
    assert flags_for(added, EXERCISES[name])
