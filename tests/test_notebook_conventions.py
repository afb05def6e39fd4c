"""The notebook conventions every chapter and exercise keeps, checked for every notebook that exists.

Chapters are stored without outputs (the book executes them), start with the Colab
set-up cell and run on the ``python3`` kernel; the table of contents and the chapters
on disk agree. Exercises start with the same set-up cell (they keep their check
cells' outputs, so outputs are not checked here).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from resnet_course.notebooks import COLAB_SETUP_SOURCE
from tests.book_pages import source_of, toc_files

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
    assert not found, (
        f"{path.name} has stored outputs (clear them; the book executes chapters): {found}"
    )


@pytest.mark.parametrize("path", CHAPTERS + EXERCISES, ids=ids(CHAPTERS + EXERCISES))
def test_first_code_cell_is_the_colab_setup_cell(path):
    assert first_code_source(read(path)) == COLAB_SETUP_SOURCE, (
        f"{path.name}: the first code cell must be resnet_course.notebooks.COLAB_SETUP_SOURCE "
        "(paste it as the first code cell; exercises get it from resnet_course.grading.build_exercises)"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_chapter_runs_on_the_python3_kernel(path):
    kernel = read(path).metadata.get("kernelspec", {}).get("name")
    assert kernel == "python3", (
        f"{path.name} names kernel {kernel!r}; the book and Colab expect 'python3'"
    )


def test_every_page_in_the_toc_exists():
    missing = [page for page in toc_files(ROOT / "_toc.yml") if source_of(ROOT, page) is None]
    assert not missing, f"_toc.yml lists pages with no .ipynb or .md file: {missing}"


def test_every_chapter_on_disk_is_in_the_toc():
    listed = set(toc_files(ROOT / "_toc.yml"))
    unlisted = [
        path.name
        for path in CHAPTERS
        if path.relative_to(ROOT).with_suffix("").as_posix() not in listed
    ]
    assert not unlisted, f"chapters missing from _toc.yml (only listed pages are built): {unlisted}"


# ---------------------------------------------------------------- the checks can fail


def test_checks_catch_a_broken_notebook():
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title"),
            nbformat.v4.new_code_cell("import torch", execution_count=3),
        ]
    )
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    assert first_code_source(notebook) != COLAB_SETUP_SOURCE
    assert stored_outputs(notebook) == ["cell 1: 1 output(s), execution_count 3"]


# The book's code cells show 77 characters of monospace at a 1280-pixel-wide window (the right
# sidebar open; measured in Chromium, 8.43 px per character in a 684 px block), and the solutions
# in the Exercises page's dropdowns 73 (a 651 px block); wider windows show more. One column is
# kept in reserve. tests/test_book_site.py checks the rendered pages.
CODE_COLUMNS = 76
DROPDOWN_CODE_COLUMNS = 72
SOLUTION_CODE = sorted(
    (ROOT / "exercises" / "solutions").glob("*.py")
)  # shown on the Exercises page
_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")


def fenced_code(text: str) -> list[str]:
    """The code of every fenced block in Markdown text; a ```{directive} fence holds prose, not code."""
    blocks, fence, is_code, lines = [], None, False, []
    for line in text.splitlines():
        match = _FENCE.match(line.strip())
        if fence is None:
            if match:
                fence, is_code, lines = (
                    match.group(1),
                    not match.group(2).strip().startswith("{"),
                    [],
                )
        elif match and match.group(1) == fence and not match.group(2).strip():
            if is_code:
                blocks.append("\n".join(lines))
            fence = None
        else:
            lines.append(line)
    return blocks


def long_lines(text: str, where: str, columns: int = CODE_COLUMNS) -> list[str]:
    return [
        f"{where}, line {number}: {len(line)} characters"
        for number, line in enumerate(text.splitlines(), 1)
        if len(line) > columns
    ]


def code_shown_by(path: Path) -> list[tuple[str, str]]:
    """(where, code) for every block of code a page shows: code cells and fenced code in its text."""
    if path.suffix == ".py":
        return [(path.name, path.read_text())]
    if path.suffix == ".md":
        texts = [(path.name, path.read_text())]
        blocks = []
    else:
        notebook = read(path)
        blocks = [
            (f"{path.name} cell {i}", cell.source)
            for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code"
        ]
        texts = [
            (f"{path.name} cell {i}", cell.source)
            for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "markdown"
        ]
    for where, text in texts:
        blocks += [(f"{where} (fenced code)", code) for code in fenced_code(text)]
    return blocks


PAGES_WITH_CODE = (
    CHAPTERS + EXERCISES + SOLUTION_CODE + [ROOT / "intro.md", ROOT / "exercises" / "index.md"]
)


@pytest.mark.parametrize("path", PAGES_WITH_CODE, ids=ids(PAGES_WITH_CODE))
def test_code_fits_the_page_column(path):
    columns = DROPDOWN_CODE_COLUMNS if path in SOLUTION_CODE else CODE_COLUMNS
    found = [
        problem
        for where, code in code_shown_by(path)
        for problem in long_lines(code, where, columns)
    ]
    assert not found, f"code lines wider than the page's {columns} columns (wrap them): {found}"


def test_the_width_check_finds_a_long_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Text may be as long as it likes. " * 5
        + "\n\n```python\nx = 1\n"
        + "y = "
        + "1 + " * 30
        + "1\n```\n"
        "\n```{note}\n" + "A note is prose, not code. " * 5 + "\n```\n"
    )
    found = [problem for where, code in code_shown_by(page) for problem in long_lines(code, where)]
    assert found == ["page.md (fenced code), line 2: 125 characters"]


