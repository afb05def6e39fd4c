"""The GPU preset's chapter times, estimated from measured throughput."""

from __future__ import annotations

from resnet_course.models import create_model
from resnet_course.presets import get_preset

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
