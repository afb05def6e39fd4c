"""Speed measurements: training throughput against a reference ResNet, chapter and book wall times, the degradation clock.

``python -m tools.bench`` (also ``python -m resnet_course bench`` in a clone) measures, in one run,
and prints:

* **machine**: CPU model, cores, torch and torchvision versions, the device, the load average
  (a busy machine slows every figure below; the load says how busy it was).
* **throughput**: training images/s of the course's CIFAR ResNet-20 and ResNet-56 against
  :class:`ReferenceResNet`, the same network written the way torchvision writes ``resnet.py``.
  Three trainers run interleaved on identical sizes, each with the same SGD step
  (momentum 0.9, weight decay 1e-4, foreach on the CPU, fused on CUDA):

  - *reference*: the reference network in a plain loop (forward, loss, backward, step) on
    a batch made beforehand;
  - *course network*: the course's network in that same plain loop, so the ratio
    compares the networks and nothing else;
  - *course loop*: the course's network trained by :class:`~resnet_course.train.TrainingRun`
    (``fit``'s loop), which also slices, augments and normalises every batch and reads the
    loss, so the ratio is what a reader of the course gets.

  Warm-up steps are excluded; every repetition times ``--steps`` steps of each trainer in
  turn (the order rotates), and a ratio is the median over repetitions of the course's
  images/s divided by the reference's in the same repetition, so load that drifts during
  the run affects both sides alike.
  A fourth trainer, *tutorial*, is the usual tutorial pipeline (a ``Dataset`` with torchvision
  transforms and a ``DataLoader``); ``fit / tutorial`` is paired the same way.
* **chapters**: the wall time of every ``chapters/*.ipynb`` executed with nbclient under each
  preset of ``--chapter-presets`` (default ``cpu``, the preset that also builds the book),
  one after another from an empty run cache, as on a fresh machine, and their sum, the whole
  book (takes minutes; ``--no-chapters`` skips it).
* **degradation**: chapter 1's experiment, plain-20 and plain-56 trained with the preset's
  settings, one step of each in turn. Plain-56 is *behind* at step ``s`` when the mean of
  its last ``--window`` step losses is above plain-20's at the same step. The clock reports
  the first step from which plain-56 stays behind until the end of training, and the
  seconds both networks together had trained by then (data loading excluded).

``--only throughput,machine`` picks parts, ``--json PATH`` saves every figure.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from resnet_course.data import DataUnavailableError, TensorData, load_cifar10
from resnet_course.devices import describe_device, pick_device
from resnet_course.models import create_model, valid_cifar_depth
from resnet_course.plots import running_mean
from resnet_course.presets import get_preset
from resnet_course.train import TrainingRun, set_seed

PARTS = (
    "machine",
    "memory_format",
    "compile",
    "throughput",
    "chapters",
    "gpu_estimate",
    "degradation",
)
# compile is asked for by name (--only machine,compile): it compiles two networks, a minute or more on a CPU.
DEFAULT_PARTS = tuple(part for part in PARTS if part != "compile")
GOALS = {
    "throughput_ratio": 0.95,
    "tutorial_ratio": 1.3,
    # The cpu preset builds the published book too: the whole book within 25 minutes and every
    # chapter within 10, on 2 cores.
    "book_seconds": 1500.0,
    "chapter_seconds": 600.0,
    "degradation_seconds": 60.0,
}


# --- the reference: a CIFAR ResNet written the way torchvision writes resnet.py ----------------
# Deliberately plain: no shape checks, no options, `_make_layer` mutating `self.inplanes`.
# Parameter names equal the course's, so `reference.load_state_dict(course.state_dict())` works.


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class ShortcutA(nn.Module):
    """Option A: subsample, then append zero channels (as fb.resnet.torch's shortcutType 'A')."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra_channels))


class ReferenceBasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)

        return out


class ReferenceResNet(nn.Module):
    def __init__(
        self, block: type[nn.Module], layers: list[int], num_classes: int = 10, width: int = 16
    ):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = ShortcutA(stride, planes * block.expansion - self.inplanes)

        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))

        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)

        return x


def reference_cifar_resnet(
    depth: int, *, width: int = 16, num_classes: int = 10
) -> ReferenceResNet:
    """The reference ResNet-``depth`` for CIFAR (6n+2 layers: n basic blocks per stage)."""
    if not valid_cifar_depth(depth):
        raise ValueError(f"depth {depth} is not 6n+2 (20, 32, 44, 56, 110, ...).")
    n = (depth - 2) // 6
    return ReferenceResNet(ReferenceBasicBlock, [n, n, n], num_classes=num_classes, width=width)


