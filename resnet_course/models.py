"""The course's networks: CIFAR ResNets and their plain twins, ImageNet ResNets, toy MLPs.

``create_model(name, **kw)`` builds any of them by name; ``list_models()`` lists the names.
ImageNet models use torchvision's parameter names, so
``model.load_state_dict(torchvision.models.resnet50().state_dict())`` works as is.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from . import sizes
from .blocks import (
    BLOCKS,
    PLAIN_ZERO_INIT,
    BasicBlock,
    Bottleneck,
    PlainBlock,
    PreActBlock,
    PreActBottleneck,
)


class ResNet(nn.Module):
    """A stem, stages of blocks (``layer1``, ``layer2``, ...), global average pooling, a linear head.

    ``block`` is a class from :mod:`resnet_course.blocks`; ``layers`` the number of
    blocks per stage; ``stage_planes`` each stage's ``planes`` (its output has
    ``planes * block.expansion`` channels). The first block of every stage but the
    first halves the resolution.
    """

    def __init__(
        self,
        block: type[nn.Module],
        layers: Sequence[int],
        *,
        stage_planes: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        stem_channels: int = 64,
        num_classes: int = 1000,
        in_channels: int = 3,
        shortcut: str = "B",
        groups: int = 1,
        width_per_group: int = 64,
        zero_init_last: bool = False,
    ):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(
                f"unknown stem {stem!r}; choose 'imagenet' (7x7, stride 2, max-pool) or 'cifar' (3x3)."
            )
        if len(layers) != len(stage_planes):
            raise ValueError(
                f"got {len(layers)} stage depths but {len(stage_planes)} stage widths."
            )
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False)
            self.maxpool = nn.Identity()
        # A pre-activation network normalises at the start of each block instead,
        # and once more before pooling (He et al. 2016, Fig. 1b).
        self.bn1 = None if block.preact else nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)

        if zero_init_last and issubclass(block, PlainBlock):
            raise ValueError(PLAIN_ZERO_INIT)
        block_kwargs = _block_options(
            block, shortcut=shortcut, groups=groups, width_per_group=width_per_group
        )
        # Refused before anything is allocated: cifar_resnet(600002) once filled 24 GB and was killed.
        depth, parameters = sizes.network_size(
            block,
            layers,
            stage_planes=stage_planes,
            stem=stem,
            stem_channels=stem_channels,
            num_classes=num_classes,
            in_channels=in_channels,
            block_kwargs=block_kwargs,
        )
        sizes.check_buildable(depth, parameters)
        channels = stem_channels
        self.stage_names = []
        for index, (planes, blocks) in enumerate(zip(stage_planes, layers)):
            stride = 1 if index == 0 else 2
            stage, channels = make_stage(block, channels, planes, blocks, stride, **block_kwargs)
            name = f"layer{index + 1}"
            setattr(self, name, stage)
            self.stage_names.append(name)
        self.bn_final = nn.BatchNorm2d(channels) if block.preact else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_last:
            for _, residual_block in self.named_blocks():
                residual_block.zero_init_last()

    @property
    def block(self) -> type[nn.Module]:
        """The block class the stages are built from (chapter 4 names it), read off the first block, not stored."""
        return type(next(self.named_blocks())[1])

    def named_blocks(self) -> Iterator[tuple[str, nn.Module]]:
        """Every block in order, with its name (``layer2.0``, ...)."""
        for stage_name in self.stage_names:
            for index, block in enumerate(getattr(self, stage_name)):
                yield f"{stage_name}.{index}", block

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the head sees."""
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        x = self.maxpool(x)
        for stage_name in self.stage_names:
            x = getattr(self, stage_name)(x)
        if self.bn_final is not None:
            x = self.relu(self.bn_final(x))
        x = self.avgpool(x)
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def _block_options(
    block: type[nn.Module], *, shortcut: str, groups: int, width_per_group: int
) -> dict:
    """The options ``block`` takes; a grouped convolution asked of a block without one is refused."""
    accepted = inspect.signature(block.__init__).parameters
    if "groups" not in accepted and (groups != 1 or width_per_group != 64):
        raise ValueError(
            f"{block.__name__} has no grouped convolution, so groups={groups} and width_per_group={width_per_group} "
            f"cannot apply; ResNeXt uses bottleneck blocks (cifar_resnext, or block='bottleneck')."
        )
    options = {"shortcut": shortcut, "groups": groups, "width_per_group": width_per_group}
    return {name: value for name, value in options.items() if name in accepted}


