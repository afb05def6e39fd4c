"""The parts dashboards are built from: sliders and toggles, and the panels curves are drawn in."""

from __future__ import annotations

import base64
import io
from typing import Sequence

import ipywidgets as widgets
from matplotlib.figure import Figure

from .. import plots
from .run_config import DATA_SETS, SPIRALS, SPIRALS_DEPTHS

# The book's column width at the dashboards' 100 dpi (plots.BOOK_WIDTH_INCHES): the page shows the
# panel at its own size, so its labels stay legible.
FIGSIZE = (6.6, 3.4)
_WIDE = {"description_width": "110px"}


def _row() -> widgets.Layout:
    return widgets.Layout(width="440px")


# --- controls -----------------------------------------------------------------------------------
# continuous_update=False: a run reads a slider when Train is pressed, so dragging need not send
# every value on the way.


def toggle(description: str, options, value) -> widgets.ToggleButtons:
    return widgets.ToggleButtons(options=options, value=value, description=description, style=_WIDE)


def data_set_toggle() -> widgets.ToggleButtons:
    return toggle("data set", DATA_SETS, SPIRALS)


def depth_slider() -> widgets.SelectionSlider:
    """Depths as a list of options: the data set decides which are valid (6n+2 for CIFAR networks)."""
    return widgets.SelectionSlider(
        options=SPIRALS_DEPTHS,
        value=32,
        description="depth (layers)",
        style=_WIDE,
        layout=_row(),
        continuous_update=False,
    )


def int_slider(
    description: str, value: int, low: int, high: int, step: int = 1
) -> widgets.IntSlider:
    return widgets.IntSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        style=_WIDE,
        layout=_row(),
        continuous_update=False,
    )


def lr_slider(value: float) -> widgets.FloatLogSlider:
    return widgets.FloatLogSlider(
        value=value,
        base=10,
        min=-4,
        max=0,
        step=0.1,
        description="learning rate",
        style=_WIDE,
        layout=_row(),
        readout_format=".2g",
        continuous_update=False,
    )


def set_range(slider: widgets.IntSlider, value: int, low: int, high: int, step: int = 1) -> None:
    """Give a slider new bounds and a value within them."""
    slider.min, slider.max, slider.step = low, high, step
    slider.value = value


def progress_bar() -> widgets.IntProgress:
    return widgets.IntProgress(value=0, min=0, max=1, description="progress", style=_WIDE)


# --- panels ---------------------------------------------------------------------------------------


class LivePanels:
    """Side-by-side panels whose lines are updated in place: cheap enough to redraw while training.

    Laying a figure out afresh (``tight_layout``) costs more than a training step on a busy
    CPU, so the layout is fixed and only the data change. The same panels draw the static
    figure the book shows (``figure`` is then a :class:`StaticFigure`).
    """

    def __init__(
        self,
        panels: Sequence[tuple[str, str, str]],
        *,
        hint: str,
        log_y: bool = False,
        figure: Figure | None = None,
    ):
        self.figure = figure if figure is not None else Figure(figsize=FIGSIZE)
        self.axes = list(self.figure.subplots(1, len(panels), sharey=log_y))
        self.figure.subplots_adjust(left=0.08, right=0.99, bottom=0.15, top=0.84, wspace=0.22)
        for axis, (title, xlabel, ylabel) in zip(self.axes, panels):
            axis.set_title(title, fontsize=10)
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.grid(alpha=0.3, which="both")
            if log_y:
                axis.set_yscale("log")
        self.lines: dict[tuple[int, str], object] = {}
        self._legend_labels: set = set()
        self._hint = self.figure.suptitle(hint)

    def set_line(self, panel: int, label: str, x, y, **style) -> None:
        line = self.lines.get((panel, label))
        if line is None:
            (self.lines[(panel, label)],) = self.axes[panel].plot(x, y, label=label, **style)
        else:
            line.set_data(x, y)

    def render(self) -> Figure:
        if set(self.lines) != self._legend_labels:  # legends only when a line was added
            for axis in self.axes:
                if axis.lines:
                    axis.legend(fontsize=8)
            self._legend_labels = set(self.lines)
        self._hint.set_visible(not self.lines)
        for axis in self.axes:
            axis.relim()
            axis.autoscale_view()
        return self.figure


def run_style(index: int, label: str) -> dict:
    """One colour per run in every panel; plain networks dashed, as in the shared plots."""
    return {"color": f"C{index % 10}", **(plots.PLAIN_STYLE if label.startswith("plain") else {})}


class StaticFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in any notebook, whatever the backend.

    ``run_default()`` returns one; without ``_repr_png_`` a Figure made outside pyplot
    shows as text where the inline backend is not active (MPLBACKEND=Agg, say).
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def png_output(figure: Figure, dpi: int) -> dict:
    """A figure as one display_data output, ready to put in an Output widget's ``outputs``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return {
        "output_type": "display_data",
        "data": {
            "image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "text/plain": "<training curves>",
        },
        "metadata": {},
    }
