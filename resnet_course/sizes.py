"""How big a network would be, estimated before it is built, and the refusal of one that cannot be.

``cifar_resnet(600002)`` is a valid 6n+2 depth; built, it filled 24 GB of memory and was
killed. :class:`~resnet_course.models.ResNet` and the toy MLPs call :func:`check_buildable`
with their estimated size first, so such a network is refused in one sentence that gives it.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

MAX_DEPTH = 2_000  # layers; the deepest network in the papers, ResNet-1202, has 1,202


def network_size(
    block: type[nn.Module],
    layers: Sequence[int],
    *,
    stage_planes: Sequence[int] = (64, 128, 256, 512),
    stem: str = "imagenet",
    stem_channels: int = 64,
    num_classes: int = 1000,
    in_channels: int = 3,
    block_kwargs: dict | None = None,
) -> tuple[int, int]:
    """The depth and the parameter count of ``ResNet(block, layers, ...)``, without building it.

    ``block_kwargs`` are the options each block is built with (``shortcut``, ``groups``, ...).
    The depth counts the layers with weights on the way through: the stem, each block's
    convolutions (not a projection shortcut's) and the head. Each stage's first block and one
    of its others are built on the meta device, which holds no memory and draws no random
    numbers; the stage's other blocks are copies of that one.
    """
    block_kwargs = block_kwargs or {}
    kernel = 7 if stem == "imagenet" else 3
    parameters = in_channels * stem_channels * kernel * kernel
    parameters += 0 if block.preact else 2 * stem_channels  # the stem's BN
    depth, channels = 2, stem_channels
    with torch.device("meta"):
        for index, (planes, blocks) in enumerate(zip(stage_planes, layers)):
            first = block(channels, planes, 1 if index == 0 else 2, **block_kwargs)
            channels = planes * block.expansion
            blocks = max(1, blocks)  # make_stage builds one block at the least
            parameters += parameter_count(first)
            if blocks > 1:
                parameters += (blocks - 1) * parameter_count(
                    block(channels, planes, 1, **block_kwargs)
                )
            depth += blocks * _branch_layers(first)
    parameters += 2 * channels if block.preact else 0  # the final BN of a pre-activation network
    parameters += channels * num_classes + num_classes  # the head
    return depth, parameters


def parameter_count(module: nn.Module) -> int:
    """How many numbers ``module`` learns."""
    return sum(p.numel() for p in module.parameters())


def _branch_layers(block: nn.Module) -> int:
    """The convolutions of ``block`` outside its shortcut."""
    shortcut = getattr(block, "downsample", None)
    skip = set(shortcut.modules()) if shortcut is not None else set()
    return sum(isinstance(m, nn.Conv2d) and m not in skip for m in block.modules())


def available_memory() -> int | None:
    """The bytes of memory free for a new process (Linux's MemAvailable), else all of it; None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _in_words(parameters: int) -> str:
    if parameters >= 1e9:
        return f"{parameters / 1e9:.1f} billion"
    if parameters >= 1e6:
        return f"{parameters / 1e6:.1f} million"
    return f"{parameters:,}"


def _in_bytes(count: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            value = count / size
            return (
                f"{value:.1f}".removesuffix(".0") + f" {unit}"
                if value < 10
                else f"{value:.0f} {unit}"
            )
    return f"{count:.0f} bytes"


def check_buildable(depth: int, parameters: int) -> None:
    """Refuse, with its size, a network deeper than :data:`MAX_DEPTH` or whose weights exceed the free memory."""
    weights = 4 * parameters  # float32
    size = (
        f"a {depth:,}-layer network would hold {_in_words(parameters)} parameters "
        f"({_in_bytes(weights)} of weights, and training needs several times that)"
    )
    if depth > MAX_DEPTH:
        raise ValueError(
            f"{size}; the course builds networks up to {MAX_DEPTH:,} layers deep (the deepest in "
            f"the papers, resnet1202, has 1,202), so choose a smaller depth."
        )
    free = available_memory()
    if free is not None and weights > free:
        raise ValueError(
            f"{size}, more than the {_in_bytes(free)} free on this machine; choose a smaller "
            f"depth or width."
        )