# --- the machine -------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_machine(device: torch.device) -> dict:
    """What the figures were measured on; the load average says how busy the machine was."""
    import torchvision

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": describe_device(device),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def format_machine(machine: dict) -> str:
    load = machine["load_average"]
    load_text = (
        f", load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)" if load else ""
    )
    return (
        f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores ({machine['usable_cores']} usable), "
        f"torch {machine['torch']} with {machine['torch_threads']} threads, torchvision {machine['torchvision']}, "
        f"Python {machine['python']}, device {machine['device']}{load_text}"
    )


# --- throughput --------------------------------------------------------------------------------


def _synchronize(device: torch.device) -> None:
    # GPU work is queued; the clock may only be read once the queue has drained.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def synthetic_images(count: int, image_size: int, *, seed: int = 0) -> TensorData:
    """Random uint8 images and labels: speed does not depend on what the pixels show."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(
        0, 256, (count, 3, image_size, image_size), dtype=torch.uint8, generator=generator
    )
    y = torch.randint(0, 10, (count,), generator=generator)
    return TensorData(
        x,
        y,
        x[:1],
        y[:1],
        classes=tuple(str(i) for i in range(10)),
        name="synthetic",
        source="random",
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


def plain_training_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, bf16: bool
) -> Callable[[], None]:
    """One SGD step on a fixed batch, written the usual way: the loop the reference would be trained with."""
    cuda = x.device.type == "cuda"
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        **({"fused": True} if cuda else {"foreach": True}),
    )
    model.train()

    def step() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def tutorial_training_step(
    model: nn.Module, data: TensorData, *, batch_size: int, device: torch.device
) -> Callable[[], None]:
    """The usual tutorial pipeline: a ``Dataset`` of PIL images with torchvision transforms and a ``DataLoader``.

    Per image: crop with 4-pixel padding, flip, ``ToTensor``, ``Normalize``; then batches of
    ``batch_size`` from a shuffling ``DataLoader`` with ``num_workers=0`` (on 2 cores, worker
    processes compete with the compute threads and were slower still). The model keeps
    PyTorch's default memory format, as tutorials do.
    """
    from PIL import Image
    from torchvision import transforms

    images = data.x_train.permute(0, 2, 3, 1).numpy()  # HWC uint8, as CIFAR10 hands them over
    labels = data.y_train.tolist()
    size = images.shape[1]
    transform = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=max(1, round(4 * size / 32))),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data.mean, data.std),
        ]
    )

    class TutorialDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, index: int):
            return transform(Image.fromarray(images[index])), labels[index]

    loader = torch.utils.data.DataLoader(
        TutorialDataset(), batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True
    )
    cuda = device.type == "cuda"
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        **({"fused": True} if cuda else {"foreach": True}),
    )
    model.train()
    batches = iter(())

    def step() -> None:
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def time_interleaved(
    trainers: dict[str, Callable[[], object]],
    *,
    steps: int,
    repeats: int,
    warmup: int,
    batch_size: int,
    device: torch.device,
) -> dict[str, list[float]]:
    """Images/s of each trainer in each repetition; the trainers take turns, in a rotating order."""
    for train_step in trainers.values():
        for _ in range(warmup):
            train_step()
    _synchronize(device)
    names = list(trainers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repetition in range(repeats):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            _synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                trainers[name]()
            _synchronize(device)
            samples[name].append(steps * batch_size / (time.perf_counter() - start))
    return samples


def measure_throughput(
    model_name: str,
    *,
    image_size: int,
    width: int,
    batch_size: int,
    steps: int = 3,
    repeats: int = 5,
    warmup: int = 2,
    device: str | torch.device | None = "cpu",
    seed: int = 0,
) -> dict:
    """Training images/s of the course's ``model_name`` (a CIFAR ``resnetN``) against the reference."""
    depth = _resnet_depth(model_name)
    if min(steps, repeats) < 1 or warmup < 0:
        raise ValueError(
            f"steps and repeats must be at least 1 and warmup at least 0, got {steps}, {repeats}, {warmup}."
        )
    device = pick_device(device)
    data = synthetic_images(batch_size * (warmup + steps * repeats + 1), image_size, seed=seed)

    set_seed(seed)
    loop_model = create_model(model_name, width=width)
    network_model = create_model(model_name, width=width)
    reference = reference_cifar_resnet(depth, width=width)
    # Identical starting weights, so all three do the same arithmetic.
    network_model.load_state_dict(loop_model.state_dict())
    reference.load_state_dict(loop_model.state_dict())

    # The course's loop, on one long epoch (no epoch ends or test passes inside the measurement).
    run = TrainingRun(
        loop_model,
        data,
        epochs=1,
        batch_size=batch_size,
        schedule="constant",
        device=device,
        evaluate=False,
        progress=False,
        seed=seed,
    )
    loop_steps = iter(run)
    # The plain loops run with the same precision and memory format the course's loop chose.
    memory_format = torch.channels_last if run.channels_last else torch.contiguous_format
    x = data.normalise(data.x_train[:batch_size]).to(device).contiguous(memory_format=memory_format)
    y = data.y_train[:batch_size].to(device)
    tutorial_model = create_model(model_name, width=width)
    tutorial_model.load_state_dict(loop_model.state_dict())
    trainers = {
        "reference": plain_training_step(
            reference.to(device, memory_format=memory_format), x, y, bf16=run.use_bf16
        ),
        "course_network": plain_training_step(
            network_model.to(device, memory_format=memory_format), x, y, bf16=run.use_bf16
        ),
        "course_loop": lambda: next(loop_steps),
        "tutorial": tutorial_training_step(
            tutorial_model.to(device), data, batch_size=batch_size, device=device
        ),
    }
    samples = time_interleaved(
        trainers, steps=steps, repeats=repeats, warmup=warmup, batch_size=batch_size, device=device
    )

    def paired_ratio(name: str) -> float:
        return statistics.median(c / r for c, r in zip(samples[name], samples["reference"]))

    return {
        "model": model_name,
        "device": describe_device(device),
        "precision": run.history.precision,
        "channels_last": run.channels_last,
        "image_size": image_size,
        "width": width,
        "batch_size": batch_size,
        "steps": steps,
        "repeats": repeats,
        "warmup": warmup,
        "parameters": sum(p.numel() for p in reference.parameters()),
        "images_per_s": {name: statistics.median(values) for name, values in samples.items()},
        "samples_images_per_s": samples,
        "ratio_network": paired_ratio("course_network"),
        "ratio_loop": paired_ratio("course_loop"),
        # fit against the usual tutorial pipeline, paired the same way.
        "ratio_loop_vs_tutorial": statistics.median(
            c / t for c, t in zip(samples["course_loop"], samples["tutorial"])
        ),
        # On a busy machine other work only ever slows a repetition down, so the fastest
        # repetitions are a second, less noisy view of the same comparison.
        "best_images_per_s": {name: max(values) for name, values in samples.items()},
        "ratio_network_best": max(samples["course_network"]) / max(samples["reference"]),
        "ratio_loop_best": max(samples["course_loop"]) / max(samples["reference"]),
    }


