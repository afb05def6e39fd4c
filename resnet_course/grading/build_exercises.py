"""Make the student notebooks from the solutions: ``python -m resnet_course.grading.build_exercises``.

Run from the repository root. The solutions in ``exercises/solutions/`` are the
source; in their code cells the student's part is marked::

    # BEGIN SOLUTION
    out = self.relu(out + identity)
    # END SOLUTION
    # STUB: out = self.relu(out) + identity

A region becomes its ``# STUB:`` lines (uncommented) in the student's notebook,
or, without any, ``raise NotImplementedError``. Markdown answers go between
``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``. For every exercise
this writes, under the output folder (``exercises/`` by default):

* ``NN_name.ipynb``: the student's notebook;
* ``solutions/NN_name.ipynb``: the solution, normalised (canonical check cells
  with their all-passed output, no other outputs, stable cell ids);
* ``solutions/NN_name.py``: the solution's code cells, markers removed, which
  the book shows behind a toggle.

``--check`` writes nothing and exits 1 if any of those files is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from ..notebooks import COLAB_SETUP_SOURCE, colab_setup_cell
from .exercises import EXERCISES, METADATA_KEY, Exercise, find_exercise
from .grader import find_check_cell

BEGIN, END, STUB = "# BEGIN SOLUTION", "# END SOLUTION", "# STUB:"
MARKDOWN_ANSWER = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.DOTALL)
MARKDOWN_STUB = "*Your answer here.*"


class SolutionError(ValueError):
    """A solution notebook the generator cannot turn into an exercise."""


def _regions(source: str) -> list[tuple[int, int, int]]:
    """(begin, end, after_stub) line indices of each marked region; after_stub is one past its last STUB line."""
    lines = source.splitlines()
    regions, begin = [], None
    for index, line in enumerate(lines):
        marker = line.strip()
        if marker == BEGIN:
            if begin is not None:
                raise SolutionError(
                    f"a '{BEGIN}' at line {index + 1} opens a region inside another."
                )
            begin = index
        elif marker == END:
            if begin is None:
                raise SolutionError(f"an '{END}' at line {index + 1} has no '{BEGIN}' before it.")
            after = index + 1
            while after < len(lines) and lines[after].strip().startswith(STUB):
                after += 1
            regions.append((begin, index, after))
            begin = None
    if begin is not None:
        raise SolutionError(f"the '{BEGIN}' at line {begin + 1} is never closed.")
    return regions


def student_code(source: str) -> str:
    """The student's version of a code cell: each region replaced by its stub."""
    lines = source.splitlines()
    out, position = [], 0
    for begin, end, after in _regions(source):
        out += lines[position:begin]
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        stubs = [line.strip()[len(STUB) :].removeprefix(" ") for line in lines[end + 1 : after]]
        out += (
            [indent + stub for stub in stubs]
            if stubs
            else [f"{indent}# Your code here.", f"{indent}raise NotImplementedError"]
        )
        position = after
    return "\n".join(out + lines[position:])


def solution_code(source: str) -> str:
    """A code cell as the book shows it: markers and stub lines removed."""
    lines = source.splitlines()
    drop = set()
    for begin, end, after in _regions(source):
        drop |= {begin, *range(end, after)}
    return "\n".join(line for index, line in enumerate(lines) if index not in drop)


def has_solution(cell: nbformat.NotebookNode) -> bool:
    if cell.cell_type == "code":
        return bool(_regions(cell.source))
    return cell.cell_type == "markdown" and bool(MARKDOWN_ANSWER.search(cell.source))


def normalise_solution(
    notebook: nbformat.NotebookNode, exercise: Exercise
) -> nbformat.NotebookNode:
    """The solution as it is stored: canonical set-up and check cells, no other outputs, stable ids."""
    notebook = nbformat.from_dict(notebook)
    cells = notebook.cells
    setup = next(
        (
            i
            for i, c in enumerate(cells)
            if c.cell_type == "code" and "colab-setup" in c.metadata.get("tags", [])
        ),
        None,
    )
    if setup is None:
        first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
        cells.insert(first_code, colab_setup_cell())
    else:
        cells[setup].source = COLAB_SETUP_SOURCE
    check_positions = {}
    for check in exercise.checks:
        index = find_check_cell(notebook, check)
        if index is None:
            raise SolutionError(
                f"the solution of {exercise.name} lacks the check cell `{check.call}`."
            )
        check_positions[index] = check
    code_count = 0
    for index, cell in enumerate(cells):
        if cell.cell_type == "code":
            code_count += 1
            if index in check_positions:
                cells[index] = check_positions[index].cell(execution_count=code_count)
                continue
            cell.outputs, cell.execution_count = [], None
            _regions(cell.source)  # fails early on a malformed region
        cell.id = f"cell-{index}"
        cell.metadata.pop("execution", None)  # timings Jupyter may add
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        METADATA_KEY: {"exercise": exercise.name},
    }
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    return notebook


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student's notebook: the normalised solution with every region replaced by its stub."""
    notebook = nbformat.from_dict(solution)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = student_code(cell.source)
        elif cell.cell_type == "markdown":
            cell.source = MARKDOWN_ANSWER.sub(MARKDOWN_STUB, cell.source)
    return notebook


