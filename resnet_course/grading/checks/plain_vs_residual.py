"""Exercise 2: a CIFAR ResNet and its plain twin, built and trained."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ...analysis import count_parameters
from ...models import cifar_resnet
from ...train import History
from ..report import Check, CheckFailed, Report
from .helpers import copy_weights_by_position, expect_shape, randomise_batch_norm, same_function


@dataclass(frozen=True)
class TrainingSetup:
    """Exercise 2's comparison: a CIFAR-10 slice and a training budget that fit in about a minute on a CPU."""

    depth: int
    width: int
    image_size: int
    train_size: int
    test_size: int
    epochs: int
    lr: float
    batch_size: int
    seed: int

    def fit_options(self) -> dict:
        """Keyword arguments for ``fit``."""
        return dict(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


PLAIN_VS_RESIDUAL = TrainingSetup(depth=32, width=8, image_size=16, train_size=4000, test_size=500,
                                  epochs=4, lr=0.1, batch_size=128, seed=0)

cifar_nets = Check("cifar_nets")
_CIFAR_INPUT = (2, 3, 16, 16)


def _both_kinds(make_cifar_net, depth: int = 20, width: int = 8) -> dict[str, nn.Module]:
    nets = {}
    for residual in (True, False):
        net = make_cifar_net(depth, residual=residual, width=width)
        if not isinstance(net, nn.Module):
            raise CheckFailed(f"make_cifar_net returned {type(net).__name__}, not an nn.Module.")
        nets["residual" if residual else "plain"] = net
    return nets


@cifar_nets.item("make_cifar_net(20, ...) turns (2, 3, 16, 16) images into (2, 10) logits, residual or plain",
                 hint="stem, three stages, global average pooling (nn.AdaptiveAvgPool2d(1)), flatten, then nn.Linear(4 * width, 10).")
def _nets_shape(make_cifar_net):
    for kind, net in _both_kinds(make_cifar_net).items():
        expect_shape(net(torch.randn(*_CIFAR_INPUT)), (2, 10), f"the {kind} net")


@cifar_nets.item("depth counts the layers with weights: 20 and 32 convolution and linear layers",
                 hint="n = (depth - 2) // 6 blocks per stage, two 3x3 convolutions per block, plus the stem "
                      "convolution and the final linear layer; option A shortcuts have no weights.")
def _nets_depth(make_cifar_net):
    for depth in (20, 32):
        for kind, net in _both_kinds(make_cifar_net, depth).items():
            weighted = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())
            if weighted != depth:
                raise CheckFailed(f"the {kind} net of depth {depth} has {weighted} convolution and linear layers.")


@cifar_nets.item("the residual net and its plain twin have the same parameters as the course's resnet20",
                 hint="use widths width, 2 width, 4 width and shortcut='A' (zero-padding: no parameters), so the "
                      "two nets differ only in their shortcuts.")
def _nets_parameters(make_cifar_net):
    expected = count_parameters(cifar_resnet(20, width=8))
    for kind, net in _both_kinds(make_cifar_net).items():
        if count_parameters(net) != expected:
            raise CheckFailed(f"the {kind} net has {count_parameters(net):,} parameters, the course's resnet20 {expected:,}.")


def _nets_same_as_course(make_cifar_net, residual: bool):
    kind = "residual" if residual else "plain"
    student = randomise_batch_norm(_both_kinds(make_cifar_net)[kind])
    reference = cifar_resnet(20, block="basic" if residual else "plain", width=8)
    copy_weights_by_position(student, reference, f"the {kind} net")
    same_function(student, reference, torch.randn(4, 3, 16, 16), f"the {kind} net", atol=1e-4)


@cifar_nets.item("make_cifar_net(20, residual=True) computes what the course's resnet20 computes",
                 hint="build the layers in order (stem conv, BN, ReLU; the blocks; pooling; linear), with "
                      "BasicBlock(in, planes, stride, shortcut='A') and stride 2 on the first block of stages 2 and 3.")
def _nets_residual(make_cifar_net):
    _nets_same_as_course(make_cifar_net, residual=True)


@cifar_nets.item("make_cifar_net(20, residual=False) computes what the course's plain20 computes",
                 hint="the plain twin is the same network with PlainBlock(in, planes, stride) in place of BasicBlock.")
def _nets_plain(make_cifar_net):
    _nets_same_as_course(make_cifar_net, residual=False)


plain_vs_residual = Check("plain_vs_residual")


def _training_runs(histories) -> dict:
    if not isinstance(histories, dict) or set(histories) != {"residual", "plain"}:
        keys = sorted(histories) if isinstance(histories, dict) else type(histories).__name__
        raise CheckFailed(f"histories should have exactly the keys 'residual' and 'plain', got {keys}.")
    for kind, history in histories.items():
        if not isinstance(history, History) or not history.train_loss:
            raise CheckFailed(f"histories[{kind!r}] should be the History that fit returned, with finished epochs.")
    return histories


@plain_vs_residual.item("histories holds a residual and a plain run of the set depth, trained with SETUP's settings",
                        hint="train make_cifar_net(SETUP.depth, residual=..., width=SETUP.width) with "
                             "fit(model, data, **SETUP.fit_options()), once with residual=True and once with False.")
def _runs_settings(histories):
    setup = PLAIN_VS_RESIDUAL
    expected_parameters = count_parameters(cifar_resnet(setup.depth, width=setup.width))
    for kind, history in _training_runs(histories).items():
        config = history.config
        for key, value in setup.fit_options().items():
            if config.get(key) != value:
                raise CheckFailed(f"histories[{kind!r}] was trained with {key}={config.get(key)!r}, not {value!r}.")
        if config.get("parameters") != expected_parameters:
            raise CheckFailed(f"histories[{kind!r}] trained a network of {config.get('parameters'):,} parameters, "
                              f"not depth {setup.depth} at width {setup.width} ({expected_parameters:,}).")
        if history.stopped or len(history.train_loss) != setup.epochs:
            raise CheckFailed(f"histories[{kind!r}] has {len(history.train_loss)} finished epochs, not {setup.epochs}.")


@plain_vs_residual.item("the residual net ends with a lower training loss than its plain twin",
                        hint="with the set-up above this holds for every seed we tried; check that the residual net's "
                             "blocks really add their input (exercise 1) and that both runs used the same data.")
def _runs_residual_wins(histories):
    runs = _training_runs(histories)
    residual, plain = runs["residual"].train_loss[-1], runs["plain"].train_loss[-1]
    if not residual < plain:
        raise CheckFailed(f"the residual net ended at {residual:.3f}, the plain net at {plain:.3f}.")


def check_cifar_nets(make_cifar_net) -> Report:
    """Exercise 2: the residual CIFAR network and its plain twin, layer for layer."""
    return cifar_nets.run(make_cifar_net=make_cifar_net)


def check_plain_vs_residual(histories) -> Report:
    """Exercise 2: both runs trained as set, and the residual one ahead at the end."""
    return plain_vs_residual.run(histories=histories)
