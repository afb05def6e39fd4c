"""grade exercise notebooks: restore their check cells, run them under nbval, print a score table.

``python -m resnet_course grade exercises/01_basic_block.ipynb [more.ipynb ...]``
exits 0 only if every check of every notebook passed.
"""

from __future__ import annotations

import argparse
import sys

from .grader import DEFAULT_TIMEOUT, GradingError, NotebookGrade, grade_notebook


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="exercise notebooks (.ipynb) to grade")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds a single cell may run (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--verbose", action="store_true", help="also show nbval's own output")


HEADER = ("exercise", "checks passed", "points", "notebook")


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row):
        return f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}"

    return "\n".join([line(HEADER), "-" * len(line(HEADER)), *map(line, rows)])


def _row(grade: NotebookGrade) -> tuple[str, str, str, str]:
    return grade.exercise.name, f"{grade.passed}/{grade.total}", f"{grade.points:g}/{grade.exercise.points}", str(grade.path)


def _notes(grade: NotebookGrade) -> list[str]:
    notes = [f"  {problem}" for problem in grade.problems]
    for check in grade.checks:
        notes += [f"  `{check.cell.call}` failed: {item}" for item in check.failed_items]
    return [f"{grade.path}:", *notes] if notes else []


def main(args: argparse.Namespace) -> int:
    rows, notes, all_passed = [], [], True
    for notebook in args.notebooks:
        print(f"grading {notebook} (this runs the whole notebook) ...", file=sys.stderr, flush=True)
        try:
            grade = grade_notebook(notebook, timeout=args.timeout, verbose=args.verbose)
        except GradingError as error:
            rows.append(("?", "-", "-", str(notebook)))
            notes.append(str(error))
            all_passed = False
            continue
        rows.append(_row(grade))
        notes += _notes(grade)
        all_passed &= grade.all_passed
    print(format_table(rows))
    if notes:
        print()
        print("\n".join(notes))
    print()
    print("All checks passed." if all_passed else "Not every check passed; run the notebook to see each check's hints.")
    return 0 if all_passed else 1
