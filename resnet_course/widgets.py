"""Live training dashboards: sliders and buttons that drive real training.

Three dashboards, each built on the course's one training loop (:class:`TrainingRun`)
and its shared plots:

* :func:`degradation_explorer` - train plain and residual networks of a chosen depth,
  width, block type, learning rate and length on spirals or CIFAR-10, and overlay
  their curves ("plain-56" against "resnet-56");
* :func:`gradient_flow_explorer` - per-layer gradient norms of plain and residual
  stacks, at initialisation and after a few training steps;
* :func:`v1_vs_v2_explorer` - post-activation (v1) against pre-activation (v2)
  residual networks of the same depth, trained one after the other.

Each returns a dashboard object: ``.widget`` is the ipywidgets container (displaying
the object shows it), the controls are attributes (``.depth``, ``.train_button``, ...;
set ``.value`` and call ``.click()`` from code), ``.histories`` holds every run, and
``run_default()`` trains the default configuration synchronously and returns a
figure, for the static book.

How training runs without freezing the notebook
-----------------------------------------------
Train starts an asyncio task on the kernel's own event loop. The task iterates a
``TrainingRun`` and awaits ``asyncio.sleep(0)`` after every step, so the kernel
handles other messages (a Stop click, another cell) between steps. Stop sets an
event that ``TrainingRun`` checks every step: the run ends after the step in progress
(and the test evaluation of the partial epoch) and keeps its curve. Use Stop, not the
kernel's interrupt button: between cells the kernel ignores interrupts. In a script,
where no event loop is running, Train trains to the end before it returns; in a test
or a notebook, ``await dashboard.wait()`` waits for a run to finish.

Colab
-----
Colab's runtime has shipped ipywidgets 7.7.1, whose core widgets (sliders, buttons,
Output) it renders with no set-up, and this module uses only widgets and options that
ipywidgets 7 and 8 share (its tests pass under both). The call
``google.colab.output.enable_custom_widget_manager()`` loads third-party widget
libraries from a CDN; the dashboards use none, so they do not need it. What to avoid
is replacing Colab's ipywidgets with version 8: Colab's own renderer is built for 7,
and with 8 installed core widgets have failed to appear (googlecolab/colabtools
issues 3020 and 4525), so install the course without upgrading ipywidgets there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import io
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Generator, Iterator, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import nn

from . import plots
from .analysis import gradient_norms
from .data import Dataset, DataUnavailableError, load_cifar10, make_spirals
from .models import MLP, cifar_depths, cifar_resnet, valid_cifar_depth
from .train import History, Preset, TrainingRun, describe_device, get_preset, pick_device, set_seed

SPIRALS, CIFAR10 = "spirals", "cifar10"
DATA_SETS = (("spirals (MLPs)", SPIRALS), ("CIFAR-10 (CNNs)", CIFAR10))
POST, PRE = "post", "pre"
BLOCK_TYPES = (("post-activation (v1)", POST), ("pre-activation (v2)", PRE))
SPIRALS_DEPTHS = list(range(2, 101))
# The MLPs normalise every hidden layer, as the CIFAR networks do: then a plain stack
# is not held back by vanishing signals, and what is left is the degradation problem.
MLP_NORM = "batch"

_WIDE = {"description_width": "110px"}


def _row() -> widgets.Layout:
    return widgets.Layout(width="440px")


# --- one run's configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """Everything a dashboard run needs; the controls' values, read at the moment Train is pressed."""

    data: str = SPIRALS
    depth: int = 20
    width: int = 32
    residual: bool = False
    block: str = POST
    lr: float = 0.1
    epochs: int = 60
    batch_size: int = 128
    seed: int = 0

    @property
    def block_name(self) -> str:
        """The name in :data:`resnet_course.blocks.BLOCKS` of the CIFAR network's block."""
        if not self.residual:
            return "plain"
        return "preact" if self.block == PRE else "basic"

    @property
    def label(self) -> str:
        if self.data == SPIRALS:
            return f"{'residual' if self.residual else 'plain'}-mlp-{self.depth}"
        return {"plain": "plain", "basic": "resnet", "preact": "preact"}[self.block_name] + f"-{self.depth}"


