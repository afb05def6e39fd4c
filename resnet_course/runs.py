"""The run cache: a training run that was made once is read back, not made again.

``train_or_load(model_name, data, preset.training, seed=...)`` builds ``create_model(model_name,
**model_options)`` from ``seed`` and trains it with :func:`~resnet_course.train.fit`, unless a
run with the same key has finished before. ``train_or_load_many([...], data, preset.training)``
does the same for runs that do not depend on each other, training those on a CPU side by side,
one worker process per free core, each on one thread (:mod:`resnet_course.workers`). The key is
a hash of everything that decides the result:

* the model's name and options;
* the data's content (a SHA-256 of its four tensors, not a path);
* the recipe: every field of its :class:`~resnet_course.recipe.TrainConfig`, the seed included;
* where it computes: the device's type, the precision, the memory layout and the CPU threads
  (:class:`~resnet_course.devices.Placement`: a run made on two threads is another run);
* the code that builds and trains the model (a hash of ``blocks.py``, ``models.py``,
  ``recipe.py``, ``devices.py``, ``train.py``, ``data.py`` and ``presets.py``) and the torch
  version.

So chapter 1's plain-20 and chapter 2's plain-20 are one run, a dashboard's default
configuration is the chapter's run, and a rebuild of the book trains nothing it has
trained before. Options that only change what is shown (``progress``, ``label``,
``on_step``) are not part of the key. A run that was stopped early is not cached.

Runs live in ``<cache>/runs/`` (``$RESNET_COURSE_CACHE``, else ``~/.cache/resnet_course``):
one JSON file with the key's fields and the history, and one ``.pt`` file with the trained
weights (read back with ``weights_only=True``, so a cache file can never run code).
``RESNET_COURSE_RUN_CACHE=off`` (or ``cache=False``) turns the cache off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .data import TensorData, cache_dir
from .devices import Placement, place
from .models import create_model
from .progress import switched_on
from .recipe import TrainConfig
from .train import History, fit, set_seed, warn_if_diverged
from .workers import Job as WorkerJob
from .workers import free_cores, run_side_by_side

# The modules whose source decides what a run computes; editing any of them starts afresh.
CODE_MODULES = (
    "blocks.py",
    "models.py",
    "recipe.py",
    "devices.py",
    "train.py",
    "data.py",
    "presets.py",
)
# fit's options beside the recipe: where the run is made and how it is shown or stopped. Of these
# the device and threads (through the run's Placement) and ``test_every_epoch`` change what a
# finished run holds; all three are in the key.
RUN_OPTIONS = frozenset(
    {"device", "threads", "test_every_epoch", "progress", "label", "on_step", "stop", "log_every"}
)
# bump when the layout of a cache entry changes (3: the key holds the run's placement)
KEY_VERSION = 3


def enabled() -> bool:
    """False when ``$RESNET_COURSE_RUN_CACHE`` is 'off', '0', 'no' or 'false'."""
    return switched_on("RESNET_COURSE_RUN_CACHE")


def runs_dir() -> Path:
    return cache_dir() / "runs"


def code_version() -> str:
    """A short hash of the source of the modules that build and train a model."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in CODE_MODULES:
        digest.update(name.encode())
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


def data_fingerprint(data: TensorData) -> str:
    """A SHA-256 of the data's four tensors (shapes, types and bytes): the same images give the same hash anywhere."""
    cached = getattr(data, "_fingerprint", None)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        tensor = getattr(data, key).detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    fingerprint = digest.hexdigest()
    object.__setattr__(
        data, "_fingerprint", fingerprint
    )  # the tensors are not changed in place by the course
    return fingerprint


def run_fields(
    model_name: str,
    data: TensorData,
    config: TrainConfig,
    placement: Placement,
    *,
    model_options: dict | None = None,
    test_every_epoch: bool = True,
) -> dict:
    """Everything that decides the result of a run, as plain JSON values: the recipe is every field of ``config``."""
    if callable(config.schedule):
        raise ValueError(
            f"the run cache cannot key a function (schedule={config.schedule!r}); pass a named schedule or train with fit()."
        )
    return {
        "key_version": KEY_VERSION,
        "model": model_name,
        "model_options": dict(sorted((model_options or {}).items())),
        "data": data_fingerprint(data),
        "data_description": data.description,
        "recipe": dataclasses.asdict(config),
        "test_every_epoch": test_every_epoch,  # whether the history holds a test pass per epoch
        "code": code_version(),
        "torch": torch.__version__.split("+")[0],
        **placement.key_fields(),
    }


