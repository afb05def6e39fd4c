"""What the checks share: shape and value comparisons, weight copies, clear failures."""

from __future__ import annotations

import torch
from torch import nn

from ..report import CheckFailed


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
