"""Exercise 5: the pre-activation block and its clean identity path."""

from __future__ import annotations

import torch
from torch import nn

from ... import blocks as course_blocks
from ..report import Check, Report
from .helpers import build, convolutions, copy_weights, expect_close, expect_shape, randomise_batch_norm, same_function

preact_block = Check("preact_block")


def _zero_convolutions(block: nn.Module) -> nn.Module:
    with torch.no_grad():
        for conv in convolutions(block):
            conv.weight.zero_()
    return block


@preact_block.item("PreActBlock(16, 16) keeps (2, 16, 8, 8); PreActBlock(16, 32, stride=2) gives (2, 32, 4, 4)",
                   hint="the stride goes on conv1; where the shape changes the shortcut is a 1x1 projection (downsample).")
def _preact_shapes(PreActBlock):
    x = torch.randn(2, 16, 8, 8)
    expect_shape(build(PreActBlock, 16, 16)(x), (2, 16, 8, 8), "PreActBlock(16, 16)")
    expect_shape(build(PreActBlock, 16, 32, stride=2)(x), (2, 32, 4, 4), "PreActBlock(16, 32, stride=2)")


@preact_block.item("the identity path is clean: with the branch zeroed, the block returns its input, negatives included",
                   hint="nothing may follow the addition: return out + identity, with no BN or ReLU after it and "
                        "none on the identity path.")
def _preact_clean_identity(PreActBlock):
    block = _zero_convolutions(build(PreActBlock, 16, 16))
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        expect_close(block(x.clone()), x, "the output with the branch zeroed", atol=1e-6)


@preact_block.item("the block leaves its input tensor unchanged (no in-place ReLU on x)",
                   hint="x is the identity term: use nn.ReLU(inplace=False), or apply an in-place ReLU only to a new tensor.")
def _preact_not_in_place(PreActBlock):
    block = build(PreActBlock, 16, 16).eval()
    x = torch.randn(4, 16, 8, 8)
    before = x.clone()
    with torch.no_grad():
        block(x)
    expect_close(x, before, "the input after the forward pass", atol=0)


@preact_block.item("the branch starts with BN and ReLU: it sees only the positive part of its normalised input",
                   hint="pre-activation order: bn1-relu-conv1, bn2-relu-conv2 (He et al. 2016, Fig. 1b).")
def _preact_order(PreActBlock):
    # In eval mode a fresh BN is a positive scaling, which commutes with ReLU; so a branch that
    # begins with BN-ReLU gives F(x) == F(relu(x)). A branch that begins with a convolution does not.
    block = build(PreActBlock, 16, 16).eval()
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        branch = block(x.clone()) - x
        branch_of_positive_part = block(x.relu()) - x.relu()
    expect_close(branch, branch_of_positive_part, "F(x) against F(relu(x))", atol=1e-5)


@preact_block.item("it computes what the course's PreActBlock computes, given the same weights",
                   hint="layers bn1, conv1, bn2, conv2 and downsample; the projection reads the pre-activated input "
                        "relu(bn1(x)), as in the paper's code.")
def _preact_same_function(PreActBlock):
    for in_channels, planes, stride in ((16, 16, 1), (16, 32, 2)):
        student = randomise_batch_norm(build(PreActBlock, in_channels, planes, stride=stride))
        reference = course_blocks.PreActBlock(in_channels, planes, stride, shortcut="B")
        what = f"PreActBlock({in_channels}, {planes}, stride={stride})"
        copy_weights(student, reference, what)
        same_function(student, reference, torch.randn(4, in_channels, 8, 8), what)


def check_preact_block(PreActBlock) -> Report:
    """Exercise 5: the pre-activation block and its clean identity path."""
    return preact_block.run(PreActBlock=PreActBlock)
