"""Exercise 3: the bottleneck block, and ResNet-34 turned into ResNet-50."""

from __future__ import annotations

import torch
from torch import nn

from ...analysis import count_flops, count_parameters
from ..report import Check, CheckFailed, Report
from .helpers import build, convolutions, copy_weights, expect_close, expect_shape, layer, randomise_batch_norm, same_function

bottleneck = Check("bottleneck")


@bottleneck.item("Bottleneck(64, 64) turns (2, 64, 8, 8) into (2, 256, 8, 8), through a projection",
                 hint="expansion = 4: conv3 has planes * 4 output channels, and the channels change, so the "
                      "shortcut needs a 1x1 projection (downsample).")
def _bottleneck_expands(Bottleneck):
    block = build(Bottleneck, 64, 64)
    expect_shape(block(torch.randn(2, 64, 8, 8)), (2, 256, 8, 8), "Bottleneck(64, 64)")
    if not convolutions(layer(block, "downsample")):
        raise CheckFailed("Bottleneck(64, 64).downsample should hold a 1x1 convolution (64 -> 256 channels) and a BN.")


@bottleneck.item("Bottleneck(256, 64) keeps (2, 256, 8, 8) with no projection; with stride 2, (256, 128) gives (2, 512, 4, 4)",
                 hint="downsample is None when stride == 1 and in_channels == planes * 4; the stride goes on the "
                      "3x3 convolution (conv2), as in torchvision.")
def _bottleneck_shapes(Bottleneck):
    block = build(Bottleneck, 256, 64)
    expect_shape(block(torch.randn(2, 256, 8, 8)), (2, 256, 8, 8), "Bottleneck(256, 64)")
    if layer(block, "downsample") is not None:
        raise CheckFailed("Bottleneck(256, 64) keeps the shape, so its downsample should be None.")
    expect_shape(build(Bottleneck, 256, 128, stride=2)(torch.randn(2, 256, 8, 8)), (2, 512, 4, 4), "Bottleneck(256, 128, stride=2)")


@bottleneck.item("it computes what torchvision's Bottleneck computes, given the same weights",
                 hint="1x1 conv1-bn1-relu, 3x3 conv2 (with the stride)-bn2-relu, 1x1 conv3-bn3, add the shortcut, "
                      "then ReLU; downsample = nn.Sequential(1x1 conv with the stride, BN).")
def _bottleneck_same_function(Bottleneck):
    from torchvision.models.resnet import Bottleneck as TorchvisionBottleneck

    for in_channels, planes, stride in ((256, 64, 1), (64, 64, 1), (256, 128, 2)):
        student = randomise_batch_norm(build(Bottleneck, in_channels, planes, stride=stride))
        out_channels = planes * 4
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))
        reference = TorchvisionBottleneck(in_channels, planes, stride, downsample)
        what = f"Bottleneck({in_channels}, {planes}, stride={stride})"
        copy_weights(student, reference, what)
        same_function(student, reference, torch.randn(2, in_channels, 8, 8), what, atol=1e-4)


resnet50 = Check("resnet50")
RESNET50_PARAMETERS = 25_557_032  # torchvision's ResNet-50, the exercise's target


def _network(model, name: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise CheckFailed(f"{name} is {type(model).__name__}, not a network.")
    return model


@resnet50.item("resnet50 has 25,557,032 parameters, as torchvision's ResNet-50",
               hint="ResNet(Bottleneck, [3, 4, 6, 3]): the same stages as ResNet-34, with bottleneck blocks.")
def _resnet50_parameters(resnet50, sizes):
    found = count_parameters(_network(resnet50, "resnet50"))
    if found != RESNET50_PARAMETERS:
        raise CheckFailed(f"resnet50 has {found:,} parameters.")


@resnet50.item("resnet50 loads torchvision's ResNet-50 weights and gives torchvision's outputs",
               hint="check your Bottleneck's layer names (conv1..conv3, bn1..bn3, downsample) and its stride placement.")
def _resnet50_torchvision(resnet50, sizes):
    import torchvision

    reference = torchvision.models.resnet50()
    student = _network(resnet50, "resnet50")
    copy_weights(reference, student, "resnet50")
    student.eval()
    reference.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expect_close(student(x), reference(x), "resnet50's output", atol=1e-4)


@resnet50.item("sizes holds both networks' parameters and multiply-adds at 224x224",
               hint="sizes = {'resnet34': {'parameters': count_parameters(resnet34), 'flops': count_flops(resnet34)}, "
                    "'resnet50': {...}}; count_flops counts multiply-adds on a (1, 3, 224, 224) input.")
def _resnet50_sizes(resnet50, sizes):
    import torchvision

    if not isinstance(sizes, dict) or set(sizes) != {"resnet34", "resnet50"}:
        raise CheckFailed("sizes should be a dict with the keys 'resnet34' and 'resnet50'.")
    for name in ("resnet34", "resnet50"):
        reference = getattr(torchvision.models, name)()
        entry = sizes[name]
        if not isinstance(entry, dict):
            raise CheckFailed(f"sizes[{name!r}] should be a dict with 'parameters' and 'flops'.")
        expected = {"parameters": count_parameters(reference), "flops": count_flops(reference)}
        for key, value in expected.items():
            found = entry.get(key)
            # Another counter may differ a little (BN, pooling), so 1% is close enough.
            if not isinstance(found, (int, float)) or abs(found - value) > 0.01 * value:
                raise CheckFailed(f"sizes[{name!r}][{key!r}] is {found!r}, expected about {value:,}.")


def check_bottleneck(Bottleneck) -> Report:
    """Exercise 3: the bottleneck block, against torchvision's."""
    return bottleneck.run(Bottleneck=Bottleneck)


def check_resnet50(resnet50_model, sizes) -> Report:
    """Exercise 3: ResNet-34 turned into ResNet-50, and the two compared."""
    return resnet50.run(resnet50=resnet50_model, sizes=sizes)