def make_stage(
    block: type[nn.Module], in_channels: int, planes: int, blocks: int, stride: int, **block_kwargs
) -> tuple[nn.Sequential, int]:
    """``blocks`` blocks, the first with ``stride``; returns the stage and its output channels.

    Channels are passed in and returned, never kept on the network, so building a
    stage has no side effect (torchvision's ``_make_layer`` mutates ``self.inplanes``).
    """
    out_channels = planes * block.expansion
    stage = [block(in_channels, planes, stride, **block_kwargs)]
    stage += [block(out_channels, planes, 1, **block_kwargs) for _ in range(1, blocks)]
    return nn.Sequential(*stage), out_channels


# --- CIFAR family (He et al. 2015, section 4.2; He et al. 2016; Xie et al. 2017) -------------

_CIFAR_RESIDUAL_BLOCKS = ("basic", "plain", "preact")
_CIFAR_BOTTLENECK_BLOCKS = ("bottleneck", "preact_bottleneck")


def valid_cifar_depth(depth: int, block: str = "basic") -> bool:
    """6n+2 for two-layer blocks, 9n+2 for bottlenecks (three layers each)."""
    layers_per_block = 3 if block in _CIFAR_BOTTLENECK_BLOCKS else 2
    per_depth = 3 * layers_per_block
    return isinstance(depth, int) and depth >= per_depth + 2 and (depth - 2) % per_depth == 0


def cifar_depths(block: str = "basic", up_to: int = 110) -> list[int]:
    step = 9 if block in _CIFAR_BOTTLENECK_BLOCKS else 6
    return list(range(step + 2, up_to + 1, step))


def cifar_resnet(
    depth: int,
    *,
    block: str = "basic",
    width: int = 16,
    num_classes: int = 10,
    in_channels: int = 3,
    shortcut: str | None = None,
    groups: int = 1,
    width_per_group: int = 64,
    zero_init_last: bool = False,
) -> ResNet:
    """A CIFAR network of three stages with ``width``, ``2 width``, ``4 width`` planes.

    ``block`` is one of ``plain``, ``basic``, ``preact`` (depth 6n+2) or
    ``bottleneck``, ``preact_bottleneck`` (depth 9n+2). The default shortcut is
    option A for post-activation networks, as in the paper's CIFAR experiments,
    and option B for pre-activation networks, as in He et al. 2016.
    """
    if block not in BLOCKS:
        raise ValueError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}.")
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise ValueError(
            f"depth must be a whole number of layers such as 20 or 56, got {depth!r} ({type(depth).__name__})."
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(
            f"width must be a positive whole number of channels (16 in the paper), got {width!r}."
        )
    if block == "plain" and shortcut is not None:
        raise ValueError(
            f"a plain network has no shortcuts, so shortcut={shortcut!r} cannot apply; use block='basic'."
        )
    if not valid_cifar_depth(depth, block):
        rule = "9n+2" if block in _CIFAR_BOTTLENECK_BLOCKS else "6n+2"
        examples = ", ".join(str(d) for d in cifar_depths(block, 110))
        raise ValueError(
            f"depth {depth} is not a valid {rule} depth for {block} blocks; valid depths: {examples}, ..."
        )
    block_class = BLOCKS[block]
    blocks_per_stage = (depth - 2) // (9 if block in _CIFAR_BOTTLENECK_BLOCKS else 6)
    if shortcut is None:
        shortcut = "B" if block_class.preact else "A"
    return ResNet(
        block_class,
        [blocks_per_stage] * 3,
        stage_planes=(width, 2 * width, 4 * width),
        stem="cifar",
        stem_channels=width,
        num_classes=num_classes,
        in_channels=in_channels,
        shortcut=shortcut,
        groups=groups,
        width_per_group=width_per_group,
        zero_init_last=zero_init_last,
    )


def cifar_resnext(
    depth: int = 29,
    *,
    cardinality: int = 8,
    bottleneck_width: int = 64,
    width: int = 64,
    num_classes: int = 10,
    zero_init_last: bool = False,
) -> ResNet:
    """ResNeXt for CIFAR (Xie et al. 2017): bottlenecks whose 3x3 is a grouped convolution.

    The first stage's 3x3 convolution has ``cardinality`` groups of
    ``bottleneck_width`` channels (the "8x64d" of ResNeXt-29 8x64d), whatever the
    ``width`` of the stem; each later stage doubles the groups' width.
    """
    # torchvision's formula, int(planes * width_per_group / 64) * groups, at planes == width.
    width_per_group = bottleneck_width * 64 // width
    return cifar_resnet(
        depth,
        block="bottleneck",
        width=width,
        num_classes=num_classes,
        shortcut="B",
        groups=cardinality,
        width_per_group=width_per_group,
        zero_init_last=zero_init_last,
    )


# --- ImageNet family (torchvision-compatible) --------------------------------------------------


def imagenet_resnet(block: type[nn.Module], layers: Sequence[int], **kwargs) -> ResNet:
    return ResNet(block, layers, stage_planes=(64, 128, 256, 512), stem="imagenet", **kwargs)


# --- MLPs for 2-D toy data ---------------------------------------------------------------------


class MLPLayer(nn.Module):
    """One hidden layer, ``act(norm(linear(x)))``, plus ``x`` when residual."""

    def __init__(self, width: int, *, residual: bool, norm: str, activation: str):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm](
            width
        )
        self.act = nn.ReLU() if activation == "relu" else nn.Tanh()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm(self.linear(x)))
        return x + out if self.residual else out


