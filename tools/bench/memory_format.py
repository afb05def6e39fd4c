"""Channels-last against the default memory format, per network size."""

from __future__ import annotations

import statistics
from typing import Callable

import torch
from torch import nn

from resnet_course.data import TensorData
from resnet_course.devices import describe_device, pick_device
from resnet_course.models import create_model
from resnet_course.train import set_seed

from .throughput import plain_training_step, synthetic_images, time_interleaved

MEMORY_FORMAT_SIZES = (
    ("resnet20", 8, 16),
    ("resnet56", 8, 16),
    ("resnet20", 16, 32),
    ("resnet56", 16, 32),
)


def fresh_training_step(
    model_name: str,
    width: int,
    batch: TensorData,
    device: torch.device,
    memory_format: torch.memory_format,
    *,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
) -> Callable[[], None]:
    """A plain training step of a new model (seed 0) on ``batch``, model and images in ``memory_format``.

    ``wrap`` (e.g. ``torch.compile``) is applied to the model before the step is built.
    """
    set_seed(0)
    model = create_model(model_name, width=width).to(device, memory_format=memory_format)
    x = batch.normalise(batch.x_train).to(device).contiguous(memory_format=memory_format)
    return plain_training_step(
        wrap(model) if wrap else model, x, batch.y_train.to(device), bf16=False
    )


def measure_memory_format(
    *,
    device: str | torch.device | None = "cpu",
    batch_size: int = 128,
    steps: int = 3,
    repeats: int = 3,
    sizes=MEMORY_FORMAT_SIZES,
) -> list[dict]:
    """Images/s of a plain training step, contiguous (NCHW) against channels-last (NHWC), paired per repetition.

    The table behind :func:`resnet_course.devices.use_channels_last`.
    """
    device = pick_device(device)
    rows = []
    for model_name, width, image_size in sizes:
        batch = synthetic_images(batch_size, image_size)
        trainers = {
            name: fresh_training_step(model_name, width, batch, device, memory_format)
            for memory_format, name in (
                (torch.contiguous_format, "contiguous"),
                (torch.channels_last, "channels_last"),
            )
        }
        samples = time_interleaved(
            trainers, steps=steps, repeats=repeats, warmup=2, batch_size=batch_size, device=device
        )
        rows.append(
            {
                "model": model_name,
                "width": width,
                "image_size": image_size,
                "batch_size": batch_size,
                "device": describe_device(device),
                "images_per_s": {
                    name: statistics.median(values) for name, values in samples.items()
                },
                "channels_last_speedup": statistics.median(
                    c / n for c, n in zip(samples["channels_last"], samples["contiguous"])
                ),
            }
        )
    return rows


def format_memory_format(rows: list[dict]) -> str:
    lines = [
        "Memory format, plain training step (images/s; speed-up = channels_last / contiguous, median of paired repeats):"
    ]
    for row in rows:
        speed = row["images_per_s"]
        lines.append(
            f"  {row['model']:<9} width {row['width']:<3} {row['image_size']}x{row['image_size']:<3} "
            f"contiguous {speed['contiguous']:8.1f}  channels_last {speed['channels_last']:8.1f}  "
            f"speed-up {row['channels_last_speedup']:.2f}"
        )
    return "\n".join(lines)