def _resnet_depth(model_name: str) -> int:
    digits = model_name.removeprefix("resnet")
    if not (
        model_name.startswith("resnet") and digits.isdigit() and valid_cifar_depth(int(digits))
    ):
        raise ValueError(
            f"the throughput benchmark compares CIFAR ResNets (resnet20, resnet32, resnet44, resnet56, resnet110), not {model_name!r}."
        )
    return int(digits)


def format_throughput(results: list[dict]) -> str:
    if not results:
        return "Throughput: no model measured."
    first = results[0]
    lines = [
        f"Throughput on {first['device']} ({first['precision']}), batch {first['batch_size']}, "
        f"{first['image_size']}x{first['image_size']} images, width {first['width']}: median of {first['repeats']} "
        f"repetitions of {first['steps']} steps after {first['warmup']} warm-up steps, channels_last "
        f"{'on' if first['channels_last'] else 'off'} (images/s; ratio = course / reference, and fit / tutorial pipeline)",
        f"  {'model':<10} {'reference':>10} {'course network':>15} {'ratio':>6} {'course loop (fit)':>18} {'ratio':>6} "
        f"{'tutorial':>9} {'fit/tutorial':>12}",
    ]
    for result in results:
        speed = result["images_per_s"]
        lines.append(
            f"  {result['model']:<10} {speed['reference']:>10.1f} {speed['course_network']:>15.1f} {result['ratio_network']:>6.3f} "
            f"{speed['course_loop']:>18.1f} {result['ratio_loop']:>6.3f} {speed['tutorial']:>9.1f} {result['ratio_loop_vs_tutorial']:>12.3f}"
        )
    return "\n".join(lines)