class LayerStack(nn.Module):
    """An input layer, ``depth - 2`` hidden layers made by ``make_layer()``, a head: the toy MLPs' skeleton.

    :class:`MLP` and ``beyond.HighwayMLP`` differ only in their hidden layers.
    """

    def __init__(
        self,
        depth: int,
        width: int,
        make_layer: Callable[[], nn.Module],
        *,
        activation: str,
        in_features: int,
        num_classes: int,
    ):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise ValueError(
                f"depth must be a whole number of layers such as 8, got {depth!r} ({type(depth).__name__})."
            )
        if depth < 2:
            raise ValueError(f"an MLP needs depth >= 2 (an input layer and a head), got {depth!r}.")
        if activation not in ("relu", "tanh"):
            raise ValueError(f"unknown activation {activation!r}; choose 'relu' or 'tanh'.")
        with torch.device("meta"):  # one hidden layer, to count; no memory, no random numbers
            per_layer = sizes.parameter_count(make_layer())
        hidden = (depth - 2) * per_layer
        sizes.check_buildable(depth, (in_features + 1) * width + hidden + (width + 1) * num_classes)
        self.stem = nn.Sequential(
            nn.Linear(in_features, width), nn.ReLU() if activation == "relu" else nn.Tanh()
        )
        self.layers = nn.ModuleList(make_layer() for _ in range(depth - 2))
        self.head = nn.Linear(width, num_classes)

    @property
    def block(self) -> type[nn.Module]:
        """The block class the stages are built from (chapter 4 names it), read off the first block, not stored."""
        return type(next(self.named_blocks())[1])

    def named_blocks(self) -> Iterator[tuple[str, nn.Module]]:
        for index, layer in enumerate(self.layers):
            yield f"layers.{index}", layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class MLP(LayerStack):
    """``depth`` linear layers: an input layer, ``depth - 2`` hidden layers, a head.

    With ``residual=True`` every hidden layer adds its input back, and nothing else
    changes: the plain and residual networks have the same parameters.
    """

    def __init__(
        self,
        depth: int,
        width: int = 32,
        *,
        residual: bool = False,
        norm: str = "none",
        activation: str = "relu",
        in_features: int = 2,
        num_classes: int = 2,
    ):
        if norm not in ("none", "batch", "layer"):
            raise ValueError(f"unknown norm {norm!r}; choose 'none', 'batch' or 'layer'.")
        super().__init__(
            depth,
            width,
            lambda: MLPLayer(width, residual=residual, norm=norm, activation=activation),
            activation=activation,
            in_features=in_features,
            num_classes=num_classes,
        )


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A kind of network: what it is, in words, and the keywords its builders accept."""

    description: str
    keywords: frozenset[str]


FAMILIES = {
    "cifar": Family(
        "a CIFAR ResNet",
        frozenset(inspect.signature(cifar_resnet).parameters) - {"depth", "block"},
    ),
    "resnext": Family(
        "a CIFAR ResNeXt", frozenset(inspect.signature(cifar_resnext).parameters) - {"depth"}
    ),
    "imagenet": Family(
        "an ImageNet ResNet",
        frozenset(inspect.signature(ResNet).parameters)
        - {"block", "layers", "stage_planes", "stem"},
    ),
    "mlp": Family("a toy MLP", frozenset(inspect.signature(MLP).parameters) - {"residual"}),
}


@dataclass(frozen=True)
class _Entry:
    family: str
    build: Callable[..., nn.Module]


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, builder: Callable[..., nn.Module], *, family: str) -> None:
    """Make ``create_model(name, **kw)`` call ``builder(**kw)``; ``family`` says which keywords it takes.

    The family is stored with the name (as timm does), never guessed from how the name begins.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}.")
    _REGISTRY[name] = _Entry(family, builder)


