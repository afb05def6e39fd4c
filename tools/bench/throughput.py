"""Training throughput: the course's network and loop against the reference and a tutorial pipeline."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from resnet_course.data import TensorData
from resnet_course.devices import describe_device, pick_device
from resnet_course.models import create_model, valid_cifar_depth
from resnet_course.train import TrainingRun, set_seed

from .reference import reference_cifar_resnet


def synchronize(device: torch.device) -> None:
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
    synchronize(device)
    names = list(trainers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repetition in range(repeats):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                trainers[name]()
            synchronize(device)
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
    depth = resnet_depth(model_name)
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
        test_every_epoch=False,
        progress=False,
        seed=seed,
    )
    loop_steps = iter(run)
    # The plain loops run with the same precision, memory format and CPU threads the course's loop
    # chose (the loop sets its thread count for as long as it is iterated, which covers them all).
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    memory_format = torch.channels_last if run.channels_last else torch.contiguous_format
    x = data.normalise(data.x_train[:batch_size]).to(device).contiguous(memory_format=memory_format)
    y = data.y_train[:batch_size].to(device)
    tutorial_model = create_model(model_name, width=width)
    tutorial_model.load_state_dict(loop_model.state_dict())
    trainers = {
        "reference": plain_training_step(
            reference.to(device, memory_format=memory_format), x, y, bf16=run.precision == "bf16"
        ),
        "course_network": plain_training_step(
            network_model.to(device, memory_format=memory_format),
            x,
            y,
            bf16=run.precision == "bf16",
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
        "threads": run.threads,
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


def resnet_depth(model_name: str) -> int:
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