# --- memory format ------------------------------------------------------------------------------

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


COMPILE_SIZES = (("resnet20", 8, 16), ("resnet20", 16, 32))


def measure_compile(
    *,
    device: str | torch.device | None = "cpu",
    batch_size: int = 128,
    steps: int = 10,
    sizes=COMPILE_SIZES,
) -> list[dict]:
    """``torch.compile`` against eager: its one-off compile time, its time per training step, and the
    run length from which it pays, set against each preset's comparison length on this kind of device.

    The first step of each is timed on its own (for the compiled model it includes compiling the
    forward and backward graphs); ``compile_seconds`` is how much longer the compiled first step
    took. A compiled model pays from ``break_even_steps = compile_seconds / (eager step - compiled
    step)``: the table behind :func:`resnet_course.train.use_compile`.
    """
    from resnet_course.devices import use_channels_last
    from resnet_course.presets import PRESETS

    device = pick_device(device)
    memory_format = (
        torch.channels_last
        if use_channels_last(device.type, is_image=True)
        else torch.contiguous_format
    )
    rows = []
    for model_name, width, image_size in sizes:
        batch = synthetic_images(batch_size, image_size)
        first_step_s, step_s = {}, {}
        for mode in ("eager", "compiled"):
            torch._dynamo.reset()  # no graph compiled for an earlier size may be reused
            step = fresh_training_step(
                model_name,
                width,
                batch,
                device,
                memory_format,
                wrap=torch.compile if mode == "compiled" else None,
            )
            start = time.perf_counter()
            step()
            _synchronize(device)
            first_step_s[mode] = time.perf_counter() - start
            step()  # the compiled backward may still finish compiling on the second step
            _synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            _synchronize(device)
            step_s[mode] = (time.perf_counter() - start) / steps
        preset_steps = {
            name: preset.training.steps
            for name, preset in PRESETS.items()
            if (name == "gpu") == (device.type == "cuda")
        }
        rows.append(
            {
                "model": model_name,
                "width": width,
                "image_size": image_size,
                "batch_size": batch_size,
                "device": describe_device(device),
                "steps_timed": steps,
                **compile_verdict(
                    first_step_s["compiled"] - first_step_s["eager"],
                    step_s["eager"],
                    step_s["compiled"],
                    preset_steps,
                ),
            }
        )
    return rows


def compile_verdict(
    compile_seconds: float, eager_step_s: float, compiled_step_s: float, preset_steps: dict
) -> dict:
    """From which run length compiling pays, and whether it does at each preset's number of steps."""
    saving_s = eager_step_s - compiled_step_s
    break_even = compile_seconds / saving_s if saving_s > 0 else None
    return {
        "eager_step_s": eager_step_s,
        "compiled_step_s": compiled_step_s,
        "compiled_speedup": eager_step_s / compiled_step_s,
        "compile_seconds": compile_seconds,
        "break_even_steps": break_even,
        "preset_steps": preset_steps,
        "compile_pays_at": {
            name: break_even is not None and n > break_even for name, n in preset_steps.items()
        },
    }


def format_compile(rows: list[dict]) -> str:
    lines = [
        "torch.compile against eager, plain training step (seconds; pays from = compile time / time saved per step):"
    ]
    for row in rows:
        pays = (
            "never (not faster per step)"
            if row["break_even_steps"] is None
            else f"{row['break_even_steps']:,.0f} steps"
        )
        presets = ", ".join(
            f"{name} ({n:,} steps): {'pays' if row['compile_pays_at'][name] else 'does not pay'}"
            for name, n in row["preset_steps"].items()
        )
        lines.append(
            f"  {row['model']:<9} width {row['width']:<3} {row['image_size']}x{row['image_size']:<3} "
            f"eager {row['eager_step_s']:.3f} s/step  compiled {row['compiled_step_s']:.3f} s/step "
            f"(x{row['compiled_speedup']:.2f})  compile {row['compile_seconds']:.0f} s  pays from {pays}; {presets}"
        )
    return "\n".join(lines)


