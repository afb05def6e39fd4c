"""Where and how a run computes: the device, the precision, the memory layout and the CPU threads.

Each choice was measured where it is not obvious; the measurements are in the docstrings.
"""

from __future__ import annotations

import contextlib

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple's MPS, then the CPU."""
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                "device='cuda' was asked for, but no CUDA GPU is available here; use device='cpu' or leave device unset."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device, *, threads: int | None = None) -> str:
    """The device in words; on a CPU with its thread count (``threads``, else torch's now)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        count = threads or torch.get_num_threads()
        return f"cpu ({count} thread{'' if count == 1 else 's'})"
    return str(device)


def choose_precision(requested: str, device_type: str, *, bf16_supported: bool) -> str:
    """The arithmetic a run uses: 'bf16', 'fp16' or 'fp32'.

    ``auto`` means bf16 autocast on a CUDA GPU that supports it (A100, H100, RTX 30xx
    and newer), fp16 autocast with a gradient scaler on one that does not (T4, V100:
    Colab's default GPU), and fp32 elsewhere (CPU autocast to bf16 is slower on most
    CPUs, and MPS autocast is still partial).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}.")
    if requested != "auto":
        if requested == "fp16" and device_type != "cuda":
            raise ValueError(
                "precision='fp16' needs a CUDA GPU (its gradient scaler is CUDA's); use 'fp32' or 'bf16' here."
            )
        return requested
    if device_type != "cuda":
        return "fp32"
    return "bf16" if bf16_supported else "fp16"


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


# Below this many channels in its narrowest convolution, a network trains faster in the default
# layout on a CPU (see use_channels_last).
CPU_CHANNELS_LAST_MIN_CHANNELS = 16


def narrowest_conv_channels(model: torch.nn.Module) -> int | None:
    """The fewest output channels of any 2-D convolution in ``model`` (None: it has none)."""
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return min(widths) if widths else None


def use_channels_last(
    device_type: str, *, is_image: bool, narrowest_channels: int | None, threads: int
) -> bool:
    """Whether image tensors are stored channels-last (NHWC) for a network on this kind of device.

    On CUDA always: it is what cuDNN's fastest convolutions expect. MPS keeps the default. On a
    CPU it depends on the network's narrowest convolution (``narrowest_channels``) and on how
    many ``threads`` torch computes on. Measured with a plain training step at batch 128 on an
    idle Intel Xeon (torch 2.14, ``python -m tools.bench --only machine,memory_format --steps 6
    --repeats 5``, recorded in ``results/bench/memory-format-cpu.json``): on 2 threads,
    channels-last ran 0.75x (ResNet-20) and 0.73x (ResNet-56) as fast as the default layout at
    width 8 on 16x16 images, and 1.29x and 1.23x at width 16 on 32x32. At width 8 it hardly
    gains from a second thread (ResNet-56: 117 ms a step on one, 111 ms on two, where the
    default layout went from 132 ms to 85 ms), so on one thread it stays the faster layout.
    """
    if not is_image or device_type not in ("cuda", "cpu"):
        return False
    if device_type == "cuda":
        return True
    wide = narrowest_channels is None or narrowest_channels >= CPU_CHANNELS_LAST_MIN_CHANNELS
    return wide or threads == 1


def autocast(device_type: str, precision: str):
    """The autocast context of ``precision`` ('fp32': none) on this kind of device."""
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type, dtype=dtype, enabled=precision != "fp32")


def cpu_threads(device_type: str, *, is_vectors: bool) -> int | None:
    """How many CPU threads a run trains on: one for the 2-D toys, else torch's own choice (None).

    A step of a toy MLP is too small to split between threads. Measured on 2 idle CPU cores
    (torch 2.14, a 16-layer MLP of width 32 on spirals, 300 steps at batch 128): 1.1 s on one
    thread against 1.5 s on two. On a busy machine every split operation also waits for the
    second thread: a step took 30 ms on one thread and 1.6 to 2.9 s on two. The sequence
    tasks' transformers are large enough to gain (2.0 s against 1.5 s for chapter 8's 4-block
    one, 120 steps), so they keep torch's choice, as image models do.
    """
    return 1 if device_type == "cpu" and is_vectors else None


@contextlib.contextmanager
def using_threads(count: int | None):
    """``torch.set_num_threads(count)`` for the block, and the previous count again after it."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