def check_config(config: RunConfig) -> str | None:
    """Why ``config`` cannot run, in one sentence, or None when it can."""
    if config.data not in (SPIRALS, CIFAR10):
        return f"unknown data set {config.data!r}; choose 'spirals' or 'cifar10'."
    if config.block not in (POST, PRE):
        return f"unknown block type {config.block!r}; choose 'post' or 'pre'."
    if config.data == SPIRALS and config.block == PRE:
        return "the spirals MLPs have a single kind of layer; post- and pre-activation apply to the CIFAR-10 networks."
    if not config.residual and config.block == PRE:
        return (
            "a plain network has no pre-activation version: pre-activation moves BN and ReLU in front of "
            "each residual branch, which needs a shortcut. Turn residual on, or choose post-activation."
        )
    if config.epochs < 1:
        return f"train for at least one epoch, not {config.epochs}."
    if not config.lr > 0:
        return f"the learning rate must be positive, not {config.lr}."
    if config.width < 1:
        return f"the width must be at least 1, not {config.width}."
    valid_depth = valid_cifar_depth(config.depth, config.block_name) if config.data == CIFAR10 else config.depth >= 2
    if not valid_depth:
        try:
            build_model(config)  # raises the model's own message, which names the valid depths
        except ValueError as error:
            return str(error)
    return None


def build_model(config: RunConfig) -> nn.Module:
    """The network ``config`` describes, seeded so plain and residual twins start alike."""
    set_seed(config.seed)
    if config.data == SPIRALS:
        return MLP(config.depth, config.width, residual=config.residual, norm=MLP_NORM)
    return cifar_resnet(config.depth, block=config.block_name, width=config.width)


# --- data, loaded once per session --------------------------------------------------------------

_DATA_CACHE: dict[tuple, Dataset] = {}


def dashboard_data(name: str, preset: Preset) -> Dataset:
    """Spirals, or CIFAR-10 at the preset's size, loaded once and kept (raises DataUnavailableError)."""
    key = (name, preset.image_size, preset.train_size, preset.test_size)
    if key not in _DATA_CACHE:
        if name == SPIRALS:
            _DATA_CACHE[key] = make_spirals()
        else:
            _DATA_CACHE[key] = load_cifar10(image_size=preset.image_size, train_size=preset.train_size, test_size=preset.test_size)
    return _DATA_CACHE[key]


