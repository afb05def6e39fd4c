"""The course's exercises and their canonical check cells.

This is the one place that says which check cells an exercise has, what they run
and what they print when everything passes. The notebook generator writes these
cells into every exercise, and the grader puts them back before it runs a
student's notebook, so editing or deleting a check cell cannot pass an exercise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .checks import ALL_CHECKS

if TYPE_CHECKING:
    import nbformat

CHECK_TAG = "nbval-check-output"  # nbval --nbval-lax compares the outputs of cells with this tag
# A stub that raises NotImplementedError; nbval and the book allow the error
STUB_TAG = "raises-exception"
# Notebook metadata {"exercise": name}; cell metadata {"check": cell id}
METADATA_KEY = "resnet_course"


@dataclass(frozen=True)
class CheckCell:
    """One graded cell: ``from resnet_course.grading import <function>`` then ``<function>(<arguments>)``."""

    id: str  # the cell id, e.g. "check-basic-block"
    check: str  # the name of the Check it runs (see checks.ALL_CHECKS)
    function: str  # the check function the cell calls
    arguments: str  # the student's objects it passes, as written in the cell
    # The same objects as the probe's keywords; default "name=name" for each
    probe_arguments: str = ""

    @property
    def probe_call(self) -> str:
        return self.probe_arguments or ", ".join(
            f"{a.strip()}={a.strip()}" for a in self.arguments.split(",")
        )

    def evidence_source(self, seed: int, path: str) -> str:
        """What the grader runs in this cell's place: the probe only, its record written to ``path``."""
        return (
            "from resnet_course.grading.checks import ALL_CHECKS as _checks\n"
            f"_checks[{self.check!r}].emit({seed}, {path!r}, {self.probe_call})"
        )

    @property
    def call(self) -> str:
        return f"{self.function}({self.arguments})"

    @property
    def source(self) -> str:
        return (
            "# Graded check: `python -m resnet_course grade` restores this cell.\n"
            f"from resnet_course.grading import {self.function}\n\n"
            f"{self.call}"
        )

    @property
    def expected_output(self) -> str:
        return ALL_CHECKS[self.check].all_passed_text()

    @property
    def item_count(self) -> int:
        return len(ALL_CHECKS[self.check].items)

    def cell(self, execution_count: int) -> "nbformat.NotebookNode":
        """The canonical cell, its stored output the all-passed report (what nbval compares with)."""
        import nbformat  # only the notebook writers need it; a check cell in Colab does not

        cell = nbformat.v4.new_code_cell(self.source)
        cell.id = self.id
        cell.metadata = {"tags": [CHECK_TAG], METADATA_KEY: {"check": self.id}}
        cell.execution_count = execution_count  # nbval compares only cells that have been run
        cell.outputs = [
            nbformat.v4.new_output(
                "execute_result",
                data={"text/plain": self.expected_output},
                execution_count=execution_count,
            )
        ]
        return cell


@dataclass(frozen=True)
class Exercise:
    number: int
    name: str  # the notebook's file name without .ipynb
    title: str
    practises: str
    follows: str  # the chapter it follows
    checks: tuple[CheckCell, ...]
    points: int = 10

    @property
    def item_count(self) -> int:
        return sum(cell.item_count for cell in self.checks)


EXERCISES: dict[str, Exercise] = {
    exercise.name: exercise
    for exercise in (
        Exercise(
            1,
            "01_basic_block",
            "The basic residual block",
            "writing BasicBlock with its projection shortcut; the identity at zero-init; the identity term in dL/dx",
            "The residual block",
            (
                CheckCell("check-basic-block", "basic_block", "check_basic_block", "BasicBlock"),
                CheckCell(
                    "check-input-gradient",
                    "input_gradient",
                    "check_input_gradient",
                    "input_gradient",
                ),
            ),
        ),
        Exercise(
            2,
            "02_plain_vs_residual",
            "Plain against residual",
            "building a CIFAR ResNet and its plain twin; training both and reading the curves",
            "The degradation problem",
            (
                CheckCell("check-cifar-nets", "cifar_nets", "check_cifar_nets", "make_cifar_net"),
                CheckCell(
                    "check-plain-vs-residual",
                    "plain_vs_residual",
                    "check_plain_vs_residual",
                    "histories, make_cifar_net",
                ),
            ),
        ),
        Exercise(
            3,
            "03_bottleneck",
            "From ResNet-34 to ResNet-50",
            "the bottleneck block; parameters and multiply-adds of ResNet-34 and ResNet-50",
            "Bottleneck blocks and the ResNet family",
            (
                CheckCell("check-bottleneck", "bottleneck", "check_bottleneck", "Bottleneck"),
                CheckCell("check-resnet50", "resnet50", "check_resnet50", "resnet50, sizes"),
            ),
        ),
        Exercise(
            4,
            "04_projection_shortcuts",
            "Projection shortcuts",
            "shortcut options A (zero-padding) and B (1x1 projection): shapes and parameter counts",
            "Projection shortcuts",
            (
                CheckCell(
                    "check-shortcuts",
                    "shortcuts",
                    "check_shortcuts",
                    "ZeroPadShortcut, ProjectionShortcut",
                ),
                CheckCell(
                    "check-option-b-cost", "option_b_cost", "check_option_b_cost", "option_b_extra"
                ),
            ),
        ),
        Exercise(
            5,
            "05_preactivation",
            "The pre-activation block",
            "BN-ReLU-conv ordering and a clean identity path",
            "Pre-activation (ResNet v2)",
            (CheckCell("check-preact-block", "preact_block", "check_preact_block", "PreActBlock"),),
        ),
        Exercise(
            6,
            "06_resnext",
            "A ResNeXt block",
            "grouped convolutions, and their equivalence with 32 split-transform-merge paths",
            "ResNeXt",
            (
                CheckCell(
                    "check-resnext-block", "resnext_block", "check_resnext_block", "ResNeXtBlock"
                ),
            ),
        ),
        Exercise(
            7,
            "07_bug_hunt",
            "Bug hunt",
            "finding four common residual-block bugs from their symptoms",
            "Projection shortcuts",
            tuple(
                CheckCell(
                    f"check-fixed-block-{n}",
                    f"fixed_block_{n}",
                    "check_fixed_block",
                    f"Block{n}, {n}",
                    probe_arguments=f"Block=Block{n}",
                )
                for n in range(1, 5)
            ),
        ),
    )
}


def find_exercise(name: str) -> Exercise | None:
    """The exercise whose name is ``name`` or begins it (``01_basic_block (1)`` is exercise 1)."""
    if name in EXERCISES:
        return EXERCISES[name]
    matches = [exercise for key, exercise in EXERCISES.items() if name.startswith(key)]
    return matches[0] if len(matches) == 1 else None
