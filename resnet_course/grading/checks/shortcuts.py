"""Exercise 4: shortcut options A (zero-padding) and B (projection)."""

from __future__ import annotations

import torch
from torch import nn

from ... import blocks as course_blocks
from ...analysis import count_parameters
from ...models import cifar_resnet
from ..report import Check, CheckFailed, Report
from .helpers import build, convolutions, expect_close, expect_shape

shortcuts = Check("shortcuts")
_SHORTCUT_INPUT = (2, 16, 8, 8)


@shortcuts.item("option A maps (2, 16, 8, 8) to (2, 32, 4, 4), the residual branch's shape, with no parameters",
                hint="keep every stride-th pixel (x[:, :, ::stride, ::stride]) and append out_channels - in_channels zero channels.")
def _option_a_shape(ZeroPadShortcut, ProjectionShortcut):
    shortcut = build(ZeroPadShortcut, 16, 32, 2)
    expect_shape(shortcut(torch.randn(*_SHORTCUT_INPUT)), (2, 32, 4, 4), "ZeroPadShortcut(16, 32, 2)")
    if count_parameters(shortcut):
        raise CheckFailed(f"ZeroPadShortcut(16, 32, 2) has {count_parameters(shortcut)} parameters; option A has none.")


@shortcuts.item("option A keeps every second pixel of the input's channels and adds zero channels after them",
                hint="output[:, :16] should be x[:, :, ::2, ::2] and output[:, 16:] zeros (F.pad pads the last "
                     "dimensions first: (0, 0, 0, 0, 0, extra)).")
def _option_a_values(ZeroPadShortcut, ProjectionShortcut):
    x = torch.randn(*_SHORTCUT_INPUT)
    out = build(ZeroPadShortcut, 16, 32, 2)(x)
    expect_shape(out, (2, 32, 4, 4), "ZeroPadShortcut(16, 32, 2)")
    expect_close(out[:, :16], x[:, :, ::2, ::2], "the first 16 channels", atol=0)
    expect_close(out[:, 16:], torch.zeros(2, 16, 4, 4), "the 16 new channels", atol=0)


@shortcuts.item("option B maps (2, 16, 8, 8) to (2, 32, 4, 4) with 576 parameters",
                hint="a 1x1 convolution without bias has in_channels * out_channels weights (512), and its BN "
                     "2 * out_channels (64).")
def _option_b_shape(ZeroPadShortcut, ProjectionShortcut):
    shortcut = build(ProjectionShortcut, 16, 32, 2)
    expect_shape(shortcut(torch.randn(*_SHORTCUT_INPUT)), (2, 32, 4, 4), "ProjectionShortcut(16, 32, 2)")
    if count_parameters(shortcut) != 576:
        raise CheckFailed(f"ProjectionShortcut(16, 32, 2) has {count_parameters(shortcut)} parameters.")


@shortcuts.item("option B is a 1x1 convolution with the stride, followed by batch normalisation",
                hint="nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), then nn.BatchNorm2d(out_channels).")
def _option_b_structure(ZeroPadShortcut, ProjectionShortcut):
    shortcut = build(ProjectionShortcut, 16, 32, 2)
    convs = convolutions(shortcut)
    norms = [m for m in shortcut.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != 1 or convs[0].kernel_size != (1, 1) or convs[0].stride != (2, 2):
        raise CheckFailed("ProjectionShortcut(16, 32, 2) should hold one 1x1 convolution with stride 2.")
    if len(norms) != 1:
        raise CheckFailed("ProjectionShortcut(16, 32, 2) should hold one nn.BatchNorm2d.")
    # In training mode the BN output has zero mean per channel: the BN comes last.
    out = shortcut.train()(torch.randn(8, 16, 8, 8) + 3)
    expect_close(out.mean(dim=(0, 2, 3)), torch.zeros(32), "the per-channel mean of the output", atol=1e-4)


@shortcuts.item("both fit a residual block: BasicBlock(16, 32, stride=2) runs with either as its shortcut",
                hint="the shortcut's output must have the residual branch's shape, (2, 32, 4, 4) here.")
def _shortcuts_in_block(ZeroPadShortcut, ProjectionShortcut):
    for shortcut_class in (ZeroPadShortcut, ProjectionShortcut):
        block = course_blocks.BasicBlock(16, 32, 2)
        block.downsample = build(shortcut_class, 16, 32, 2)
        expect_shape(block(torch.randn(*_SHORTCUT_INPUT)), (2, 32, 4, 4), f"a BasicBlock with {shortcut_class.__name__}")


option_b_cost = Check("option_b_cost")


@option_b_cost.item("option_b_extra is the number of parameters option B adds to ResNet-20",
                    hint="ResNet-20 changes shape twice, 16 -> 32 and 32 -> 64 channels; option B puts a "
                         "ProjectionShortcut at each of those places and nowhere else.")
def _option_b_extra(option_b_extra):
    expected = count_parameters(cifar_resnet(20, shortcut="B")) - count_parameters(cifar_resnet(20, shortcut="A"))
    if option_b_extra != expected:
        raise CheckFailed(f"option_b_extra is {option_b_extra!r}.")


def check_shortcuts(ZeroPadShortcut, ProjectionShortcut) -> Report:
    """Exercise 4: options A and B, their shapes, parameters and structure."""
    return shortcuts.run(ZeroPadShortcut=ZeroPadShortcut, ProjectionShortcut=ProjectionShortcut)


def check_option_b_cost(option_b_extra) -> Report:
    """Exercise 4: what option B costs a whole network."""
    return option_b_cost.run(option_b_extra=option_b_extra)