@contextlib.contextmanager
def _threads_for(data: Dataset, device: torch.device):
    """One CPU thread while training the 2-D toys, restored afterwards.

    Their layers are too small to split between threads, and on a busy machine every
    operation then waits for the second thread: on a shared 2-core machine a step of
    a 16-layer MLP took 30 ms on one thread and 1.6 to 2.9 s on two.
    """
    if data.is_image or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StaticFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in any notebook, whatever the backend.

    ``run_default()`` returns one; without ``_repr_png_`` a Figure made outside pyplot
    shows as text where the inline backend is not active (MPLBACKEND=Agg, say).
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _png_output(figure: Figure, dpi: int) -> dict:
    """A figure as one display_data output, ready to put in an Output widget's ``outputs``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return {
        "output_type": "display_data",
        "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": "<training curves>"},
        "metadata": {},
    }


# --- what every dashboard shares ---------------------------------------------------------------


class Dashboard:
    """Buttons, a progress bar, status and message lines, a live figure, and the asyncio driver."""

    title = ""
    # Widget updates cost a message each and a redraw tens of milliseconds, so both are
    # rate-limited; the figure is always redrawn when a run ends.
    status_interval_s = 0.25
    redraw_interval_s = 1.0
    dpi = 80
    figsize = (10, 3.6)

    def __init__(self, *, preset: Preset | None = None, device: str | torch.device | None = None):
        self.preset = preset or get_preset()
        self.device = pick_device(device)
        self.histories: list[History] = []
        self.redraws = 0  # how many times the live figure was drawn (tests read it)
        self.last_stop_latency_s: float | None = None
        self.last_message = ""  # the message line's text, without its markup
        self.task: asyncio.Task | None = None
        self._stop_event = threading.Event()
        self._stop_requested_at: float | None = None
        self._running = False
        self._redraw_cost_s = 0.0

        self.train_button = widgets.Button(description="Train", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self.clear_button = widgets.Button(description="Clear", icon="trash")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress", style=_WIDE)
        self.status = widgets.HTML(value=f"device: {html.escape(describe_device(self.device))}")
        self.message = widgets.HTML(value="")
        self.plot = widgets.Output()
        self.plot.add_class("resnet-course-plot")
        self.train_button.on_click(lambda _button: self.start())
        self.stop_button.on_click(lambda _button: self.stop())
        self.clear_button.on_click(lambda _button: self.clear())

    # The subclass builds ``self.widget`` from its controls and these parts.
    def _button_row(self) -> widgets.Widget:
        return widgets.HBox([self.train_button, self.stop_button, self.clear_button, self.progress])

    def _assemble(self, controls: Sequence[widgets.Widget]) -> widgets.VBox:
        header = widgets.HTML(value=f"<b>{html.escape(self.title)}</b> &middot; {html.escape(self.preset.describe())}")
        return widgets.VBox([header, *controls, self._button_row(), self.status, self.message, self.plot])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # --- messages ---

    def _checked_configs(self, make_configs, **overrides) -> list[RunConfig] | None:
        """``make_configs(**overrides)`` if every configuration is valid; else None, after saying why."""
        try:
            configs = make_configs(**overrides)
        except TypeError as error:  # an override the configuration does not have
            self.say(f"Refused: {error}", error=True)
            return None
        for config in configs:
            problem = check_config(config)
            if problem:
                self.say(f"Refused: {problem}", error=True)
                return None
        return configs

    def say(self, text: str, *, error: bool = False) -> None:
        """Show one line under the controls (in red for a refusal or an error)."""
        self.last_message = text
        text = html.escape(text)
        self.message.value = f'<span style="color:#b00020">{text}</span>' if error else text

    # --- the buttons ---

    @property
    def running(self) -> bool:
        return self._running

    def start(self, **overrides) -> bool:
        """Start training what the controls say (``overrides`` replace control values); False if refused."""
        if self._running:
            self.say("A run is already going: wait for it to finish, or press Stop first.", error=True)
            return False
        work = self._prepare(**overrides)
        if work is None:
            return False
        self._launch(work)
        return True

    def stop(self) -> None:
        if not self._running:
            self.say("Nothing is running.")
            return
        self._stop_requested_at = time.perf_counter()
        self._stop_event.set()
        self.say("Stopping after the current step...")

    def clear(self) -> None:
        if self._running:
            self.say("Stop the run before clearing the plot.", error=True)
            return
        self.histories.clear()
        self._clear_results()
        self.progress.value = 0
        self.say("Cleared.")
        self.redraw()

    async def wait(self) -> None:
        """Wait for the current run, if any, to finish (``await dashboard.wait()`` in a cell or a test)."""
        if self.task is not None:
            await asyncio.shield(self.task)

    # --- running the work: a generator that yields after every training step ---

    def _prepare(self, **overrides) -> Iterator[object] | None:
        raise NotImplementedError

    def _clear_results(self) -> None:
        pass

    def _launch(self, work: Iterator[object]) -> None:
        self._running = True
        self._stop_event.clear()
        self._stop_requested_at = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            # No event loop (a script): nothing could be handled between steps anyway.
            self._run_to_end(work)
        else:
            self.task = loop.create_task(self._drive(work))

    async def _drive(self, work: Iterator[object]) -> None:
        try:
            step_start = time.perf_counter()
            for _ in work:
                # Hand the loop back to the kernel: button clicks are handled here. A
                # message takes several loop iterations to handle (ipykernel passes it on
                # between coroutines), so after a slow step give the loop a few
                # milliseconds, not one iteration; otherwise a click waits several steps.
                step_s = time.perf_counter() - step_start
                await asyncio.sleep(0 if step_s < 0.02 else min(0.005, 0.05 * step_s))
                step_start = time.perf_counter()
        except Exception as error:  # the work reports its own errors; this is the last guard
            self.say(f"The dashboard failed: {type(error).__name__}: {error}", error=True)
        finally:
            self._finished(work)

    def _run_to_end(self, work: Iterator[object]) -> None:
        try:
            for _ in work:
                pass
        finally:
            self._finished(work)

    def _since_stop_s(self) -> float:
        return 0.0 if self._stop_requested_at is None else time.perf_counter() - self._stop_requested_at

    def _finished(self, work: Iterator[object]) -> None:
        # A cancelled task or an interrupted script leaves the work suspended: closing it
        # ends its run and restores what it changed (the CPU thread count).
        close = getattr(work, "close", None)
        if close is not None:
            close()
        if self._stop_requested_at is not None:
            self.last_stop_latency_s = time.perf_counter() - self._stop_requested_at
        self._running = False

    def _train(self, run: TrainingRun, *, redraw_every_s: float | None = None) -> Iterator[int]:
        """Iterate ``run``, keeping the progress bar, the status line and the figure up to date.

        Errors (out of memory, a diverged loss) end the run with a message in the
        dashboard; the run's history keeps what it had.
        """
        redraw_every_s = self.redraw_interval_s if redraw_every_s is None else redraw_every_s
        history = run.history
        self.progress.max, self.progress.value = max(1, run.total_steps), 0
        last_status = last_redraw = time.perf_counter()
        images_since = 0
        steps = iter(run)
        try:
            for step in steps:
                images_since += run.batch_size
                now = time.perf_counter()
                if now - last_status >= self.status_interval_s:
                    self._show_status(history, step, run.total_steps, images_since / (now - last_status))
                    last_status, images_since = now, 0
                # On a busy machine a redraw can cost half a second: keep it under a fifth of the time.
                if now - last_redraw >= max(redraw_every_s, 5 * self._redraw_cost_s):
                    self.redraw()
                    last_redraw = time.perf_counter()
                yield step
            if history.diverged:  # the loop stopped itself at the non-finite loss; say why here
                self.say(f"{history.label} {history.message}", error=True)
        except Exception as error:
            self._report_failure(history, error)
        finally:
            steps.close()  # ends the run's own bookkeeping now, not when it is garbage-collected
            self.progress.value = run.step
            self.status.value = html.escape(history.summary())

    def _show_status(self, history: History, step: int, total: int, images_per_s: float) -> None:
        self.progress.value = step
        epoch = len(history.epochs) + 1
        self.status.value = (
            f"<b>{html.escape(history.label)}</b> &middot; step {step:,} of {total:,} &middot; epoch {epoch} &middot; "
            f"{images_per_s:,.0f} images/s &middot; device: {html.escape(history.device)}"
        )

    def _report_failure(self, history: History, error: Exception) -> None:
        history.stopped = True
        if isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower():
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # give the failed run's memory back, so the next one can start
            self.say(f"{history.label} ran out of memory; choose a smaller width, depth or batch. The kernel is fine.", error=True)
        else:
            self.say(f"{history.label} stopped with an error: {type(error).__name__}: {error}", error=True)

    # --- the figure ---

    def draw(self, figure: Figure) -> None:
        raise NotImplementedError

    def figure(self) -> Figure:
        """A new figure of everything trained so far (the static book shows this one)."""
        figure = StaticFigure(figsize=self.figsize)
        self.draw(figure)
        return figure

    def live_figure(self) -> Figure:
        """The figure the dashboard shows while it trains, brought up to date (kept cheap: see LivePanels)."""
        raise NotImplementedError

    def redraw(self) -> None:
        """Redraw the live figure into the Output widget (one PNG, set directly: safe from a task)."""
        start = time.perf_counter()
        self.plot.outputs = (_png_output(self.live_figure(), self.dpi),)
        self.redraws += 1
        self._redraw_cost_s = time.perf_counter() - start


# --- the degradation explorer -------------------------------------------------------------------


class LivePanels:
    """Side-by-side panels whose lines are updated in place: cheap enough to redraw while training.

    The shared plots lay a figure out afresh each time (``tight_layout``), which on a
    busy CPU costs more than a training step; here the layout is fixed and only the
    data change. The static figure (:meth:`Dashboard.figure`) still comes from
    :mod:`resnet_course.plots`.
    """

    def __init__(self, panels: Sequence[tuple[str, str, str]], *, hint: str, log_y: bool = False, figsize=Dashboard.figsize):
        self.figure = Figure(figsize=figsize)
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


def _run_style(index: int, label: str) -> dict:
    """One colour per run in every panel; plain networks dashed, as in the shared plots."""
    return {"color": f"C{index % 10}", **(plots.PLAIN_STYLE if label.startswith("plain") else {})}


class DegradationExplorer(Dashboard):
    """Plain against residual networks of any depth, trained live and overlaid on the same axes."""

    title = "Degradation explorer: train plain and residual networks and compare their curves"

    def __init__(
        self,
        *,
        data: str = SPIRALS,
        depth: int | None = None,
        width: int | None = None,
        residual: bool = False,
        block: str = POST,
        lr: float | None = None,
        epochs: int | None = None,
        preset: Preset | None = None,
        device: str | torch.device | None = None,
    ):
        super().__init__(preset=preset, device=device)
        self.data_set = widgets.ToggleButtons(options=DATA_SETS, value=SPIRALS, description="data set", style=_WIDE)
        self.depth = widgets.SelectionSlider(options=SPIRALS_DEPTHS, value=20, description="depth (layers)", style=_WIDE, layout=_row(), continuous_update=False)
        self.width = widgets.IntSlider(value=32, min=8, max=128, step=8, description="width", style=_WIDE, layout=_row(), continuous_update=False)
        self.residual = widgets.ToggleButtons(options=(("plain", False), ("residual", True)), value=residual, description="network", style=_WIDE)
        self.block = widgets.ToggleButtons(options=BLOCK_TYPES, value=block, description="block type", style=_WIDE)
        self.lr = widgets.FloatLogSlider(value=0.1, base=10, min=-4, max=0, step=0.1, description="learning rate", style=_WIDE, layout=_row(), readout_format=".2g", continuous_update=False)
        self.epochs = widgets.IntSlider(value=10, min=1, max=100, description="epochs", style=_WIDE, layout=_row(), continuous_update=False)
        self.data_set.observe(lambda change: self._use_data_set(change["new"]), names="value")
        self._use_data_set(SPIRALS)
        if data != SPIRALS:
            self.data_set.value = data
        if epochs is not None:
            self.epochs.max = max(self.epochs.max, epochs)  # a chapter may ask for a longer run than the slider's default range
        for control, value in ((self.depth, depth), (self.width, width), (self.lr, lr), (self.epochs, epochs)):
            if value is not None:
                control.value = value
        self.live = self._new_live_panels()
        self.widget = self._assemble(self._control_rows())
        self.redraw()

    smooth = 10  # steps in the running mean of the loss curve

    def _new_live_panels(self) -> LivePanels:
        panels = LivePanels(
            [
                (f"training loss (running mean of {self.smooth} steps)", "training step", "training loss (log scale)"),
                ("test accuracy after each epoch", "epoch", "test accuracy (%)"),
            ],
            hint="Press Train to start a run",
        )
        # A deep residual MLP can start near a loss of 70 while a plain one sits at 0.69: on a linear
        # axis the second is a flat line. A log axis shows both.
        panels.axes[0].set_yscale("log")
        return panels

    def live_figure(self) -> Figure:
        for index, history in enumerate(self.histories):
            style = _run_style(index, history.label)
            self.live.set_line(0, history.label, history.steps, plots.running_mean(history.step_loss, self.smooth), **style)
            epochs = history.epochs[: len(history.test_acc)]
            self.live.set_line(1, history.label, epochs, [100 * a for a in history.test_acc], marker="o", markersize=3, **style)
        return self.live.render()

    def _clear_results(self) -> None:
        self.live = self._new_live_panels()

    def _control_rows(self) -> list[widgets.Widget]:
        return [
            self.data_set,
            widgets.HBox([self.depth, self.width]),
            widgets.HBox([self.lr, self.epochs]),
            self.residual,
            self.block,
        ]

    # --- controls that follow the data set ---

    def data_defaults(self, name: str) -> dict:
        """Preset-aware starting values for a data set; they finish in reasonable time on a laptop CPU."""
        if name == SPIRALS:
            steps_per_epoch = max(1, len(dashboard_data(SPIRALS, self.preset).x_train) // self.preset.batch_size)
            epochs = max(1, round(self.preset.mlp_steps / steps_per_epoch))
            return dict(depths=SPIRALS_DEPTHS, depth=32, width=(32, 8, 128, 8), lr=0.05, epochs=(epochs, 1, 3 * epochs))
        return dict(
            depths=cifar_depths("basic", 110), depth=20, width=(self.preset.width, 4, 64, 4), lr=0.1,
            epochs=(self.preset.epochs, 1, max(10, 3 * self.preset.epochs)),
        )

    def _use_data_set(self, name: str) -> None:
        defaults = self.data_defaults(name)
        self.depth.options = defaults["depths"]
        self.depth.value = defaults["depth"]
        value, low, high, step = defaults["width"]
        self.width.min, self.width.max, self.width.step = low, high, step
        self.width.value = value
        value, low, high = defaults["epochs"]
        self.epochs.min, self.epochs.max = low, high
        self.epochs.value = value
        self.lr.value = defaults["lr"]
        # MLPs have one kind of layer: block type is a CIFAR-network choice.
        self.block.disabled = name == SPIRALS
        if name == SPIRALS:
            self.block.value = POST

    def config(self, **overrides) -> RunConfig:
        """The run the controls describe now, with ``overrides`` (e.g. ``depth=21``) applied."""
        config = RunConfig(
            data=self.data_set.value, depth=self.depth.value, width=self.width.value, residual=self.residual.value,
            block=self.block.value, lr=self.lr.value, epochs=self.epochs.value, batch_size=self.preset.batch_size,
        )
        return replace(config, **overrides)

    # --- training ---

    def _configs(self, **overrides) -> list[RunConfig]:
        return [self.config(**overrides)]

    def _prepare(self, **overrides) -> Iterator[object] | None:
        configs = self._checked_configs(self._configs, **overrides)
        if configs is None:
            return None
        data = self._data(configs[0].data)
        if data is None:
            return None
        self.say(f"Training {', then '.join(c.label for c in configs)} on {data.name}...")
        return self._train_all(configs, data)

    def _data(self, name: str) -> Dataset | None:
        try:
            return dashboard_data(name, self.preset)
        except DataUnavailableError as error:
            # Say why, offer what still works, and keep the dashboard usable on spirals.
            self.data_set.options = [option for option in DATA_SETS if option[1] == SPIRALS]
            self._use_data_set(SPIRALS)
            self.say(f"{error} Until then the dashboard trains on spirals.", error=True)
            return None

    def _unique_label(self, label: str) -> str:
        taken = {history.label for history in self.histories}
        if label not in taken:
            return label
        n = 2
        while f"{label} #{n}" in taken:
            n += 1
        return f"{label} #{n}"

    def _train_all(self, configs: list[RunConfig], data: Dataset) -> Iterator[object]:
        with _threads_for(data, self.device):
            outcome = yield from self._train_each(configs, data)
        self.redraw()
        if outcome:  # said after the last redraw, so a reader who sees it sees the final curves
            self.say(outcome)

    def _train_each(self, configs: list[RunConfig], data: Dataset) -> Generator[object, None, str | None]:
        """Train ``configs`` one after the other; return what to say at the end (None if a run failed)."""
        for index, config in enumerate(configs):
            if self._stop_event.is_set():
                break
            label = self._unique_label(config.label)
            try:
                run = TrainingRun(
                    build_model(config), data, epochs=config.epochs, lr=config.lr,
                    batch_size=min(config.batch_size, len(data.x_train)), device=self.device, seed=config.seed,
                    stop=self._stop_event, progress=False, label=label,
                )
            except Exception as error:  # e.g. out of memory while moving the model to the GPU
                self._report_failure(History(label=label), error)
                return None
            self.histories.append(run.history)
            yield from self._train(run)
            if (run.history.stopped or run.history.diverged) and not self._stop_event.is_set():
                return None  # it failed or diverged; the message says why
            if index < len(configs) - 1:
                self.redraw()
        if self._stop_event.is_set():
            return f"Stopped {self._since_stop_s():.1f} s after Stop was pressed; the partial curve is kept."
        return "Done: " + "; ".join(h.summary() for h in self.histories[-len(configs):])

    def default_configs(self) -> list[RunConfig]:
        """What ``run_default`` trains: a plain and a residual network at the controls' settings."""
        return [self.config(residual=False, block=POST), self.config(residual=True)]

    def run_default(self) -> Figure:
        """Train :meth:`default_configs` synchronously and return the figure of every run so far.

        For the static book: the chapter runs this right after showing the
        dashboard, so the page shows real curves (and the dashboard's own plot,
        saved with the widget state, shows them too).
        """
        if self._running:
            raise RuntimeError("a run is going; stop it before run_default().")
        configs = self.default_configs()
        for config in configs:
            problem = check_config(config)
            if problem:
                raise ValueError(problem)
        data = dashboard_data(configs[0].data, self.preset)
        self.say(f"Training {', then '.join(c.label for c in configs)} on {data.name}...")
        self._running = True
        self._stop_event.clear()
        self._run_to_end(self._train_all(configs, data))
        return self.figure()

    # --- the figure ---

    def draw(self, figure: Figure) -> None:
        loss_axis, accuracy_axis = figure.subplots(1, 2)
        runs = [h for h in self.histories if h.step_loss]
        if runs:
            plots.plot_step_losses(runs, ax=loss_axis, smooth=self.smooth)
            loss_axis.set_yscale("log")  # see _new_live_panels
        else:
            loss_axis.set_xlabel("training step")
        loss_axis.set_ylabel("training loss (log scale)")
        loss_axis.set_title(f"training loss (running mean of {self.smooth} steps)")
        if any(h.test_acc for h in self.histories):
            plots.plot_histories([h for h in self.histories if h.test_acc], metrics=("test_acc",), ax=accuracy_axis)
        else:
            accuracy_axis.set_xlabel("epoch")
            accuracy_axis.set_ylabel("test accuracy (%)")
        accuracy_axis.set_title("test accuracy after each epoch")
        if not self.histories:
            figure.suptitle("Press Train to start a run")
        figure.tight_layout()