def run_key(fields: dict) -> str:
    text = json.dumps(
        {k: v for k, v in fields.items() if k != "data_description"}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class _Run:
    """One run, ready to be read back or made: the network built from its seed, its recipe and key."""

    model_name: str
    model_options: dict
    model: nn.Module
    config: TrainConfig  # the whole recipe, the seed included: merged here, once
    run_options: dict  # fit's options beside the recipe
    placement: Placement
    fields: dict
    key: str

    @property
    def label(self) -> str:
        return self.run_options.get("label", "")


def _prepare(
    model_name: str,
    data: TensorData,
    config: TrainConfig | None,
    *,
    model_options: dict | None,
    seed: int | None,
    options: dict,
) -> _Run:
    """Split ``options`` into recipe fields and fit's run options, build the network, key the run."""
    recipe_names = {f.name for f in dataclasses.fields(TrainConfig)}
    recipe = {key: value for key, value in options.items() if key in recipe_names}
    run_options = {key: value for key, value in options.items() if key not in recipe_names}
    unknown = set(run_options) - RUN_OPTIONS
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(map(repr, sorted(unknown)))}; the recipe's fields are "
            f"{', '.join(sorted(recipe_names))}, and fit's run options {', '.join(sorted(RUN_OPTIONS))}."
        )
    if seed is not None:
        recipe["seed"] = seed
    config = (config or TrainConfig()).replace(**recipe)
    model_options = dict(model_options or {})
    set_seed(config.seed)
    model = create_model(model_name, **model_options)
    placement = place(
        model,
        is_image=data.is_image,
        precision=config.precision,
        channels_last=config.channels_last,
        device=run_options.get("device"),
        threads=run_options.get("threads"),
    )
    fields = run_fields(
        model_name,
        data,
        config,
        placement,
        model_options=model_options,
        test_every_epoch=run_options.get("test_every_epoch", True),
    )
    return _Run(
        model_name, model_options, model, config, run_options, placement, fields, run_key(fields)
    )


def _read(folder: Path, run: _Run) -> History | None:
    """The run's history, with its weights loaded into ``run.model``, if ``folder`` holds it whole."""
    record_path, weights_path = folder / f"{run.key}.json", folder / f"{run.key}.pt"
    if not (record_path.exists() and weights_path.exists()):
        return None
    try:
        record = json.loads(record_path.read_text())
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        run.model.load_state_dict(state)
        history = History.from_dict(record["history"])
    except Exception:  # noqa: BLE001 - truncated, foreign or refused (weights_only) files all mean 'train again'
        return None
    history.label = run.label or history.label
    run.model.to(run.placement.device)
    return history


