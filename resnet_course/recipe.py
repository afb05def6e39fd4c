"""The recipe of a training run: :class:`TrainConfig`, and :func:`learning_rate`, the course's one schedule.

A recipe is everything about how a network is trained apart from the network and the data:
its length, optimizer, schedule, augmentation, precision and seed. The loop that runs it is
:func:`resnet_course.train.fit`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, fields
from typing import Callable

SCHEDULES = ("step", "cosine", "constant")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained, apart from the network and the data: the recipe of a run.

    Give the length as ``epochs`` (passes over the training set, a fraction allowed) or as
    ``steps`` (optimisation steps), not both; ``max_steps`` caps either. ``milestones`` and ``warmup_epochs``
    scale with the run: the step schedule divides the learning rate by 10 at each milestone
    (a fraction of the run), after ``warmup_epochs`` of linear warm-up. ``schedule`` may also
    be a function of the step (0-based) that returns the learning rate; it then replaces
    ``lr``, ``milestones`` and ``warmup_epochs``. ``precision`` is 'auto' (bf16 or fp16 on
    CUDA, fp32 elsewhere), 'fp32', 'bf16' or 'fp16'; ``channels_last`` None means "where it
    was measured faster" (:func:`use_channels_last`). ``seed`` fixes the batches' order and
    augmentation, not the network's starting weights (seed before building it).

    ``fit(model, data, TrainConfig(epochs=4, lr=0.05))`` trains with it, and
    ``fit(model, data, epochs=4, lr=0.05)`` is the same run; keywords given beside a config
    replace its fields.
    """

    epochs: float | None = None
    steps: int | None = None
    max_steps: int | None = None
    lr: float = 0.1
    batch_size: int = 128
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4  # on every parameter, as in the paper's recipe
    nesterov: bool = False
    optimizer: str = "sgd"
    schedule: str | Callable[[int], float] = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of the run (32k and 48k of 64k)
    warmup_epochs: float = 0.0
    augment: bool = True  # random crops and flips of image batches
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    seed: int = 0

    def replace(self, **changes) -> TrainConfig:
        """This config with ``changes``; a length (``epochs`` or ``steps``) replaces the config's length."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(
                f"unknown training option(s) {', '.join(map(repr, unknown))}; "
                f"the recipe's are {', '.join(f.name for f in fields(self))}."
            )
        if "epochs" in changes or "steps" in changes:
            changes = {"epochs": None, "steps": None, **changes}
        return dataclasses.replace(self, **changes)

    def check(self, train_examples: int) -> None:
        """Raises ValueError, in one sentence, for a recipe that cannot run on ``train_examples`` examples."""
        epochs, steps, lr = self.epochs, self.steps, self.lr
        if (epochs is None) == (steps is None):
            raise ValueError(
                "give either epochs= or steps= (how long to train), not both and not neither."
            )
        if epochs is not None and not (
            isinstance(epochs, (int, float)) and math.isfinite(epochs) and epochs > 0
        ):
            raise ValueError(f"epochs must be a positive number, got {epochs!r}.")
        if steps is not None and not (isinstance(steps, int) and steps > 0):
            raise ValueError(f"steps must be a positive whole number, got {steps!r}.")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"the learning rate must be a positive, finite number, got {lr!r}.")
        if not callable(self.schedule) and self.schedule not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {self.schedule!r}; choose 'step', 'cosine', 'constant', or pass a function of the step."
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose 'sgd' or 'adam'.")
        if self.batch_size < 1 or self.batch_size > train_examples:
            raise ValueError(
                f"batch_size must be between 1 and the {train_examples} training examples, got {self.batch_size}."
            )

    def total_steps(self, steps_per_epoch: int) -> int:
        """The run's length in optimisation steps."""
        total = self.steps if self.steps is not None else math.ceil(self.epochs * steps_per_epoch)
        return total if self.max_steps is None else min(total, self.max_steps)

    def learning_rates(self, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
        """The learning rate at each step (0-based) of a run of ``total_steps`` steps."""
        # A recipe's own schedule, e.g. the paper's lr drops at fixed iterations.
        if callable(self.schedule):
            return self.schedule
        # step >= fraction * total holds exactly when step >= ceil(fraction * total): the same drops, as step numbers.
        milestone_steps = tuple(math.ceil(fraction * total_steps) for fraction in self.milestones)
        return functools.partial(
            learning_rate,
            total_steps=total_steps,
            lr=self.lr,
            schedule=self.schedule,
            milestone_steps=milestone_steps,
            warmup_steps=round(self.warmup_epochs * steps_per_epoch),
        )


def learning_rate(
    step: int,
    *,
    total_steps: int,
    lr: float,
    schedule: str = "step",
    milestone_steps: tuple[int, ...] = (),
    warmup_steps: int = 0,
    warmup_lr: float | None = None,
) -> float:
    """The learning rate at ``step`` (0-based) of a run of ``total_steps`` steps: the course's one schedule.

    First ``warmup_steps`` of warm-up: a linear ramp up to ``lr``, or a constant ``warmup_lr``
    (the paper's ResNet-110 trains at 0.01 for its first 400 iterations). Then 'constant'
    keeps ``lr``; 'cosine' decays it to 0 at the end of the run; 'step' divides it by 10 at
    each of ``milestone_steps``.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps if warmup_lr is None else warmup_lr
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * lr * (1 + math.cos(math.pi * progress))
    return lr * 0.1 ** sum(step >= milestone for milestone in milestone_steps)
