"""Guards bind the text to its run: a claim the run did not show fails the book build."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_course.claims import ClaimNotShown, expect


def test_expect_passes_quietly_when_the_run_shows_the_claim():
    expect(3.0 > 2.0, "plain-56 ends above plain-20", plain20=2.0, plain56=3.0)


def test_expect_names_the_claim_and_the_numbers():
    with pytest.raises(ClaimNotShown) as error:
        expect(40.1 > 52.3, "plain-56 ends above plain-20", plain20=52.3, plain56=40.1)
    message = str(error.value)
    assert (
        "plain-56 ends above plain-20" in message
        and "plain20=52.3" in message
        and "plain56=40.1" in message
    )


def _notebook(path: Path, claim_holds: bool) -> None:
    cells = [
        {
            "cell_type": "markdown",
            "id": "title",
            "metadata": {},
            "source": ["# A page with a guarded claim"],
        },
        {
            "cell_type": "code",
            "id": "run",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": [
                "from resnet_course.claims import expect\n",
                f"deep, shallow = {40.0 if claim_holds else 61.0}, 48.5\n",
            ],
        },
        {
            "cell_type": "markdown",
            "id": "claim",
            "metadata": {},
            "source": ["The deep network ends below the shallow one."],
        },
        {
            "cell_type": "code",
            "id": "guard",
            "metadata": {"tags": ["remove-cell"]},
            "execution_count": None,
            "outputs": [],
            "source": [
                "expect(deep < shallow, 'the deep network ends below the shallow one', deep=deep, shallow=shallow)"
            ],
        },
    ]
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def _build(book: Path) -> subprocess.CompletedProcess:
    (book / "_config.yml").write_text(
        "title: guard test\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: force\n  allow_errors: false\n"
    )
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run(
        [str(jupyter_book), "build", str(book), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_a_book_whose_run_breaks_a_claim_fails_to_build(tmp_path):
    broken, sound = tmp_path / "broken", tmp_path / "sound"
    for folder, holds in ((broken, False), (sound, True)):
        folder.mkdir()
        _notebook(folder / "page.ipynb", claim_holds=holds)
    failed = _build(broken)
    assert failed.returncode != 0
    # The build names the page; its execution report names the claim and the numbers.
    report = "".join(
        path.read_text() for path in (broken / "_build" / "html" / "reports").glob("*.err.log")
    )
    assert "page" in failed.stdout + failed.stderr
    assert (
        "ClaimNotShown" in report
        and "the deep network ends below the shallow one" in report
        and "deep=61" in report
    )
    passed = _build(sound)
    assert passed.returncode == 0, passed.stdout[-2000:] + passed.stderr[-2000:]


def test_a_claim_about_a_live_run_is_strict_at_the_books_preset_and_a_note_elsewhere(capsys):
    from resnet_course.claims import BOOK_PRESET

    with pytest.raises(ClaimNotShown):
        expect(False, "ResNet-56 ends below ResNet-20", preset=BOOK_PRESET, resnet56=20.0)
    expect(False, "ResNet-56 ends below ResNet-20", preset="gpu", resnet56=20.0)
    note = capsys.readouterr().out
    assert "ResNet-56 ends below ResNet-20" in note and "gpu preset" in note
    assert max(len(line) for line in note.splitlines()) <= 76


def test_the_book_is_built_with_the_preset_its_sentences_are_written_for():
    from resnet_course.claims import BOOK_PRESET

    root = Path(__file__).resolve().parents[1]
    assert f"RESNET_COURSE_PRESET ?= {BOOK_PRESET}" in (root / "Makefile").read_text()
    assert f"RESNET_COURSE_PRESET={BOOK_PRESET}" in (root / ".ci" / "run").read_text()
