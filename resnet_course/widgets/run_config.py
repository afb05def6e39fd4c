"""One dashboard run: its configuration, the check that refuses what cannot run, its network, its data."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..data import TensorData, load_cifar10, make_spirals
from ..models import MLP, cifar_resnet, valid_cifar_depth
from ..presets import Preset
from ..recipe import TrainConfig
from ..train import set_seed

SPIRALS, CIFAR10 = "spirals", "cifar10"
DATA_SETS = (("spirals (MLPs)", SPIRALS), ("CIFAR-10 (CNNs)", CIFAR10))
# The blocks a dashboard network is built from, named as in resnet_course.blocks.BLOCKS.
PLAIN, BASIC, PREACT = "plain", "basic", "preact"
NETWORK_BLOCKS = (PLAIN, BASIC, PREACT)
# The block-type control: where BN and ReLU sit in a residual block.
POST, PRE = "post", "pre"
BLOCK_TYPES = (("post-activation (v1)", POST), ("pre-activation (v2)", PRE))
SPIRALS_DEPTHS = list(range(2, 101))
# The MLPs normalise every hidden layer, as the CIFAR networks do: then a plain stack
# is not held back by vanishing signals, and what is left is the degradation problem.
MLP_NORM = "batch"


@dataclass(frozen=True)
class RunConfig:
    """Everything a dashboard run needs: the network the controls describe and its recipe.

    ``block`` is 'plain', 'basic' (post-activation, v1) or 'preact' (pre-activation, v2); on
    spirals, 'basic' means the residual MLP. ``training`` is the run's
    :class:`~resnet_course.recipe.TrainConfig`; ``steps=0`` there means "do not train".
    """

    data: str = SPIRALS
    depth: int = 20
    width: int = 32
    block: str = PLAIN
    training: TrainConfig = TrainConfig(epochs=60, lr=0.1)

    @classmethod
    def from_controls(cls, **values) -> RunConfig:
        """The run that the controls' ``values`` describe: the network's fields as they are, the
        others (``lr``, ``epochs``, ``steps``, ...) replacing the default recipe's.

        Raises TypeError, naming the fields there are, for a value no network or recipe has.
        """
        network = {name: values.pop(name) for name in NETWORK_FIELDS if name in values}
        return cls(**network, training=cls.training.replace(**values))

    @property
    def residual(self) -> bool:
        return self.block != PLAIN

    @property
    def label(self) -> str:
        if self.data == SPIRALS:
            return f"{'residual' if self.residual else 'plain'}-mlp-{self.depth}"
        # The course's one name per network: plain-20, ResNet-20, pre-activation ResNet-20.
        return {PLAIN: "plain", BASIC: "ResNet", PREACT: "pre-activation ResNet"}[
            self.block
        ] + f"-{self.depth}"


NETWORK_FIELDS = ("data", "depth", "width", "block")


def block_for(residual: bool, block_type: str) -> str:
    """The block that the network toggle (plain, residual) and the block-type toggle (post, pre) describe.

    Raises ValueError, with the sentence a dashboard shows, for a combination no network has.
    """
    if block_type not in (POST, PRE):
        raise ValueError(f"unknown block type {block_type!r}; choose 'post' or 'pre'.")
    if not residual:
        if block_type == PRE:
            raise ValueError(
                "a plain network has no pre-activation version: pre-activation moves BN and ReLU in front of "
                "each residual branch, which needs a shortcut. Turn residual on, or choose post-activation."
            )
        return PLAIN
    return PREACT if block_type == PRE else BASIC


def check_config(config: RunConfig) -> str | None:
    """Why ``config`` cannot run, in one sentence, or None when it can."""
    if config.data not in (SPIRALS, CIFAR10):
        return f"unknown data set {config.data!r}; choose 'spirals' or 'cifar10'."
    if config.block not in NETWORK_BLOCKS:
        return f"unknown block {config.block!r}; choose 'plain', 'basic' or 'preact'."
    if config.data == SPIRALS and config.block == PREACT:
        return "the spirals MLPs have a single kind of layer; post- and pre-activation apply to the CIFAR-10 networks."
    training = config.training
    if training.steps is None and not (training.epochs or 0) >= 1:
        return f"train for at least one epoch, not {training.epochs}."
    if training.steps is not None and training.steps < 0:
        return f"the number of training steps cannot be negative, not {training.steps}."
    if not training.lr > 0:
        return f"the learning rate must be positive, not {training.lr}."
    if config.width < 1:
        return f"the width must be at least 1, not {config.width}."
    valid_depth = (
        valid_cifar_depth(config.depth, config.block)
        if config.data == CIFAR10
        else config.depth >= 2
    )
    if not valid_depth:
        try:
            build_model(config)  # raises the model's own message, which names the valid depths
        except ValueError as error:
            return str(error)
    return None


def first_problem(configs: list[RunConfig]) -> str | None:
    """What :func:`check_config` says of the first configuration that cannot run, or None."""
    return next((problem for problem in map(check_config, configs) if problem), None)


def build_model(config: RunConfig) -> nn.Module:
    """The network ``config`` describes, seeded so plain and residual twins start alike."""
    set_seed(config.training.seed)
    if config.data == SPIRALS:
        return MLP(config.depth, config.width, residual=config.residual, norm=MLP_NORM)
    return cifar_resnet(config.depth, block=config.block, width=config.width)


# --- data, loaded once per session --------------------------------------------------------------

_DATA_CACHE: dict[tuple, TensorData] = {}


def dashboard_data(name: str, preset: Preset) -> TensorData:
    """Spirals, or CIFAR-10 at the preset's size, loaded once and kept (or DataUnavailableError)."""
    key = (name, preset.image_size, preset.train_size, preset.test_size)
    if key not in _DATA_CACHE:
        if name == SPIRALS:
            _DATA_CACHE[key] = make_spirals()
        else:
            _DATA_CACHE[key] = load_cifar10(
                image_size=preset.image_size,
                train_size=preset.train_size,
                test_size=preset.test_size,
            )
    return _DATA_CACHE[key]
