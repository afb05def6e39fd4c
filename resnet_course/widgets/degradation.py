"""The degradation explorer: plain and residual networks of any depth, trained live and overlaid."""

from __future__ import annotations

from typing import Generator

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from .. import plots
from ..data import TensorData
from ..presets import Preset
from ..train import History, TrainingRun
from .controls import LivePanels, int_slider, run_style, set_range, toggle
from .explorer import Explorer
from .run_config import (
    BLOCK_TYPES,
    PLAIN,
    POST,
    SPIRALS,
    RunConfig,
    block_for,
    build_model,
    dashboard_data,
)


class DegradationExplorer(Explorer):
    """Plain against residual networks of any depth, trained live and overlaid on the same axes."""

    title = "Degradation explorer: train plain and residual networks and compare their curves"
    stopped_note = "; the partial curve is kept"
    smooth = 10  # steps in the running mean of the loss curve

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
        self.residual = toggle("network", (("plain", False), ("residual", True)), residual)
        self.block = toggle("block type", BLOCK_TYPES, block)  # post- or pre-activation
        self.epochs = int_slider("epochs", 10, 1, 100)
        self._select_data_set(data)
        if epochs is not None:  # a chapter may ask for a longer run than the slider's range
            self.epochs.max = max(self.epochs.max, epochs)
        # The block type again: opening on spirals, which have no block types, reset it.
        self._show(
            self._control_rows(), depth=depth, width=width, lr=lr, epochs=epochs, block=block
        )

    def _control_rows(self) -> list[widgets.Widget]:
        return [
            self.data_set,
            widgets.HBox([self.depth, self.width]),
            widgets.HBox([self.lr, self.epochs]),
            self.residual,
            self.block,
        ]

    def _use_data_set(self, name: str) -> None:
        super()._use_data_set(name)
        if name == SPIRALS:
            steps_per_epoch = max(
                1,
                len(dashboard_data(SPIRALS, self.preset).x_train)
                // self.preset.training.batch_size,
            )
            epochs = max(1, round(self.preset.mlp_steps / steps_per_epoch))
            set_range(self.epochs, epochs, 1, 3 * epochs)
            self.lr.value = 0.05
        else:
            set_range(self.epochs, self.preset.epochs, 1, max(10, 3 * self.preset.epochs))
            self.lr.value = 0.1
        # MLPs have one kind of layer: block type is a CIFAR-network choice.
        self.block.disabled = name == SPIRALS
        if name == SPIRALS:
            self.block.value = POST

    # --- which runs ---

    def config(self, **overrides) -> RunConfig:
        """The run the controls describe now, with ``overrides`` (e.g. ``depth=21``) applied.

        Raises ValueError, saying why, for a plain network with pre-activation chosen.
        """
        own = dict(epochs=self.epochs.value)
        if "block" not in overrides:
            own["block"] = block_for(self.residual.value, self.block.value)
        return self._config(overrides, **own)

    def configs(self, **overrides) -> list[RunConfig]:
        return [self.config(**overrides)]

    def default_configs(self) -> list[RunConfig]:
        """What ``run_default`` trains: a plain and a residual network at the controls' settings."""
        return [self.config(block=PLAIN), self.config(block=block_for(True, self.block.value))]

    # --- training ---

    def _run_each(
        self, configs: list[RunConfig], data: TensorData
    ) -> Generator[object, None, str | None]:
        for index, config in enumerate(configs):
            if self._stop_event.is_set():
                break
            label = self._unique_label(config.label)
            try:
                run = TrainingRun(
                    build_model(config),
                    data,
                    config.training.replace(
                        batch_size=min(config.training.batch_size, len(data.x_train))
                    ),
                    device=self.device,
                    stop=self._stop_event,
                    progress=False,
                    label=label,
                )
            except Exception as error:  # e.g. out of memory while moving the model to the GPU
                self._report_failure(History(label=label), error)
                return None
            self.histories.append(run.history)
            if not (yield from self._train(run)):
                return None
            if index < len(configs) - 1:
                self.redraw()
        return "Done: " + "; ".join(h.summary() for h in self.histories[-len(configs) :])

    def _unique_label(self, label: str) -> str:
        taken = {history.label for history in self.histories}
        if label not in taken:
            return label
        n = 2
        while f"{label} #{n}" in taken:
            n += 1
        return f"{label} #{n}"

    # --- the figure ---

    def _new_panels(self, figure: Figure | None = None) -> LivePanels:
        panels = LivePanels(
            [
                (
                    f"training loss (running mean of {self.smooth} steps)",
                    "training step",
                    "training loss (log scale)",
                ),
                ("test accuracy after each epoch", "epoch", "test accuracy (%)"),
            ],
            hint="Press Train to start a run",
            figure=figure,
        )
        # A deep residual MLP can start near a loss of 70 while a plain one sits at 0.69: on a
        # linear axis the second is a flat line. A log axis shows both.
        panels.axes[0].set_yscale("log")
        return panels

    def _draw(self, panels: LivePanels) -> Figure:
        for index, history in enumerate(self.histories):
            style = run_style(index, history.label)
            loss = plots.running_mean(history.step_loss, self.smooth)
            panels.set_line(0, history.label, history.steps, loss, **style)
            epochs = history.epochs[: len(history.test_acc)]
            accuracy = [100 * a for a in history.test_acc]
            panels.set_line(1, history.label, epochs, accuracy, marker="o", markersize=3, **style)
        return panels.render()


def degradation_explorer(**options) -> DegradationExplorer:
    """Train plain and residual networks side by side (``options``: see DegradationExplorer).

    ``degradation_explorer(data="cifar10", depth=56)`` opens on CIFAR-10 at 56 layers.
    """
    return DegradationExplorer(**options)
