"""Live training dashboards: sliders and buttons that drive real training.

Three dashboards, each built on the course's one training loop (:class:`TrainingRun`)
and its shared plots:

* :func:`degradation_explorer` - train plain and residual networks of a chosen depth,
  width, block type, learning rate and length on spirals or CIFAR-10, and overlay
  their curves ("plain-56" against "ResNet-56");
* :func:`gradient_flow_explorer` - per-layer gradient norms of plain and residual
  stacks, at initialisation and after a few training steps;
* :func:`v1_vs_v2_explorer` - post-activation (v1) against pre-activation (v2)
  residual networks of the same depth, trained one after the other.

Each returns a dashboard object: ``.widget`` is the ipywidgets container (displaying
the object shows it), the controls are attributes (``.depth``, ``.train_button``, ...;
set ``.value`` and call ``.click()`` from code), ``.histories`` holds every run, and
``run_default()`` trains the default configuration synchronously, for the static book,
whose page then shows the dashboard's own curves (``.figure()`` draws them again on demand).

The package, read in this order: :mod:`.run_config` (what one run is, and the check that
refuses what cannot run), :mod:`.controls` (sliders, toggles and the panels curves are drawn
in), :mod:`.driver` (Train, Stop, Clear, messages, the asyncio run), :mod:`.explorer` (what
the explorers share: controls that follow the data set, the offline fallback, ``run_default``),
then one module per explorer: :mod:`.degradation`, :mod:`.v1_vs_v2`, :mod:`.gradient_flow`.

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

from .controls import LivePanels, StaticFigure
from .degradation import DegradationExplorer, degradation_explorer
from .driver import Dashboard
from .explorer import Explorer
from .gradient_flow import GradientFlowExplorer, gradient_flow_explorer, layer_gradient_norms
from .run_config import (
    BASIC,
    BLOCK_TYPES,
    CIFAR10,
    DATA_SETS,
    MLP_NORM,
    NETWORK_BLOCKS,
    PLAIN,
    POST,
    PRE,
    PREACT,
    SPIRALS,
    SPIRALS_DEPTHS,
    RunConfig,
    block_for,
    build_model,
    check_config,
    dashboard_data,
)
from .v1_vs_v2 import V1VsV2Explorer, v1_vs_v2_explorer

__all__ = [
    "degradation_explorer",
    "gradient_flow_explorer",
    "v1_vs_v2_explorer",
    "DegradationExplorer",
    "GradientFlowExplorer",
    "V1VsV2Explorer",
    "Explorer",
    "Dashboard",
    "RunConfig",
    "block_for",
    "build_model",
    "check_config",
    "dashboard_data",
    "layer_gradient_norms",
    "LivePanels",
    "StaticFigure",
    "SPIRALS",
    "CIFAR10",
    "DATA_SETS",
    "PLAIN",
    "BASIC",
    "PREACT",
    "NETWORK_BLOCKS",
    "POST",
    "PRE",
    "BLOCK_TYPES",
    "SPIRALS_DEPTHS",
    "MLP_NORM",
]
