"""grade exercise notebooks: restore their check cells, run them in a sandbox, judge the evidence, print a table.

``python -m resnet_course grade exercises/01_basic_block.ipynb [more.ipynb ...]``
grades notebooks; ``python -m resnet_course grade submissions/`` grades a class,
one folder per student (``submissions/<student>/*.ipynb``). It exits 0 only if
every check of every notebook passed. ``--csv gradebook.csv`` writes one row per
student and exercise; ``--jobs N`` grades N notebooks at a time.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .grader import DEFAULT_TIMEOUT, GradingError, NotebookGrade, grade_notebook


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "notebooks",
        nargs="+",
        metavar="NOTEBOOK_OR_FOLDER",
        help="exercise notebooks (.ipynb), or folders of them (one sub-folder per student)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds a single cell may run (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--csv", metavar="GRADEBOOK", help="write one row per student and exercise to this CSV file"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="notebooks graded at the same time (default 1)"
    )


@dataclass
class Submission:
    student: str
    path: Path


def find_submissions(arguments: list[str]) -> list[Submission]:
    """Notebooks named, and those in folders: ``folder/<student>/*.ipynb`` or ``folder/*.ipynb``."""
    found = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            notebooks = sorted(
                p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
            )
            if not notebooks:
                found.append(Submission(path.name, path))  # reported as not a notebook
            for notebook in notebooks:
                relative = notebook.relative_to(path)
                found.append(
                    Submission(relative.parts[0] if len(relative.parts) > 1 else "-", notebook)
                )
        else:
            found.append(Submission("-", path))  # a notebook named on its own: no student folder
    return found


HEADER = ("student", "exercise", "checks passed", "points", "notebook")


def format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row):
        return "  ".join(
            [
                f"{row[0]:<{widths[0]}}",
                f"{row[1]:<{widths[1]}}",
                f"{row[2]:>{widths[2]}}",
                f"{row[3]:>{widths[3]}}",
                row[4],
            ]
        )

    return "\n".join([line(HEADER), "-" * len(line(HEADER)), *map(line, rows)])


def _notes(grade: NotebookGrade) -> list[str]:
    notes = [f"  {problem}" for problem in grade.problems]
    for check in grade.checks:
        notes += [f"  `{check.cell.call}` failed: {item}" for item in check.failed_items]
    return [f"{grade.path}:", *notes] if notes else []


def _grade(
    submission: Submission, timeout: float, slot: int, jobs: int
) -> NotebookGrade | GradingError:
    try:
        # Sweeping leftover processes between notebooks is safe only when no other notebook is running.
        return grade_notebook(submission.path, timeout=timeout, slot=slot, sweep_children=jobs == 1)
    except GradingError as error:
        return error
    except (
        Exception
    ) as error:  # one notebook that breaks the grader must not lose the others' grades
        return GradingError(
            f"{submission.path} could not be graded ({type(error).__name__}: {str(error)[:120]})."
        )


def write_gradebook(path: str, submissions: list[Submission], results: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "student",
                "exercise",
                "points",
                "max_points",
                "checks_passed",
                "checks_total",
                "problems",
                "notebook",
            ]
        )
        for submission, result in zip(submissions, results):
            if isinstance(result, GradingError):
                writer.writerow(
                    [submission.student, "", 0, "", 0, "", str(result), str(submission.path)]
                )
            else:
                problems = list(result.problems) + [
                    f"{c.cell.call}: {item}" for c in result.checks for item in c.failed_items
                ]
                writer.writerow(
                    [
                        submission.student,
                        result.exercise.name,
                        f"{result.points:g}",
                        result.exercise.points,
                        result.passed,
                        result.total,
                        " | ".join(problems),
                        str(submission.path),
                    ]
                )


def main(args: argparse.Namespace) -> int:
    from .sandbox import become_subreaper, separate_users_possible

    submissions = find_submissions(args.notebooks)
    jobs = max(1, args.jobs)
    become_subreaper()
    if jobs > 1 and not separate_users_possible():
        print(
            "note: kernels cannot run as users of their own here (that needs root and a Python other users can "
            "run), so notebooks graded in parallel share one user; grade one at a time (--jobs 1) to keep each "
            "notebook from reaching the others.",
            file=sys.stderr,
        )
    print(
        f"grading {len(submissions)} notebook(s), {jobs} at a time (each runs in full) ...",
        file=sys.stderr,
        flush=True,
    )
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(
            pool.map(
                lambda pair: _grade(pair[1], args.timeout, pair[0], jobs), enumerate(submissions)
            )
        )
    rows, notes, all_passed = [], [], True
    for submission, result in zip(submissions, results):
        if isinstance(result, GradingError):
            rows.append((submission.student, "?", "-", "-", str(submission.path)))
            notes.append(str(result))
            all_passed = False
            continue
        rows.append(
            (
                submission.student,
                result.exercise.name,
                f"{result.passed}/{result.total}",
                f"{result.points:g}/{result.exercise.points}",
                str(submission.path),
            )
        )
        notes += _notes(result)
        all_passed &= result.all_passed
    print(format_table(rows))
    if notes:
        print()
        print("\n".join(notes))
    if args.csv:
        write_gradebook(args.csv, submissions, results)
        print(f"\nGradebook written to {os.fspath(args.csv)}.")
    print()
    print(
        "All checks passed."
        if all_passed
        else "Not every check passed; run the notebook to see each check's hints."
    )
    return 0 if all_passed else 1