def _write(folder: Path, key: str, fields: dict, model: nn.Module, history: History) -> None:
    """Keep a finished run in ``folder`` under ``key``: written under temporary names and renamed,
    so an interrupted write leaves no half entry."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{key}.{os.getpid()}"
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    torch.save(state, f"{temporary}.pt")
    record = {"fields": fields, "created": time.time(), "history": history.to_dict()}
    Path(f"{temporary}.json").write_text(json.dumps(record))
    os.replace(f"{temporary}.pt", folder / f"{key}.pt")
    os.replace(f"{temporary}.json", folder / f"{key}.json")


def _finish(history: History, run: _Run, *, cached: bool) -> History:
    history.config["cached"] = cached
    history.config["run_key"] = run.key
    return history


def _train(run: _Run, data: TensorData, folder: Path | None, **shown) -> History:
    """Make the run here, in this process, and keep it in ``folder`` (None: keep nothing)."""
    history = fit(
        run.model,
        data,
        run.config,
        **{**run.run_options, "threads": run.placement.threads, **shown},
    )
    if folder is not None and not history.stopped:
        _write(folder, run.key, run.fields, run.model, history)
    return history


def train_or_load(
    model_name: str,
    data: TensorData,
    config: TrainConfig | None = None,
    *,
    model_options: dict | None = None,
    seed: int | None = None,
    cache: bool | None = None,
    **options,
) -> tuple[nn.Module, History]:
    """The trained model and its history: from the cache when this exact run was made before.

    ``config`` is the recipe (a :class:`~resnet_course.recipe.TrainConfig`, e.g. a preset's
    ``training``); recipe fields given as keywords (``steps=525``) replace its own, and the
    other keywords are ``fit``'s run options (``device``, ``threads``, ``label``, ``stop``, ...).
    The model is built right after ``set_seed(seed)``, and the batches are drawn with the same
    seed (``seed``, else the config's), so a run is fixed by its key.
    ``history.config['cached']`` says whether it was read back.
    """
    use_cache = enabled() if cache is None else cache
    run = _prepare(
        model_name, data, config, model_options=model_options, seed=seed, options=options
    )
    if use_cache and (history := _read(runs_dir(), run)) is not None:
        warn_if_diverged(history)  # as fit warned when the run was made
        return run.model, _finish(history, run, cached=True)
    history = _train(run, data, runs_dir() if use_cache else None)
    return run.model, _finish(history, run, cached=False)


@dataclass(frozen=True)
class Job:
    """One run of :func:`train_or_load_many`: a model by name, its seed and label, and model
    options and recipe fields beside (or instead of) the call's."""

    model: str
    seed: int | None = None  # None: the call's seed
    label: str = ""
    model_options: dict | None = None  # added to the call's model_options
    recipe: dict | None = None  # recipe fields for this run only (``{"steps": 525}``)


def train_or_load_many(
    jobs: Sequence[Job | str],
    data: TensorData,
    config: TrainConfig | None = None,
    *,
    model_options: dict | None = None,
    seed: int | None = None,
    cache: bool | None = None,
    workers: int | None = None,
    progress: bool = True,
    **options,
) -> list[tuple[nn.Module, History]]:
    """Each job's trained model and history, in order: runs that do not depend on each other, at once.

    Runs already in the cache are read back. The rest train side by side on a CPU, each in a
    worker process of its own on one thread, at most ``workers`` (default: one per free core)
    at a time, with one progress bar per run; each worker keeps its run in the cache as it
    finishes. On a GPU, or where one core is free, they train one after another in this process.
    A worker that dies is named in one sentence (:class:`~resnet_course.workers.WorkerFailed`)
    after the others finish; interrupting the cell stops every worker.
    The recipe and the options are :func:`train_or_load`'s; ``stop`` and ``on_step`` need a run
    of this process, :func:`train_or_load`.
    """
    if {"stop", "on_step"} & set(options):
        raise TypeError(
            "train_or_load_many trains in worker processes, which cannot be stopped or watched "
            "step by step; use train_or_load for a run with stop= or on_step=."
        )
    use_cache = enabled() if cache is None else cache
    prepared = []
    for job in jobs:
        job = Job(job) if isinstance(job, str) else job
        prepared.append(
            _prepare(
                job.model,
                data,
                config,
                model_options={**(model_options or {}), **(job.model_options or {})},
                seed=job.seed if job.seed is not None else seed,
                options={
                    **options,
                    **(job.recipe or {}),
                    **({"label": job.label} if job.label else {}),
                },
            )
        )
    results: list[History | None] = [
        _read(runs_dir(), run) if use_cache else None for run in prepared
    ]
    for history in results:
        if history is not None:
            warn_if_diverged(history)
    cached = [history is not None for history in results]
    missing = [i for i, history in enumerate(results) if history is None]
    side_by_side = (
        len(missing) > 1
        and (workers or free_cores()) > 1
        and all(prepared[i].placement.threads == 1 for i in missing)
    )
    if not side_by_side:
        for i in missing:
            results[i] = _train(
                prepared[i], data, runs_dir() if use_cache else None, progress=progress
            )
    else:
        with tempfile.TemporaryDirectory(prefix="resnet-course-runs-") as scratch:
            folder = runs_dir() if use_cache else Path(scratch)
            run_side_by_side(
                [
                    WorkerJob(
                        _train_in_worker,
                        (_worker_spec(prepared[i]), str(folder)),
                        prepared[i].label or prepared[i].model_name,
                        prepared[i].config.total_steps(
                            max(1, len(data.x_train) // prepared[i].config.batch_size)
                        ),
                    )
                    for i in missing
                ],
                data,
                workers=workers,
                progress=progress,
            )
            for i in missing:
                results[i] = _read(folder, prepared[i])
                if results[i] is None:  # the worker said it finished: its entry must be there
                    raise RuntimeError(
                        f"the run of {prepared[i].label or prepared[i].model_name} finished but "
                        "its result could not be read back; running the cell again trains it anew."
                    )
                warn_if_diverged(results[i])
    return [
        (run.model, _finish(history, run, cached=was_cached))
        for run, history, was_cached in zip(prepared, results, cached)
    ]


def _worker_spec(run: _Run) -> dict:
    """What a worker needs to make ``run`` again, as plain picklable values."""
    return {
        "model_name": run.model_name,
        "model_options": run.model_options,
        "config": run.config,
        "run_options": {key: value for key, value in run.run_options.items() if key != "progress"},
        "threads": run.placement.threads,
        "fields": run.fields,
        "key": run.key,
    }


def _train_in_worker(payload, data: TensorData, report) -> None:
    """In a worker process: build the network from its seed, train it, keep it in the folder."""
    spec, folder = payload
    set_seed(spec["config"].seed)
    model = create_model(spec["model_name"], **spec["model_options"])
    history = fit(
        model,
        data,
        spec["config"],
        **spec["run_options"],
        threads=spec["threads"],
        progress=False,
        on_step=lambda h: report(h.steps[-1] if h.steps else 0),
    )
    _write(Path(folder), spec["key"], spec["fields"], model, history)
