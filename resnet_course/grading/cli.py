"""grade exercise notebooks: restore their check cells, run them in a sandbox, judge the evidence, print a table.

``python -m resnet_course grade exercises/01_basic_block.ipynb [more.ipynb ...]``
grades notebooks; ``python -m resnet_course grade submissions/`` grades a class,
one folder per student (``submissions/<student>/*.ipynb``). It exits 0 only if
every check of every notebook passed. ``--csv gradebook.csv`` writes one row per
student and exercise, written by the grader alone, atomically, after the last notebook;
``--jobs N`` grades N notebooks at a time, with progress (graded, left, time left) on stderr; with
``--csv``, each grade is kept as it is made (:mod:`.kept`), so a stopped class run started again
grades only what is missing. Every notebook runs in a bubblewrap sandbox
(see :mod:`.sandbox`); where there is none, one notebook is graded with a warning and a
class only with ``--no-isolation``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .grader import (
    DEFAULT_NOTEBOOK_TIMEOUT,
    DEFAULT_TIMEOUT,
    GradingError,
    NotebookGrade,
    grade_notebook,
)
from .kept import KeptGrades, grade_key, grader_version
from .lms import canvas_rows, read_roster, unknown_folders, write_rows


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
        "--notebook-timeout",
        type=float,
        default=DEFAULT_NOTEBOOK_TIMEOUT,
        help=f"seconds a whole notebook may run, every cell together (default {DEFAULT_NOTEBOOK_TIMEOUT:g})",
    )
    parser.add_argument(
        "--csv", metavar="GRADEBOOK", help="write one row per student and exercise to this CSV file"
    )
    parser.add_argument(
        "--gradebook",
        choices=("course", "canvas"),
        default="course",
        help="the CSV's layout: the course's own (a row per notebook, with problems and flags), "
        "or Canvas's gradebook import (a row per student, a column per exercise)",
    )
    parser.add_argument(
        "--roster",
        metavar="ROSTER",
        help="with --gradebook canvas: a CSV of the class as Canvas exports it (Student, ID, "
        "SIS User ID, SIS Login ID, Section; a folder column where folders are named otherwise)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="notebooks graded at the same time (default 1)"
    )
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="grade a class even where no sandbox can be made (bubblewrap missing): "
        "each notebook can then reach the others and the grader",
    )


@dataclass
class Submission:
    student: str
    path: Path


def find_submissions(arguments: list[str]) -> list[Submission]:
    """Notebooks named, and those in folders: ``folder/<student>/*.ipynb`` or ``folder/*.ipynb``.

    Folders are walked without following symbolic links; a link or a special file named like a
    notebook is still listed, so that grading refuses it in one sentence instead of skipping it.
    """
    found = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir() and not path.is_symlink():
            notebooks = []
            for folder, subfolders, files in os.walk(path):
                subfolders[:] = sorted(d for d in subfolders if d != ".ipynb_checkpoints")
                here = Path(folder)
                notebooks += [here / name for name in files if name.endswith(".ipynb")]
                # A linked folder is not walked into: it is listed, and refused, as a notebook would be.
                notebooks += [here / name for name in subfolders if (here / name).is_symlink()]
            if not notebooks:
                found.append(Submission(path.name, path))  # reported as not a notebook
            for notebook in sorted(notebooks):
                relative = notebook.relative_to(path)
                found.append(
                    Submission(relative.parts[0] if len(relative.parts) > 1 else "-", notebook)
                )
        else:
            found.append(Submission("-", path))  # a notebook named on its own: no student folder
    return found


def printable(text: str) -> str:
    """``text`` safe for a terminal and a table: control characters (newlines, escape codes)
    written as escapes, so a folder's name cannot add a row or recolour the screen."""
    return "".join(
        char if char.isprintable() or char == " " else char.encode("unicode_escape").decode()
        for char in str(text)
    )


def csv_cell(value) -> str:
    """A gradebook cell that a spreadsheet shows as text: one that starts with =, +, -, @, a tab or a
    carriage return is prefixed with a quote (OWASP's advice on CSV injection)."""
    text = printable(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def duplicate_notes(submissions: list[Submission], results: list) -> list[str]:
    """One sentence for each student who handed in more than one notebook of the same exercise."""
    seen: dict[tuple[str, str], list[Path]] = {}
    for submission, result in zip(submissions, results):
        if isinstance(result, NotebookGrade) and submission.student != "-":
            seen.setdefault((submission.student, result.exercise.name), []).append(submission.path)
    return [
        f"{printable(student)} handed in {len(paths)} notebooks of {exercise} "
        f"({', '.join(printable(str(p)) for p in paths)}); each has its own row: keep one."
        for (student, exercise), paths in seen.items()
        if len(paths) > 1
    ]


HEADER = ("student", "exercise", "checks passed", "points", "notebook")


def format_table(rows: list[tuple[str, ...]]) -> str:

    rows = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row):  # names left-aligned, numbers right-aligned, the path as it is
        cells = [f"{v:{'<' if i < 2 else '>'}{widths[i]}}" for i, v in enumerate(row[:4])]
        return "  ".join([*cells, row[4]])

    return "\n".join([line(HEADER), "-" * len(line(HEADER)), *map(line, rows)])


def _notes(grade: NotebookGrade) -> list[str]:
    notes = [f"  {problem}" for problem in grade.problems + grade.notes]
    for check in grade.checks:
        notes += [f"  `{check.cell.call}` failed: {item}" for item in check.failed_items]
    notes += [f"  flag: {flag}" for flag in grade.flags]
    return [printable(f"{grade.path}:"), *map(printable, notes)] if notes else []


def _grade(
    submission: Submission, timeout: float, isolate: bool, notebook_timeout: float
) -> NotebookGrade | GradingError:
    try:
        return grade_notebook(
            submission.path, timeout=timeout, isolate=isolate, notebook_timeout=notebook_timeout
        )
    except GradingError as error:
        return error
    except (
        Exception
    ) as error:  # one notebook that breaks the grader must not lose the others' grades
        return GradingError(
            f"{submission.path} could not be graded ({type(error).__name__}: {str(error)[:120]})."
        )


COLUMNS = "student exercise points max_points checks_passed checks_total problems flags notebook"


def write_gradebook(path: str, submissions: list[Submission], results: list) -> None:
    """One row per notebook, written to a temporary file and renamed over ``path``."""
    rows = [COLUMNS.split()]
    for submission, result in zip(submissions, results):
        if isinstance(result, GradingError):
            row = [submission.student, "", 0, "", 0, "", str(result), "", str(submission.path)]
        else:
            problems = list(result.problems) + list(result.notes)
            problems += [f"{c.cell.call}: {item}" for c in result.checks for item in c.failed_items]
            row = [
                submission.student,
                result.exercise.name,
                f"{result.points:g}",
                result.exercise.points,
                result.passed,
                result.total,
                " | ".join(problems),
                " | ".join(result.flags),
                str(submission.path),
            ]
        rows.append(row)
    write_rows(path, rows, cell=csv_cell)


def grade_all(submissions: list[Submission], args, isolate: bool, jobs: int) -> list:
    """Every submission's grade, ``jobs`` at a time, with progress on stderr; with ``--csv``, each
    grade is kept as it is made and a run started again grades only what is missing (:mod:`.kept`)."""
    settings = {
        "timeout": args.timeout,
        "notebook_timeout": args.notebook_timeout,
        "isolate": isolate,
    }
    kept = KeptGrades(f"{args.csv}.grades") if args.csv else None
    version = grader_version() if kept else ""
    keys = [grade_key(Path(s.path), settings, version) if kept else None for s in submissions]
    results: list = [kept.read(key) if kept else None for key in keys]
    to_grade = [i for i, result in enumerate(results) if result is None]
    before = len(submissions) - len(to_grade)
    print(
        f"grading {len(to_grade)} notebook(s), {jobs} at a time (each runs in full)"
        + (f"; {before} graded before are read back" if before else "")
        + " ...",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {
            pool.submit(_grade, submissions[i], args.timeout, isolate, args.notebook_timeout): i
            for i in to_grade
        }
        for done, future in enumerate(as_completed(futures), start=1):
            index = futures[future]
            results[index] = future.result()
            if kept:
                kept.write(keys[index], results[index])
            left = len(to_grade) - done
            rate = done / max(time.monotonic() - started, 1e-9)  # notebooks per second
            eta = f", about {left / rate / 60:.0f} min left" if left else ""
            print(
                f"graded {done} of {len(to_grade)}, {left} left{eta}",
                file=sys.stderr,
                flush=True,
            )
    except BaseException:
        # Ctrl-C: the notebooks not started are dropped (those running finish, and are kept).
        pool.shutdown(wait=False, cancel_futures=True)
        if kept:
            print(
                f"stopped; the grades made so far are kept in {kept.folder}: the same command "
                "grades only the rest.",
                file=sys.stderr,
            )
        raise
    pool.shutdown()
    return results


def main(args: argparse.Namespace) -> int:
    from .sandbox import isolation_available

    submissions = find_submissions(args.notebooks)
    jobs = max(1, args.jobs)
    if args.roster and args.gradebook != "canvas":
        print("grade: --roster goes with --gradebook canvas.", file=sys.stderr)
        return 2
    if args.roster:
        try:
            read_roster(args.roster)
        except (OSError, ValueError) as error:  # before an hour of grading, not after
            print(f"grade: {error}", file=sys.stderr)
            return 2
    isolate = isolation_available()
    if not isolate:
        if len(submissions) > 1 and not args.no_isolation:
            print(
                "grade: no sandbox can be made here (bubblewrap's bwrap is missing or cannot run), so "
                "one notebook could reach the others and the gradebook; install bubblewrap, or pass "
                "--no-isolation to grade the class anyway.",
                file=sys.stderr,
            )
            return 2
        print(
            "warning: no sandbox here (install bubblewrap): the notebook runs with your rights.",
            file=sys.stderr,
        )
    results = grade_all(submissions, args, isolate, jobs)
    rows, notes, all_passed = [], [], True
    for submission, result in zip(submissions, results):
        if isinstance(result, GradingError):
            rows.append((submission.student, "?", "-", "-", str(submission.path)))
            notes.append(printable(str(result)))
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
    notes += duplicate_notes(submissions, results)
    if notes:
        print()
        print("\n".join(notes))
    if args.csv:
        if args.gradebook == "canvas":
            roster = read_roster(args.roster) if args.roster else None
            write_rows(args.csv, canvas_rows(submissions, results, roster), cell=csv_cell)
            for folder in unknown_folders(submissions, roster) if roster else ():
                print(
                    f"\n{printable(folder)}: no row of the roster names this folder; its "
                    "grades are in no Canvas row (add a folder column to the roster)."
                )
            print(f"\nCanvas gradebook written to {os.fspath(args.csv)}.")
        else:
            write_gradebook(args.csv, submissions, results)
            print(f"\nGradebook written to {os.fspath(args.csv)}.")
    print()
    print(
        "All checks passed."
        if all_passed
        else "Not every check passed; run the notebook to see each check's hints.",
        flush=True,  # before the kernels' client threads wind down with the interpreter
    )
    return 0 if all_passed else 1
