"""Exercise 6: a ResNeXt block against its split-transform-merge form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import blocks as course_blocks
from ..probes import Case, probe_module
from ..report import Check, CheckFailed, Report
from .helpers import (
    expect_close,
    expect_shape,
    layers,
    load_reference,
    module_record,
    output,
    output_of,
)

RESNEXT_CARDINALITY, RESNEXT_GROUP_WIDTH = 32, 4  # the paper's 32x4d template


def _batch_norm_slice(bn, x: torch.Tensor, channels: slice) -> torch.Tensor:
    return F.batch_norm(
        x,
        bn.running_mean[channels],
        bn.running_var[channels],
        bn.weight[channels],
        bn.bias[channels],
        training=False,
        eps=bn.eps,
    )


def split_transform_merge(block, x: torch.Tensor, cardinality: int) -> torch.Tensor:
    """The residual branch of a ResNeXt block, computed as ``cardinality`` separate paths (Xie et al. 2017, Fig. 3a).

    Path ``g`` uses the ``g``-th slice of the block's weights: output channels of
    conv1 and conv2, input channels of conv3. The paths' outputs are summed, then
    bn3 normalises the sum; BN in eval mode (running statistics) throughout.
    ``block`` is a module, or anything with its layers' weights as attributes.
    """
    conv1, conv2, conv3 = block.conv1, block.conv2, block.conv3
    path_width = conv1.weight.shape[0] // cardinality
    merged = 0
    for g in range(cardinality):
        channels = slice(g * path_width, (g + 1) * path_width)
        h = F.relu(_batch_norm_slice(block.bn1, F.conv2d(x, conv1.weight[channels]), channels))
        h = F.conv2d(h, conv2.weight[channels], stride=conv2.stride, padding=conv2.padding)
        h = F.relu(_batch_norm_slice(block.bn2, h, channels))
        merged = merged + F.conv2d(h, conv3.weight[:, channels])
    bn3 = block.bn3
    return F.batch_norm(
        merged, bn3.running_mean, bn3.running_var, bn3.weight, bn3.bias, training=False, eps=bn3.eps
    )


def _case(in_channels: int, out_channels: int, stride: int = 1) -> Case:
    label = f"ResNeXtBlock({in_channels}, {out_channels}" + (
        f", stride={stride})" if stride != 1 else ")"
    )
    return Case(
        label,
        (in_channels, out_channels),
        (("stride", stride),) if stride != 1 else (),
        input_shape=(2, in_channels, 8, 8),
        modes=("eval",),
    )


KEEPS, HALVES = _case(256, 256), _case(256, 512, 2)


def _probe_resnext_block(seed, ResNeXtBlock):
    return {case.label: probe_module(ResNeXtBlock, case, seed) for case in (KEEPS, HALVES)}


def _reference(case: Case) -> nn.Module:
    """The course's bottleneck, grouped as the exercise's template (a 128-wide 3x3 in 32 groups)."""
    in_channels, out_channels = case.args
    planes = out_channels // 4
    return course_blocks.Bottleneck(
        in_channels,
        planes,
        case.stride,
        groups=RESNEXT_CARDINALITY,
        width_per_group=RESNEXT_GROUP_WIDTH * 64 // planes,
    )


resnext_block = Check("resnext_block", _probe_resnext_block, own=("ResNeXtBlock",))


@resnext_block.item(
    "ResNeXtBlock(256, 256) keeps (2, 256, 8, 8); ResNeXtBlock(256, 512, stride=2) gives (2, 512, 4, 4)",
    hint="1x1 conv to cardinality * group_width channels, grouped 3x3 (with the stride), 1x1 conv to "
    "out_channels; a projection shortcut where the shape changes.",
)
def _resnext_shapes(record, seed):
    expect_shape(output(module_record(record, KEEPS.label), "eval"), (2, 256, 8, 8), KEEPS.label)
    expect_shape(output(module_record(record, HALVES.label), "eval"), (2, 512, 4, 4), HALVES.label)


def _conv2(built: dict) -> dict:
    rows = [row for row in built["summary"] if row[0] == "conv2"]
    if not rows or "kernel" not in rows[0][2]:
        raise CheckFailed(
            f"{built['label']} has no convolution named conv2; name the layers as the exercise asks."
        )
    return rows[0][2]


@resnext_block.item(
    "its 3x3 convolution is grouped: 128 channels in 32 groups of 4",
    hint="nn.Conv2d(128, 128, 3, stride=stride, padding=1, groups=cardinality, bias=False).",
)
def _resnext_grouped(record, seed):
    conv2 = _conv2(module_record(record, KEEPS.label))
    if (conv2["in"], conv2["out"], conv2["groups"], conv2["kernel"]) != (128, 128, 32, [3, 3]):
        raise CheckFailed(
            f"conv2 has {conv2['in']} input and {conv2['out']} output channels in {conv2['groups']} "
            f"groups, with a {conv2['kernel']} kernel."
        )


@resnext_block.item(
    "its convolutions hold 70,144 weights, the paper's 'about 70k' for this template",
    hint="256*128 (conv1) + 128*4*3*3 (the grouped conv2: each output channel sees only its group's "
    "4 channels) + 128*256 (conv3), all without bias.",
)
def _resnext_weights(record, seed):
    built = module_record(record, KEEPS.label)
    conv_names = [row[0] for row in layers(built, kind="Conv2d")]
    state = built["state"]
    weights = sum(
        state[f"{name}.{kind}"].numel()
        for name in conv_names
        for kind in ("weight", "bias")
        if f"{name}.{kind}" in state
    )
    if weights != 70_144:
        raise CheckFailed(f"its convolutions hold {weights:,} weights.")


@resnext_block.item(
    "it computes the same function as 32 separate split-transform-merge paths built from its weights",
    hint="y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)); layers named "
    "conv1, bn1, conv2, bn2, conv3, bn3 and downsample.",
)
def _resnext_paths(record, seed):
    for case in (KEEPS, HALVES):
        built = module_record(record, case.label)
        reference = _reference(case).eval()
        module = load_reference(built, reference, case.label, seed).eval()
        x = case.input(seed)
        with torch.no_grad():
            identity = x if reference.downsample is None else reference.downsample(x)
            paths = F.relu(split_transform_merge(reference, x, RESNEXT_CARDINALITY) + identity)
        expect_close(output_of(module, x), paths, f"{case.label} against the 32 paths", atol=1e-4)


def check_resnext_block(ResNeXtBlock) -> Report:
    """Exercise 6: the grouped-convolution block equals 32 split-transform-merge paths."""
    return resnext_block.run(ResNeXtBlock=ResNeXtBlock)
