"""Reproduce the paper's CIFAR-10 table: ResNet-20/32/44/56/110 and their plain twins, with provenance.

``python -m tools.reproduce`` (also ``python -m resnet_course reproduce`` in a clone) trains each
network with a recipe and writes, per
run, a JSON record (history, final test error, recipe, device, wall time, versions, git
commit, data source, and whether the run was at the paper's scale) and a PNG plot.

Recipes:

* ``paper`` (He et al. 2015, section 4.2): batch 128, SGD with momentum 0.9 and weight
  decay 1e-4, learning rate 0.1 divided by 10 at 32k and 48k iterations, 64k iterations,
  4-pixel padding, random 32x32 crops and horizontal flips. For ResNet-110 the paper
  warms up with lr 0.01 "until the training error is below 80% (about 400 iterations)";
  here that warm-up is a fixed 400 iterations at 0.01.
* ``fast``: 60 epochs (about 23k iterations), Nesterov momentum, weight decay 5e-4, one
  epoch of linear warm-up, then a cosine decay from 0.1 to 0. Meant to reach the paper's
  errors in minutes on one GPU; its accuracy at full scale has not been measured yet in
  this repository (``results/`` holds only runs that were really made).

``--iterations`` or ``--epochs`` shortens a recipe, and its schedule shrinks with it
(milestones and warm-up at the same fractions of training), so the command also runs at
toy scale on a CPU; such runs say so in their JSON (``full_scale: false`` and
``scale_notes``). ``--validation-size 5000`` trains on 45k images and reports the
held-out 5k every epoch (the paper's split); the test error is then measured once at
the end.

Multi-GPU: ``torchrun --nproc_per_node=N -m tools.reproduce ...``; every process
walks the same batches and trains on its slice of each (DistributedDataParallel), so the
batch of 128 is shared among the processes. Only the first process writes files.

A tool of the course's repository, not of the package: run it from the root of a clone.
:func:`resnet_course.evidence.load_results` reads the records back as a table, provenance
included (chapter 2 shows it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from resnet_course import __version__
from resnet_course.data import DataUnavailableError, TensorData, load_cifar10
from resnet_course.evidence import RESULT_KIND, format_results, row_from_record
from resnet_course.models import create_model
from resnet_course.recipe import TrainConfig, learning_rate
from resnet_course.runs import data_fingerprint
from resnet_course.train import History, TrainingRun, set_seed

MODELS = (
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
)
# Table 6 of He et al. 2015 (CIFAR-10 test error, %); ResNet-110 is the best of 5 runs (mean 6.61).
PAPER_TEST_ERROR = {
    "resnet20": 8.75,
    "resnet32": 7.51,
    "resnet44": 7.17,
    "resnet56": 6.97,
    "resnet110": 6.43,
}
CIFAR10_TRAIN_IMAGES, CIFAR10_TEST_IMAGES = 50_000, 10_000
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]  # tools/ is at the repository's root


# --- recipes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How to train one network: the loop's recipe (:class:`TrainConfig`), its length, and the paper's warm-up.

    ``training`` holds the optimizer, batch size, schedule and milestones (fractions of
    training), and a length in epochs where the recipe has one; ``iterations`` is a length
    in iterations (the paper's way) instead.
    """

    name: str
    summary: str
    training: TrainConfig
    iterations: int | None = None
    warmup: float = 0.0  # fraction of training with a warm-up ...
    warmup_lr: float | None = None  # ... at this constant lr (None: a linear ramp up to lr)
    warmup_models: tuple[str, ...] | None = None  # models that warm up (None: all)

    def record(self) -> dict:
        """The recipe as one flat mapping, the layout of the records in ``results/``."""
        training = self.training
        return dict(
            name=self.name,
            summary=self.summary,
            batch_size=training.batch_size,
            lr=training.lr,
            momentum=training.momentum,
            weight_decay=training.weight_decay,
            nesterov=training.nesterov,
            iterations=self.iterations,
            epochs=training.epochs,
            schedule=training.schedule,
            milestones=list(training.milestones),
            warmup=self.warmup,
            warmup_lr=self.warmup_lr,
            warmup_models=list(self.warmup_models) if self.warmup_models is not None else None,
        )


