"""Does a page's own run repeat its archived seed?

A chapter trains seed 0 of the archive's own recipe, the way the archive was made (one CPU
thread, channels-last: :func:`resnet_course.devices.place`). On the kind of machine that made
the archive (the same CPU model, torch version, threads and data) it must repeat the archived
run exactly, epoch by epoch. On any other machine arithmetic differs in its last bits and a run
drifts, so its final training error must lie inside the archived seeds' range, widened by
:data:`BAND_MARGIN_POINTS`. :func:`check_seed` says which case applies and whether it held;
:meth:`SeedCheck.words` says it in a sentence for the page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import TensorData
from .devices import cpu_model
from .evidence import results_dir
from .train import History

# Elsewhere, a live run may land this many points outside the archived seeds' range and still count as
# the same experiment: the seeds' range is five draws, not the whole distribution.
BAND_MARGIN_POINTS = 1.0
# The history fields a replay compares, epoch by epoch (those the archive keeps).
COMPARED = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")


def archived_run(config: str, model: str, seed: int, *, folder: Path | None = None) -> dict | None:
    """The scale study's record of ``model``'s ``seed`` in ``config``, or None where it is absent."""
    results = results_dir(folder)
    if results is None:
        return None
    path = results / "scale-study" / "runs" / config / f"{model}-seed{seed}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def archived_errors(config: str, model: str, *, folder: Path | None = None) -> dict[int, float]:
    """Every archived seed's final training error (%) of ``model`` in ``config``, by seed."""
    results = results_dir(folder)
    if results is None:
        return {}
    errors = {}
    for path in sorted((results / "scale-study" / "runs" / config).glob(f"{model}-seed*.json")):
        record = json.loads(path.read_text())
        errors[record["seed"]] = record["final_train_error"]
    return errors


def same_machine_kind(record: dict, history: History, data_sha256: str) -> bool:
    """Whether ``history`` was made where ``record`` was: CPU model, torch version, one thread, the data."""
    made = record.get("provenance", {})
    return (
        history.device == made.get("device")
        and history.device.startswith("cpu")
        and made.get("cpu") == cpu_model()
        and made.get("torch") == torch.__version__
        and made.get("data_sha256") == data_sha256
    )


@dataclass(frozen=True)
class SeedCheck:
    """A live run set against the archive's runs of the same network and recipe."""

    label: str  # the network in words: 'plain-20'
    seed: int
    live_error: float  # final training error of the live run, %
    archived: dict[int, float]  # final training error of every archived seed, %
    same_machine: bool  # made on the archive's kind of machine
    same_history: bool  # every epoch equal to the archived seed's

    @property
    def band(self) -> tuple[float, float]:
        """The archived seeds' range of final training errors, widened by the margin (%)."""
        values = self.archived.values()
        return min(values) - BAND_MARGIN_POINTS, max(values) + BAND_MARGIN_POINTS

    @property
    def inside(self) -> bool:
        low, high = self.band
        return low <= self.live_error <= high

    @property
    def passed(self) -> bool:
        """The same history on the archive's machine; inside the widened range anywhere else."""
        return self.same_history if self.same_machine else self.inside

    def words(self) -> str:
        """Where this run fell, in one sentence for the page."""
        values = sorted(self.archived.values())
        seeds = len(values)
        where = (
            f"{self.label} ended at {self.live_error:.1f}% training error; the archive's "
            f"{seeds} seeds of it ended between {values[0]:.1f}% and {values[-1]:.1f}%"
        )
        if self.same_history:
            return f"{where}, and this run repeated its archived seed {self.seed} exactly."
        rank = sum(value < self.live_error for value in values)
        if rank == 0:
            place = "below every archived seed"
        elif rank == seeds:
            place = "above every archived seed"
        else:
            place = f"above {rank} of the {seeds} archived seeds"
        return f"{where}: this run is {place}."


def check_seed(
    config: str,
    model: str,
    seed: int,
    history: History,
    data: TensorData,
    *,
    label: str = "",
    folder: Path | None = None,
) -> SeedCheck | None:
    """``history`` (a live run of ``model``'s ``seed`` in the archived ``config``) set against the
    archive, or None where the archive is not at hand."""
    from .runs import data_fingerprint

    record = archived_run(config, model, seed, folder=folder)
    archived = archived_errors(config, model, folder=folder)
    if record is None or not archived:
        return None
    same_machine = same_machine_kind(record, history, data_fingerprint(data))
    same_history = (
        all(getattr(history, name) == record["history"][name] for name in COMPARED)
        and history.epochs == record["history"]["epochs"]
    )
    return SeedCheck(
        label=label or model,
        seed=seed,
        live_error=history.train_error[-1],
        archived=archived,
        same_machine=same_machine,
        same_history=same_history,
    )
