"""Exercise 7: four broken blocks, fixed."""

from __future__ import annotations

from ... import blocks as course_blocks
from ..probes import Case, probe_module
from ..report import Check, Report
from .helpers import expect_close, expect_reference, expect_shape, module_record, output

# What each broken block gets wrong, said as a nudge rather than the answer.
BUG_HINTS = {
    1: "look at what happens to the residual branch just before the addition (He et al. 2015, Fig. 2).",
    2: "the shortcut of a block that keeps its shape is the identity: nothing should touch x on its way to the addition.",
    3: "where the shape changes, only one convolution of the branch should have the stride.",
    4: "when the block changes the number of channels or the resolution, x cannot be added as it is.",
}


def _cases(number: int) -> tuple[Case, Case, Case]:
    keeps = Case(f"Block{number}(16, 16)", (16, 16), input_shape=(4, 16, 8, 8), attributes=())
    halves = Case(
        f"Block{number}(16, 32, stride=2)",
        (16, 32),
        (("stride", 2),),
        input_shape=(4, 16, 8, 8),
        attributes=(),
    )
    zeroed = Case(
        f"Block{number}(16, 16) with bn2's scale at 0",
        (16, 16),
        input_shape=(4, 16, 8, 8),
        modes=("train",),
        prepare="zero_bn2",
        nonnegative=True,
        attributes=(),
        randomise=False,
    )
    return keeps, halves, zeroed


def _fixed_block_check(number: int) -> Check:
    keeps, halves, zeroed = _cases(number)

    def probe(seed, Block):
        return {case.label: probe_module(Block, case, seed) for case in (keeps, halves, zeroed)}

    check = Check(f"fixed_block_{number}", probe, own=("Block",))
    nudge = BUG_HINTS[number]

    @check.item(
        f"Block{number}(16, 16) keeps (4, 16, 8, 8); Block{number}(16, 32, stride=2) gives (4, 32, 4, 4)",
        hint=nudge,
    )
    def _shapes(record, seed):
        expect_shape(output(module_record(record, keeps.label)), (4, 16, 8, 8), keeps.label)
        expect_shape(output(module_record(record, halves.label)), (4, 32, 4, 4), halves.label)

    @check.item(
        f"Block{number} computes what a correct BasicBlock computes, given the same weights",
        hint=nudge,
    )
    def _same_function(record, seed):
        for case in (keeps, halves):
            # A fix may leave an unused layer behind: only the correct block's layers are compared.
            reference = course_blocks.BasicBlock(*case.args, case.stride, shortcut="B")
            expect_reference(record, case, reference, seed, strict=False)

    @check.item(
        f"zero-initialised, Block{number} passes a non-negative input through unchanged", hint=nudge
    )
    def _identity(record, seed):
        built = module_record(record, zeroed.label)
        expect_close(
            output(built), zeroed.input(seed), f"zero-initialised Block{number}'s output", atol=1e-6
        )

    return check


fixed_blocks = {number: _fixed_block_check(number) for number in BUG_HINTS}


def check_fixed_block(Block, number: int) -> Report:
    """Exercise 7: broken block ``number`` (1 to 4), once fixed, behaves like a correct BasicBlock."""
    if number not in fixed_blocks:
        raise ValueError(
            f"there are four broken blocks; number must be 1, 2, 3 or 4, not {number!r}."
        )
    return fixed_blocks[number].run(Block=Block)
