"""A network's training or eval mode for the length of a ``with``, every submodule's own mode back after it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the ``with``; afterwards every submodule has its own mode back.

    ``model.train(was_training)`` is not enough to undo a ``model.eval()``: it sets every
    submodule alike, so a network built around a frozen (eval-mode) part would put that
    part back into training mode.
    """
    with _mode(model, training=False):
        yield model


@contextmanager
def train_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in training mode inside the ``with``; afterwards every submodule has its own mode back."""
    with _mode(model, training=True):
        yield model


@contextmanager
def _mode(model: nn.Module, *, training: bool):
    modes = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, was_training in modes:
            module.training = was_training
