"""Exercise 4: shortcut options A (zero-padding) and B (projection)."""

from __future__ import annotations

import torch

from ... import blocks as course_blocks
from ...analysis import count_parameters
from ...models import cifar_resnet
from ..probes import Case, describe_error, probe_module
from ..report import Check, CheckFailed, Report
from .helpers import convolutions, expect_close, expect_shape, layers, module_record, output

OPTION_A = Case(
    "ZeroPadShortcut(16, 32, 2)",
    (16, 32, 2),
    input_shape=(2, 16, 8, 8),
    modes=("train",),
    attributes=(),
)
OPTION_B = Case(
    "ProjectionShortcut(16, 32, 2)",
    (16, 32, 2),
    input_shape=(2, 16, 8, 8),
    modes=("train",),
    attributes=(),
)
# In training mode a BN's output has zero mean per channel, whatever comes in: the BN comes last.
OPTION_B_SHIFTED = Case(
    "ProjectionShortcut(16, 32, 2) on a shifted input",
    (16, 32, 2),
    input_shape=(8, 16, 8, 8),
    modes=("train",),
    input_shift=3.0,
    attributes=(),
)


def _probe_shortcuts(seed, ZeroPadShortcut, ProjectionShortcut):
    return {
        OPTION_A.label: probe_module(ZeroPadShortcut, OPTION_A, seed),
        OPTION_B.label: probe_module(ProjectionShortcut, OPTION_B, seed),
        OPTION_B_SHIFTED.label: probe_module(ProjectionShortcut, OPTION_B_SHIFTED, seed),
    }


shortcuts = Check("shortcuts", _probe_shortcuts, own=("ZeroPadShortcut", "ProjectionShortcut"))


@shortcuts.item(
    "option A maps (2, 16, 8, 8) to (2, 32, 4, 4), the residual branch's shape, with no parameters",
    hint="keep every stride-th pixel (x[:, :, ::stride, ::stride]) and append out_channels - in_channels zero channels.",
)
def _option_a_shape(record, seed):
    built = module_record(record, OPTION_A.label)
    expect_shape(output(built), (2, 32, 4, 4), OPTION_A.label)
    if built["parameters"]:
        raise CheckFailed(
            f"{OPTION_A.label} has {built['parameters']} parameters; option A has none."
        )


@shortcuts.item(
    "option A keeps every second pixel of the input's channels and adds zero channels after them",
    hint="output[:, :16] should be x[:, :, ::2, ::2] and output[:, 16:] zeros (F.pad pads the last "
    "dimensions first: (0, 0, 0, 0, 0, extra)).",
)
def _option_a_values(record, seed):
    out = output(module_record(record, OPTION_A.label))
    expect_shape(out, (2, 32, 4, 4), OPTION_A.label)
    x = OPTION_A.input(seed)
    expect_close(out[:, :16], x[:, :, ::2, ::2], "the first 16 channels", atol=0)
    expect_close(out[:, 16:], torch.zeros(2, 16, 4, 4), "the 16 new channels", atol=0)


@shortcuts.item(
    "option B maps (2, 16, 8, 8) to (2, 32, 4, 4) with 576 parameters",
    hint="a 1x1 convolution without bias has in_channels * out_channels weights (512), and its BN "
    "2 * out_channels (64).",
)
def _option_b_shape(record, seed):
    built = module_record(record, OPTION_B.label)
    expect_shape(output(built), (2, 32, 4, 4), OPTION_B.label)
    if built["parameters"] != 576:
        raise CheckFailed(f"{OPTION_B.label} has {built['parameters']} parameters.")


@shortcuts.item(
    "option B is a 1x1 convolution with the stride, followed by batch normalisation",
    hint="nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), then nn.BatchNorm2d(out_channels).",
)
def _option_b_structure(record, seed):
    built = module_record(record, OPTION_B_SHIFTED.label)
    convs = convolutions(built)
    if len(convs) != 1 or convs[0]["kernel"] != [1, 1] or convs[0]["stride"] != [2, 2]:
        raise CheckFailed(f"{OPTION_B.label} should hold one 1x1 convolution with stride 2.")
    if len(layers(built, kind="BatchNorm2d")) != 1:
        raise CheckFailed(f"{OPTION_B.label} should hold one nn.BatchNorm2d.")
    out = output(built)
    expect_shape(out, (8, 32, 4, 4), OPTION_B.label)
    # Its BN has random affine parameters in the probe: undo them to see the normalised output.
    bn_name = layers(built, kind="BatchNorm2d")[0][0]
    prefix = f"{bn_name}." if bn_name else ""
    weight, bias = built["state"][prefix + "weight"], built["state"][prefix + "bias"]
    normalised = (out - bias.view(1, -1, 1, 1)) / weight.view(1, -1, 1, 1)
    expect_close(
        normalised.mean(dim=(0, 2, 3)),
        torch.zeros(32),
        "the per-channel mean of the normalised output",
        atol=1e-4,
    )


@shortcuts.item(
    "both fit a residual block: BasicBlock(16, 32, stride=2) runs with either as its shortcut",
    hint="the shortcut's output must have the residual branch's shape, (2, 32, 4, 4) here.",
)
def _shortcuts_in_block(record, seed):
    for name, case in (("ZeroPadShortcut", OPTION_A), ("ProjectionShortcut", OPTION_B)):
        # The course's block, with the student's shortcut (its graph, run by the grader) inside.
        block = course_blocks.BasicBlock(16, 32, 2)
        block.downsample = module_record(record, case.label)["module"]
        try:
            with torch.no_grad():
                out = block(OPTION_A.input(seed, "/block"))
        except Exception as error:
            raise CheckFailed(f"a BasicBlock with {name} raised {describe_error(error)}") from None
        if list(out.shape) != [2, 32, 4, 4]:
            raise CheckFailed(
                f"a BasicBlock with {name} gave {list(out.shape)}, expected [2, 32, 4, 4]."
            )


def _probe_option_b_cost(seed, option_b_extra):
    value = option_b_extra
    return {
        "value": value
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else repr(value)[:80]
    }


option_b_cost = Check("option_b_cost", _probe_option_b_cost)


@option_b_cost.item(
    "option_b_extra is the number of parameters option B adds to ResNet-20",
    hint="ResNet-20 changes shape twice, 16 -> 32 and 32 -> 64 channels; option B puts a "
    "ProjectionShortcut at each of those places and nowhere else.",
)
def _option_b_extra(record, seed):
    expected = count_parameters(cifar_resnet(20, shortcut="B")) - count_parameters(
        cifar_resnet(20, shortcut="A")
    )
    if record["value"] != expected:
        raise CheckFailed(f"option_b_extra is {record['value']!r}.")


def check_shortcuts(ZeroPadShortcut, ProjectionShortcut) -> Report:
    """Exercise 4: options A and B, their shapes, parameters and structure."""
    return shortcuts.run(ZeroPadShortcut=ZeroPadShortcut, ProjectionShortcut=ProjectionShortcut)


def check_option_b_cost(option_b_extra) -> Report:
    """Exercise 4: what option B costs a whole network."""
    return option_b_cost.run(option_b_extra=option_b_extra)
