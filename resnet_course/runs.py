"""The run cache: a training run that was made once is read back, not made again.

``train_or_load(model_name, data, preset.training, seed=...)`` builds ``create_model(model_name,
**model_options)`` from ``seed`` and trains it with :func:`~resnet_course.train.fit`, unless a
run with the same key has finished before. The key is a hash of everything that
decides the result:

* the model's name and options;
* the data's content (a SHA-256 of its four tensors, not a path);
* the recipe: every field of its :class:`~resnet_course.recipe.TrainConfig`, the seed included;
* the code that builds and trains the model (a hash of ``blocks.py``, ``models.py``,
  ``recipe.py``, ``devices.py``, ``train.py``, ``data.py`` and ``presets.py``), the torch
  version, the device type and the precision.

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
import time
from pathlib import Path

import torch
from torch import nn

from .data import TensorData, cache_dir
from .devices import pick_device
from .models import create_model
from .recipe import TrainConfig
from .train import History, fit, set_seed, warn_if_diverged

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
# only the device's type and ``test_every_epoch`` change what a finished run holds; both are in the key.
RUN_OPTIONS = frozenset(
    {"device", "test_every_epoch", "progress", "label", "on_step", "stop", "log_every"}
)
KEY_VERSION = (
    2  # bump when the layout of a cache entry changes (2: the recipe is a TrainConfig's fields)
)


def enabled() -> bool:
    """False when ``$RESNET_COURSE_RUN_CACHE`` is 'off', '0', 'no' or 'false'."""
    return os.environ.get("RESNET_COURSE_RUN_CACHE", "on").strip().lower() not in (
        "off",
        "0",
        "no",
        "false",
    )


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
    *,
    model_options: dict | None = None,
    device: str | torch.device | None = None,
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
        "data_description": repr(data).split(", from ")[0] + ")",
        "recipe": dataclasses.asdict(config),
        "test_every_epoch": test_every_epoch,  # whether the history holds a test pass per epoch
        "code": code_version(),
        "torch": torch.__version__.split("+")[0],
        "device_type": pick_device(device).type,
    }


def run_key(fields: dict) -> str:
    text = json.dumps(
        {k: v for k, v in fields.items() if k != "data_description"}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


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
    other keywords are ``fit``'s run options (``device``, ``label``, ``stop``, ...). The model
    is built right after ``set_seed(seed)``, and the batches are drawn with the same seed
    (``seed``, else the config's), so a run is fixed by its key.
    ``history.config['cached']`` says whether it was read back.
    """
    use_cache = enabled() if cache is None else cache
    recipe_names = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {key: value for key, value in options.items() if key in recipe_names}
    run_options = {key: value for key, value in options.items() if key not in recipe_names}
    config = (config or TrainConfig()).replace(**overrides)
    if seed is not None:
        config = config.replace(seed=seed)
    unknown = set(run_options) - RUN_OPTIONS
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(map(repr, sorted(unknown)))}; the recipe's fields are "
            f"{', '.join(sorted(recipe_names))}, and fit's run options {', '.join(sorted(RUN_OPTIONS))}."
        )
    fields = run_fields(
        model_name,
        data,
        config,
        model_options=model_options,
        device=run_options.get("device"),
        test_every_epoch=run_options.get("test_every_epoch", True),
    )
    key = run_key(fields)
    folder = runs_dir()
    record_path, weights_path = folder / f"{key}.json", folder / f"{key}.pt"
    set_seed(config.seed)
    model = create_model(model_name, **(model_options or {}))
    label = run_options.get("label", "")

    if use_cache and record_path.exists() and weights_path.exists():
        try:
            record = json.loads(record_path.read_text())
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception:  # noqa: BLE001 - truncated, foreign or refused (weights_only) files all mean 'train again'
            pass  # the entry is trained again and overwritten
        else:
            history = History.from_dict(record["history"])
            history.label = label or history.label
            history.config["cached"] = True
            history.config["run_key"] = key
            warn_if_diverged(history)  # as fit warned when the run was made
            return model.to(pick_device(run_options.get("device"))), history

    history = fit(model, data, config, **run_options)
    history.config["cached"] = False
    history.config["run_key"] = key
    if use_cache and not history.stopped:
        folder.mkdir(parents=True, exist_ok=True)
        # Written under temporary names and renamed, so a run interrupted mid-write leaves no half entry.
        temporary = folder / f".{key}.{os.getpid()}"
        torch.save(
            {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
            f"{temporary}.pt",
        )
        Path(f"{temporary}.json").write_text(
            json.dumps({"fields": fields, "created": time.time(), "history": history.to_dict()})
        )
        os.replace(f"{temporary}.pt", weights_path)
        os.replace(f"{temporary}.json", record_path)
    return model, history


def clear() -> int:
    """Delete every cached run; returns how many were deleted."""
    folder = runs_dir()
    if not folder.is_dir():
        return 0
    records = list(folder.glob("*.json"))
    for path in records + list(folder.glob("*.pt")):
        path.unlink(missing_ok=True)
    return len(records)
