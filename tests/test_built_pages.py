"""What the built site holds, read as files: no progress bars in a page, no build log beside them."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("RESNET_COURSE_SITE", ROOT / "_build" / "html"))
CHAPTERS = sorted((SITE / "chapters").glob("*.html"))

# What a tqdm bar leaves in a page: its widget's model (tqdm's notebook bar is a FloatProgress; a
# dashboard's own progress bar, part of its controls, is an IntProgress), or its text
# ('100%|####| 3150/3150 [06:12<00:00, 8.46step/s]').
PROGRESS_MARKS = re.compile(
    r"FloatProgressModel|\d+/\d+ \[\d+:\d+|\b\d+(\.\d+)?(it|step|batch|network)s?/s\]"
)


def progress_marks(html: str) -> list[str]:
    return [match.group(0) for match in PROGRESS_MARKS.finditer(html)]


def test_the_marks_find_a_progress_bar():
    bar = "plain-20: 100%|##########| 3150/3150 [06:12<00:00, 8.46step/s, loss=0.512]"
    assert progress_marks(bar) and progress_marks('{"_model_name": "FloatProgressModel"}')
    assert not progress_marks('{"_model_name": "IntProgressModel", "description": "progress"}')
    assert not progress_marks("3,150 steps of batch 128, 8.5 points apart")


@pytest.mark.skipif(not CHAPTERS, reason="the book is not built (make book)")
@pytest.mark.parametrize("page", CHAPTERS, ids=lambda path: path.name)
def test_a_built_page_shows_no_progress_bar(page):
    found = progress_marks(page.read_text())
    assert not found, f"{page.name} holds progress bars from the build: {found[:3]}"


@pytest.mark.skipif(not CHAPTERS, reason="the book is not built (make book)")
def test_the_site_ships_no_build_log():
    logs = sorted(str(path.relative_to(SITE)) for path in SITE.rglob("*.log"))
    assert not logs and not (SITE / "reports").exists(), logs