def book_code(solution: nbformat.NotebookNode, exercise: Exercise) -> str:
    """The solution's own code, for the book: the cells that hold a solution region, markers removed."""
    parts = [
        solution_code(cell.source)
        for cell in solution.cells
        if cell.cell_type == "code" and has_solution(cell)
    ]
    header = f"# Exercise {exercise.number}, {exercise.title}: the solution's code cells.\n\n"
    return header + "\n\n\n".join(parts) + "\n"


SHIPPED_MODULE = Path(__file__).resolve().parent / "shipped.py"


def shipped_lines(student: nbformat.NotebookNode) -> list[str]:
    """The code lines a student notebook ships with, outside its stubs: what a student did not write."""
    lines = set()
    for cell in student.cells:
        if cell.cell_type == "code" and not cell.get("id", "").startswith("check-"):
            lines |= {line.strip() for line in cell.source.splitlines() if line.strip()}
    return sorted(lines)


def shipped_module(lines: dict[str, list[str]]) -> str:
    """``shipped.py``: each exercise's shipped lines, for the grader's advice (:mod:`.advice`)."""
    body = "".join(
        f"    {name!r}: frozenset(\n        {values!r}\n    ),\n"
        for name, values in sorted(lines.items())
    )
    return (
        '"""The code lines each exercise notebook ships with: written by build_exercises, do not edit.\n\n'
        "The grader's advice never flags a line the exercise itself ships (its own comparison with the\n"
        'course\'s block, say): a flag is about what the student wrote."""\n\n'
        f"SHIPPED_LINES = {{\n{body}}}\n"
    )


def shipped_text(solutions_dir: Path) -> str:
    """The text of ``shipped.py``: every exercise's shipped lines, from its solution notebook."""
    shipped = {}
    for path in sorted(solutions_dir.glob("*.ipynb")):
        exercise = find_exercise(path.stem)
        if exercise is not None:
            solution = normalise_solution(nbformat.read(path, as_version=4), exercise)
            shipped[exercise.name] = shipped_lines(student_notebook(solution))
    return shipped_module(shipped)


def build(solutions_dir: Path, out_dir: Path) -> dict[Path, str]:
    """Every notebook the generator makes, as ``{path under out_dir: text}``; nothing is written."""
    files = {}
    solution_paths = sorted(solutions_dir.glob("*.ipynb"))
    names = {path.stem for path in solution_paths}
    if names != set(EXERCISES):
        missing, extra = sorted(set(EXERCISES) - names), sorted(names - set(EXERCISES))
        raise SolutionError(
            f"{solutions_dir} should hold exactly the exercises' solutions (missing: {missing or 'none'}, "
            f"unexpected: {extra or 'none'})."
        )
    for path in solution_paths:
        exercise = find_exercise(path.stem)
        try:
            solution = normalise_solution(nbformat.read(path, as_version=4), exercise)
            student = student_notebook(solution)
        except SolutionError as error:
            raise SolutionError(f"{path}: {error}") from None
        files[out_dir / f"{exercise.name}.ipynb"] = nbformat.writes(student) + "\n"
        files[out_dir / "solutions" / f"{exercise.name}.ipynb"] = nbformat.writes(solution) + "\n"
        files[out_dir / "solutions" / f"{exercise.name}.py"] = book_code(solution, exercise)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_course.grading.build_exercises", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--solutions",
        type=Path,
        default=Path("exercises/solutions"),
        help="folder of solution notebooks",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("exercises"), help="where to write (default: exercises)"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    args = parser.parse_args(argv)
    if not args.solutions.is_dir():
        print(
            f"build_exercises: {args.solutions} is not a folder; run from the repository root or pass --solutions.",
            file=sys.stderr,
        )
        return 2
    try:
        files = build(args.solutions, args.out)
        files[SHIPPED_MODULE] = shipped_text(args.solutions)  # the grader's list, in the package
    except SolutionError as error:
        print(f"build_exercises: {error}", file=sys.stderr)
        return 2
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path}")
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