RECIPES = {
    "paper": Recipe(
        "paper",
        "He et al. 2015, sec. 4.2: batch 128, SGD momentum 0.9, weight decay 1e-4, lr 0.1 / 10 at 32k and 48k "
        "iterations, 64k iterations, pad 4 + random crop + flip; ResNet-110 warms up at lr 0.01 for 400 iterations",
        TrainConfig(
            batch_size=128,
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            schedule="step",
            milestones=(0.5, 0.75),
        ),
        iterations=64_000,
        warmup=400 / 64_000,
        warmup_lr=0.01,
        warmup_models=("resnet110",),
    ),
    "fast": Recipe(
        "fast",
        "60 epochs, batch 128, SGD Nesterov momentum 0.9, weight decay 5e-4, 1 epoch linear warm-up, cosine lr 0.1 -> 0, "
        "pad 4 + random crop + flip",
        TrainConfig(
            epochs=60,
            batch_size=128,
            lr=0.1,
            momentum=0.9,
            weight_decay=5e-4,
            nesterov=True,
            schedule="cosine",
        ),
        warmup=1 / 60,
    ),
}


@dataclass(frozen=True)
class StepSchedule:
    """The paper's learning rate at iteration ``i`` (0-based): ``lr``, divided by 10 at each milestone.

    Before ``warmup_iterations`` it is ``warmup_lr`` (ResNet-110's warm-up at 0.01). The
    milestones are iterations, rounded once from the recipe's fractions, so a shortened run
    drops where its record says; the arithmetic is the loop's own :func:`learning_rate`.
    """

    lr: float = 0.1
    milestones: tuple[int, ...] = (32_000, 48_000)
    warmup_iterations: int = 0
    warmup_lr: float = 0.01

    def __call__(self, iteration: int) -> float:
        return learning_rate(
            # total_steps: a step schedule drops at its milestones, whatever the run's length.
            iteration,
            total_steps=0,
            lr=self.lr,
            schedule="step",
            milestone_steps=self.milestones,
            warmup_steps=self.warmup_iterations,
            warmup_lr=self.warmup_lr,
        )


def training_plan(
    recipe: Recipe,
    model_name: str,
    steps_per_epoch: int,
    *,
    iterations: int | None = None,
    epochs: float | None = None,
) -> dict:
    """The recipe's length and schedule for one model: ``config``, a :class:`TrainConfig`, and a ``record``.

    ``iterations`` or ``epochs`` replaces the recipe's length; milestones and warm-up
    keep their fractions of training.
    """
    if iterations is not None and epochs is not None:
        raise ValueError("give --iterations or --epochs, not both.")
    if iterations is not None and iterations < 1 or epochs is not None and epochs <= 0:
        raise ValueError(
            f"the training length must be positive, got iterations={iterations}, epochs={epochs}."
        )
    training = recipe.training
    if iterations is None:
        length_in_epochs = epochs if epochs is not None else training.epochs
        iterations = (
            recipe.iterations
            if length_in_epochs is None
            else max(1, round(length_in_epochs * steps_per_epoch))
        )
    warms_up = recipe.warmup > 0 and (
        recipe.warmup_models is None or model_name in recipe.warmup_models
    )
    warmup_iterations = round(recipe.warmup * iterations) if warms_up else 0
    milestones = [round(fraction * iterations) for fraction in training.milestones]
    if training.schedule == "step":
        warmup_lr = recipe.warmup_lr or training.lr
        schedule = {
            "schedule": StepSchedule(training.lr, tuple(milestones), warmup_iterations, warmup_lr)
        }
    else:
        schedule = {"warmup_epochs": warmup_iterations / steps_per_epoch}
    config = training.replace(steps=iterations, **schedule)
    record = dict(
        iterations=iterations,
        epochs=iterations / steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        schedule=training.schedule,
        milestones=milestones if training.schedule == "step" else None,
        warmup_iterations=warmup_iterations,
        warmup_lr=recipe.warmup_lr if warmup_iterations else None,
    )
    return {"config": config, "record": record}


# --- data ------------------------------------------------------------------------------------------


def split_validation(data: TensorData, size: int, *, seed: int = 0) -> TensorData:
    """Training images minus ``size`` held out; the held-out ones take the place of the test split."""
    if not 0 < size < len(data.x_train):
        raise ValueError(
            f"the validation split must hold between 1 and {len(data.x_train) - 1} images, got {size}."
        )
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))
    held, kept = order[:size], order[size:]
    return TensorData(
        data.x_train[kept],
        data.y_train[kept],
        data.x_train[held],
        data.y_train[held],
        classes=data.classes,
        name=f"{data.name} (train minus {size} validation)",
        source=data.source,
        mean=data.mean,
        std=data.std,
    )


