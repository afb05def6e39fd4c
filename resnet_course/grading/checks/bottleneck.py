"""Exercise 3: the bottleneck block, and ResNet-34 turned into ResNet-50."""

from __future__ import annotations

import torch
from torch import nn

from ...analysis import count_macs, count_parameters
from ..probes import Case, probe_module
from ..report import Check, CheckFailed, Report
from .helpers import (
    attribute,
    convolutions,
    expect_reference,
    expect_shape,
    module_record,
    output,
)


def _case(in_channels: int, planes: int, stride: int = 1) -> Case:
    label = f"Bottleneck({in_channels}, {planes}" + (f", stride={stride})" if stride != 1 else ")")
    return Case(
        label,
        (in_channels, planes),
        (("stride", stride),) if stride != 1 else (),
        input_shape=(2, in_channels, 8, 8),
    )


EXPANDS, KEEPS, HALVES = _case(64, 64), _case(256, 64), _case(256, 128, 2)


def _probe_bottleneck(seed, Bottleneck):
    return {case.label: probe_module(Bottleneck, case, seed) for case in (EXPANDS, KEEPS, HALVES)}


bottleneck = Check("bottleneck", _probe_bottleneck, own=("Bottleneck",))


@bottleneck.item(
    "Bottleneck(64, 64) turns (2, 64, 8, 8) into (2, 256, 8, 8), through a projection",
    hint="expansion = 4: conv3 has planes * 4 output channels, and the channels change, so the "
    "shortcut needs a 1x1 projection (downsample).",
)
def _bottleneck_expands(record, seed):
    built = module_record(record, EXPANDS.label)
    expect_shape(output(built), (2, 256, 8, 8), EXPANDS.label)
    attribute(built, "downsample")
    if not convolutions(built, "downsample"):
        raise CheckFailed(
            "Bottleneck(64, 64).downsample should hold a 1x1 convolution (64 -> 256 channels) and a BN."
        )


@bottleneck.item(
    "Bottleneck(256, 64) keeps (2, 256, 8, 8) with no projection; with stride 2, (256, 128) gives (2, 512, 4, 4)",
    hint="downsample is None when stride == 1 and in_channels == planes * 4; the stride goes on the "
    "3x3 convolution (conv2), as in torchvision.",
)
def _bottleneck_shapes(record, seed):
    keeps = module_record(record, KEEPS.label)
    expect_shape(output(keeps), (2, 256, 8, 8), KEEPS.label)
    if attribute(keeps, "downsample") != "None":
        raise CheckFailed("Bottleneck(256, 64) keeps the shape, so its downsample should be None.")
    expect_shape(output(module_record(record, HALVES.label)), (2, 512, 4, 4), HALVES.label)


def _torchvision_reference(in_channels: int, planes: int, stride: int) -> nn.Module:
    from torchvision.models.resnet import Bottleneck as TorchvisionBottleneck

    out_channels = planes * 4
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    return TorchvisionBottleneck(in_channels, planes, stride, downsample)


@bottleneck.item(
    "it computes what torchvision's Bottleneck computes, given the same weights",
    hint="1x1 conv1-bn1-relu, 3x3 conv2 (with the stride)-bn2-relu, 1x1 conv3-bn3, add the shortcut, "
    "then ReLU; downsample = nn.Sequential(1x1 conv with the stride, BN).",
)
def _bottleneck_same_function(record, seed):
    for case in (KEEPS, EXPANDS, HALVES):
        expect_reference(
            record, case, _torchvision_reference(*case.args, case.stride), seed, atol=1e-4
        )


RESNET50_PARAMETERS = 25_557_032  # torchvision's ResNet-50, the exercise's target


def _torchvision_resnet50(seed: int) -> nn.Module:
    import torchvision

    torch.manual_seed(seed % (2**31))
    return torchvision.models.resnet50().eval()


RESNET50 = Case(
    "resnet50",
    input_shape=(1, 3, 64, 64),
    modes=("eval",),
    attributes=(),
    randomise=False,
    values=False,
)


def _probe_resnet50(seed, resnet50, sizes):
    record: dict = {"sizes": None}
    if isinstance(resnet50, nn.Module):
        record["network"] = probe_module(lambda: resnet50, RESNET50)
    else:
        record["network_type"] = type(resnet50).__name__
    if isinstance(sizes, dict):
        record["sizes"] = {
            str(name): (
                {
                    str(k): (
                        v if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v)
                    )
                    for k, v in entry.items()
                }
                if isinstance(entry, dict)
                else repr(entry)
            )
            for name, entry in sizes.items()
        }
    return record


# The course's ResNet class may hold the blocks; the blocks themselves must be the notebook's.
resnet50 = Check(
    "resnet50", _probe_resnet50, own=("resnet50",), allowed=("resnet_course/models.py",)
)


def _network(record) -> dict:
    if "network" not in record:
        raise CheckFailed(f"resnet50 is {record.get('network_type', 'nothing')}, not a network.")
    return module_record(record, "network")


@resnet50.item(
    "resnet50 has 25,557,032 parameters, as torchvision's ResNet-50",
    hint="ResNet(Bottleneck, [3, 4, 6, 3]): the same stages as ResNet-34, with bottleneck blocks.",
)
def _resnet50_parameters(record, seed):
    found = _network(record)["parameters"]
    if found != RESNET50_PARAMETERS:
        raise CheckFailed(f"resnet50 has {found:,} parameters.")


@resnet50.item(
    "resnet50 is built from your Bottleneck, loads torchvision's ResNet-50 weights and gives its outputs",
    hint="check your Bottleneck's layer names (conv1..conv3, bn1..bn3, downsample) and its stride placement.",
)
def _resnet50_torchvision(record, seed):
    _network(record)
    expect_reference(
        {RESNET50.label: record["network"]}, RESNET50, _torchvision_resnet50(seed), seed, atol=1e-4
    )


@resnet50.item(
    "sizes holds both networks' parameters and multiply-adds at 224x224",
    hint="sizes = {'resnet34': {'parameters': count_parameters(resnet34), 'flops': count_macs(resnet34)}, "
    "'resnet50': {...}}; count_macs counts multiply-adds on a (1, 3, 224, 224) input.",
)
def _resnet50_sizes(record, seed):
    import torchvision

    sizes = record.get("sizes")
    if not isinstance(sizes, dict) or set(sizes) != {"resnet34", "resnet50"}:
        raise CheckFailed("sizes should be a dict with the keys 'resnet34' and 'resnet50'.")
    for name in ("resnet34", "resnet50"):
        reference = getattr(torchvision.models, name)()
        entry = sizes[name]
        if not isinstance(entry, dict):
            raise CheckFailed(f"sizes[{name!r}] should be a dict with 'parameters' and 'flops'.")
        expected = {"parameters": count_parameters(reference), "flops": count_macs(reference)}
        for key, value in expected.items():
            found = entry.get(key)
            # Another counter may differ a little (BN, pooling), so 1% is close enough.
            if not isinstance(found, (int, float)) or abs(found - value) > 0.01 * value:
                raise CheckFailed(
                    f"sizes[{name!r}][{key!r}] is {found!r}, expected about {value:,}."
                )


def check_bottleneck(Bottleneck) -> Report:
    """Exercise 3: the bottleneck block, against torchvision's."""
    return bottleneck.run(Bottleneck=Bottleneck)


def check_resnet50(resnet50_model, sizes) -> Report:
    """Exercise 3: ResNet-34 turned into ResNet-50, and the two compared."""
    return resnet50.run(resnet50=resnet50_model, sizes=sizes)