def degradation_explorer(**options) -> DegradationExplorer:
    """Train plain and residual networks side by side; see :class:`DegradationExplorer` for ``options``.

    ``degradation_explorer(data="cifar10", depth=56)`` opens on CIFAR-10 at 56 layers.
    """
    return DegradationExplorer(**options)


# --- v1 against v2 ------------------------------------------------------------------------------


class V1VsV2Explorer(DegradationExplorer):
    """Post-activation (v1) against pre-activation (v2) residual networks of one depth, one after the other."""

    title = "v1 against v2: post- and pre-activation residual networks of the same depth"

    def __init__(self, *, depth: int | None = 56, **options):
        options.setdefault("data", CIFAR10)
        super().__init__(depth=depth, residual=True, **options)
        self.data_set.disabled = True  # pre-activation is a CIFAR-network choice

    def _control_rows(self) -> list[widgets.Widget]:
        return [widgets.HBox([self.depth, self.width]), widgets.HBox([self.lr, self.epochs])]

    def _configs(self, **overrides) -> list[RunConfig]:
        return [self.config(residual=True, block=POST, **overrides), self.config(residual=True, block=PRE, **overrides)]

    def _data(self, name: str) -> Dataset | None:
        try:
            return dashboard_data(name, self.preset)
        except DataUnavailableError as error:
            self.say(str(error), error=True)  # nothing to fall back to: v2 blocks are CIFAR networks
            return None

    def default_configs(self) -> list[RunConfig]:
        """What ``run_default`` trains: v1 and v2 at the controls' settings."""
        return self._configs()


