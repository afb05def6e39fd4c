"""Grading the course's exercises: the checks, and ``python -m resnet_course grade``.

The checks live here, in the package, so a check cell works wherever the course
is installed (Colab included)::

    from resnet_course.grading import check_basic_block
    check_basic_block(BasicBlock)      # shows a report, one line per item

That report is the student's feedback. The grade is computed elsewhere: the
grader runs only each check's probe in a sandboxed kernel, which exports the
student's modules, and judges the graphs in its own process with its own weights
and inputs (see :mod:`.probes`, :mod:`.programs` and :mod:`.grader`).

* :mod:`.probes`: what a check records in the kernel, and what the grader computes from it.
* :mod:`.programs`: exported graphs, written as plain data and run by the grader.
* :mod:`.report`: checks, items and the stable reports they print.
* :mod:`.checks`: every exercise's checks (a probe and its judges each).
* :mod:`.exercises`: the exercises and their canonical check cells.
* :mod:`.advice`: the source read for the instructor's flags (never a refusal).
* :mod:`.sandbox`, :mod:`.grader` and :mod:`.cli`: run a notebook in a bubblewrap sandbox and grade it.
* :mod:`.build_exercises`: make the student notebooks from the solutions.
"""

from .checks import (
    PLAIN_VS_RESIDUAL,
    check_basic_block,
    check_bottleneck,
    check_cifar_nets,
    check_fixed_block,
    check_input_gradient,
    check_option_b_cost,
    check_plain_vs_residual,
    check_preact_block,
    check_resnet50,
    check_resnext_block,
    check_shortcuts,
    split_transform_merge,
)
from .exercises import EXERCISES
from .report import Check, CheckFailed, Report

__all__ = [
    "PLAIN_VS_RESIDUAL",
    "EXERCISES",
    "Check",
    "CheckFailed",
    "Report",
    "split_transform_merge",
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
]
