"""The archive as a reader sees it: figures first, the numbers folded behind them.

A chapter whose point needs more than its own run shows the scale study's archived runs
(``results/scale-study/``, see :mod:`.evidence`) as a figure, with the mean and the range over
seeds, labelled as archived; the table and the provenance sit in a folded block below it::

    study = load_study()
    plot_claim(study, "degradation")            # one figure: every configuration, both networks
    show_details(study, "degradation")          # "The numbers behind this figure", folded

Chapter 2's Fig. 6 draws the training curves of the four networks of one configuration
(:func:`plot_fig6`), read from the run records the study keeps for every run.

Configurations are named in words ("4,200 steps, width 8, 16-px images"), never by the study's
codes. The words for a verdict ("shown", "tie", "opposite", "not shown") are defined once, in
:data:`.evidence.VERDICT_WORDS`, and applied by the study exactly as stated there.
"""

from __future__ import annotations

import datetime
import html
import json
import platform
import subprocess
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import evidence
from .plots import BOOK_WIDTH_INCHES
from .presets import PRESETS

FAMILY_COLOURS = {"20": "#1f77b4", "56": "#d62728", "110": "#9467bd"}


def short_config(study: dict, config: str) -> str:
    """A configuration in a few words: '4,200 steps, width 8, 16-px images'."""
    c = study["configs"][config]
    if c.get("task", "cifar") == "sort":
        return f"{c['epochs']} epochs of the sorting task"
    words = [f"{c['steps']:,} steps", f"width {c['width']}", f"{c['image_size']}-px images"]
    if c["train_size"] is None:
        words.append("all of CIFAR-10")
    if c["schedule"] != "cosine":
        words.append(f"{c['schedule']} learning rate")
    if c["batch_size"] != 128:
        words.append(f"batch {c['batch_size']}")
    if c["lr"] != 0.1:
        words.append(f"learning rate {c['lr']:g}")
    return ", ".join(words)


def _tick_label(study: dict, config: str) -> str:
    """Short lines under a configuration's bars."""
    c = study["configs"][config]
    if c.get("task", "cifar") == "sort":
        return f"{c['epochs']} epochs"
    # One short fact per line: five configurations side by side fit the column without touching.
    lines = [f"{c['steps']:,} steps", f"width {c['width']}", f"{c['image_size']} px"]
    if c["batch_size"] != 128:
        lines.append(f"batch {c['batch_size']}")
    if c["lr"] != 0.1:
        lines.append(f"lr {c['lr']:g}")
    return "\n".join(lines)


def _reading_order(study: dict, verdicts: list) -> list:
    """``verdicts`` with each recipe's lengths left to right: recipes (image size, width, batch,
    learning rate, schedule) keep the study's order, and within one the shorter run comes first."""

    def recipe(v):
        described = study["configs"][v.config]
        keys = ("image_size", "width", "batch_size", "lr", "schedule")
        return tuple(described.get(key) for key in keys)

    first_seen = {}
    for index, v in enumerate(verdicts):
        first_seen.setdefault(recipe(v), index)
    return sorted(verdicts, key=lambda v: (first_seen[recipe(v)], v.steps))


def plot_claim(study: dict, claim: str, *, title: str | None = None, ax=None):
    """Every archived configuration of ``claim``: each network's mean (dot) and seed range (bar).

    Configurations run from the cheapest to the most expensive; the verdict of each is written
    above its pair. Returns the Figure.
    """
    # The configurations a page may cite (evidence.counts): the folded table lists the same ones.
    archived = _reading_order(study, evidence.verdicts(study, claim))
    if not archived:
        raise ValueError(f"the archive has no finished runs for the claim {claim!r}")
    crowded = len(archived) > 5  # more than five pairs share the column: smaller words
    first, second = evidence.labels(study, claim)
    if ax is None:
        fig, ax = plt.subplots(figsize=(BOOK_WIDTH_INCHES, 3.4))
    else:
        fig = ax.figure
    positions = np.arange(len(archived))
    top = 0.0
    for offset, name, key, style in (
        (-0.12, first, "first_values", {"color": "#1f77b4", "marker": "o"}),
        (0.12, second, "second_values", {"color": "#d62728", "marker": "s"}),
    ):
        means = [float(np.mean(getattr(v, key))) for v in archived]
        lows = [m - min(getattr(v, key)) for m, v in zip(means, archived)]
        highs = [max(getattr(v, key)) - m for m, v in zip(means, archived)]
        top = max(top, max(max(getattr(v, key)) for v in archived))
        ax.errorbar(
            positions + offset,
            means,
            yerr=[lows, highs],
            linestyle="none",
            capsize=4,
            markersize=6,
            label=name,
            **style,
        )
    for x, v in zip(positions, archived):
        ax.annotate(
            v.verdict.replace(" ", "\n") if crowded else v.verdict,
            (x, top),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8 if crowded else 10,
            fontweight="bold" if v.shown else "normal",
        )
    ax.set_xticks(positions, [_tick_label(study, v.config) for v in archived])
    if crowded:
        ax.tick_params(axis="x", labelsize=8)
    ax.set_xlim(-0.6, len(archived) - 0.4)
    ax.set_ylim(top=top * (1.3 if crowded else 1.18) if top > 0 else None)
    ax.set_ylabel(evidence.metric_name(study, claim).split(" (test")[0])
    seeds = sorted({len(v.seeds) for v in archived})
    seed_text = " or ".join(str(s) for s in seeds)
    ax.set_title(title or f"Archived runs: mean and range over {seed_text} seeds")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    return fig