def v1_vs_v2_explorer(**options) -> V1VsV2Explorer:
    """Train a post-activation (v1) and a pre-activation (v2) ResNet of the chosen depth and overlay them."""
    return V1VsV2Explorer(**options)


# --- gradient flow -----------------------------------------------------------------------------


def layer_gradient_norms(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Gradient norms of the weights along the main path, input to output (1x1 projections left out)."""
    norms = gradient_norms(model, inputs, targets)
    return [value for name, value in norms.items() if "downsample" not in name]


class GradientFlowExplorer(Dashboard):
    """Per-layer gradient norms of a plain and a residual stack, at initialisation and after a few steps."""

    title = "Gradient flow: per-layer gradient norms of plain and residual stacks"
    measure_batch = 256

    def __init__(
        self,
        *,
        data: str = SPIRALS,
        depth: int | None = None,
        width: int | None = None,
        steps: int = 50,
        lr: float = 0.05,
        preset: Preset | None = None,
        device: str | torch.device | None = None,
    ):
        super().__init__(preset=preset, device=device)
        self.results: dict[str, dict[str, list[float]]] = {"init": {}, "trained": {}}
        self.steps_done = 0
        self.train_button.description = "Measure"
        self.data_set = widgets.ToggleButtons(options=DATA_SETS, value=SPIRALS, description="data set", style=_WIDE)
        self.depth = widgets.SelectionSlider(options=SPIRALS_DEPTHS, value=32, description="depth (layers)", style=_WIDE, layout=_row(), continuous_update=False)
        self.width = widgets.IntSlider(value=32, min=4, max=128, step=4, description="width", style=_WIDE, layout=_row(), continuous_update=False)
        self.steps = widgets.IntSlider(value=steps, min=0, max=500, step=10, description="training steps", style=_WIDE, layout=_row(), continuous_update=False)
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=0, step=0.1, description="learning rate", style=_WIDE, layout=_row(), readout_format=".2g", continuous_update=False)
        self.data_set.observe(lambda change: self._use_data_set(change["new"]), names="value")
        self._use_data_set(SPIRALS)
        if data != SPIRALS:
            self.data_set.value = data
        for control, value in ((self.depth, depth), (self.width, width)):
            if value is not None:
                control.value = value
        self.live = self._new_live_panels()
        self.widget = self._assemble(
            [self.data_set, widgets.HBox([self.depth, self.width]), widgets.HBox([self.steps, self.lr])]
        )
        self.redraw()

    def _new_live_panels(self) -> LivePanels:
        ylabel = "gradient norm of the layer's weights"
        return LivePanels(
            [("at initialisation", "layer (input to output)", ylabel), ("after training steps", "layer (input to output)", ylabel)],
            hint="Press Measure to compute the gradient norms", log_y=True,
        )

    def live_figure(self) -> Figure:
        self.live.axes[1].set_title(f"after {self.steps_done} training steps", fontsize=10)
        for panel, key in enumerate(("init", "trained")):
            for index, (label, norms) in enumerate(self.results[key].items()):
                self.live.set_line(panel, label, range(1, len(norms) + 1), norms, marker=".", **_run_style(index, label))
        return self.live.render()

    def _use_data_set(self, name: str) -> None:
        if name == SPIRALS:
            self.depth.options, self.depth.value = SPIRALS_DEPTHS, 32
            self.width.value = 32
        else:
            self.depth.options, self.depth.value = cifar_depths("basic", 110), 20
            self.width.value = self.preset.width

    def configs(self, **overrides) -> list[RunConfig]:
        base = RunConfig(
            data=self.data_set.value, depth=self.depth.value, width=self.width.value, lr=self.lr.value,
            epochs=1, batch_size=self.preset.batch_size,
        )
        base = replace(base, **overrides)
        return [replace(base, residual=False), replace(base, residual=True)]

    def _clear_results(self) -> None:
        self.results = {"init": {}, "trained": {}}
        self.steps_done = 0
        self.live = self._new_live_panels()

    def _prepare(self, **overrides) -> Iterator[object] | None:
        steps = overrides.pop("steps", self.steps.value)
        configs = self._checked_configs(self.configs, **overrides)
        if configs is None:
            return None
        try:
            data = dashboard_data(configs[0].data, self.preset)
        except DataUnavailableError as error:
            self.data_set.options = [option for option in DATA_SETS if option[1] == SPIRALS]
            self._use_data_set(SPIRALS)
            self.say(f"{error} Until then the dashboard measures on spirals.", error=True)
            return None
        self._clear_results()
        self.say(f"Measuring {' and '.join(c.label for c in configs)}...")
        return self._measure(configs, data, steps)

    def _measure(self, configs: list[RunConfig], data: Dataset, steps: int) -> Iterator[object]:
        with _threads_for(data, self.device):
            outcome = yield from self._measure_each(configs, data, steps)
        self.redraw()
        if outcome:  # said after the last redraw, as in the degradation explorer
            self.say(outcome)

    def _measure_each(self, configs: list[RunConfig], data: Dataset, steps: int) -> Generator[object, None, str | None]:
        """Measure both stacks at initialisation and after ``steps`` steps; return what to say (None if a run failed)."""
        on_device = data.to(self.device)
        inputs = on_device.normalise(on_device.x_train[: self.measure_batch])
        targets = on_device.y_train[: self.measure_batch]
        self.steps_done = steps
        for config in configs:
            if self._stop_event.is_set():
                break
            model = build_model(config).to(self.device)
            model.train()
            self.results["init"][config.label] = layer_gradient_norms(model, inputs, targets)
            self.redraw()
            yield 0
            if steps == 0:
                continue
            steps_per_epoch = max(1, len(data.x_train) // config.batch_size)
            run = TrainingRun(
                model, data, epochs=math.ceil(steps / steps_per_epoch), max_steps=steps, lr=config.lr,
                schedule="constant", batch_size=config.batch_size, device=self.device, evaluate=False,
                stop=self._stop_event, progress=False, label=config.label,
            )
            self.histories.append(run.history)
            # The gradient norms are measured only at the end, so the figure changes only then.
            yield from self._train(run, redraw_every_s=math.inf)
            if run.history.stopped or run.history.diverged:
                if not self._stop_event.is_set():
                    return None  # it failed or diverged; the message says why
                break
            model.train()
            self.results["trained"][config.label] = layer_gradient_norms(model, inputs, targets)
        if self._stop_event.is_set():
            return f"Stopped {self._since_stop_s():.1f} s after Stop was pressed."
        return "Done: gradient norms measured at initialisation" + (f" and after {steps} steps." if steps else ".")

    def run_default(self) -> Figure:
        """Measure at the controls' settings, synchronously; return the figure (for the static book)."""
        if self._running:
            raise RuntimeError("a run is going; stop it before run_default().")
        work = self._prepare()
        if work is None:
            raise ValueError(self.last_message)
        self._running = True
        self._stop_event.clear()
        self._run_to_end(work)
        return self.figure()

    def draw(self, figure: Figure) -> None:
        init_axis, trained_axis = figure.subplots(1, 2, sharey=True)
        panels = ((init_axis, "init", "at initialisation"), (trained_axis, "trained", f"after {self.steps_done} training steps"))
        for axis, key, title in panels:
            series = self.results[key]
            if series:
                plots.plot_layer_values(series, ylabel="gradient norm of the layer's weights", ax=axis)
            else:
                axis.set_xlabel("layer (input to output)")
                axis.set_ylabel("gradient norm of the layer's weights")
            axis.set_title(title)
        if not any(self.results.values()):
            figure.suptitle("Press Measure to compute the gradient norms")
        figure.tight_layout()


def gradient_flow_explorer(**options) -> GradientFlowExplorer:
    """Per-layer gradient norms of plain and residual stacks; see :class:`GradientFlowExplorer`."""
    return GradientFlowExplorer(**options)