# --- chapters and the whole book ---------------------------------------------------------------


def default_notebooks() -> list[Path]:
    """``chapters/*.ipynb`` of the repository this tool is in, else of the working directory."""
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        found = sorted((root / "chapters").glob("*.ipynb"))
        if found:
            return found
    return []


def time_notebooks(
    paths: list[Path], *, preset: str = "cpu", timeout: int = 1800, kernel_name: str | None = None
) -> dict:
    """Execute each notebook with nbclient, one after another, and time it (kernel start included).

    The chapters share one empty run cache, as on a fresh machine: a later chapter reads back
    the runs an earlier one made (chapter 2 those of chapter 1), but nothing from before.
    """
    import tempfile

    import nbformat
    from nbclient import NotebookClient

    results = []
    saved = {name: os.environ.get(name) for name in ("RESNET_COURSE_PRESET", "RESNET_COURSE_CACHE")}
    fresh_cache = tempfile.TemporaryDirectory(prefix="bench-run-cache-")
    data_cache = Path(saved["RESNET_COURSE_CACHE"] or Path.home() / ".cache" / "resnet_course")
    # The downloaded CIFAR-10 is kept (a link into the fresh cache); only the runs start empty.
    if (data_cache / "cifar-10-batches-py").is_dir():
        os.symlink(
            data_cache / "cifar-10-batches-py", Path(fresh_cache.name) / "cifar-10-batches-py"
        )
    os.environ["RESNET_COURSE_PRESET"] = preset  # kernels inherit this process's environment
    os.environ["RESNET_COURSE_CACHE"] = fresh_cache.name
    try:
        for path in paths:
            notebook = nbformat.read(path, as_version=4)
            options = {"kernel_name": kernel_name} if kernel_name else {}
            client = NotebookClient(
                notebook,
                timeout=timeout,
                resources={"metadata": {"path": str(Path(path).parent)}},
                **options,
            )
            start = time.perf_counter()
            error = None
            try:
                client.execute()
            except (
                Exception
            ) as failure:  # a failing cell, a timeout, a dead kernel: record it, time the rest
                error = f"{type(failure).__name__}: {str(failure).strip().splitlines()[-1] if str(failure).strip() else ''}"
            results.append(
                {
                    "notebook": str(path),
                    "seconds": time.perf_counter() - start,
                    "ok": error is None,
                    "error": error,
                }
            )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        fresh_cache.cleanup()
    return {
        "preset": preset,
        "notebooks": results,
        "total_seconds": sum(r["seconds"] for r in results),
        "all_ok": all(r["ok"] for r in results),
    }


def format_chapters(chapters: dict) -> str:
    if not chapters["notebooks"]:
        return "Chapters: no chapters/*.ipynb found."
    budget = get_preset(chapters["preset"]).budget
    lines = [
        f"Chapters executed with the '{chapters['preset']}' preset ({budget}), one after another, from an empty "
        "run cache (seconds, kernel start included):"
    ]
    for entry in chapters["notebooks"]:
        state = "" if entry["ok"] else f"  FAILED: {entry['error']}"
        lines.append(f"  {Path(entry['notebook']).name:<40} {entry['seconds']:8.1f}{state}")
    lines.append(f"  {'whole book':<40} {chapters['total_seconds']:8.1f}")
    return "\n".join(lines)


# --- the GPU preset, estimated ------------------------------------------------------------------

# What a T4 sustains on CIFAR ResNets in fp16 autocast, in multiply-accumulates per second of
# training arithmetic. An ASSUMPTION, not a measurement made here: about 2.3% of the T4's
# 32.5 TMAC/s fp16 tensor-core peak, i.e. ResNet-56 at about 25 s per epoch of 50,000 images
# (small convolutions of 16-64 channels keep tensor cores and memory bandwidth poorly used).
# Replace it with a measured figure when a T4 is at hand.
T4_ASSUMED_MACS_PER_S = 0.75e12
# The chapters whose runs dominate their time at the gpu preset, and the networks each trains
# with the preset's recipe (chapter 2 reads chapter 1's plain runs back from the run cache when
# run after it; run alone it trains all four).
GPU_CHAPTER_RUNS = {
    "01_degradation": ("plain20", "plain56"),
    "02_residual_block": ("plain20", "plain56", "resnet20", "resnet56"),
}


