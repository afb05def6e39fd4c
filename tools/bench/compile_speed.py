"""Whether ``torch.compile`` pays at the presets' run lengths."""

from __future__ import annotations

import time

import torch

from resnet_course.devices import describe_device, pick_device

from .memory_format import fresh_training_step
from .throughput import synchronize, synthetic_images

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
    rows = []
    for model_name, width, image_size in sizes:
        memory_format = (
            torch.channels_last
            if use_channels_last(
                device.type,
                is_image=True,
                narrowest_channels=width,
                threads=torch.get_num_threads(),
            )
            else torch.contiguous_format
        )
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
            synchronize(device)
            first_step_s[mode] = time.perf_counter() - start
            step()  # the compiled backward may still finish compiling on the second step
            synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            synchronize(device)
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
