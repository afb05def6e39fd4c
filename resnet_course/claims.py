"""Sentences bound to runs: a claim the run did not show fails the build.

A chapter's sentence about what a run showed is either written from the numbers, in the
chapter's own hidden cell (where the outcome really varies from run to run), or guarded, in a
hidden cell right after the run, by :func:`expect`::

    expect(plain56.train_error[-1] > plain20.train_error[-1],
           "plain-56 ends with a higher training error than plain-20",
           plain20=plain20.train_error[-1], plain56=plain56.train_error[-1])

When the condition is false the cell raises :class:`ClaimNotShown`, whose message names the
claim and the numbers; the book is executed with ``allow_errors: false``, so the build
fails there, the same way it fails on a warning.
"""

from __future__ import annotations

import textwrap

# The preset the published book is built with (the Makefile's and CI's RESNET_COURSE_PRESET): the
# sentences of a chapter are written for its runs, and guarded strictly there.
BOOK_PRESET = "cpu"


class ClaimNotShown(AssertionError):
    """The run beside a sentence did not show what the sentence says."""


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value)


def expect(condition: bool, claim: str, *, preset: str | None = None, **numbers) -> None:
    """Raise :class:`ClaimNotShown` naming ``claim`` and ``numbers`` unless ``condition`` holds.

    ``preset``: the preset the run was made with, for a sentence about a live run. The text is
    written for the book's preset (:data:`BOOK_PRESET`), so there a failed claim stops the build;
    a reader who runs another preset (a GPU) gets, instead, one short note that their run came
    out differently, and the notebook goes on.
    """
    if condition:
        return
    shown = ", ".join(f"{name}={_format(value)}" for name, value in numbers.items())
    if preset is not None and preset != BOOK_PRESET:
        print(
            textwrap.fill(
                f"Note: the text says that {claim}. Your run, at the {preset} preset, came out "
                f"differently ({shown}).",
                width=76,
            )
        )
        return
    raise ClaimNotShown(f"the text claims that {claim}, but this run did not show it ({shown}).")
