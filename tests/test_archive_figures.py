"""The archive as the reader sees it: figures, folded numbers, and the words that judge them."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from resnet_course import evidence  # noqa: E402
from resnet_course.archive_figures import (  # noqa: E402
    CPU_CONFIG,
    about_these_numbers_html,
    claim_details_html,
    plot_claim,
    plot_depth_gaps,
    plot_fig6,
    short_config,
)
from resnet_course.plots import BOOK_WIDTH_INCHES  # noqa: E402
from resnet_course.presets import PRESETS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = evidence.load_study(ROOT / "results" / "scale-study" / "summary.json")
CONFIG_CODE = re.compile(r"\bw\d+-\d+px|\d+st-(?:cos|step|const)\b")


def test_the_cpu_configuration_is_the_books_preset():
    """The archive's CPU_CONFIG is the recipe the book's own chapters 1 and 2 train."""
    config = STUDY["configs"][CPU_CONFIG]
    preset = PRESETS["cpu"]
    recipe = preset.training
    assert (config["image_size"], config["width"], config["train_size"]) == (
        preset.image_size,
        preset.width,
        preset.train_size,
    )
    assert (config["steps"], config["lr"], config["schedule"]) == (
        recipe.steps,
        recipe.lr,
        recipe.schedule,
    )
    assert (config["warmup_epochs"], config["batch_size"]) == (
        recipe.warmup_epochs,
        recipe.batch_size,
    )


def test_the_introduction_says_what_the_archive_shows():
    """intro.md opens with Fig. 6 (both halves shown at the preset's recipe) and says so in words."""
    intro = " ".join((ROOT / "intro.md").read_text().split())
    assert "results/scale-study/fig6.png" in intro
    assert (ROOT / "results" / "scale-study" / "fig6.png").is_file()
    for claim in ("degradation", "residual_depth"):
        verdict = evidence.verdict(STUDY, claim, CPU_CONFIG)
        # "the mean of several runs": both halves in every seed archived at this recipe
        assert verdict is not None and verdict.sign_in_every_seed, claim
        assert len(verdict.seeds) >= 2, claim
    for claim in ("degradation", "residual_depth"):
        at_preset = evidence.verdict(STUDY, claim, CPU_CONFIG)
        assert at_preset.verdict == "shown" and len(at_preset.seeds) == 5, claim
    assert "3,150 steps each" in intro and "in every one of five seeds" in intro
    at_2100 = evidence.verdict(STUDY, "residual_depth", "w8-16px-2100st-cos")
    assert sum(d < 0 for d in at_2100.difference_points) == 4 and len(at_2100.seeds) == 5
    assert "At 2,100 steps ResNet-56 ended below ResNet-20 in four seeds of five" in intro
    assert at_2100.verdict != "shown"  # "the shortest run at which ..."
    shorter = [
        v.verdict
        for v in evidence.verdicts(STUDY, "residual_depth")
        if v.steps <= 1050 and STUDY["configs"][v.config]["width"] == 8
    ]
    assert shorter and "shown" not in shorter  # "at 1,050 steps and fewer only the first half"


def test_the_introduction_defines_every_verdict_word_as_the_code_applies_it():
    intro = " ".join((ROOT / "intro.md").read_text().split())
    assert "## How to read the evidence" in (ROOT / "intro.md").read_text()
    for word, meaning in evidence.VERDICT_WORDS.items():
        assert f"{word} : {meaning[0].upper()}{meaning[1:]}." in intro, word


def test_every_verdict_in_the_archive_is_one_of_the_defined_words():
    words = {v.verdict for v in evidence.all_verdicts(STUDY)}
    assert words <= set(evidence.VERDICT_WORDS) | {"too few seeds"}, words
    for v in evidence.all_verdicts(
        STUDY
    ):  # the rule as written: shown needs every seed and the spread
        if v.verdict == "shown":
            assert v.sign_in_every_seed and v.margin_points > v.seed_spread_points
            assert len(v.seeds) >= evidence.MIN_SEEDS


def test_configurations_are_named_in_words():
    for name in STUDY["configs"]:
        words = short_config(STUDY, name)
        assert not CONFIG_CODE.search(words), words
    assert short_config(STUDY, "w8-16px-2100st-cos") == "2,100 steps, width 8, 16-px images"


@pytest.mark.parametrize("claim", ["degradation", "residual_depth", "lesion", "preact_depth"])
def test_a_claim_is_drawn_at_the_column_width_with_its_verdicts(claim):
    figure = plot_claim(STUDY, claim)
    assert figure.get_size_inches()[0] <= BOOK_WIDTH_INCHES
    (axis,) = figure.axes
    texts = {" ".join(t.get_text().split()) for t in axis.texts}
    assert texts <= set(evidence.VERDICT_WORDS) | {"too few seeds"} and texts
    assert "Archived" in axis.get_title()
    ticks = " ".join(t.get_text() for t in axis.get_xticklabels())
    assert not CONFIG_CODE.search(ticks), ticks
    # A reader can read every label: no two configurations' labels or verdicts overlap.
    renderer = figure.canvas.get_renderer()
    for labels in (axis.get_xticklabels(), axis.texts):
        boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
        for left, right in zip(boxes, boxes[1:]):
            assert left.x1 <= right.x0, (claim, [t.get_text() for t in labels])


def test_one_recipes_lengths_read_left_to_right():
    """Chapter 2's axis: 525, 1,050, 2,100, 3,150 steps of one recipe, then its variants; the
    two-seed 4,200-step probe is not on it (evidence.counts)."""
    (axis,) = plot_claim(STUDY, "residual_depth").axes
    ticks = [" ".join(t.get_text().split()) for t in axis.get_xticklabels()]
    lengths = ["525", "1,050", "2,100", "3,150"]
    assert [t.split(" steps")[0] for t in ticks[:4]] == lengths, ticks
    assert all(t.endswith("width 8 16 px") for t in ticks[:4]), ticks  # no variant between
    assert not any(t.startswith("4,200 steps width 8 16 px") and "batch" not in t for t in ticks)


def test_a_claim_without_runs_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="no finished runs"):
        plot_claim(STUDY, "no_such_claim")