def model_family(name: str) -> str:
    """The family ``name`` was registered with: 'cifar', 'resnext', 'imagenet' or 'mlp'."""
    return _REGISTRY[name].family


for _depth in (20, 32, 44, 56, 110, 1202):
    register(
        f"resnet{_depth}",
        lambda _d=_depth, **kw: cifar_resnet(_d, block="basic", **kw),
        family="cifar",
    )
for _depth in (20, 32, 44, 56, 110):
    register(
        f"plain{_depth}",
        lambda _d=_depth, **kw: cifar_resnet(_d, block="plain", **kw),
        family="cifar",
    )
register("preact_resnet110", lambda **kw: cifar_resnet(110, block="preact", **kw), family="cifar")
register(
    "preact_resnet164",
    lambda **kw: cifar_resnet(164, block="preact_bottleneck", **kw),
    family="cifar",
)
register(
    "preact_resnet1001",
    lambda **kw: cifar_resnet(1001, block="preact_bottleneck", **kw),
    family="cifar",
)
register(
    "resnext29_8x64d",
    lambda **kw: cifar_resnext(29, cardinality=8, bottleneck_width=64, **kw),
    family="resnext",
)
register(
    "resnext29_16x64d",
    lambda **kw: cifar_resnext(29, cardinality=16, bottleneck_width=64, **kw),
    family="resnext",
)
# A CPU-scale ResNeXt-29: a 16-channel stem and 4 groups of 8 channels in the first stage.
register(
    "resnext29_small",
    lambda **kw: cifar_resnext(29, **{"cardinality": 4, "bottleneck_width": 8, "width": 16, **kw}),
    family="resnext",
)

# ImageNet networks: a keyword given to create_model replaces the network's own value.
for _name, _block, _layers, _own in (
    ("resnet18", BasicBlock, [2, 2, 2, 2], {}),
    ("resnet34", BasicBlock, [3, 4, 6, 3], {}),
    ("resnet50", Bottleneck, [3, 4, 6, 3], {}),
    ("resnet101", Bottleneck, [3, 4, 23, 3], {}),
    ("resnet152", Bottleneck, [3, 8, 36, 3], {}),
    ("resnext50_32x4d", Bottleneck, [3, 4, 6, 3], {"groups": 32, "width_per_group": 4}),
    ("resnext101_32x8d", Bottleneck, [3, 4, 23, 3], {"groups": 32, "width_per_group": 8}),
    ("wide_resnet50_2", Bottleneck, [3, 4, 6, 3], {"width_per_group": 128}),
    ("preact_resnet18", PreActBlock, [2, 2, 2, 2], {}),
    ("preact_resnet50", PreActBottleneck, [3, 4, 6, 3], {}),
):
    register(
        _name,
        lambda _b=_block, _l=_layers, _o=_own, **kw: imagenet_resnet(_b, _l, **{**_o, **kw}),
        family="imagenet",
    )

register("mlp", lambda depth=8, **kw: MLP(depth, residual=False, **kw), family="mlp")
register("residual_mlp", lambda depth=8, **kw: MLP(depth, residual=True, **kw), family="mlp")


def list_models() -> list[str]:
    """Every name ``create_model`` accepts."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a network by name, e.g. ``create_model("resnet56")`` or ``create_model("plain20", width=8)``.

    CIFAR networks take ``width`` (16 in the paper; 8 or 4 for quick CPU runs),
    ``shortcut`` ('A', 'B', 'C'), ``num_classes`` and ``zero_init_last``. For any
    other 6n+2 depth use :func:`cifar_resnet` directly.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}.{hint} CIFAR ResNets have depths 6n+2 (resnet20, 32, 44, 56, 110, 1202; "
            f"plain20 to plain110; cifar_resnet() builds any other 6n+2 depth), ImageNet ResNets depths "
            f"18, 34, 50, 101, 152. Valid names: {', '.join(list_models())}."
        )
    entry = _REGISTRY[name]
    family = FAMILIES[entry.family]
    unknown = set(kwargs) - family.keywords
    if unknown:
        raise ValueError(
            f"create_model({name!r}) got unknown argument(s) {', '.join(sorted(unknown))}; "
            f"{name} is {family.description}, which accepts {', '.join(sorted(family.keywords))}."
        )
    return entry.build(**kwargs)


__all__ = [
    "MLP",
    "ResNet",
    "BasicBlock",
    "Bottleneck",
    "PlainBlock",
    "PreActBlock",
    "PreActBottleneck",
    "cifar_resnet",
    "cifar_resnext",
    "cifar_depths",
    "valid_cifar_depth",
    "create_model",
    "list_models",
    "model_family",
    "register",
    "make_stage",
]
