"""The checks behind every exercise. Each ``check_*`` function takes the student's objects and returns a Report.

A check cell ends with one call, e.g. ``check_basic_block(BasicBlock)``; Jupyter
shows the report as the cell's result. Trusted implementations are the oracles:
the course's own blocks (themselves tested against torchvision) and torchvision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import blocks as course_blocks
from ..analysis import count_flops, count_parameters
from ..models import cifar_resnet
from .report import Check, CheckFailed, Report

# --- helpers shared by the checks ----------------------------------------------------------------


def expect_shape(output, expected: tuple[int, ...], what: str) -> None:
    if not isinstance(output, torch.Tensor):
        raise CheckFailed(f"{what} returned {type(output).__name__}, not a tensor.")
    if tuple(output.shape) != expected:
        raise CheckFailed(f"{what} gave shape {tuple(output.shape)}, expected {expected}.")


def expect_close(actual: torch.Tensor, expected: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    if not isinstance(actual, torch.Tensor):
        raise CheckFailed(f"{what} is {type(actual).__name__}, not a tensor.")
    if actual.shape != expected.shape:
        raise CheckFailed(f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}.")
    difference = (actual.detach().float() - expected.detach().float()).abs().max().item()
    if not difference <= atol:  # also catches NaN
        raise CheckFailed(f"{what} differs from the expected values by up to {difference:.3g}.")


def layer(block: nn.Module, name: str) -> nn.Module:
    """``block.<name>``, or a failure that says which layer name the exercise asks for."""
    if not hasattr(block, name):
        raise CheckFailed(f"{type(block).__name__} has no attribute {name!r}; name the layers as the exercise asks.")
    return getattr(block, name)


def randomise_batch_norm(module: nn.Module) -> nn.Module:
    """Give every BN random affine parameters and running statistics, so weight copies are tested for real."""
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                if bn.affine:
                    bn.weight.uniform_(0.5, 1.5)
                    bn.bias.uniform_(-0.5, 0.5)
                if bn.running_mean is not None:
                    bn.running_mean.uniform_(-0.5, 0.5)
                    bn.running_var.uniform_(0.5, 1.5)
    return module


def copy_weights(source: nn.Module, target: nn.Module, what: str) -> None:
    """``target.load_state_dict(source.state_dict())`` (strict), failing with the names that differ."""
    source_keys, target_keys = set(source.state_dict()), set(target.state_dict())
    missing, unexpected = sorted(target_keys - source_keys), sorted(source_keys - target_keys)
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            detail.append(f"has extra {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
        raise CheckFailed(f"{what}'s weights do not match the reference's names: it {' and '.join(detail)}.")
    try:
        target.load_state_dict(source.state_dict())
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise CheckFailed(f"{what}'s weights have the wrong shapes ({first}).") from None


def copy_weights_by_position(source: nn.Module, target: nn.Module, what: str) -> None:
    """Copy every parameter and buffer in registration order, whatever the names (layouts must agree)."""
    source_values, target_state = list(source.state_dict().values()), target.state_dict()
    if len(source_values) != len(target_state):
        raise CheckFailed(f"{what} has {len(source_values)} weight tensors, the reference {len(target_state)}.")
    for index, ((name, target_value), value) in enumerate(zip(target_state.items(), source_values)):
        if value.shape != target_value.shape:
            raise CheckFailed(
                f"{what}'s weight tensor number {index + 1} has shape {tuple(value.shape)} where the reference "
                f"has {tuple(target_value.shape)} ({name})."
            )
    target.load_state_dict(dict(zip(target_state, source_values)))


def same_function(student: nn.Module, reference: nn.Module, x: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    """Equal outputs in training mode (batch statistics) and in eval mode (running statistics)."""
    for training in (True, False):
        student.train(training)
        reference.train(training)
        with torch.no_grad():
            expected = reference(x.clone())
            actual = student(x.clone())
        expect_close(actual, expected, f"{what}'s output in {'training' if training else 'eval'} mode", atol)


def build(cls, *args, **kwargs) -> nn.Module:
    try:
        return cls(*args, **kwargs)
    except TypeError as error:
        arguments = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        raise CheckFailed(f"{getattr(cls, '__name__', cls)}({arguments}) failed: {error}.") from None


def convolutions(module: nn.Module | None) -> list[nn.Conv2d]:
    return [] if module is None else [m for m in module.modules() if isinstance(m, nn.Conv2d)]


# --- exercise 1: the basic block -----------------------------------------------------------------

basic_block = Check("basic_block")


@basic_block.item("BasicBlock(16, 16) keeps a (2, 16, 8, 8) input's shape",
                  hint="two 3x3 convolutions with padding=1 and stride 1 keep the height and width.")
def _basic_shape(BasicBlock):
    expect_shape(build(BasicBlock, 16, 16)(torch.randn(2, 16, 8, 8)), (2, 16, 8, 8), "BasicBlock(16, 16)")


@basic_block.item("BasicBlock(16, 32, stride=2) gives (2, 32, 4, 4), with a 1x1 projection shortcut",
                  hint="the stride goes on conv1; `downsample` is None when the shape is kept, else "
                       "nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)).")
def _basic_projection(BasicBlock):
    block = build(BasicBlock, 16, 32, stride=2)
    expect_shape(block(torch.randn(2, 16, 8, 8)), (2, 32, 4, 4), "BasicBlock(16, 32, stride=2)")
    projection = convolutions(layer(block, "downsample"))
    if len(projection) != 1 or projection[0].kernel_size != (1, 1) or projection[0].stride != (2, 2):
        raise CheckFailed("BasicBlock(16, 32, stride=2).downsample should hold one 1x1 convolution with stride 2, and a BN.")
    if layer(build(BasicBlock, 16, 16), "downsample") is not None:
        raise CheckFailed("BasicBlock(16, 16) keeps the shape, so its downsample should be None (a plain identity).")


@basic_block.item("it computes what the course's BasicBlock computes, given the same weights",
                  hint="conv1-bn1-relu-conv2-bn2, add the shortcut, then ReLU; the layers are called conv1, bn1, "
                       "conv2, bn2 and downsample, as in torchvision.")
def _basic_same_function(BasicBlock):
    for in_channels, planes, stride in ((16, 16, 1), (16, 32, 2)):
        student = randomise_batch_norm(build(BasicBlock, in_channels, planes, stride=stride))
        reference = course_blocks.BasicBlock(in_channels, planes, stride, shortcut="B")
        what = f"BasicBlock({in_channels}, {planes}, stride={stride})"
        copy_weights(student, reference, what)
        same_function(student, reference, torch.randn(4, in_channels, 8, 8), what)


@basic_block.item("zero_init_last() makes the block an identity on non-negative inputs",
                  hint="zero_init_last() sets bn2's weight (gamma) to 0, so the branch F(x) is 0 and y = ReLU(0 + x) = x for x >= 0.")
def _basic_zero_init(BasicBlock):
    block = build(BasicBlock, 16, 16)
    block.zero_init_last()
    x = torch.randn(4, 16, 8, 8).relu()  # a block's input comes out of a ReLU
    with torch.no_grad():
        expect_close(block(x.clone()), x, "the zero-initialised block's output", atol=1e-6)


input_gradient = Check("input_gradient")


def _gradient_case():
    block = randomise_batch_norm(course_blocks.BasicBlock(8, 8))
    x = torch.randn(4, 8, 6, 6)
    grad_output = torch.randn(4, 8, 6, 6)
    x_autograd = x.clone().requires_grad_(True)
    y = block(x_autograd)
    (dx,) = torch.autograd.grad(y, x_autograd, grad_output)
    return block, x, grad_output, y.detach(), dx


def _gradient_terms(input_gradient_fn, block, x, grad_output):
    terms = input_gradient_fn(block, x.clone(), grad_output.clone())
    if not isinstance(terms, (tuple, list)) or len(terms) != 2:
        raise CheckFailed("input_gradient should return a pair (identity_term, branch_term).")
    return terms


@input_gradient.item("identity_term + branch_term equals autograd's dL/dx",
                     hint="compute the branch F(x) = bn2(conv2(relu(bn1(conv1(x))))) from a leaf x with "
                          "requires_grad, then torch.autograd.grad(branch, x, upstream) gives the branch term.")
def _gradient_sum(input_gradient):
    block, x, grad_output, _, dx = _gradient_case()
    identity_term, branch_term = _gradient_terms(input_gradient, block, x, grad_output)
    expect_close(identity_term + branch_term, dx, "identity_term + branch_term", atol=1e-4)


@input_gradient.item("identity_term is dL/dy where the block's output is positive, and 0 elsewhere",
                     hint="the final ReLU passes dL/dy where y > 0; the addition then hands it to x unchanged: "
                          "identity_term = grad_output * (y > 0).")
def _gradient_identity(input_gradient):
    block, x, grad_output, y, _ = _gradient_case()
    identity_term, _ = _gradient_terms(input_gradient, block, x, grad_output)
    expect_close(identity_term, grad_output * (y > 0), "identity_term", atol=1e-6)


def check_basic_block(BasicBlock) -> Report:
    """Exercise 1: shapes, the projection shortcut, the function, and the identity at zero-init."""
    return basic_block.run(BasicBlock=BasicBlock)


def check_input_gradient(input_gradient_fn) -> Report:
    """Exercise 1: dL/dx split into the identity term and the branch term, against autograd."""
    return input_gradient.run(input_gradient=input_gradient_fn)


# --- exercise 2: plain against residual ----------------------------------------------------------


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
    from ..train import History

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


# --- exercise 3: the bottleneck and ResNet-50 ----------------------------------------------------

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


# --- exercise 4: projection shortcuts ------------------------------------------------------------

shortcuts = Check("shortcuts")
_SHORTCUT_INPUT = (2, 16, 8, 8)


@shortcuts.item("option A maps (2, 16, 8, 8) to (2, 32, 4, 4), the residual branch's shape, with no parameters",
                hint="keep every stride-th pixel (x[:, :, ::stride, ::stride]) and append out_channels - in_channels zero channels.")
def _option_a_shape(ZeroPadShortcut, ProjectionShortcut):
    shortcut = build(ZeroPadShortcut, 16, 32, 2)
    expect_shape(shortcut(torch.randn(*_SHORTCUT_INPUT)), (2, 32, 4, 4), "ZeroPadShortcut(16, 32, 2)")
    if count_parameters(shortcut):
        raise CheckFailed(f"ZeroPadShortcut(16, 32, 2) has {count_parameters(shortcut)} parameters; option A has none.")


@shortcuts.item("option A keeps every second pixel of the input's channels and adds zero channels after them",
                hint="output[:, :16] should be x[:, :, ::2, ::2] and output[:, 16:] zeros (F.pad pads the last "
                     "dimensions first: (0, 0, 0, 0, 0, extra)).")
def _option_a_values(ZeroPadShortcut, ProjectionShortcut):
    x = torch.randn(*_SHORTCUT_INPUT)
    out = build(ZeroPadShortcut, 16, 32, 2)(x)
    expect_shape(out, (2, 32, 4, 4), "ZeroPadShortcut(16, 32, 2)")
    expect_close(out[:, :16], x[:, :, ::2, ::2], "the first 16 channels", atol=0)
    expect_close(out[:, 16:], torch.zeros(2, 16, 4, 4), "the 16 new channels", atol=0)


@shortcuts.item("option B maps (2, 16, 8, 8) to (2, 32, 4, 4) with 576 parameters",
                hint="a 1x1 convolution without bias has in_channels * out_channels weights (512), and its BN "
                     "2 * out_channels (64).")
def _option_b_shape(ZeroPadShortcut, ProjectionShortcut):
    shortcut = build(ProjectionShortcut, 16, 32, 2)
    expect_shape(shortcut(torch.randn(*_SHORTCUT_INPUT)), (2, 32, 4, 4), "ProjectionShortcut(16, 32, 2)")
    if count_parameters(shortcut) != 576:
        raise CheckFailed(f"ProjectionShortcut(16, 32, 2) has {count_parameters(shortcut)} parameters.")


@shortcuts.item("option B is a 1x1 convolution with the stride, followed by batch normalisation",
                hint="nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), then nn.BatchNorm2d(out_channels).")
def _option_b_structure(ZeroPadShortcut, ProjectionShortcut):
    shortcut = build(ProjectionShortcut, 16, 32, 2)
    convs = convolutions(shortcut)
    norms = [m for m in shortcut.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != 1 or convs[0].kernel_size != (1, 1) or convs[0].stride != (2, 2):
        raise CheckFailed("ProjectionShortcut(16, 32, 2) should hold one 1x1 convolution with stride 2.")
    if len(norms) != 1:
        raise CheckFailed("ProjectionShortcut(16, 32, 2) should hold one nn.BatchNorm2d.")
    # In training mode the BN output has zero mean per channel: the BN comes last.
    out = shortcut.train()(torch.randn(8, 16, 8, 8) + 3)
    expect_close(out.mean(dim=(0, 2, 3)), torch.zeros(32), "the per-channel mean of the output", atol=1e-4)


@shortcuts.item("both fit a residual block: BasicBlock(16, 32, stride=2) runs with either as its shortcut",
                hint="the shortcut's output must have the residual branch's shape, (2, 32, 4, 4) here.")
def _shortcuts_in_block(ZeroPadShortcut, ProjectionShortcut):
    for shortcut_class in (ZeroPadShortcut, ProjectionShortcut):
        block = course_blocks.BasicBlock(16, 32, 2)
        block.downsample = build(shortcut_class, 16, 32, 2)
        expect_shape(block(torch.randn(*_SHORTCUT_INPUT)), (2, 32, 4, 4), f"a BasicBlock with {shortcut_class.__name__}")


option_b_cost = Check("option_b_cost")


@option_b_cost.item("option_b_extra is the number of parameters option B adds to ResNet-20",
                    hint="ResNet-20 changes shape twice, 16 -> 32 and 32 -> 64 channels; option B puts a "
                         "ProjectionShortcut at each of those places and nowhere else.")
def _option_b_extra(option_b_extra):
    expected = count_parameters(cifar_resnet(20, shortcut="B")) - count_parameters(cifar_resnet(20, shortcut="A"))
    if option_b_extra != expected:
        raise CheckFailed(f"option_b_extra is {option_b_extra!r}.")


def check_shortcuts(ZeroPadShortcut, ProjectionShortcut) -> Report:
    """Exercise 4: options A and B, their shapes, parameters and structure."""
    return shortcuts.run(ZeroPadShortcut=ZeroPadShortcut, ProjectionShortcut=ProjectionShortcut)


def check_option_b_cost(option_b_extra) -> Report:
    """Exercise 4: what option B costs a whole network."""
    return option_b_cost.run(option_b_extra=option_b_extra)


# --- exercise 5: the pre-activation block --------------------------------------------------------

preact_block = Check("preact_block")


def _zero_convolutions(block: nn.Module) -> nn.Module:
    with torch.no_grad():
        for conv in convolutions(block):
            conv.weight.zero_()
    return block


@preact_block.item("PreActBlock(16, 16) keeps (2, 16, 8, 8); PreActBlock(16, 32, stride=2) gives (2, 32, 4, 4)",
                   hint="the stride goes on conv1; where the shape changes the shortcut is a 1x1 projection (downsample).")
def _preact_shapes(PreActBlock):
    x = torch.randn(2, 16, 8, 8)
    expect_shape(build(PreActBlock, 16, 16)(x), (2, 16, 8, 8), "PreActBlock(16, 16)")
    expect_shape(build(PreActBlock, 16, 32, stride=2)(x), (2, 32, 4, 4), "PreActBlock(16, 32, stride=2)")


@preact_block.item("the identity path is clean: with the branch zeroed, the block returns its input, negatives included",
                   hint="nothing may follow the addition: return out + identity, with no BN or ReLU after it and "
                        "none on the identity path.")
def _preact_clean_identity(PreActBlock):
    block = _zero_convolutions(build(PreActBlock, 16, 16))
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        expect_close(block(x.clone()), x, "the output with the branch zeroed", atol=1e-6)


@preact_block.item("the block leaves its input tensor unchanged (no in-place ReLU on x)",
                   hint="x is the identity term: use nn.ReLU(inplace=False), or apply an in-place ReLU only to a new tensor.")
def _preact_not_in_place(PreActBlock):
    block = build(PreActBlock, 16, 16).eval()
    x = torch.randn(4, 16, 8, 8)
    before = x.clone()
    with torch.no_grad():
        block(x)
    expect_close(x, before, "the input after the forward pass", atol=0)


@preact_block.item("the branch starts with BN and ReLU: it sees only the positive part of its normalised input",
                   hint="pre-activation order: bn1-relu-conv1, bn2-relu-conv2 (He et al. 2016, Fig. 1b).")
def _preact_order(PreActBlock):
    # In eval mode a fresh BN is a positive scaling, which commutes with ReLU; so a branch that
    # begins with BN-ReLU gives F(x) == F(relu(x)). A branch that begins with a convolution does not.
    block = build(PreActBlock, 16, 16).eval()
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        branch = block(x.clone()) - x
        branch_of_positive_part = block(x.relu()) - x.relu()
    expect_close(branch, branch_of_positive_part, "F(x) against F(relu(x))", atol=1e-5)


@preact_block.item("it computes what the course's PreActBlock computes, given the same weights",
                   hint="layers bn1, conv1, bn2, conv2 and downsample; the projection reads the pre-activated input "
                        "relu(bn1(x)), as in the paper's code.")
def _preact_same_function(PreActBlock):
    for in_channels, planes, stride in ((16, 16, 1), (16, 32, 2)):
        student = randomise_batch_norm(build(PreActBlock, in_channels, planes, stride=stride))
        reference = course_blocks.PreActBlock(in_channels, planes, stride, shortcut="B")
        what = f"PreActBlock({in_channels}, {planes}, stride={stride})"
        copy_weights(student, reference, what)
        same_function(student, reference, torch.randn(4, in_channels, 8, 8), what)


def check_preact_block(PreActBlock) -> Report:
    """Exercise 5: the pre-activation block and its clean identity path."""
    return preact_block.run(PreActBlock=PreActBlock)


# --- exercise 6: ResNeXt -------------------------------------------------------------------------

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


# --- exercise 7: the bug hunt ---------------------------------------------------------------------

# What each broken block gets wrong, said as a nudge rather than the answer.
BUG_HINTS = {
    1: "look at what happens to the residual branch just before the addition (He et al. 2015, Fig. 2).",
    2: "the shortcut of a block that keeps its shape is the identity: nothing should touch x on its way to the addition.",
    3: "where the shape changes, only one convolution of the branch should have the stride.",
    4: "when the block changes the number of channels or the resolution, x cannot be added as it is.",
}


def _fixed_block_check(number: int) -> Check:
    check = Check(f"fixed_block_{number}")
    nudge = BUG_HINTS[number]

    @check.item(f"Block{number}(16, 16) keeps (2, 16, 8, 8); Block{number}(16, 32, stride=2) gives (2, 32, 4, 4)", hint=nudge)
    def _shapes(Block):
        x = torch.randn(2, 16, 8, 8)
        expect_shape(build(Block, 16, 16)(x), (2, 16, 8, 8), f"Block{number}(16, 16)")
        expect_shape(build(Block, 16, 32, stride=2)(x), (2, 32, 4, 4), f"Block{number}(16, 32, stride=2)")

    @check.item(f"Block{number} computes what a correct BasicBlock computes, given the same weights", hint=nudge)
    def _same_function(Block):
        for in_channels, planes, stride in ((16, 16, 1), (16, 32, 2)):
            reference = randomise_batch_norm(course_blocks.BasicBlock(in_channels, planes, stride, shortcut="B"))
            student = build(Block, in_channels, planes, stride=stride)
            what = f"Block{number}({in_channels}, {planes}, stride={stride})"
            # Copy only the correct block's layers: a fix may leave an unused layer behind.
            missing = sorted(set(reference.state_dict()) - set(student.state_dict()))
            if missing:
                raise CheckFailed(f"{what} lacks the layer(s) {', '.join(missing[:4])}.")
            student.load_state_dict(reference.state_dict(), strict=False)
            same_function(student, reference, torch.randn(4, in_channels, 8, 8), what)

    @check.item(f"zero-initialised, Block{number} passes a non-negative input through unchanged", hint=nudge)
    def _identity(Block):
        block = build(Block, 16, 16)
        nn.init.zeros_(layer(block, "bn2").weight)
        x = torch.randn(4, 16, 8, 8).relu()
        with torch.no_grad():
            expect_close(block(x.clone()), x, f"zero-initialised Block{number}'s output", atol=1e-6)

    return check


fixed_blocks = {number: _fixed_block_check(number) for number in BUG_HINTS}


def check_fixed_block(Block, number: int) -> Report:
    """Exercise 7: broken block ``number`` (1 to 4), once fixed, behaves like a correct BasicBlock."""
    if number not in fixed_blocks:
        raise ValueError(f"there are four broken blocks; number must be 1, 2, 3 or 4, not {number!r}.")
    return fixed_blocks[number].run(Block=Block)


ALL_CHECKS: dict[str, Check] = {
    check.name: check
    for check in (basic_block, input_gradient, cifar_nets, plain_vs_residual, bottleneck, resnet50, shortcuts,
                  option_b_cost, preact_block, resnext_block, *fixed_blocks.values())
}