# --- provenance ------------------------------------------------------------------------------------


def git_state(root: Path = REPOSITORY_ROOT) -> dict:
    """The commit the code came from, and whether the code (the package or the tools) had uncommitted changes."""

    def git(*arguments: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *arguments], cwd=root, capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    # Tracked files of the package and the tools that differ from that commit (untracked files are
    # not imported by the run). The key keeps its name, "package_modified", for the archived records.
    changes = git("diff", "--name-only", "HEAD", "--", "resnet_course", "tools") if commit else None
    changed = sorted(changes.splitlines()) if changes is not None else None
    return {
        "commit": commit,
        "package_modified": bool(changed) if changed is not None else None,
        "uncommitted_files": changed,
    }


def versions() -> dict:
    import torchvision

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "resnet_course": __version__,
    }


def scale_notes(
    plan: dict, recipe: Recipe, data: TensorData, *, width: int, validation_size: int
) -> list[str]:
    """Every way a run differs from the paper's scale (empty: a full-scale run)."""
    notes = []
    recipe_iterations = recipe.iterations or round(recipe.training.epochs * plan["steps_per_epoch"])
    if plan["iterations"] != recipe_iterations:
        notes.append(
            f"{plan['iterations']:,} iterations instead of the recipe's {recipe_iterations:,}"
        )
    if width != 16:
        notes.append(f"width {width} instead of 16")
    size = data.x_train.shape[-1]
    if size != 32:
        notes.append(f"{size}x{size} images instead of 32x32")
    train_images = len(data.x_train) + validation_size
    if train_images < CIFAR10_TRAIN_IMAGES:
        notes.append(f"{train_images:,} training images instead of {CIFAR10_TRAIN_IMAGES:,}")
    return notes


# --- one run -----------------------------------------------------------------------------------------


def run_name(
    model_name: str,
    recipe: Recipe,
    notes: list[str],
    plan: dict,
    *,
    width: int,
    image_size: int,
    seed: int,
) -> str:
    name = f"{recipe.name}-{model_name}"
    if notes:  # reduced runs carry their size in the name, so they never overwrite a full one
        name += f"-{plan['iterations']}it-w{width}-{image_size}px"
    return name + (f"-seed{seed}" if seed else "")


