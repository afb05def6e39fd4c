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

    A preset is who it is for and the time it is sized to, the data (CIFAR-10's image size and
    how many images), the networks' width, and ``training``: the recipe of the chapter 1 and 2
    comparisons (plain and residual 20/56), which chapters pass to ``fit`` or ``runs.train_or_load``
    as it is. ``epochs`` is the length of the shorter comparisons in later chapters, and
    ``mlp_steps`` that of the 2-D toys. The sizes come from the scale study
    (``results/scale-study/``).
    """

    name: str
    audience: str  # who the preset is for
    budget: str  # the time it is sized to, and how that was measured
    image_size: int  # CIFAR images are shrunk to this many pixels a side
    # CIFAR training and test images asked for (None: all; an offline slice may hold fewer)
    train_size: int | None
    test_size: int | None
    width: int  # base width of CIFAR networks (16 in the paper)
    training: TrainConfig  # the chapter 1 and 2 comparisons' recipe
    epochs: int  # epochs of the shorter comparisons in later chapters
    mlp_steps: int  # optimisation steps of the 2-D toy experiments
    # The scale study's configuration that archived ``training`` at these sizes over five seeds
    # (results/scale-study/runs/<archive>/): chapters 1 and 2 draw their run against it. None: a
    # preset of one's own, with no archive (tests/test_presets.py holds the course's to theirs).
    archive: str | None = None

    def describe(self) -> str:
        images = "all" if self.train_size is None else f"up to {self.train_size:,}"
        training = self.training
        return (
            f"preset '{self.name}' ({self.audience}; {self.budget}): {images} CIFAR-10 training images at "
            f"{self.image_size}x{self.image_size}, networks of width {self.width}, comparisons of {training.steps:,} "
            f"steps ({training.schedule} learning rate from {training.lr:g} after {training.warmup_epochs:g} epochs "
            f"of warm-up), batch {training.batch_size}"
        )


def comparison(steps: int, batch_size: int) -> TrainConfig:
    """The presets' comparison recipe: ``steps`` SGD steps, two epochs of linear warm-up from 0
    (a 56-layer network at lr 0.1 from step 1 stalls at chance), then a cosine decay from 0.1 to 0."""
    return TrainConfig(
        steps=steps, lr=0.1, schedule="cosine", warmup_epochs=2.0, batch_size=batch_size
    )


# The archived recipe: 3,150 steps is the shortest length the scale study tried that shows both
# halves of the paper's Fig. 6 over five seeds (plain-56 above plain-20, ResNet-56 below ResNet-20,
# in every seed and by more than the seeds vary; results/scale-study/README.md); at 2,100 ResNet-56
# was ahead in four seeds of five. Its pair of runs trains side by side, one per core.
ARCHIVED_SIZES = dict(
    image_size=16,
    train_size=4600,
    test_size=800,
    width=8,
    training=comparison(steps=3150, batch_size=128),
    epochs=8,
    mlp_steps=1500,
    archive="w8-16px-3150st-cos",
)

PRESETS = {
    # One preset for the published book, CI and a reader's CPU: what the book shows online is what
    # a laptop shows.
    "cpu": Preset(
        "cpu",
        "the published book, CI, and running a chapter on a CPU",
        "chapters 1 and 2 within 8 minutes on 2 idle CPU cores and 10 beside another busy "
        "process, the whole book within 25",
        **ARCHIVED_SIZES,
    ),
    # A CUDA machine trains the same archived recipe, so its chapters keep the archive's promise:
    # no larger recipe has been archived over five seeds on a GPU yet (tools/gpu_session.sh runs
    # one; the chapters offer it in a "Try it" box, as not archived).
    "gpu": Preset(
        "gpu",
        "running a chapter on a CUDA GPU",
        "every chapter within 3 minutes on a T4 (an estimate: not yet measured on one)",
        **ARCHIVED_SIZES,
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