def estimate_gpu_seconds(
    preset_name: str = "gpu", *, macs_per_s: float = T4_ASSUMED_MACS_PER_S
) -> dict:
    """Seconds of training arithmetic per chapter at ``preset_name`` on a T4: an estimate, labelled so.

    A training step costs about three forward passes (forward, and backward through activations
    and weights); its multiply-adds are counted exactly by :func:`~resnet_course.analysis.count_macs`.
    """
    from resnet_course.analysis import count_macs

    preset = get_preset(preset_name)
    images = preset.training.steps * preset.training.batch_size
    size = (1, 3, preset.image_size, preset.image_size)
    per_model = {
        name: 3 * count_macs(create_model(name, width=preset.width), size) * images / macs_per_s
        for name in {m for models in GPU_CHAPTER_RUNS.values() for m in models}
    }
    return {
        "kind": "estimate",
        "preset": preset.name,
        "assumed_macs_per_s": macs_per_s,
        "images_per_run": images,
        "seconds_per_run": per_model,
        "chapters": {
            chapter: sum(per_model[m] for m in models)
            for chapter, models in GPU_CHAPTER_RUNS.items()
        },
    }


def format_gpu_estimate(estimate: dict) -> str:
    lines = [
        f"GPU preset '{estimate['preset']}' on a T4, ESTIMATED (not measured): training arithmetic only, at an assumed "
        f"{estimate['assumed_macs_per_s'] / 1e12:.2f} TMAC/s, {estimate['images_per_run']:,} images per run"
    ]
    for chapter, seconds in estimate["chapters"].items():
        lines.append(f"  {chapter:<40} {seconds:8.0f} s (estimate)")
    return "\n".join(lines)


# --- the degradation clock ---------------------------------------------------------------------


def first_step_behind(ahead_losses, behind_losses, *, window: int) -> int | None:
    """The first step (1-based) from which ``behind_losses``' running mean stays above ``ahead_losses``' to the end."""
    n = min(len(ahead_losses), len(behind_losses))
    if n == 0:
        return None
    behind = running_mean(behind_losses[:n], window) > running_mean(ahead_losses[:n], window)
    if not behind[-1]:
        return None
    not_behind = np.flatnonzero(~behind)
    return int(not_behind[-1]) + 2 if len(not_behind) else 1


def degradation_clock(
    data: TensorData,
    *,
    width: int,
    batch_size: int,
    epochs: float,
    window: int = 10,
    device: str | torch.device | None = "cpu",
    seed: int = 0,
) -> dict:
    """Train plain-20 and plain-56 one step each in turn, and time until plain-56 stays behind."""
    runs = {}
    for name in ("plain20", "plain56"):
        set_seed(seed)
        runs[name] = TrainingRun(
            create_model(name, width=width),
            data,
            epochs=epochs,
            batch_size=batch_size,
            device=device,
            log_every=1,
            progress=False,
            label=name,
            seed=seed,
        )
    steps = {name: iter(run) for name, run in runs.items()}
    elapsed, clock = 0.0, []  # clock[s - 1]: seconds both networks took to train s steps each
    while steps:
        for name in list(steps):
            start = time.perf_counter()
            try:
                next(steps[name])
            except StopIteration:  # the last epoch's summary and test pass run here
                del steps[name]
            elapsed += time.perf_counter() - start
        if steps:
            clock.append(elapsed)
    losses = {name: run.history.step_loss for name, run in runs.items()}
    step = first_step_behind(losses["plain20"], losses["plain56"], window=window)
    return {
        "definition": (
            f"plain-56 is behind at step s when the mean of its last {window} step losses is above plain-20's at step s; "
            "behind_from_step is the first step from which it stays behind to the end of training, and seconds_to_behind "
            "the time both networks, trained one step each in turn, took to reach it (data loading excluded)"
        ),
        "data": repr(data).split(", from ")[0] + ")",  # no machine path in a record
        "width": width,
        "batch_size": batch_size,
        "epochs": epochs,
        "window": window,
        "device": runs["plain20"].history.device,
        "total_steps": len(clock),
        "total_seconds": elapsed,
        "behind_from_step": step,
        "seconds_to_behind": clock[step - 1] if step is not None else None,
        "final_running_loss": {
            name: float(running_mean(values, window)[-1])
            for name, values in losses.items()
            if values
        },
        "final_epoch_train_loss": {
            name: run.history.train_loss[-1] for name, run in runs.items() if run.history.train_loss
        },
        "final_test_acc": {
            name: run.history.test_acc[-1] for name, run in runs.items() if run.history.test_acc
        },
    }


