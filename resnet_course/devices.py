"""Where and how a run computes: the device, the precision, the memory layout and the CPU threads.

Each choice was measured where it is not obvious; the measurements are in the docstrings.
"""

from __future__ import annotations

import contextlib
import platform
import re
from dataclasses import dataclass
from pathlib import Path

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


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(device: torch.device, *, threads: int | None = None) -> str:
    """The device in words; on a CPU with its thread count (``threads``, else torch's now)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        count = threads or torch.get_num_threads()
        return f"cpu ({count} thread{'' if count == 1 else 's'})"
    return str(device)


def device_words(device: str) -> str:
    """A recorded device (:func:`describe_device`'s words, or an older record's) in plain words:
    'cpu (1 thread)' and 'cpu (1 threads)' are 'one CPU thread', 'cuda (NVIDIA H100)' the GPU's name."""
    match = re.fullmatch(r"cpu \((\d+) threads?\)", device.strip())
    if match:
        count = int(match.group(1))
        return "one CPU thread" if count == 1 else f"{count} CPU threads"
    if device.startswith("cuda (") and device.endswith(")"):
        return device[len("cuda (") : -1]
    return device


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
    device_type: str, *, is_image: bool, narrowest_channels: int | None, threads: int | None
) -> bool:
    """Whether image tensors are stored channels-last (NHWC) for a network on this kind of device.

    On CUDA always: it is what cuDNN's fastest convolutions expect. MPS keeps the default. On a
    CPU it depends on how many ``threads`` torch computes on and, above one thread, on the
    network's narrowest convolution (``narrowest_channels``). The course's CPU runs train on one
    thread (:func:`cpu_threads`), and there channels-last is the faster layout on every CPU
    measured: a training step of ResNet-56 at width 8 on 16x16 images, batch 128, took 118-123 ms
    channels-last against 134 ms in the default layout on an Intel Xeon (torch 2.14, this
    repository's machine), and 123-130 ms against 143-179 ms on an AMD EPYC. Above one thread
    the default layout was faster at width 8 on an idle Xeon (channels-last 0.73-0.75x as fast;
    ``results/bench/memory-format-cpu.json``) and slower on an EPYC, so that case keeps the
    rule measured on the Xeon: channels-last from 16 channels up.
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


# A network with at most this many parameters trains on one CPU thread (see cpu_threads): every
# network of the course's CIFAR and toy experiments (ResNet-110 at width 16 has 1.7 million).
ONE_THREAD_MAX_PARAMETERS = 2_000_000


def cpu_threads(device_type: str, *, parameters: int) -> int | None:
    """How many CPU threads a run trains on: one for a small network, else torch's own count (None).

    The course's networks are too small to split between threads, and a second thread waits on
    the first whenever anything else runs on the machine. Measured on 2 cores (torch 2.14, a
    training step of ResNet-56 at width 8 on 16x16 images, batch 128): 118-123 ms on one thread on
    an idle Intel Xeon; on two threads, with one single-threaded process beside it at the lowest
    priority, 108 ms to 1,148 ms on an AMD EPYC, and 146-174 ms on the Xeon with a process that
    keeps one core half busy. A toy MLP step took 30 ms on one thread and 1.6-2.9 s on two on a
    busy machine. One thread is also how the archive's runs were made, so a chapter's run repeats
    its archived seed. Larger networks (chapter 9's ResNet-50 stage) keep torch's choice.
    """
    if device_type != "cpu":
        return None
    return 1 if parameters <= ONE_THREAD_MAX_PARAMETERS else None


@dataclass(frozen=True)
class Placement:
    """Where and how a run computes: everything about the machine that changes its numbers.

    The run cache keys a run by these fields (:meth:`key_fields`), so a run made on two threads
    is never read back as a one-thread run.
    """

    device: torch.device
    precision: str  # 'fp32', 'bf16' or 'fp16'
    channels_last: bool  # image tensors and weights stored NHWC
    threads: int | None  # CPU threads the run computes on (None off the CPU)

    def key_fields(self) -> dict:
        return {
            "device_type": self.device.type,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "threads": self.threads,
        }

    def describe(self) -> str:
        return describe_device(self.device, threads=self.threads)


def place(
    model: torch.nn.Module,
    *,
    is_image: bool,
    precision: str = "auto",
    channels_last: bool | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> Placement:
    """Where ``model`` trains and how: the device, the arithmetic, the layout and the CPU threads.

    ``precision`` and ``channels_last`` are the recipe's ('auto' and None: the measured choice);
    ``threads`` None means :func:`cpu_threads`' choice, resolved to a number on a CPU.
    """
    chosen = pick_device(device)
    on_cuda = chosen.type == "cuda"
    if chosen.type == "cpu":
        parameters = sum(p.numel() for p in model.parameters())
        threads = threads or cpu_threads("cpu", parameters=parameters) or torch.get_num_threads()
    else:
        threads = None
    layout = (
        use_channels_last(
            chosen.type,
            is_image=True,
            narrowest_channels=narrowest_conv_channels(model),
            threads=threads,
        )
        if channels_last is None
        else channels_last
    )
    return Placement(
        device=chosen,
        precision=choose_precision(
            precision, chosen.type, bf16_supported=on_cuda and torch.cuda.is_bf16_supported()
        ),
        channels_last=is_image and layout,
        threads=threads,
    )


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
