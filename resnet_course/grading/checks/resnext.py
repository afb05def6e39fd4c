"""Exercise 6: a ResNeXt block against its split-transform-merge form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..report import Check, CheckFailed, Report
from .helpers import build, convolutions, expect_close, expect_shape, layer, randomise_batch_norm

resnext_block = Check("resnext_block")
RESNEXT_CARDINALITY, RESNEXT_GROUP_WIDTH = 32, 4  # the paper's 32x4d template


def _batch_norm_slice(bn: nn.BatchNorm2d, x: torch.Tensor, channels: slice) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean[channels], bn.running_var[channels], bn.weight[channels],
                        bn.bias[channels], training=False, eps=bn.eps)


def split_transform_merge(block: nn.Module, x: torch.Tensor, cardinality: int) -> torch.Tensor:
    """The residual branch of a ResNeXt block, computed as ``cardinality`` separate paths (Xie et al. 2017, Fig. 3a).

    Path ``g`` uses the ``g``-th slice of the block's weights: output channels of
    conv1 and conv2, input channels of conv3. The paths' outputs are summed, then
    bn3 normalises the sum; BN in eval mode (running statistics) throughout.
    """
    conv1, conv2, conv3 = block.conv1, block.conv2, block.conv3
    path_width = conv1.out_channels // cardinality
    merged = 0
    for g in range(cardinality):
        channels = slice(g * path_width, (g + 1) * path_width)
        h = F.relu(_batch_norm_slice(block.bn1, F.conv2d(x, conv1.weight[channels]), channels))
        h = F.conv2d(h, conv2.weight[channels], stride=conv2.stride, padding=conv2.padding)
        h = F.relu(_batch_norm_slice(block.bn2, h, channels))
        merged = merged + F.conv2d(h, conv3.weight[:, channels])
    bn3 = block.bn3
    return F.batch_norm(merged, bn3.running_mean, bn3.running_var, bn3.weight, bn3.bias, training=False, eps=bn3.eps)


@resnext_block.item("ResNeXtBlock(256, 256) keeps (2, 256, 8, 8); ResNeXtBlock(256, 512, stride=2) gives (2, 512, 4, 4)",
                    hint="1x1 conv to cardinality * group_width channels, grouped 3x3 (with the stride), 1x1 conv to "
                         "out_channels; a projection shortcut where the shape changes.")
def _resnext_shapes(ResNeXtBlock):
    x = torch.randn(2, 256, 8, 8)
    expect_shape(build(ResNeXtBlock, 256, 256)(x), (2, 256, 8, 8), "ResNeXtBlock(256, 256)")
    expect_shape(build(ResNeXtBlock, 256, 512, stride=2)(x), (2, 512, 4, 4), "ResNeXtBlock(256, 512, stride=2)")


@resnext_block.item("its 3x3 convolution is grouped: 128 channels in 32 groups of 4",
                    hint="nn.Conv2d(128, 128, 3, stride=stride, padding=1, groups=cardinality, bias=False).")
def _resnext_grouped(ResNeXtBlock):
    conv2 = layer(build(ResNeXtBlock, 256, 256), "conv2")
    if (conv2.in_channels, conv2.out_channels, conv2.groups, conv2.kernel_size) != (128, 128, 32, (3, 3)):
        raise CheckFailed(f"conv2 is {conv2}.")


@resnext_block.item("its convolutions hold 70,144 weights, the paper's 'about 70k' for this template",
                    hint="256*128 (conv1) + 128*4*3*3 (the grouped conv2: each output channel sees only its group's "
                         "4 channels) + 128*256 (conv3), all without bias.")
def _resnext_weights(ResNeXtBlock):
    block = build(ResNeXtBlock, 256, 256)
    weights = sum(p.numel() for conv in convolutions(block) for p in conv.parameters())
    if weights != 70_144:
        raise CheckFailed(f"its convolutions hold {weights:,} weights.")


@resnext_block.item("it computes the same function as 32 separate split-transform-merge paths built from its weights",
                    hint="y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)); layers named "
                         "conv1, bn1, conv2, bn2, conv3, bn3 and downsample.")
def _resnext_paths(ResNeXtBlock):
    for in_channels, out_channels, stride in ((256, 256, 1), (256, 512, 2)):
        block = randomise_batch_norm(build(ResNeXtBlock, in_channels, out_channels, stride=stride)).eval()
        for name in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample"):
            layer(block, name)
        x = torch.randn(2, in_channels, 8, 8)
        with torch.no_grad():
            identity = x if block.downsample is None else block.downsample(x)
            paths = F.relu(split_transform_merge(block, x, RESNEXT_CARDINALITY) + identity)
            expect_close(block(x), paths, f"ResNeXtBlock({in_channels}, {out_channels}, stride={stride}) against the 32 paths", atol=1e-4)


def check_resnext_block(ResNeXtBlock) -> Report:
    """Exercise 6: the grouped-convolution block equals 32 split-transform-merge paths."""
    return resnext_block.run(ResNeXtBlock=ResNeXtBlock)