# --- chapter 2's Fig. 6 -------------------------------------------------------------------------


def load_curves(config: str, model: str, folder=None) -> dict[int, tuple[list, list]]:
    """Per seed, (epochs, training error in %) of one network in one archived configuration."""
    results = evidence.results_dir(folder)
    curves = {}
    if results is None:
        return curves
    for path in sorted((results / "scale-study" / "runs" / config).glob(f"{model}-seed*.json")):
        record = json.loads(path.read_text())
        history = record["history"]
        errors = [100.0 * (1.0 - a) for a in history["train_acc"]]
        curves[record["seed"]] = (history["epochs"], errors)
    return curves


def _band(ax, curves: dict, colour: str, label: str) -> None:
    """The mean curve over seeds and the band between the lowest and the highest seed."""
    length = min(len(errors) for _, errors in curves.values())
    epochs = np.asarray(next(iter(curves.values()))[0][:length])
    values = np.asarray([errors[:length] for _, errors in curves.values()])
    ax.fill_between(epochs, values.min(0), values.max(0), color=colour, alpha=0.2, linewidth=0)
    ax.plot(epochs, values.mean(0), color=colour, linewidth=2, label=label)


def _live(ax, runs, colour: str, label: str) -> None:
    """This page's run of one network as a dashed line; several seeds as their mean and hatched range."""
    runs = [runs] if not isinstance(runs, (list, tuple)) else list(runs)
    if len(runs) == 1:
        ax.plot(
            runs[0].epochs,
            runs[0].train_error,
            color=colour,
            linestyle="--",
            linewidth=1,
            label=f"{label}, this page's run",
        )
        return
    length = min(len(run.train_error) for run in runs)
    epochs = np.asarray(runs[0].epochs[:length])
    values = np.asarray([run.train_error[:length] for run in runs])
    ax.fill_between(
        epochs,
        values.min(0),
        values.max(0),
        facecolor="none",
        edgecolor=colour,
        hatch="///",
        linewidth=0,
        alpha=0.6,
    )
    ax.plot(
        epochs,
        values.mean(0),
        color=colour,
        linestyle="--",
        linewidth=1,
        label=f"{label}, this page's {len(runs)} seeds",
    )


def plot_fig6(
    config: str,
    *,
    live: dict | None = None,
    families: Sequence[tuple[str, str]] = (("plain", "plain"), ("resnet", "ResNet")),
    depths: Sequence[int] = (20, 56),
    folder=None,
):
    """The course's Fig. 6: training error against epochs, plain networks left, ResNets right.

    Thick lines are the archived mean over seeds, bands the range between seeds. ``live`` maps a
    model name ('plain20') to a History of this page's own run, drawn as a thin dashed line, or
    to a list of them (several live seeds), drawn as their dashed mean and hatched range.
    """
    fig, axes = plt.subplots(1, len(families), figsize=(BOOK_WIDTH_INCHES, 3.5), sharey=True)
    archived = {
        f"{family}{depth}": load_curves(config, f"{family}{depth}", folder)
        for family, _ in families
        for depth in depths
    }
    # Only the seeds every network has: each band and mean covers the same runs.
    common = set.intersection(*(set(curves) for curves in archived.values()))
    for ax, (family, family_label) in zip(np.atleast_1d(axes), families):
        for depth in depths:
            model = f"{family}{depth}"
            colour = FAMILY_COLOURS[str(depth)]
            curves = {seed: archived[model][seed] for seed in sorted(common)}
            if curves:
                _band(ax, curves, colour, f"{family_label}-{depth}")
            if live and model in live:
                _live(ax, live[model], colour, f"{family_label}-{depth}")
        ax.set_title(f"{family_label} networks")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        # Where the curves leave room differs by panel and length (a plain-20 curve leaves the
        # lower left free, ResNet curves the upper right): matplotlib finds the emptiest corner.
        ax.legend(fontsize=8, loc="best", framealpha=0.9)
    np.atleast_1d(axes)[0].set_ylabel("training error (%)")
    if common:
        fig.suptitle(f"Archived runs, mean and range over {len(common)} seeds", fontsize=11, y=0.99)
    fig.tight_layout()
    return fig


# --- the numbers behind a figure, folded ---------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def details_html(summary: str, body_html: str) -> str:
    """A folded block: only ``summary`` shows until the reader opens it."""
    return f"<details><summary>{html.escape(summary)}</summary>\n{body_html}\n</details>"


