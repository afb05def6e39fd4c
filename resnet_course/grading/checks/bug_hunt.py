"""Exercise 7: four broken blocks, fixed."""

from __future__ import annotations

import torch
from torch import nn

from ... import blocks as course_blocks
from ..report import Check, CheckFailed, Report
from .helpers import build, expect_close, expect_shape, layer, randomise_batch_norm, same_function

# What each broken block gets wrong, said as a nudge rather than the answer.
BUG_HINTS = {
    1: "look at what happens to the residual branch just before the addition (He et al. 2015, Fig. 2).",
    2: "the shortcut of a block that keeps its shape is the identity: nothing should touch x on its way to the addition.",
    3: "where the shape changes, only one convolution of the branch should have the stride.",
    4: "when the block changes the number of channels or the resolution, x cannot be added as it is.",
}


def _fixed_block_check(number: int) -> Check:
    check = Check(f"fixed_block_{number}")
    nudge = BUG_HINTS[number]

    @check.item(f"Block{number}(16, 16) keeps (2, 16, 8, 8); Block{number}(16, 32, stride=2) gives (2, 32, 4, 4)", hint=nudge)
    def _shapes(Block):
        x = torch.randn(2, 16, 8, 8)
        expect_shape(build(Block, 16, 16)(x), (2, 16, 8, 8), f"Block{number}(16, 16)")
        expect_shape(build(Block, 16, 32, stride=2)(x), (2, 32, 4, 4), f"Block{number}(16, 32, stride=2)")

    @check.item(f"Block{number} computes what a correct BasicBlock computes, given the same weights", hint=nudge)
    def _same_function(Block):
        for in_channels, planes, stride in ((16, 16, 1), (16, 32, 2)):
            reference = randomise_batch_norm(course_blocks.BasicBlock(in_channels, planes, stride, shortcut="B"))
            student = build(Block, in_channels, planes, stride=stride)
            what = f"Block{number}({in_channels}, {planes}, stride={stride})"
            # Copy only the correct block's layers: a fix may leave an unused layer behind.
            missing = sorted(set(reference.state_dict()) - set(student.state_dict()))
            if missing:
                raise CheckFailed(f"{what} lacks the layer(s) {', '.join(missing[:4])}.")
            student.load_state_dict(reference.state_dict(), strict=False)
            same_function(student, reference, torch.randn(4, in_channels, 8, 8), what)

    @check.item(f"zero-initialised, Block{number} passes a non-negative input through unchanged", hint=nudge)
    def _identity(Block):
        block = build(Block, 16, 16)
        nn.init.zeros_(layer(block, "bn2").weight)
        x = torch.randn(4, 16, 8, 8).relu()
        with torch.no_grad():
            expect_close(block(x.clone()), x, f"zero-initialised Block{number}'s output", atol=1e-6)

    return check


fixed_blocks = {number: _fixed_block_check(number) for number in BUG_HINTS}


def check_fixed_block(Block, number: int) -> Report:
    """Exercise 7: broken block ``number`` (1 to 4), once fixed, behaves like a correct BasicBlock."""
    if number not in fixed_blocks:
        raise ValueError(f"there are four broken blocks; number must be 1, 2, 3 or 4, not {number!r}.")
    return fixed_blocks[number].run(Block=Block)

