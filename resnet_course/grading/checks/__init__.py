"""The checks behind every exercise. Each ``check_*`` function takes the student's objects and returns a Report.

A check cell ends with one call, e.g. ``check_basic_block(BasicBlock)``; Jupyter
shows the report as the cell's result. Trusted implementations are the oracles:
the course's own blocks (themselves tested against torchvision) and torchvision.
One module per exercise; :mod:`.helpers` holds what they share.
"""

from __future__ import annotations

from ..report import Check, CheckFailed
from .bottleneck import RESNET50_PARAMETERS, bottleneck, check_bottleneck, check_resnet50, resnet50
from .bug_hunt import BUG_HINTS, check_fixed_block, fixed_blocks
from .helpers import randomise_batch_norm
from .plain_vs_residual import (
    PLAIN_VS_RESIDUAL,
    TrainingSetup,
    check_cifar_nets,
    check_plain_vs_residual,
    cifar_nets,
    plain_vs_residual,
)
from .preactivation import check_preact_block, preact_block
from .residual_block import basic_block, check_basic_block, check_input_gradient, input_gradient
from .resnext import check_resnext_block, resnext_block, split_transform_merge
from .shortcuts import check_option_b_cost, check_shortcuts, option_b_cost, shortcuts

# Every check by name: what a check cell runs, and what its all-passed report says.
ALL_CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        basic_block,
        input_gradient,
        cifar_nets,
        plain_vs_residual,
        bottleneck,
        resnet50,
        shortcuts,
        option_b_cost,
        preact_block,
        resnext_block,
        *fixed_blocks.values(),
    )
}

__all__ = [
    "ALL_CHECKS",
    "BUG_HINTS",
    "PLAIN_VS_RESIDUAL",
    "RESNET50_PARAMETERS",
    "Check",
    "CheckFailed",
    "TrainingSetup",
    "check_basic_block",
    "check_input_gradient",
    "check_cifar_nets",
    "check_plain_vs_residual",
    "check_bottleneck",
    "check_resnet50",
    "check_shortcuts",
    "check_option_b_cost",
    "check_preact_block",
    "check_resnext_block",
    "check_fixed_block",
    "randomise_batch_norm",
    "split_transform_merge",
]
