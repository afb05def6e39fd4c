"""The gradient-flow explorer: per-layer gradient norms of plain and residual stacks."""

from __future__ import annotations

import math
from typing import Generator

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import nn

from ..analysis import gradient_norms
from ..data import TensorData
from ..presets import Preset
from ..train import TrainingRun
from .controls import LivePanels, int_slider, run_style
from .explorer import Explorer
from .run_config import BASIC, PLAIN, SPIRALS, RunConfig, build_model


def layer_gradient_norms(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> list[float]:
    """Gradient norms of the weights along the main path, input to output (1x1 projections left out)."""
    norms = gradient_norms(model, inputs, targets)
    return [value for name, value in norms.items() if "downsample" not in name]


class GradientFlowExplorer(Explorer):
    """Per-layer gradient norms of a plain and a residual stack, at initialisation and after training."""

    title = "Gradient flow: per-layer gradient norms of plain and residual stacks"
    doing, does = "Measuring", "measures"
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
        self.steps_done = 0  # the training steps behind results["trained"]
        self.train_button.description = "Measure"
        self.steps = int_slider("training steps", steps, 0, 500, 10)
        self._select_data_set(data)
        rows = [
            self.data_set,
            widgets.HBox([self.depth, self.width]),
            widgets.HBox([self.steps, self.lr]),
        ]
        self._show(rows, depth=depth, width=width, lr=lr)

    def configs(self, **overrides) -> list[RunConfig]:
        """A plain and a residual stack at the controls' settings, for the chosen number of steps."""
        return [
            self._config(overrides, block=block, steps=self.steps.value) for block in (PLAIN, BASIC)
        ]

    def _run_each(
        self, configs: list[RunConfig], data: TensorData
    ) -> Generator[object, None, str | None]:
        """Measure each stack at initialisation and after training (one batch, in training mode)."""
        self._clear_results()
        on_device = data.to(self.device)
        inputs = on_device.normalise(on_device.x_train[: self.measure_batch])
        targets = on_device.y_train[: self.measure_batch]
        self.steps_done = steps = configs[0].training.steps
        for config in configs:
            if self._stop_event.is_set():
                break
            model = build_model(config).to(self.device)
            model.train()
            self.results["init"][config.label] = layer_gradient_norms(model, inputs, targets)
            self.redraw()
            yield 0
            if config.training.steps == 0:
                continue
            run = TrainingRun(
                model,
                data,
                config.training.replace(schedule="constant"),
                device=self.device,
                test_every_epoch=False,
                stop=self._stop_event,
                progress=False,
                label=config.label,
            )
            self.histories.append(run.history)
            # The gradient norms are measured only at the end, so the figure changes only then.
            if not (yield from self._train(run, redraw_every_s=math.inf)):
                return None
            if self._stop_event.is_set():
                break
            model.train()
            self.results["trained"][config.label] = layer_gradient_norms(model, inputs, targets)
        return "Done: gradient norms measured at initialisation" + (
            f" and after {steps} steps." if steps else "."
        )

    def _clear_results(self) -> None:
        self.results = {"init": {}, "trained": {}}
        self.steps_done = 0
        super()._clear_results()

    def _new_panels(self, figure: Figure | None = None) -> LivePanels:
        ylabel = "gradient norm of the layer's weights"
        return LivePanels(
            [
                ("at initialisation", "layer (input to output)", ylabel),
                ("after training steps", "layer (input to output)", ylabel),
            ],
            hint="Press Measure to compute the gradient norms",
            log_y=True,
            figure=figure,
        )

    def _draw(self, panels: LivePanels) -> Figure:
        panels.axes[1].set_title(f"after {self.steps_done} training steps", fontsize=10)
        for panel, key in enumerate(("init", "trained")):
            for index, (label, norms) in enumerate(self.results[key].items()):
                panels.set_line(
                    panel,
                    label,
                    range(1, len(norms) + 1),
                    norms,
                    marker=".",
                    **run_style(index, label),
                )
        return panels.render()


def gradient_flow_explorer(**options) -> GradientFlowExplorer:
    """Per-layer gradient norms of plain and residual stacks; see :class:`GradientFlowExplorer`."""
    return GradientFlowExplorer(**options)