def format_degradation(result: dict) -> str:
    losses = ", ".join(
        f"{name} {value:.3f}" for name, value in result["final_running_loss"].items()
    )
    if result["behind_from_step"] is None:
        verdict = f"plain-56 is NOT behind plain-20 at the end of training (final running losses: {losses})"
    else:
        verdict = (
            f"plain-56 behind plain-20 from step {result['behind_from_step']} of {result['total_steps']} on, "
            f"after {result['seconds_to_behind']:.1f} s (final running losses: {losses})"
        )
    return (
        f"Degradation clock ({result['data']}, width {result['width']}, batch {result['batch_size']}, "
        f"{result['epochs']:g} epochs, on {result['device']}): {verdict}; both runs took {result['total_seconds']:.1f} s.\n"
        f"  ({result['definition']}.)"
    )


# --- the command -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_PARTS),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all but compile)",
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out")
    parser.add_argument(
        "--no-chapters",
        action="store_true",
        help="leave out executing the chapters (it takes minutes)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write every figure to this JSON file"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="device for throughput and degradation (default cpu; 'auto' picks CUDA, MPS, CPU)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's choice, one per core)"
    )
    parser.add_argument(
        "--preset",
        help="preset whose sizes are used (default: $RESNET_COURSE_PRESET, else by device)",
    )
    parser.add_argument("--image-size", type=int, help="override the preset's image size")
    parser.add_argument("--width", type=int, help="override the preset's network width")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument(
        "--models", default="resnet20,resnet56", help="CIFAR ResNets whose throughput is measured"
    )
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per repetition")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repetitions (the median is reported)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--notebooks", help="glob of notebooks to time (default: chapters/*.ipynb)")
    parser.add_argument(
        "--chapter-presets",
        default="cpu",
        help="comma-separated presets the chapters are executed with, "
        "each from an empty run cache (default cpu, the preset that builds the book)",
    )
    parser.add_argument(
        "--timeout", type=int, default=1800, help="seconds one notebook cell may take"
    )
    parser.add_argument(
        "--epochs", type=float, help="override the preset's epochs in the degradation clock"
    )
    parser.add_argument(
        "--train-size",
        type=int,
        help="override the preset's training images in the degradation clock",
    )
    parser.add_argument(
        "--test-size", type=int, help="override the preset's test images in the degradation clock"
    )
    parser.add_argument(
        "--window", type=int, default=10, help="steps averaged when comparing the two losses"
    )


def _parts(args: argparse.Namespace) -> list[str]:
    chosen = [part.strip() for part in args.only.split(",") if part.strip()]
    skipped = {part.strip() for part in args.skip.split(",") if part.strip()} | (
        {"chapters"} if args.no_chapters else set()
    )
    unknown = sorted((set(chosen) | skipped) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}.")
    return [part for part in PARTS if part in chosen and part not in skipped]


def goals(report: dict) -> list[str]:
    """One line per budget of the design: met or missed, with the figure."""
    lines = []
    for result in report.get("throughput", []):
        for kind in ("network", "loop"):
            ratio = result[f"ratio_{kind}"]
            met = "met" if ratio >= GOALS["throughput_ratio"] else "MISSED"
            lines.append(
                f"{result['model']} throughput ratio ({kind}) {ratio:.3f} >= {GOALS['throughput_ratio']}: {met}"
            )
        if "ratio_loop_vs_tutorial" in result:
            ratio = result["ratio_loop_vs_tutorial"]
            met = "met" if ratio >= GOALS["tutorial_ratio"] else "MISSED"
            lines.append(
                f"{result['model']} fit against the tutorial pipeline {ratio:.3f} >= {GOALS['tutorial_ratio']}: {met}"
            )
    for preset_name, chapters in report.get("chapters_by_preset", {}).items():
        if not chapters["notebooks"]:
            continue
        if preset_name == "cpu":
            total = chapters["total_seconds"]
            met = "met" if total <= GOALS["book_seconds"] and chapters["all_ok"] else "MISSED"
            lines.append(
                f"whole book at the cpu preset {total:.0f} s <= {GOALS['book_seconds']:.0f} s, every chapter ran: {met}"
            )
            slowest = max(chapters["notebooks"], key=lambda entry: entry["seconds"])
            met = (
                "met"
                if slowest["seconds"] <= GOALS["chapter_seconds"] and chapters["all_ok"]
                else "MISSED"
            )
            lines.append(
                f"slowest chapter at the cpu preset ({Path(slowest['notebook']).name}) {slowest['seconds']:.0f} s "
                f"<= {GOALS['chapter_seconds']:.0f} s, every chapter ran: {met}"
            )
    clock = report.get("degradation")
    if clock and "error" not in clock:
        seconds = clock["seconds_to_behind"]
        met = "met" if seconds is not None and seconds <= GOALS["degradation_seconds"] else "MISSED"
        shown = "never" if seconds is None else f"{seconds:.1f} s"
        lines.append(
            f"plain-56 behind plain-20 after {shown} <= {GOALS['degradation_seconds']:.0f} s: {met}"
        )
    return lines


