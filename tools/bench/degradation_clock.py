"""The degradation clock: when plain-56 falls behind plain-20 for good, in steps and seconds."""

from __future__ import annotations

import time

import numpy as np
import torch

from resnet_course.data import TensorData
from resnet_course.models import create_model
from resnet_course.plots import running_mean
from resnet_course.train import TrainingRun, set_seed


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
        "data": data.description,
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
