"""What the explorers share: controls that follow the data set, the offline fallback, one way to run.

An explorer trains (or measures) the networks that :class:`RunConfig` describes. A subclass
says which configurations a press of Train runs (:meth:`Explorer.configs`) and which
``run_default`` runs for the book (:meth:`Explorer.default_configs`), what one configuration's
run does (:meth:`Explorer._run_each`), and how its panels look and are filled
(:meth:`Explorer._new_panels`, :meth:`Explorer._draw`). The live figure and the book's figure
are drawn by that same code.
"""

from __future__ import annotations

from typing import Generator, Iterator, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ..data import DataUnavailableError, TensorData
from ..models import cifar_depths
from ..presets import Preset
from .controls import (
    FIGSIZE,
    LivePanels,
    StaticFigure,
    data_set_toggle,
    depth_slider,
    int_slider,
    lr_slider,
    set_range,
)
from .driver import Dashboard
from .run_config import (
    DATA_SETS,
    SPIRALS,
    SPIRALS_DEPTHS,
    RunConfig,
    dashboard_data,
    first_problem,
)


class Explorer(Dashboard):
    """A dashboard of networks chosen by a data set, a depth, a width and a learning rate."""

    # For the messages: "Training plain-8 on ...", "the dashboard trains on spirals".
    doing, does = "Training", "trains"
    stopped_note = ""  # what the message after a Stop adds

    def __init__(self, *, preset: Preset | None = None, device: str | torch.device | None = None):
        super().__init__(preset=preset, device=device)
        self.data_set = data_set_toggle()
        self.depth = depth_slider()
        self.width = int_slider("width", 32, 8, 128, 8)
        self.lr = lr_slider(0.1)
        self.data_set.observe(lambda change: self._use_data_set(change["new"]), names="value")

    # --- setting up: a subclass adds its controls, then calls these two ---

    def _select_data_set(self, name: str) -> None:
        self._use_data_set(SPIRALS)
        if name != SPIRALS:
            self.data_set.value = name

    def _show(self, rows: Sequence[widgets.Widget], **values) -> None:
        """Set the controls ``values`` names (None: the data set's default); build and draw the dashboard."""
        for name, value in values.items():
            if value is not None:
                getattr(self, name).value = value
        self.live = self._new_panels()
        self.widget = self._assemble(rows)
        self.redraw()

    def _use_data_set(self, name: str) -> None:
        """Depths, widths and starting values for a data set, which train quickly on a laptop CPU."""
        if name == SPIRALS:
            self.depth.options, self.depth.value = SPIRALS_DEPTHS, 32
            set_range(self.width, 32, 8, 128, 8)
        else:
            self.depth.options, self.depth.value = cifar_depths("basic", 110), 20
            set_range(self.width, self.preset.width, 4, 64, 4)

    # --- which runs ---

    def _config(self, overrides: dict, **own) -> RunConfig:
        """The shared controls' values, updated by the explorer's ``own`` fields, then by ``overrides``.

        Raises TypeError for an override RunConfig has no field for.
        """
        shared = dict(
            data=self.data_set.value,
            depth=self.depth.value,
            width=self.width.value,
            lr=self.lr.value,
            batch_size=self.preset.training.batch_size,
        )
        return RunConfig.from_controls(**{**shared, **own, **overrides})

    def configs(self, **overrides) -> list[RunConfig]:
        """What Train runs: the controls' values, with ``overrides`` (e.g. ``depth=21``) applied."""
        raise NotImplementedError

    def default_configs(self) -> list[RunConfig]:
        """What ``run_default`` runs."""
        return self.configs()

    # --- running them ---

    def _prepare(self, **overrides) -> Iterator[object] | None:
        try:
            configs = self.configs(**overrides)
        # TypeError: an override RunConfig has no field for; ValueError: controls no network has.
        except (TypeError, ValueError) as error:
            self.say(f"Refused: {error}", error=True)
            return None
        problem = first_problem(configs)
        if problem:
            self.say(f"Refused: {problem}", error=True)
            return None
        data = self._data(configs[0].data)
        if data is None:
            return None
        return self._work(configs, data)

    def run_default(self) -> None:
        """Run :meth:`default_configs` synchronously, for the static book.

        The chapter runs this right after showing the dashboard; the dashboard's own panel,
        saved with the widget state, then shows the curves on the page. Nothing is returned,
        so the page does not draw them a second time (:meth:`figure` draws them on demand).
        Raises ValueError for a configuration that cannot run, and DataUnavailableError, whose
        sentence says what to do, when its data set is missing.
        """
        if self._running:
            raise RuntimeError("a run is going; stop it before run_default().")
        configs = self.default_configs()
        problem = first_problem(configs)
        if problem:
            raise ValueError(problem)
        self._launch(
            self._work(configs, dashboard_data(configs[0].data, self.preset)), background=False
        )

    def _data(self, name: str) -> TensorData | None:
        try:
            return dashboard_data(name, self.preset)
        except DataUnavailableError as error:
            if self.data_set.disabled:  # the explorer's networks need this data set: no fallback
                self.say(str(error), error=True)
                return None
            # Say why, offer what still works, and keep the dashboard usable on spirals.
            self.data_set.options = [option for option in DATA_SETS if option[1] == SPIRALS]
            self._use_data_set(SPIRALS)
            self.say(f"{error} Until then the dashboard {self.does} on spirals.", error=True)
            return None

    def _work(self, configs: list[RunConfig], data: TensorData) -> Iterator[object]:
        """Say what starts, and return the work that runs ``configs`` and then says how it went."""
        self.say(f"{self.doing} {', then '.join(c.label for c in configs)} on {data.name}...")
        return self._run_all(configs, data)

    def _run_all(self, configs: list[RunConfig], data: TensorData) -> Iterator[object]:
        outcome = yield from self._run_each(configs, data)
        self.redraw()
        if outcome is not None and self._stop_event.is_set():
            outcome = (
                f"Stopped {self._since_stop_s():.1f} s after Stop was pressed{self.stopped_note}."
            )
        if outcome:  # said after the last redraw, so a reader who sees it sees the final curves
            self.say(outcome)

    def _run_each(
        self, configs: list[RunConfig], data: TensorData
    ) -> Generator[object, None, str | None]:
        """Run ``configs`` one after the other, yielding after every step.

        Returns what to say at the end, or None if a run failed (the message line said why).
        """
        raise NotImplementedError

    # --- the figure: one drawing, live or for the book ---

    def _new_panels(self, figure: Figure | None = None) -> LivePanels:
        raise NotImplementedError

    def _draw(self, panels: LivePanels) -> Figure:
        """Put every result so far into ``panels``; return their figure."""
        raise NotImplementedError

    def _clear_results(self) -> None:
        self.live = self._new_panels()

    def live_figure(self) -> Figure:
        return self._draw(self.live)

    def figure(self) -> Figure:
        """A new figure of everything trained so far (the dashboard's panel shows the same curves)."""
        return self._draw(self._new_panels(StaticFigure(figsize=FIGSIZE)))
