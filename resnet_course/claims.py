"""Sentences bound to runs: a claim the run did not show fails the build.

A chapter's sentence about what a run showed is either written from the numbers (see
:func:`verdict`) or guarded, in a hidden cell right after the run, by :func:`expect`::

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


def compare(
    name_a: str,
    value_a: float,
    name_b: str,
    value_b: float,
    *,
    what: str,
    unit: str = "%",
    tie: float = 1.0,
) -> str:
    """A sentence comparing two final numbers, written from them: above, below, or within ``tie``."""
    if abs(value_a - value_b) < tie:
        return f"{name_a} and {name_b} end within {tie:g} point of each other in {what} ({value_a:.1f}{unit} against {value_b:.1f}{unit})"
    side = "below" if value_a < value_b else "above"
    return (
        f"{name_a} ends {side} {name_b} in {what} ({value_a:.1f}{unit} against {value_b:.1f}{unit})"
    )


def degradation_verdict(shallow, deep, *, trained_error: float) -> tuple[str, bool]:
    """The sentence for a plain shallow/deep pair, written from their histories, and whether it shows degradation.

    Degradation is the paper's kind only: both networks trained (final training error at most
    ``trained_error`` %) and the deeper one ends with the higher training error.
    """
    gap = deep.train_error[-1] - shallow.train_error[-1]
    stuck = [run.label for run in (shallow, deep) if run.train_error[-1] > trained_error]
    if not stuck and gap > 0:
        return (
            f"Both networks trained (final training errors {shallow.train_error[-1]:.1f}% and "
            f"{deep.train_error[-1]:.1f}%, at most {trained_error:.0f}%), and {deep.label} ends {gap:.1f} points "
            f"*above* {shallow.label}: degradation, in this run."
        ), True
    if stuck:
        return (
            f"{' and '.join(stuck)} ended above {trained_error:.0f}% training error, within 10 points of a "
            "uniform guess: this run is too short to show the paper's degradation, which is a network that "
            "trains, to a higher error. The archived runs at the end of the page show more."
        ), False
    return (
        f"{deep.label} ends {-gap:.1f} points below {shallow.label} in training error: this run does not "
        "show degradation. The archived runs at the end of the page say how often that happens."
    ), False
