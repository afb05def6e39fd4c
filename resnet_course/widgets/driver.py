"""What every dashboard shares: Train, Stop and Clear, the asyncio run, messages, the live figure.

A subclass says what a press of Train does (:meth:`Dashboard._prepare` returns the work: a
generator that yields after every training step) and what the live figure shows
(:meth:`Dashboard.live_figure`); the driver runs the work as a task on the kernel's event loop.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from typing import Generator, Iterator, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ..devices import describe_device, pick_device
from ..presets import Preset, get_preset
from ..train import History, TrainingRun
from .controls import png_output, progress_bar


class Dashboard:
    """Buttons, a progress bar, status and message lines, a live figure, and the asyncio driver."""

    title = ""
    # Widget updates cost a message each and a redraw tens of milliseconds, so both are
    # rate-limited; the figure is always redrawn when a run ends.
    status_interval_s = 0.25
    redraw_interval_s = 1.0
    dpi = 100

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
        self.progress = progress_bar()
        self.status = widgets.HTML(value=f"device: {html.escape(describe_device(self.device))}")
        self.message = widgets.HTML(value="")
        self.plot = widgets.Output()
        self.plot.add_class("resnet-course-plot")
        self.train_button.on_click(lambda _button: self.start())
        self.stop_button.on_click(lambda _button: self.stop())
        self.clear_button.on_click(lambda _button: self.clear())

    def _assemble(self, controls: Sequence[widgets.Widget]) -> widgets.VBox:
        """The dashboard: a header, the subclass's controls, the buttons, the messages, the plot."""
        header = widgets.HTML(
            value=f"<b>{html.escape(self.title)}</b> &middot; preset {html.escape(self.preset.name)}"
        )
        buttons = widgets.HBox(
            [self.train_button, self.stop_button, self.clear_button, self.progress]
        )
        return widgets.VBox([header, *controls, buttons, self.status, self.message, self.plot])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

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
        """Start what the controls say (``overrides`` replace control values); False if refused."""
        if self._running:
            self.say(
                "A run is already going: wait for it to finish, or press Stop first.", error=True
            )
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
        """Wait for the current run, if any, to finish (``await dashboard.wait()`` in a cell)."""
        if self.task is not None:
            await asyncio.shield(self.task)

    # --- what a subclass provides ---

    def _prepare(self, **overrides) -> Iterator[object] | None:
        """The work a press of Train starts, or None after saying why it cannot start."""
        raise NotImplementedError

    def _clear_results(self) -> None:
        """Forget what Clear forgets beyond the histories."""

    def live_figure(self) -> Figure:
        """The figure shown while training, brought up to date (kept cheap: see LivePanels)."""
        raise NotImplementedError

    # --- running the work ---

    def _launch(self, work: Iterator[object], *, background: bool = True) -> None:
        """Run ``work`` as a task on the running event loop, or to its end before returning.

        ``background=False`` is for ``run_default``: a notebook cell runs inside the kernel's
        loop, and the cell must not end before the book's figure is trained.
        """
        self._running = True
        self._stop_event.clear()
        self._stop_requested_at = None
        try:
            loop = asyncio.get_running_loop() if background else None
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

    def _finished(self, work: Iterator[object]) -> None:
        # A cancelled task or an interrupted script leaves the work suspended: closing it
        # ends its run and restores what it changed (the CPU thread count).
        close = getattr(work, "close", None)
        if close is not None:
            close()
        if self._stop_requested_at is not None:
            self.last_stop_latency_s = time.perf_counter() - self._stop_requested_at
        self._running = False

    def _since_stop_s(self) -> float:
        return (
            0.0
            if self._stop_requested_at is None
            else time.perf_counter() - self._stop_requested_at
        )

    def _train(
        self, run: TrainingRun, *, redraw_every_s: float | None = None
    ) -> Generator[int, None, bool]:
        """Iterate ``run``, keeping the progress bar, the status line and the figure up to date.

        Returns False if the run failed or diverged while Stop was not pressed (the message
        line says why; the run's history keeps what it had), otherwise True.
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
                    self._show_status(
                        history, step, run.total_steps, images_since / (now - last_status)
                    )
                    last_status, images_since = now, 0
                # On a busy machine a redraw can cost half a second: keep it to a fifth of the time.
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
        return self._stop_event.is_set() or not (history.stopped or history.diverged)

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
                torch.cuda.empty_cache()  # the failed run's memory back, so the next one can start
            self.say(
                f"{history.label} ran out of memory; choose a smaller width, depth or batch. The kernel is fine.",
                error=True,
            )
        else:
            self.say(
                f"{history.label} stopped with an error: {type(error).__name__}: {error}",
                error=True,
            )

    def redraw(self) -> None:
        """Redraw the live figure into the Output widget (one PNG set directly: safe from a task)."""
        start = time.perf_counter()
        self.plot.outputs = (png_output(self.live_figure(), self.dpi),)
        self.redraws += 1
        self._redraw_cost_s = time.perf_counter() - start