def reproduce_one(
    model_name: str,
    recipe: Recipe,
    data: TensorData,
    *,
    test_data: TensorData | None = None,
    validation_size: int = 0,
    iterations: int | None = None,
    epochs: float | None = None,
    width: int = 16,
    device: str | torch.device | None = None,
    compile: bool = False,
    distributed: bool = False,
    seed: int = 0,
    progress: bool = True,
    arguments: dict | None = None,
) -> dict:
    """Train ``model_name`` with ``recipe`` on ``data`` and return its record (nothing is written).

    With ``test_data`` (the real test split when ``data`` evaluates on a validation split),
    the final test error is measured on it once, after training.
    """
    if model_name not in MODELS:
        raise ValueError(
            f"unknown model {model_name!r}; the paper's CIFAR-10 table has {', '.join(MODELS)}."
        )
    steps_per_epoch = max(1, len(data.x_train) // recipe.training.batch_size)
    plan = training_plan(recipe, model_name, steps_per_epoch, iterations=iterations, epochs=epochs)
    set_seed(seed)
    model = create_model(model_name, width=width)
    run = TrainingRun(
        model,
        data,
        config=plan["config"],
        device=device,
        compile=compile,
        distributed=distributed,
        seed=seed,
        progress=progress,
        label=f"{model_name} ({recipe.name})",
    )
    for _ in run:
        pass
    history: History = run.history
    final_evaluated = history.test_error[-1] if history.test_error else None
    if test_data is not None:
        test_error = 100.0 * (1 - run.evaluate_test(test_data)[1])
        validation_error = final_evaluated
    else:
        test_error, validation_error = final_evaluated, None
    evaluated = test_data if test_data is not None else data
    notes = scale_notes(plan["record"], recipe, data, width=width, validation_size=validation_size)
    if len(evaluated.x_test) < CIFAR10_TEST_IMAGES:
        notes.append(f"{len(evaluated.x_test):,} test images instead of {CIFAR10_TEST_IMAGES:,}")
    image_size = data.x_train.shape[-1]
    return {
        "kind": RESULT_KIND,
        "schema": 1,
        "name": run_name(
            model_name, recipe, notes, plan["record"], width=width, image_size=image_size, seed=seed
        ),
        "model": model_name,
        "depth": int("".join(filter(str.isdigit, model_name))),
        "residual": model_name.startswith("resnet"),
        "width": width,
        "parameters": sum(p.numel() for p in model.parameters()),
        "recipe": recipe.record(),
        "plan": plan["record"],
        "full_scale": not notes,
        "scale_notes": notes,
        "final_test_error": test_error,
        "final_validation_error": validation_error,
        "final_train_error": history.train_error[-1] if history.train_error else None,
        "paper_test_error": PAPER_TEST_ERROR.get(model_name),
        "data": {
            # The file's name, never the machine path it was read from, and the content's hash.
            "name": data.name,
            "source": Path(data.source).name if data.source else "",
            "sha256": data_fingerprint(data),
            "image_size": image_size,
            "train_images": len(data.x_train),
            "validation_images": validation_size,
            "test_images": len(evaluated.x_test),
        },
        "device": history.device,
        "precision": history.precision,
        "processes": run.world_size,
        "compile": compile,
        "seed": seed,
        "wall_time_s": history.wall_time,
        "images_per_s": max(history.images_per_s) if history.images_per_s else None,
        "versions": versions(),
        "git": git_state(),
        "arguments": arguments or {},
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "history": thin_step_losses(history.to_dict()),
    }


def thin_step_losses(history: dict, max_points: int = 1000) -> dict:
    """The history with its step losses averaged over bins of equal length, at most ``max_points`` of them.

    A 64k-iteration run reads 64k step losses; their bin means keep the curve and the
    JSON small. ``step_loss_bin`` says how many steps each point averages (1: none).
    """
    steps, losses = history["steps"], history["step_loss"]
    size = max(1, math.ceil(len(losses) / max_points))
    thinned = dict(history, step_loss_bin=size)
    if size > 1:
        thinned["steps"] = [
            steps[min(start + size, len(steps)) - 1] for start in range(0, len(steps), size)
        ]
        thinned["step_loss"] = [
            sum(losses[start : start + size]) / len(losses[start : start + size])
            for start in range(0, len(losses), size)
        ]
    return thinned


def plot_record(record: dict):
    """Training error (dashed) and test or validation error (solid) against iterations, and the step losses."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # writing files needs no window
    import matplotlib.pyplot as plt

    from resnet_course.plots import running_mean

    history = record["history"]
    per_epoch = record["plan"]["steps_per_epoch"]
    iterations = [round(epoch * per_epoch) for epoch in history["epochs"]]
    evaluated = "validation" if record["final_validation_error"] is not None else "test"
    fig, (errors, losses) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    errors.plot(
        iterations, [100 * (1 - a) for a in history["train_acc"]], "--", label="training error"
    )
    errors.plot(
        iterations, [100 * (1 - a) for a in history["test_acc"]], "-", label=f"{evaluated} error"
    )
    if record["paper_test_error"] is not None:
        errors.axhline(
            record["paper_test_error"],
            color="gray",
            linestyle=":",
            label=f"paper's test error ({record['paper_test_error']}%)",
        )
    errors.set_xlabel("iteration")
    errors.set_ylabel("error (%)")
    errors.set_title("error per epoch")
    errors.grid(alpha=0.3)
    errors.legend(fontsize=8)
    losses.plot(history["steps"], running_mean(history["step_loss"], 50), linewidth=1)
    losses.set_xlabel("iteration")
    losses.set_ylabel("training loss (running mean, 50 steps)")
    losses.set_title("training loss")
    losses.grid(alpha=0.3)
    scale = (
        "paper scale"
        if record["full_scale"]
        else "REDUCED SCALE: " + "; ".join(record["scale_notes"])
    )
    title = f"{record['model']}, {record['recipe']['name']} recipe, on {record['device']}: {scale}"
    fig.suptitle(textwrap.fill(title, 130), fontsize=9)
    return fig


def write_record(record: dict, folder: Path) -> tuple[Path, Path]:
    """``NAME.json`` and ``NAME.png`` in ``folder``."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    json_path, png_path = folder / f"{record['name']}.json", folder / f"{record['name']}.png"
    json_path.write_text(json.dumps(record, indent=1))
    figure = plot_record(record)
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return json_path, png_path


# --- reading results back ----------------------------------------------------------------------------


# --- the command -----------------------------------------------------------------------------------------


def parse_models(text: str) -> list[str]:
    groups = {"all": MODELS, "resnets": MODELS[:5], "plains": MODELS[5:]}
    names = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item not in groups and item not in MODELS:
            raise ValueError(
                f"unknown model {item!r}; choose from {', '.join(MODELS)}, or all, resnets, plains."
            )
        names += [name for name in groups.get(item, (item,)) if name not in names]
    if not names:
        raise ValueError("no model given; choose from " + ", ".join(MODELS) + ".")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        default="all",
        help="comma-separated: resnet20 ... resnet110, plain20 ... plain56, or all, resnets, plains",
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="paper",
        help="paper (64k iterations) or fast (60 epochs, cosine)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        help="shorten the recipe to this many iterations (schedule shrinks with it)",
    )
    parser.add_argument("--epochs", type=float, help="shorten the recipe to this many epochs")
    parser.add_argument("--width", type=int, default=16, help="base width (16 in the paper)")
    parser.add_argument(
        "--image-size", type=int, default=32, help="image size in pixels (32 in the paper)"
    )
    parser.add_argument("--train-size", type=int, help="training images (default: all)")
    parser.add_argument("--test-size", type=int, help="test images (default: all)")
    parser.add_argument(
        "--validation-size",
        type=int,
        default=0,
        help="hold out this many training images (5000: the paper's 45k/5k split)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="folder for the JSON and PNG files (default: results)",
    )
    parser.add_argument(
        "--device",
        help="cuda, mps or cpu (default: the best available; under torchrun, this process's GPU)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (minutes of compilation, faster steps)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def init_distributed(device: str | None) -> tuple[int, int, str | None]:
    """Under torchrun (WORLD_SIZE > 1): join the process group; returns rank, world size, device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and (device is None or device.startswith("cuda")):
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        device, backend = device or "cpu", "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), world_size, device


def _load_data(args: argparse.Namespace, rank: int, world_size: int) -> TensorData:
    # The first process downloads (if needed); the others wait, then read what it left.
    if world_size > 1 and rank != 0:
        dist.barrier()
    try:
        return load_cifar10(
            image_size=args.image_size,
            train_size=args.train_size,
            test_size=args.test_size,
            seed=args.seed,
        )
    finally:
        if world_size > 1 and rank == 0:
            dist.barrier()


def main(args: argparse.Namespace) -> int:
    try:
        models = parse_models(args.models)
        recipe = RECIPES[args.recipe]
        training_plan(
            recipe, models[0], 1, iterations=args.iterations, epochs=args.epochs
        )  # checks the length options
    except ValueError as error:
        print(f"reproduce: {error}", file=sys.stderr)
        return 2
    rank, world_size, device = init_distributed(args.device)
    say = print if rank == 0 else (lambda *_, **__: None)
    try:
        try:
            data = _load_data(args, rank, world_size)
        except DataUnavailableError as error:
            say(f"reproduce: {error}", file=sys.stderr)
            return 1
        test_data = None
        if args.validation_size:
            data, test_data = split_validation(data, args.validation_size, seed=args.seed), data
        say(
            f"{recipe.name} recipe: {recipe.summary}\ndata: {data!r}; {world_size} process(es); writing to {args.out}",
            flush=True,
        )
        records = []
        for name in models:
            record = reproduce_one(
                name,
                recipe,
                data,
                test_data=test_data,
                validation_size=args.validation_size,
                iterations=args.iterations,
                epochs=args.epochs,
                width=args.width,
                device=device,
                compile=args.compile,
                distributed=world_size > 1,
                seed=args.seed,
                progress=not args.no_progress,
                arguments={
                    key: str(value)
                    for key, value in vars(args).items()
                    if key not in ("run", "command")
                },
            )
            records.append(record)
            if rank == 0:
                json_path, _ = write_record(record, args.out)
                paper = (
                    f" (paper {record['paper_test_error']}%)" if record["paper_test_error"] else ""
                )
                say(
                    f"{name}: test error {record['final_test_error']:.2f}%{paper} after {record['plan']['iterations']:,} "
                    f"iterations in {record['wall_time_s']:.0f} s on {record['device']} -> {json_path}",
                    flush=True,
                )
        say(
            format_results(
                [row_from_record(record, args.out / f"{record['name']}.json") for record in records]
            )
        )
        return 0
    finally:
        if world_size > 1:
            dist.destroy_process_group()


def cli(argv: list[str] | None = None) -> int:
    """``python -m tools.reproduce ARGS``; ``python -m resnet_course reproduce ARGS`` calls :func:`main` alike."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.reproduce", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