def main(args: argparse.Namespace) -> int:
    try:
        parts = _parts(args)
        for name in args.models.split(","):
            if name.strip():
                _resnet_depth(name.strip())
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(None if args.device == "auto" else args.device)
    preset = get_preset(args.preset)
    image_size = args.image_size or preset.image_size
    width = args.width or preset.width
    batch_size = args.batch_size or preset.training.batch_size
    report: dict = {"parts": parts, "preset": preset.name}

    if "machine" in parts:
        report["machine"] = describe_machine(device)
        print(format_machine(report["machine"]), flush=True)

    if "memory_format" in parts:
        # The preset-sized table by default; the sizes asked for when --image-size or --width is given.
        sizes = (
            MEMORY_FORMAT_SIZES
            if not (args.image_size or args.width)
            else tuple((m.strip(), width, image_size) for m in args.models.split(",") if m.strip())
        )
        report["memory_format"] = measure_memory_format(
            device=device,
            batch_size=batch_size,
            sizes=sizes,
            steps=args.steps,
            repeats=args.repeats,
        )
        print(format_memory_format(report["memory_format"]), flush=True)

    if "compile" in parts:
        sizes = (
            COMPILE_SIZES
            if not (args.image_size or args.width)
            else tuple((m.strip(), width, image_size) for m in args.models.split(",") if m.strip())
        )
        report["compile"] = measure_compile(device=device, batch_size=batch_size, sizes=sizes)
        print(format_compile(report["compile"]), flush=True)

    if "throughput" in parts:
        report["throughput"] = []
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            report["throughput"].append(
                measure_throughput(
                    name,
                    image_size=image_size,
                    width=width,
                    batch_size=batch_size,
                    steps=args.steps,
                    repeats=args.repeats,
                    warmup=args.warmup,
                    device=device,
                )
            )
        print(format_throughput(report["throughput"]), flush=True)

    if "chapters" in parts:
        paths = (
            sorted(Path(p) for p in glob.glob(args.notebooks))
            if args.notebooks
            else default_notebooks()
        )
        report["chapters_by_preset"] = {}
        for preset_name in [p.strip() for p in args.chapter_presets.split(",") if p.strip()]:
            timed = time_notebooks(paths, preset=get_preset(preset_name).name, timeout=args.timeout)
            report["chapters_by_preset"][timed["preset"]] = timed
            print(format_chapters(timed), flush=True)
        report["chapters"] = next(iter(report["chapters_by_preset"].values()))

    if "gpu_estimate" in parts:
        report["gpu_estimate"] = estimate_gpu_seconds()
        print(format_gpu_estimate(report["gpu_estimate"]), flush=True)

    if "degradation" in parts:
        try:
            data = load_cifar10(
                image_size=image_size,
                train_size=args.train_size or preset.train_size,
                test_size=args.test_size or preset.test_size,
            )
        except DataUnavailableError as error:
            report["degradation"] = {"error": str(error)}
            print(f"Degradation clock: skipped, no CIFAR-10 ({error})", flush=True)
        else:
            report["degradation"] = degradation_clock(
                data,
                width=width,
                batch_size=batch_size,
                epochs=args.epochs or preset.epochs,
                window=args.window,
                device=device,
            )
            print(format_degradation(report["degradation"]), flush=True)

    report["goals"] = goals(report)
    if report["goals"]:
        print("Goals:\n" + "\n".join(f"  {line}" for line in report["goals"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``python -m tools.bench ARGS``; ``python -m resnet_course bench ARGS`` calls :func:`main` alike."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