def test_fig6_draws_the_archive_and_the_live_run():
    from resnet_course.train import History

    live = History(label="plain-20")
    live.epochs, live.train_acc = [1.0, 2.0], [0.3, 0.5]
    figure = plot_fig6(CPU_CONFIG, live={"plain20": live}, folder=ROOT / "results")
    left, right = figure.axes
    labels = [line.get_label() for line in left.lines]
    assert labels == ["plain-20", "plain-20, this page's run", "plain-56"]
    assert [line.get_label() for line in right.lines] == ["ResNet-20", "ResNet-56"]
    assert figure.get_size_inches()[0] <= BOOK_WIDTH_INCHES


def test_the_depth_gaps_cover_every_configuration_with_both_families_over_three_seeds():
    figure = plot_depth_gaps(STUDY)
    (axis,) = figure.axes
    both = [
        v
        for v in evidence.verdicts(STUDY, "degradation")
        if (other := evidence.verdict(STUDY, "residual_depth", v.config))
        and min(len(v.seeds), len(other.seeds)) >= evidence.MIN_SEEDS
    ]
    assert len(axis.get_xticks()) == len(both)


def test_the_numbers_behind_a_figure_are_folded_and_readable():
    folded = claim_details_html(STUDY, "residual_depth")
    assert folded.startswith("<details><summary>The numbers behind this figure</summary>")
    assert not CONFIG_CODE.search(folded)
    assert "4,200 steps, width 8, 16-px images" in folded and "shown" in folded


def test_the_study_readme_and_the_chapters_print_a_verdict_the_same_way():
    """One formatting of a verdict's row: the study's README and a chapter's folded table."""
    import html

    readme = (ROOT / "results" / "scale-study" / "README.md").read_text()
    probes = 0
    for v in evidence.all_verdicts(STUDY):
        cells = v.table_cells()
        assert " | ".join(cells) in readme, v.config
        folded = claim_details_html(STUDY, v.claim)
        row = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        # The fold lists exactly what a page may cite: a probe with too few seeds stays in the README.
        assert (row in folded) == evidence.counts(v), v.config
        probes += not evidence.counts(v)
    assert probes, "the archive holds probes with too few seeds; the test must see one left out"


def test_the_numbers_behind_a_figure_of_two_claims_fold_into_one_block():
    """Chapter 3 draws two claims in one figure: one fold holds both tables, each with its claim."""
    folded = claim_details_html(STUDY, ("shortcut_b", "shortcut_c"))
    assert folded.count("<details>") == 1 and folded.count("<table") == 2
    assert folded.count("<p>Claim: ") == 2 and "option C" in folded
    assert not CONFIG_CODE.search(folded)
    assert folded.count(evidence.RULES.split(";")[0]) == 1  # the rules once, not per claim


def test_about_these_numbers_names_the_data_without_its_path():
    from resnet_course.data import make_spirals

    data = make_spirals(40)
    about = about_these_numbers_html(data=data)
    assert about.startswith("<details><summary>About these numbers</summary>")
    assert "spirals" in about and "SHA-256" in about and "torch" in about
    assert not re.search(r"/(?:home|root|work|tmp|Users)/", about), about
