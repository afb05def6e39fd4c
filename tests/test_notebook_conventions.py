"""The notebook conventions every chapter and exercise keeps, checked for every notebook that exists.

Chapters are stored without outputs (the book executes them), start with the Colab
set-up cell and run on the ``python3`` kernel; the table of contents and the chapters
on disk agree. Exercises start with the same set-up cell (they keep their check
cells' outputs, so outputs are not checked here).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from resnet_course.notebooks import COLAB_SETUP_SOURCE
from tools.book import source_of, toc_files

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def first_code_source(notebook) -> str | None:
    return next((cell.source for cell in notebook.cells if cell.cell_type == "code"), None)


def stored_outputs(notebook) -> list[str]:
    """One line per code cell that carries outputs or an execution count."""
    return [
        f"cell {index}: {len(cell.outputs)} output(s), execution_count {cell.execution_count}"
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]


def ids(paths):
    return [path.relative_to(ROOT).as_posix() for path in paths]


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_chapter_is_stored_without_outputs(path):
    found = stored_outputs(read(path))
    assert not found, f"{path.name} has stored outputs (clear them; the book executes chapters): {found}"


@pytest.mark.parametrize("path", CHAPTERS + EXERCISES, ids=ids(CHAPTERS + EXERCISES))
def test_first_code_cell_is_the_colab_setup_cell(path):
    assert first_code_source(read(path)) == COLAB_SETUP_SOURCE, (
        f"{path.name}: the first code cell must be resnet_course.notebooks.COLAB_SETUP_SOURCE "
        "(paste it as the first code cell; exercises get it from resnet_course.grading.build_exercises)"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_chapter_runs_on_the_python3_kernel(path):
    kernel = read(path).metadata.get("kernelspec", {}).get("name")
    assert kernel == "python3", f"{path.name} names kernel {kernel!r}; the book and Colab expect 'python3'"


def test_every_page_in_the_toc_exists():
    missing = [page for page in toc_files(ROOT / "_toc.yml") if source_of(ROOT, page) is None]
    assert not missing, f"_toc.yml lists pages with no .ipynb or .md file: {missing}"


def test_every_chapter_on_disk_is_in_the_toc():
    listed = set(toc_files(ROOT / "_toc.yml"))
    unlisted = [path.name for path in CHAPTERS if path.relative_to(ROOT).with_suffix("").as_posix() not in listed]
    assert not unlisted, f"chapters missing from _toc.yml (only listed pages are built): {unlisted}"


# ---------------------------------------------------------------- the checks can fail


def test_checks_catch_a_broken_notebook():
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("import torch", execution_count=3)]
    )
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    assert first_code_source(notebook) != COLAB_SETUP_SOURCE
    assert stored_outputs(notebook) == ["cell 1: 1 output(s), execution_count 3"]
