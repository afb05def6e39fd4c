"""The few figures the chapters share. Each returns its matplotlib Figure."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .train import History

# The book's content column is about 680 px wide at a 1280-px window. Figures are drawn at that
# width and 100 dpi, so the page shows them at their own size: a 10.5-pt tick label stays about
# 14 px tall, the body's small text, instead of being shrunk with a wider figure.
BOOK_WIDTH_INCHES = 6.6
BOOK_STYLE = {
    "figure.dpi": 100,
    "figure.figsize": (BOOK_WIDTH_INCHES, 3.6),
    "font.size": 10.5,
    "axes.titlesize": 11,
    "legend.fontsize": 9.5,
}


def book_style() -> None:
    """Set matplotlib to the book's figure size and type sizes (the chapters' set-up cell calls it)."""
    plt.rcParams.update(BOOK_STYLE)


# Plain networks are drawn dashed, residual ones solid, so the two families read the same in
# every chapter; the colour is left to matplotlib's cycle (one per run).
PLAIN_STYLE = {"linestyle": "--"}


def plot_histories(
    histories: Sequence[History],
    *,
    metrics: Sequence[str] = ("train_loss", "test_error"),
    title: str = "",
    ax=None,
):
    """Per-epoch curves of several runs side by side, one panel per metric, labelled by run."""
    labels = {
        "train_loss": "training loss",
        "test_loss": "test loss",
        "train_error": "training error (%)",
        "test_error": "test error (%)",
        "train_acc": "training accuracy (%)",
        "test_acc": "test accuracy (%)",
    }
    # Accuracies are stored as fractions; the course shows every accuracy in %, like the errors.
    percent = {"train_acc", "test_acc"}
    if ax is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(BOOK_WIDTH_INCHES, 3.4), squeeze=False)
        axes = axes[0]
    else:
        axes = [ax] if len(metrics) == 1 else ax
        fig = axes[0].figure
    for axis, metric in zip(axes, metrics):
        for history in histories:
            values = getattr(history, metric)
            if not values:
                continue
            if metric in percent:
                values = [100 * v for v in values]
            style = PLAIN_STYLE if history.label.startswith("plain") else {}
            axis.plot(
                history.epochs[: len(values)],
                values,
                marker="o",
                markersize=3,
                label=history.label,
                **style,
            )
        axis.set_xlabel("epoch")
        axis.set_ylabel(labels.get(metric, metric))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def running_mean(values: Sequence[float], window: int) -> np.ndarray:
    """The mean of the last ``window`` values at every position (of fewer at the start)."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), max(1, window))
    return (sums[1:] - sums[np.arange(len(values)) + 1 - counts]) / counts


def plot_step_losses(histories: Sequence[History], *, title: str = "", smooth: int = 10, ax=None):
    """Training loss at every step (a running mean over ``smooth`` steps), one line per run."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(BOOK_WIDTH_INCHES, 3.6))
    else:
        fig = ax.figure
    for history in histories:
        style = PLAIN_STYLE if history.label.startswith("plain") else {}
        ax.plot(
            history.steps, running_mean(history.step_loss, smooth), label=history.label, **style
        )
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_layer_values(
    series: dict[str, Sequence[float]], *, ylabel: str, title: str = "", log: bool = True, ax=None
):
    """One line per network of a per-layer quantity (gradient norms, activation sizes), input to output."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(BOOK_WIDTH_INCHES, 3.6))
    else:
        fig = ax.figure
    for label, values in series.items():
        style = PLAIN_STYLE if label.startswith("plain") else {}
        ax.plot(range(1, len(values) + 1), list(values), marker=".", label=label, **style)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("layer (input to output)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
