"""The machine a measurement ran on: CPU, cores, versions, device, load."""

from __future__ import annotations

import os
import platform

import torch

from resnet_course.devices import cpu_model, describe_device


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
