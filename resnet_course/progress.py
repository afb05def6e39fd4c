"""Progress bars: shown while a cell runs in Jupyter, Colab or a terminal; left out of the built book.

Every long loop of the course (training, feature extraction, a loss landscape, runs side by side)
makes its bar here. ``RESNET_COURSE_PROGRESS=off`` (``make book`` sets it) turns them all off: a
built page records what a run found, not a bar that finished while the book was built.
"""

from __future__ import annotations

import os


def switched_on(variable: str) -> bool:
    """The course's on/off settings: False when ``$variable`` is 'off', '0', 'no' or 'false'."""
    return os.environ.get(variable, "on").strip().lower() not in ("off", "0", "no", "false")


def enabled() -> bool:
    """False when ``$RESNET_COURSE_PROGRESS`` is 'off', '0', 'no' or 'false'."""
    return switched_on("RESNET_COURSE_PROGRESS")


def progress_bar(
    iterable=None, *, total: int | None = None, label: str = "", unit: str = "step", **options
):
    """A tqdm bar (the notebook's widget in Jupyter), or a bar that shows nothing where bars are off.

    A notebook bar gives its label a narrow box, which breaks 'plain-20' after the hyphen: a
    non-breaking hyphen keeps a network's name on one line.
    """
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=label.replace("-", "\u2011"),
        unit=unit,
        disable=not enabled(),
        **options,
    )
