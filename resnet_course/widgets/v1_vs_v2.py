"""v1 against v2: post- and pre-activation residual networks of one depth, trained in turn."""

from __future__ import annotations

import ipywidgets as widgets

from .degradation import DegradationExplorer
from .run_config import BASIC, CIFAR10, PREACT, RunConfig


class V1VsV2Explorer(DegradationExplorer):
    """Post-activation (v1) against pre-activation (v2) residual networks of one depth."""

    title = "v1 against v2: post- and pre-activation residual networks of the same depth"

    def __init__(self, *, depth: int | None = 56, **options):
        options.setdefault("data", CIFAR10)
        super().__init__(depth=depth, residual=True, **options)
        # Pre-activation is a CIFAR-network choice; so no fallback to spirals either
        self.data_set.disabled = True

    def _control_rows(self) -> list[widgets.Widget]:
        return [widgets.HBox([self.depth, self.width]), widgets.HBox([self.lr, self.epochs])]

    def configs(self, **overrides) -> list[RunConfig]:
        return [self.config(block=BASIC, **overrides), self.config(block=PREACT, **overrides)]

    def default_configs(self) -> list[RunConfig]:
        """What ``run_default`` trains: v1 and v2 at the controls' settings."""
        return self.configs()


def v1_vs_v2_explorer(**options) -> V1VsV2Explorer:
    """Train a post-activation (v1) and a pre-activation (v2) ResNet of one depth; overlay them."""
    return V1VsV2Explorer(**options)
