"""resnet_course: the helper package of the Residual Networks course.

Every chapter, dashboard and exercise imports from here, so the blocks, the
models and the training loop are written once::

    from resnet_course import create_model, load_cifar10, fit, get_preset
    preset = get_preset()
    data = load_cifar10(image_size=preset.image_size, train_size=preset.train_size)
    history = fit(create_model("resnet20", width=preset.width), data, epochs=preset.epochs)
"""

from .analysis import count_macs, count_parameters, gradient_norms
from .blocks import BasicBlock, Bottleneck, PlainBlock, PreActBlock, PreActBottleneck, residual_add
from .data import DataUnavailableError, TensorData, load_cifar10, make_spirals, pack_subset
from .devices import pick_device
from .models import MLP, ResNet, cifar_resnet, cifar_resnext, create_model, list_models
from .notebooks import REPOSITORY_URL, glue
from .presets import PRESETS, Preset, get_preset
from .recipe import TrainConfig
from .train import History, TrainingDiverged, TrainingRun, fit, set_seed

__version__ = "0.1.0"

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "PlainBlock",
    "PreActBlock",
    "PreActBottleneck",
    "residual_add",
    "MLP",
    "ResNet",
    "cifar_resnet",
    "cifar_resnext",
    "create_model",
    "list_models",
    "DataUnavailableError",
    "TensorData",
    "load_cifar10",
    "make_spirals",
    "pack_subset",
    "PRESETS",
    "History",
    "Preset",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingRun",
    "fit",
    "get_preset",
    "pick_device",
    "set_seed",
    "count_macs",
    "count_parameters",
    "gradient_norms",
    "glue",
    "REPOSITORY_URL",
]