# ---------------------------------------------------------------- the reader's page (chapters/README.md)

# Code that a chapter keeps behind the page: the guide's tag table, by what the code calls.
PLUMBING = re.compile(
    r"\bglue\(|\bexpect\(|%xmode|\bload_study\(|\bshow_details\(|\bshow_about\(|"
    r"\bprovenance_line\(|\bbook_style\(|RESNET_COURSE_PIP_SOURCE"
)
HIDDEN = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
CONFIG_CODE = re.compile(
    r"\bw\d+-\d+px(?:-[\w.]+)*|\b\d+st-(?:cos|step|const)\b|\bsort\d+-d\d+-\d+ep\b"
)


def visible_plumbing(notebook) -> list[str]:
    """Code cells shown on the page that call plumbing (glue, expect, archive readers, ...)."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or HIDDEN & set(cell.metadata.get("tags", [])):
            continue
        calls = sorted(set(PLUMBING.findall(cell.source)))
        if calls:
            found.append(f"cell {index}: {', '.join(calls)}")
    return found


def configuration_codes(notebook) -> list[str]:
    """The scale study's configuration names in a notebook's prose or printed strings."""
    found = []
    for index, cell in enumerate(notebook.cells):
        text = cell.source if cell.cell_type == "markdown" else ""
        if cell.cell_type == "code" and not HIDDEN & set(cell.metadata.get("tags", [])):
            text = cell.source  # visible code is read by the reader too
        found += [f"cell {index}: {code}" for code in CONFIG_CODE.findall(text)]
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_plumbing_stays_behind_the_page(path):
    found = visible_plumbing(read(path))
    assert not found, (
        f"{path.name}: visible cells call plumbing; tag them remove-cell or remove-input "
        f"(chapters/README.md): {found}"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_no_configuration_code_in_what_a_reader_reads(path):
    found = configuration_codes(read(path))
    assert not found, f"{path.name}: spell configurations out in words: {found}"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_the_colab_set_up_is_behind_the_page(path):
    notebook = read(path)
    setup = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "remove-cell" in setup.metadata.get("tags", []), path.name


def test_the_page_checks_find_plumbing_and_codes():
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell('glue("ch1_steps", STEPS)'),
            nbformat.v4.new_code_cell(
                'expect(a > b, "a wins")', metadata={"tags": ["remove-cell"]}
            ),
            nbformat.v4.new_code_cell("model = cifar_resnet(20)"),
            nbformat.v4.new_markdown_cell("Shown at w8-16px-2100st-cos, and at 2,100 steps."),
        ]
    )
    assert visible_plumbing(notebook) == ["cell 0: glue("]
    assert configuration_codes(notebook) == ["cell 3: w8-16px-2100st-cos"]
