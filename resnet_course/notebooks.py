"""Notebook helpers: ``glue`` and ``markdown_table`` for chapters, the Colab set-up cell, small cell writers.

Chapters are ``.ipynb`` files edited as notebooks (in Jupyter) and stored without outputs; no
script generates them. Every chapter and exercise starts with the same Colab set-up cell,
:data:`COLAB_SETUP_SOURCE` (tests/test_notebook_conventions.py checks it). The writers
(:func:`md`, :func:`code`, :func:`new_notebook`, :func:`write_notebook`) make small notebooks
for the exercise builder and the tests. nbformat is imported only by the writers, so a chapter
needs nothing beyond the package's own dependencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:  # for the annotations only: nbformat is not a dependency of the package
    import nbformat
    from IPython.display import Markdown

REPOSITORY_URL = "https://github.com/resnet-course/resnet-course"

# The first code cell of every notebook: in Colab (or any kernel without the course)
# it installs the package from the repository. pip keeps an installed torch that
# satisfies the package's range, so Colab's PyTorch is left alone.
# RESNET_COURSE_PIP_SOURCE, if set, is what pip installs instead (a fork, a local
# clone as git+file:///path): tests/test_colab_setup.py runs the cell that way.
PIP_SOURCE_ENV = "RESNET_COURSE_PIP_SOURCE"
COLAB_SETUP_SOURCE = f"""\
# Set-up: make `resnet_course` importable. In Colab this installs it from
# the course's repository and leaves PyTorch as it is.
try:
    import resnet_course
except ImportError:
    import os

    source = os.environ.get(
        "{PIP_SOURCE_ENV}",
        "git+{REPOSITORY_URL}",
    )
    %pip install --quiet "$source"
    import resnet_course
print("resnet_course", resnet_course.__version__)"""


def md(source: str) -> "nbformat.NotebookNode":
    import nbformat

    return nbformat.v4.new_markdown_cell(source.strip("\n"))


def code(source: str, *, tags: Iterable[str] = (), **metadata) -> "nbformat.NotebookNode":
    import nbformat

    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    cell.metadata.update(metadata)
    return cell


def colab_setup_cell() -> "nbformat.NotebookNode":
    return code(COLAB_SETUP_SOURCE, tags=["colab-setup"])


def new_notebook(
    cells: Iterable["nbformat.NotebookNode"], *, colab_setup: bool = True
) -> "nbformat.NotebookNode":
    """A notebook with the Python 3 kernel, the Colab set-up cell first, then ``cells``."""
    import nbformat

    cells = list(cells)
    if colab_setup:
        # The title (a markdown cell) may come first; the set-up is the first *code* cell.
        first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
        cells.insert(first_code, colab_setup_cell())
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def write_notebook(
    path: str | Path, cells: Iterable["nbformat.NotebookNode"], *, colab_setup: bool = True
) -> Path:
    import nbformat

    notebook = new_notebook(cells, colab_setup=colab_setup)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"  # stable ids: regenerating a notebook gives a clean diff
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def glue(name: str, value, *, display: bool = False) -> None:
    """Hand ``value`` to the book's prose (myst-nb's ``glue``), and still work where myst-nb is absent.

    In the built book, ``{glue:text}`name:.2f``` in a markdown cell shows the value
    computed here. In Colab or plain Jupyter, myst-nb may be missing; then a
    displayed value is simply shown. Nothing is returned, so a ``glue`` call that ends a
    cell never leaves the bare value behind as the cell's output.
    """
    # NumPy and 0-d tensor scalars repr as "np.float64(0.9)" or "tensor(0.9)", which the
    # book's format specs (``:.2f``) cannot parse: hand over the plain Python number.
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)


class Words(str):
    """Text handed to the book's prose as it reads: ``glue`` shows its repr, which for a plain str has quotes."""

    def __repr__(self) -> str:
        return str(self)


def readable_number(value: float) -> Words:
    """``value`` as a reader says it: 3 significant figures, and millions or more in words.

    ``readable_number(3.9e6)`` is '3.9 million', ``readable_number(2.1e10)`` '21 billion',
    ``readable_number(396.2)`` '396', ``readable_number(0.1583)`` '0.158'.
    """
    for scale, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if abs(value) >= scale:
            count = value / scale
            return Words(f"{count:.1f} {word}" if abs(count) < 10 else f"{count:.0f} {word}")
    if abs(value) >= 1000:
        return Words(f"{value:,.0f}")
    return Words(f"{value:.3g}")


_NUMBER_WORDS = "zero one two three four five six seven eight nine ten".split()


def number_words(count: int) -> Words:
    """A count as prose writes it: words up to ten ('four'), digits above (12)."""
    return Words(_NUMBER_WORDS[count] if 0 <= count <= 10 else f"{count:,}")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> "Markdown":
    """A table for a chapter, as Markdown that Jupyter and the book both render (no pandas needed).

    Cells are shown with ``str``; format numbers before passing them in.
    """
    from IPython.display import Markdown

    header = [str(cell) for cell in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        row = [str(cell).replace("|", "\\|") for cell in row]
        if len(row) != len(header):
            raise ValueError(
                f"a table row has {len(row)} cells but the header has {len(header)}: {row}"
            )
        lines.append("| " + " | ".join(row) + " |")
    return Markdown("\n".join(lines))


def describe_data(data) -> str:
    """A data set by its name and size, never its path: 'cifar10@16px: 4,600 training and 800 test images'."""
    return (
        f"{data.name}: {len(data.x_train):,} training and {len(data.x_test):,} test images, "
        f"{data.num_classes} classes"
    )
