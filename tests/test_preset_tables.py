"""The preset tables of the README and the introduction say what PRESETS holds."""

import re
from pathlib import Path

import pytest

from resnet_course.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> dict[str, str]:
    rows = {}
    for line in path.read_text().splitlines():
        match = re.match(r"\|\s*`(\w+)`\s*\|(.*)", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


@pytest.mark.parametrize("page", ["README.md", "intro.md"])
def test_every_preset_has_a_row_that_states_its_budget_and_sizes(page):
    rows = _rows(ROOT / page)
    assert set(rows) == set(PRESETS), (
        f"{page} lists presets {sorted(rows)}, the package has {sorted(PRESETS)}"
    )
    for name, preset in PRESETS.items():
        row = rows[name]
        assert (
            f"width {preset.width}" in row and f"{preset.image_size}x{preset.image_size}" in row
        ), (page, name, row)
        assert f"{preset.training.steps:,} steps" in row, (page, name, row)
        images = "all 50,000" if preset.train_size is None else f"up to {preset.train_size:,}"
        assert images in row, (page, name, row)
        budget_minutes = re.search(r"(\d+) minutes", preset.budget).group(1)
        assert f"{budget_minutes} minutes" in row, (page, name, row)
