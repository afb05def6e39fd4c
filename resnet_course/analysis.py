"""Measuring networks: parameters, FLOPs, and how gradients flow through the layers."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Multiply-accumulates of one forward pass of convolutions and linear layers.

    This is the convention behind torchvision's "GFLOPS" column (ResNet-50: 4.089)
    and the papers' FLOP counts: one multiply-add counts once, and batch norm,
    ReLU, pooling and additions, a fraction of a percent, are left out. Counted
    with forward hooks on a real forward pass, so any architecture works.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        total += output.numel() * kernel

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        parameter = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(input_size, dtype=parameter.dtype, device=parameter.device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total // input_size[0]


def count_layers(model: nn.Module) -> int:
    """Depth as the papers count it: convolutions and linear layers, not counting projection shortcuts.

    ResNet-50 has 50: the stem, 16 bottlenecks of 3 convolutions, the classifier.
    Shortcut projections (``downsample``) sit beside the main path, so they add
    parameters but not depth.
    """
    return sum(
        isinstance(module, (nn.Conv2d, nn.Linear)) and "downsample" not in name.split(".")
        for name, module in model.named_modules()
    )


def _weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def gradient_norms(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> dict[str, float]:
    """The L2 norm of the loss gradient for each convolution and linear layer's weight, input to output.

    One forward and backward pass on one batch; the model's existing ``.grad``
    are left as they were. In training mode, so BN uses batch statistics, as
    during training.
    """
    layers = _weighted_layers(model)
    saved = {name: m.weight.grad for name, m in layers}
    grads = torch.autograd.grad(loss_fn(model(inputs), targets), [m.weight for _, m in layers])
    for name, m in layers:
        m.weight.grad = saved[name]
    return {name: g.norm().item() for (name, _), g in zip(layers, grads)}


def activation_norms(model: nn.Module, inputs: torch.Tensor, blocks: list[tuple[str, nn.Module]] | None = None) -> dict[str, float]:
    """The RMS of each block's output on ``inputs``: how the forward signal grows or fades with depth."""
    blocks = blocks if blocks is not None else list(model.named_blocks())
    values: dict[str, float] = {}
    handles = [
        block.register_forward_hook(lambda _m, _i, out, name=name: values.__setitem__(name, out.detach().pow(2).mean().sqrt().item()))
        for name, block in blocks
    ]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return values


def input_gradient_norms(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> dict[str, float]:
    """The norm of dL/dx at the input of each block: the backward signal, block by block."""
    blocks = list(model.named_blocks())
    block_inputs: dict[str, torch.Tensor] = {}

    def keep_input(name):
        def hook(_module, args):
            args[0].retain_grad()
            block_inputs[name] = args[0]

        return hook

    handles = [block.register_forward_pre_hook(keep_input(name)) for name, block in blocks]
    try:
        loss = loss_fn(model(inputs), targets)
        tensors = [block_inputs[name] for name, _ in blocks]
        grads = torch.autograd.grad(loss, tensors)
    finally:
        for handle in handles:
            handle.remove()
    return {name: g.norm().item() for (name, _), g in zip(blocks, grads)}
