"""Presets: how big a chapter's experiments are, chosen to fit a time budget on one kind of machine.

Chapters read a preset instead of hard-coding sizes: ``get_preset()`` is ``$RESNET_COURSE_PRESET``,
else 'gpu' with a CUDA GPU and 'cpu' without. A preset's recipe is a
:class:`~resnet_course.recipe.TrainConfig`; the loop that runs it is :mod:`resnet_course.train`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .recipe import TrainConfig


@dataclass(frozen=True)
class Preset:
    """How big a chapter's experiments are, chosen to fit a time budget on one kind of machine.

    Chapters read these instead of hard-coding sizes. ``steps`` is the length of a CIFAR
    comparison (chapters 1 and 2: plain and residual 20/56); ``epochs`` that of the shorter
    comparisons in later chapters. ``recipe()`` is what chapters pass to ``fit``. The sizes
    come from the scale study (``results/scale-study/``), which found, per claim, the
    cheapest configuration that shows it over 3 or more seeds.
    """

    name: str
    audience: str  # who the preset is for
    budget: str  # the time it is sized to, and how that was measured
    image_size: int  # CIFAR images are shrunk to this many pixels a side
    train_size: (
        int | None
    )  # CIFAR training images asked for (None: all; an offline slice may hold fewer)
    test_size: int | None
    width: int  # base width of CIFAR networks (16 in the paper)
    steps: int  # SGD steps of the chapter 1 and 2 comparisons
    epochs: int  # epochs of the shorter comparisons in later chapters
    batch_size: int
    mlp_steps: int  # optimisation steps of the 2-D toy experiments
    lr: float = 0.1
    schedule: str = "cosine"
    # Linear warm-up: a 56-layer network at lr 0.1 from step 1 stalls at chance
    warmup_epochs: float = 2.0

    def config(self) -> TrainConfig:
        """The recipe of the chapter 1 and 2 comparisons."""
        return TrainConfig(
            steps=self.steps,
            lr=self.lr,
            schedule=self.schedule,
            warmup_epochs=self.warmup_epochs,
            batch_size=self.batch_size,
        )

    def recipe(self) -> dict:
        """:meth:`config` as the ``fit`` keywords chapters pass (``fit(model, data, **preset.recipe())``).

        Always these five keys, default or not: the run cache keys a run by the keywords it was given.
        """
        return self.config().options("steps", "lr", "schedule", "warmup_epochs", "batch_size")

    def describe(self) -> str:
        images = "all" if self.train_size is None else f"up to {self.train_size:,}"
        return (
            f"preset '{self.name}' ({self.audience}; {self.budget}): {images} CIFAR-10 training images at "
            f"{self.image_size}x{self.image_size}, networks of width {self.width}, comparisons of {self.steps:,} "
            f"steps ({self.schedule} learning rate from {self.lr:g} after {self.warmup_epochs:g} epochs of warm-up), "
            f"batch {self.batch_size}"
        )


PRESETS = {
    # One preset for the published book, CI and a reader's CPU: what the book shows online is what
    # a laptop shows. At 4,200 steps every seed the scale study has run shows both halves of Fig. 6
    # (plain-56 above plain-20, ResNet-56 below ResNet-20); chapters 1 and 2 each train one such
    # pair, measured at about 13 minutes each on 2 cores, over the 10-minute budget below.
    "cpu": Preset(
        "cpu",
        "the published book, CI, and running a chapter on a CPU",
        "every chapter within 10 minutes, the whole book within 25, on 2 CPU cores",
        image_size=16,
        train_size=4600,
        test_size=800,
        width=8,
        steps=4200,
        epochs=8,
        batch_size=128,
        mlp_steps=1500,
    ),
    "gpu": Preset(
        "gpu",
        "running a chapter on a CUDA GPU",
        "every chapter within 3 minutes on a T4 (estimated, see bench)",
        image_size=32,
        train_size=None,
        test_size=None,
        width=16,
        steps=900,
        epochs=4,
        batch_size=128,
        mlp_steps=3000,
    ),
}


def default_preset_name() -> str:
    """``$RESNET_COURSE_PRESET``, else 'gpu' with a CUDA GPU and 'cpu' without."""
    return os.environ.get("RESNET_COURSE_PRESET") or ("gpu" if torch.cuda.is_available() else "cpu")


def get_preset(name: str | None = None) -> Preset:
    """``name``, else ``$RESNET_COURSE_PRESET``, else ``gpu`` with a CUDA GPU and ``cpu`` without."""
    name = (name or default_preset_name()).strip().lower()
    if name not in PRESETS:
        raise ValueError(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)} (set RESNET_COURSE_PRESET)."
        )
    return PRESETS[name]
