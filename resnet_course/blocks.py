"""Residual blocks, written out line by line.

Every block takes its channels explicitly: ``Block(in_channels, planes, stride)``
and produces ``planes * Block.expansion`` channels. Parameter names follow the
paper and torchvision (``conv1``, ``bn1``, ..., ``downsample``), so ImageNet
models built from these blocks load torchvision's weights.

Shortcut options (He et al. 2015, section 4.1):

* ``"A"``: identity, and where the shape changes, subsample and zero-pad the
  extra channels. No parameters.
* ``"B"``: identity, and a 1x1 convolution + BN *only* where the shape changes.
* ``"C"``: a 1x1 convolution + BN on every block.

What analysis code may ask of any block, instead of reaching into its layers:
``in_channels``, ``out_channels`` and ``stride`` (the shape it maps from and to), and
``branch_end``, the module whose output is the residual branch's last output, the one
added to the shortcut (``None`` for a block without a shortcut). Replacing that output
with zeros turns a residual block into its shortcut.
"""

from __future__ import annotations

import textwrap

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_OPTIONS = ("A", "B", "C")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # bias=False: a BatchNorm follows every convolution and has its own shift.
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def residual_add(residual: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """``residual + identity``, with a clear error when the two cannot be added.

    Broadcasting would silently accept some mismatches (a 1-channel identity, say),
    so the shapes must be equal, not merely compatible.
    """
    if residual.shape != identity.shape:
        raise ValueError(shape_mismatch_message(tuple(residual.shape), tuple(identity.shape)))
    return residual + identity


def shape_mismatch_message(branch: tuple[int, ...], shortcut: tuple[int, ...]) -> str:
    """Why a residual add failed: the two shapes, then what differs and the fix, in lines of at most 72 characters."""
    # Short lines: a traceback in a notebook or a rendered page does not wrap long ones.
    head = (
        f"cannot add the residual branch to its shortcut:\n  branch {branch}, shortcut {shortcut}."
    )
    return (
        head
        + "\n"
        + textwrap.fill(
            _diagnose_mismatch(branch, shortcut),
            width=72,
            initial_indent="  ",
            subsequent_indent="  ",
        )
    )


def _diagnose_mismatch(branch: tuple[int, ...], shortcut: tuple[int, ...]) -> str:
    """What differs between the two shapes, and the fix: a projection for channels, a matching stride for size."""
    if len(branch) != 4 or len(shortcut) != 4 or branch[0] != shortcut[0]:
        return "A residual add needs two tensors of the same shape."
    channels_differ = branch[1] != shortcut[1]
    size_differs = branch[2:] != shortcut[2:]
    branch_size, shortcut_size = f"{branch[2]}x{branch[3]}", f"{shortcut[2]}x{shortcut[3]}"
    if size_differs and branch[2] > shortcut[2]:
        return (
            f"The branch is {branch_size} pixels, the shortcut {shortcut_size}: the shortcut subsamples "
            f"but the branch does not, so the branch's first convolution needs the shortcut's stride."
        )
    stride = max(2, round(shortcut[2] / branch[2])) if size_differs else 1
    if size_differs:
        fixes = f"a projection with stride {stride} (shortcut='B' or 'C')"
        padding = " or subsampling and zero-padding (shortcut='A')"
    else:
        fixes, padding = "a projection (shortcut='B' or 'C')", " or zero-padding (shortcut='A')"
    if branch[1] > shortcut[1]:  # option A can only add channels
        fixes += padding
    if channels_differ and size_differs:
        return (
            f"The branch has {branch[1]} channels at {branch_size} pixels, the shortcut {shortcut[1]} at "
            f"{shortcut_size}, so the shortcut needs {fixes}."
        )
    if channels_differ:
        return f"The branch has {branch[1]} channels, the shortcut {shortcut[1]}, so the shortcut needs {fixes}."
    return (
        f"The branch is {branch_size} pixels, the shortcut {shortcut_size}: the branch subsamples with "
        f"stride {stride} but the shortcut does not, so the shortcut needs stride {stride} too (in its 1x1 "
        f"projection, or in option A's subsampling)."
    )


class ZeroPadShortcut(nn.Module):
    """Option A: take every ``stride``-th pixel and zero-pad the new channels. No parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"a zero-padding shortcut (option A) can only add channels, not go from "
                f"{in_channels} to {out_channels}; use shortcut='B'."
            )
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            # F.pad pads the last dimensions first: (W, W, H, H, C_front, C_back).
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def make_shortcut(
    option: str, in_channels: int, out_channels: int, stride: int
) -> nn.Module | None:
    """The shortcut a block needs, or ``None`` for a plain identity."""
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {option!r}; choose one of 'A', 'B', 'C'.")
    shape_changes = stride != 1 or in_channels != out_channels
    if option == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride) if shape_changes else None
    if option == "B" and not shape_changes:
        return None
    # Options B (where the shape changes) and C: a 1x1 projection, named like torchvision's.
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


PLAIN_ZERO_INIT = (
    "a plain block has no identity path, so zeroing its last BatchNorm (bn2) would make it output "
    "zeros and the whole network a constant, whatever its input; zero_init_last is for residual "
    "blocks (block='basic'), which it makes start as identities."
)


class PlainBlock(nn.Module):
    """Two 3x3 convolutions and no shortcut: the building block of the "plain" nets."""

    expansion = 1
    preact = False

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, planes, stride
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    @property
    def branch_end(self) -> None:
        """None: a plain block is all branch, with no shortcut to add it to."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        return self.relu(out)

    def zero_init_last(self) -> None:
        """Refused: a residual block starts as an identity this way, a plain block would output zeros."""
        raise ValueError(PLAIN_ZERO_INIT)


class BasicBlock(nn.Module):
    """y = ReLU(F(x) + shortcut(x)) with F = conv3x3-BN-ReLU-conv3x3-BN (He et al. 2015, Fig. 2)."""

    expansion = 1
    preact = False

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, shortcut: str = "B"):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, planes
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = make_shortcut(shortcut, in_channels, planes, stride)
        self.stride = stride

    @property
    def branch_end(self) -> nn.Module:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = residual_add(out, identity)
        return self.relu(out)

    def zero_init_last(self) -> None:
        # With gamma = 0 the residual branch outputs 0 and the block starts as an identity.
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (He et al. 2015, Fig. 5).

    The stride sits on the 3x3 convolution ("ResNet v1.5", as in torchvision).
    ``groups`` and ``width_per_group`` give ResNeXt: the 3x3 convolution has
    ``int(planes * width_per_group / 64) * groups`` channels, torchvision's formula.
    """

    expansion = 4
    preact = False

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        width_per_group: int = 64,
    ):
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        out_channels = planes * self.expansion
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.stride = stride

    @property
    def branch_end(self) -> nn.Module:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        out = residual_add(out, identity)
        return self.relu(out)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)


class PreActBlock(nn.Module):
    """Pre-activation block (He et al. 2016): BN-ReLU-conv twice, and nothing after the add.

    Where a projection is needed it reads the pre-activated input, as in the
    paper's code, so the identity path itself carries no BN or ReLU.
    """

    expansion = 1
    preact = True

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, shortcut: str = "B"):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, planes
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=False)  # not in place: x itself is the identity
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = make_shortcut(shortcut, in_channels, planes, stride)
        self.stride = stride

    @property
    def branch_end(self) -> nn.Module:
        return self.conv2  # nothing follows the last convolution before the add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.relu(self.bn2(out))
        out = self.conv2(out)
        return residual_add(out, identity)

    def zero_init_last(self) -> None:
        # The branch ends in a convolution, not a BN: zero it to start as an identity.
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1, then the add."""

    expansion = 4
    preact = True

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        width_per_group: int = 64,
    ):
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        out_channels = planes * self.expansion
        self.in_channels, self.out_channels = in_channels, out_channels
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=False)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.stride = stride

    @property
    def branch_end(self) -> nn.Module:
        return self.conv3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return residual_add(out, identity)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)


BLOCKS = {
    "plain": PlainBlock,
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact": PreActBlock,
    "preact_bottleneck": PreActBottleneck,
}