def _claim_table_html(study: dict, claim: str) -> str:
    """One claim's statement and its table: the values per seed, the difference, the verdict."""
    rows = [
        [short_config(study, v.config), *v.table_cells()] for v in evidence.verdicts(study, claim)
    ]
    header = [
        "configuration",
        *evidence.Verdict.table_header(
            *evidence.labels(study, claim), evidence.metric_unit(study, claim)
        ),
    ]
    statement = study["claims"][claim]["statement"]
    return (
        f"<p>Claim: {html.escape(statement)}. Values: "
        f"{html.escape(evidence.metric_name(study, claim))}.</p>" + _table(header, rows)
    )


def claim_details_html(study: dict, claim: str | Sequence[str]) -> str:
    """The table behind :func:`plot_claim`, its rule and where the runs came from, folded.

    ``claim`` may name several claims (a figure with one panel per claim): one table each, in
    one folded block.
    """
    claims = (claim,) if isinstance(claim, str) else tuple(claim)
    return details_html(
        "The numbers behind this figure",
        "".join(_claim_table_html(study, name) for name in claims)
        + f"<p>{html.escape(evidence.RULES)}</p>"
        + f"<p>{html.escape(evidence.provenance_line(study, claims))}</p>",
    )


def show_details(study: dict, claim: str | Sequence[str]) -> None:
    """Display :func:`claim_details_html` (Jupyter and the book both render it)."""
    from IPython.display import HTML, display

    display(HTML(claim_details_html(study, claim)))


def _commit() -> str:
    """The course's commit when the chapter runs from a clone, else a note that it does not."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path.cwd(),
        )
    except (OSError, subprocess.SubprocessError):
        return "not run from a clone"
    return out.stdout.strip() if out.returncode == 0 else "not run from a clone"


def about_these_numbers_html(*, histories=(), data=None, archive: str = "") -> str:
    """One folded block per page: the device, versions, commit, data and date of its numbers."""
    import torch
    import torchvision

    from .runs import data_fingerprint

    devices = sorted(
        {evidence.device_words(h.device) for h in histories if getattr(h, "device", "")}
    )
    items = [
        ("made on", ", ".join(devices) or "this machine"),
        (
            "versions",
            f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
            f"Python {platform.python_version()}",
        ),
        ("course commit", _commit()),
        ("date", datetime.date.today().isoformat()),
    ]
    if data is not None:
        words = evidence.data_words(data.description)
        items.append(("data", f"{words}; SHA-256 {data_fingerprint(data)[:16]}..."))
    if archive:
        items.append(("archived runs", archive))
    body = "<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in items)
    return details_html("About these numbers", body + "</ul>")


def show_about(*, histories=(), data=None, archive: str = "") -> None:
    from IPython.display import HTML, display

    display(HTML(about_these_numbers_html(histories=histories, data=data, archive=archive)))


# The presets' recipe (the book's) in the archive: chapters draw their own runs against it,
# and it carries the course's Fig. 6 (the introduction opens with it), the shortest length tried
# where the study shows both halves. tests/test_presets.py keeps every preset's archive showing it.
CPU_CONFIG = PRESETS["cpu"].archive


def plot_depth_gaps(study: dict, *, ax=None):
    """What depth costs each family: 56 minus 20 layers, final training error, per configuration.

    One pair of bars per archived configuration that both claims may cite
    (:func:`.evidence.counts`); the whisker is the seed range of the differences. Returns the Figure.
    """
    pairs = []
    for plain in evidence.verdicts(study, "degradation"):
        residual = evidence.verdict(study, "residual_depth", plain.config)
        if residual:
            pairs.append((plain, residual))
    if ax is None:
        fig, ax = plt.subplots(figsize=(BOOK_WIDTH_INCHES, 3.4))
    else:
        fig = ax.figure
    positions = np.arange(len(pairs))
    for offset, index, label, colour in (
        (-0.18, 0, "plain: plain-56 minus plain-20", "#7f7f7f"),
        (0.18, 1, "residual: ResNet-56 minus ResNet-20", "#2ca02c"),
    ):
        differences = [pair[index].difference_points for pair in pairs]
        means = [float(np.mean(d)) for d in differences]
        ax.bar(positions + offset, means, width=0.36, color=colour, label=label)
        ax.errorbar(
            positions + offset,
            means,
            yerr=[
                [m - min(d) for m, d in zip(means, differences)],
                [max(d) - m for m, d in zip(means, differences)],
            ],
            linestyle="none",
            color="black",
            capsize=3,
        )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(positions, [_tick_label(study, plain.config) for plain, _ in pairs])
    ax.set_ylabel("56 minus 20 layers\n(training error, points)")
    ax.set_title("What depth costs, per family (archived; bar: mean, whisker: seed range)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    return fig


def results_details_html(rows) -> str:
    """The records of ``tools.reproduce`` (:func:`.evidence.load_results`), folded."""
    table = _table(
        ["network", "test error (%)", "paper (%)", "scale", "device", "time"],
        [
            [
                row.model,
                f"{row.test_error:.2f}",
                "-" if row.paper_test_error is None else f"{row.paper_test_error:.2f}",
                "the paper's" if row.full_scale else "; ".join(row.scale_notes),
                row.device,
                f"{row.wall_time_s / 60:.1f} min",
            ]
            for row in rows
        ],
    )
    return details_html("The recorded runs of the paper's recipe", table)
