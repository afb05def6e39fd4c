"""The run cache: a training run that was made once is read back, not made again.

``train(model_name, data, epochs=..., seed=...)`` builds ``create_model(model_name,
**model_options)`` from ``seed`` and trains it with :func:`~resnet_course.train.fit`, unless a
run with the same key has finished before. The key is a hash of everything that
decides the result:

* the model's name and options;
* the data's content (a SHA-256 of its four tensors, not a path);
* the recipe (every ``fit`` option that changes the arithmetic) and the seed;
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
# fit options that do not change the arithmetic of a run, only how it is shown or stopped.
DISPLAY_OPTIONS = frozenset({"progress", "label", "on_step", "stop", "log_every"})
KEY_VERSION = 1  # bump when the layout of a cache entry changes


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


def recipe_keywords(config: TrainConfig | None, options: dict) -> dict:
    """``fit``'s options with ``config`` spelt out as the keywords that say the same.

    A config counts by the fields it changes from the defaults, and the keywords given beside
    it as given: ``config=TrainConfig(steps=6, lr=0.05), seed=0`` is keyed as
    ``steps=6, lr=0.05, seed=0``, so both spellings find the same cached run.
    """
    if config is None:
        return dict(options)
    recipe_names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {key: value for key, value in options.items() if key in recipe_names}
    others = {key: value for key, value in options.items() if key not in recipe_names}
    return {**config.replace(**given).options(), **given, **others}


def run_fields(
    model_name: str,
    data: TensorData,
    *,
    model_options: dict | None = None,
    config: TrainConfig | None = None,
    **recipe,
) -> dict:
    """Everything that decides the result of a run, as plain JSON values."""
    recipe = recipe_keywords(config, recipe)
    device = pick_device(recipe.pop("device", None))
    arithmetic = {key: value for key, value in recipe.items() if key not in DISPLAY_OPTIONS}
    for key, value in arithmetic.items():
        if callable(value):
            raise ValueError(
                f"the run cache cannot key a function ({key}={value!r}); pass a named schedule or train with fit()."
            )
    return {
        "key_version": KEY_VERSION,
        "model": model_name,
        "model_options": dict(sorted((model_options or {}).items())),
        "data": data_fingerprint(data),
        "data_description": repr(data).split(", from ")[0] + ")",
        "recipe": dict(sorted(arithmetic.items())),
        "code": code_version(),
        "torch": torch.__version__.split("+")[0],
        "device_type": device.type,
    }


def run_key(fields: dict) -> str:
    text = json.dumps(
        {k: v for k, v in fields.items() if k != "data_description"}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def train(
    model_name: str,
    data: TensorData,
    *,
    model_options: dict | None = None,
    config: TrainConfig | None = None,
    seed: int | None = None,
    cache: bool | None = None,
    **recipe,
) -> tuple[nn.Module, History]:
    """The trained model and its history: from the cache when this exact run was made before.

    ``config`` (a :class:`~resnet_course.recipe.TrainConfig`) and ``recipe`` hold ``fit``'s
    options (``epochs`` or ``steps``, ``lr``, ``schedule``, ``warmup_epochs``, ...). The model
    is built right after ``set_seed(seed)``, and the batches are drawn with the same ``seed``
    (by default the config's, else 0), so a run is fixed by its key.
    ``history.config['cached']`` says whether it was read back.
    """
    use_cache = enabled() if cache is None else cache
    if seed is None:
        seed = config.seed if config is not None else 0
    fields = run_fields(
        model_name, data, model_options=model_options, config=config, seed=seed, **recipe
    )
    key = run_key(fields)
    folder = runs_dir()
    record_path, weights_path = folder / f"{key}.json", folder / f"{key}.pt"
    set_seed(seed)
    model = create_model(model_name, **(model_options or {}))
    label = recipe.get("label", "")

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
            return model.to(pick_device(recipe.get("device"))), history

    history = fit(model, data, config=config, seed=seed, **recipe)
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
