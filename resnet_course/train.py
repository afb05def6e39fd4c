"""The one training loop of the course.

``fit(model, data, epochs=...)`` trains and returns a :class:`History`. Underneath,
:class:`TrainingRun` is the same loop as an iterator that yields after every
step, so a dashboard can interleave training with button clicks
(``for _ in run: await asyncio.sleep(0)``) without a second copy of the loop.

Defaults follow He et al. 2015 (SGD, momentum 0.9, weight decay 1e-4, lr 0.1
divided by 10 at 50% and 75% of training). On CUDA the loop uses bf16 autocast
where the GPU supports it and fp16 with a gradient scaler where it does not (T4,
V100); image models run channels_last on CUDA and on the CPU, where it was measured
faster at every preset size (see :func:`use_channels_last`). The loss is read from
the device every ``log_every`` steps, not every step, so the GPU is never made to
wait for the host; a loss that is no longer finite stops the run at that read.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .data import Dataset

# --- devices and presets -----------------------------------------------------------------------


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple's MPS, then the CPU."""
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for, but no CUDA GPU is available here; use device='cpu' or leave device unset.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


@dataclass(frozen=True)
class Preset:
    """How big a chapter's experiments are, chosen to fit a time budget on one kind of machine.

    Chapters read these instead of hard-coding sizes. ``steps`` is the length of a CIFAR
    comparison (chapters 1 and 2: plain and residual 20/56); ``epochs`` that of the shorter
    comparisons in later chapters. ``recipe()`` is what chapters pass to ``fit``. The sizes
    come from the scale study (``results/scale-study/``), which found, per claim, the
    cheapest configuration that shows it over 3 seeds.
    """

    name: str
    audience: str  # who the preset is for
    budget: str  # the time it is sized to, and how that was measured
    image_size: int  # CIFAR images are shrunk to this many pixels a side
    train_size: int | None  # CIFAR training images asked for (None: all; an offline slice may hold fewer)
    test_size: int | None
    width: int  # base width of CIFAR networks (16 in the paper)
    steps: int  # SGD steps of the chapter 1 and 2 comparisons
    epochs: int  # epochs of the shorter comparisons in later chapters
    batch_size: int
    mlp_steps: int  # optimisation steps of the 2-D toy experiments
    lr: float = 0.1
    schedule: str = "cosine"
    warmup_epochs: float = 2.0  # linear warm-up: a 56-layer network at lr 0.1 from step 1 stalls at chance

    def recipe(self) -> dict:
        """``fit`` options of the chapter 1 and 2 comparisons."""
        return dict(steps=self.steps, lr=self.lr, schedule=self.schedule, warmup_epochs=self.warmup_epochs,
                    batch_size=self.batch_size)

    def describe(self) -> str:
        images = "all" if self.train_size is None else f"up to {self.train_size:,}"
        return (
            f"preset '{self.name}' ({self.audience}; {self.budget}): {images} CIFAR-10 training images at "
            f"{self.image_size}x{self.image_size}, networks of width {self.width}, comparisons of {self.steps:,} "
            f"steps ({self.schedule} learning rate from {self.lr:g} after {self.warmup_epochs:g} epochs of warm-up), "
            f"batch {self.batch_size}"
        )


PRESETS = {
    "book": Preset(
        "book", "the published book and CI", "the whole book within 10 minutes on 2 CPU cores",
        image_size=16, train_size=4600, test_size=800, width=8, steps=525, epochs=4, batch_size=128, mlp_steps=400,
    ),
    "cpu": Preset(
        "cpu", "running a chapter on a CPU", "every chapter within 10 minutes on 2 CPU cores",
        image_size=16, train_size=4600, test_size=800, width=8, steps=1050, epochs=8, batch_size=128, mlp_steps=1500,
    ),
    "gpu": Preset(
        "gpu", "running a chapter on a CUDA GPU", "every chapter within 3 minutes on a T4 (estimated, see bench)",
        image_size=32, train_size=None, test_size=None, width=16, steps=900, epochs=4, batch_size=128, mlp_steps=3000,
    ),
}
# The names of the first version, still accepted.
PRESET_ALIASES = {"quick": "book", "standard": "cpu", "full": "gpu"}


def default_preset_name() -> str:
    """``$RESNET_COURSE_PRESET``, else 'gpu' with a CUDA GPU and 'cpu' without."""
    return os.environ.get("RESNET_COURSE_PRESET") or ("gpu" if torch.cuda.is_available() else "cpu")


def get_preset(name: str | None = None) -> Preset:
    """``name``, else ``$RESNET_COURSE_PRESET``, else ``gpu`` with a CUDA GPU and ``cpu`` without."""
    name = (name or default_preset_name()).strip().lower()
    name = PRESET_ALIASES.get(name, name)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)} (set RESNET_COURSE_PRESET).")
    return PRESETS[name]


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
            raise ValueError("precision='fp16' needs a CUDA GPU (its gradient scaler is CUDA's); use 'fp32' or 'bf16' here.")
        return requested
    if device_type != "cuda":
        return "fp32"
    return "bf16" if bf16_supported else "fp16"


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def use_channels_last(device_type: str, *, is_image: bool) -> bool:
    """Whether image tensors are stored channels-last (NHWC) on this kind of device.

    Measured with a plain training step of CIFAR ResNets at batch 128 on 2 CPU cores
    (torch 2.14, ``python -m tools.bench --only machine,memory_format``, recorded in
    ``results/bench/memory-format-cpu.json``): channels-last was 1.08x (ResNet-20, width 8,
    16x16) to 1.44x (ResNet-56, width 16, 32x32) as fast as the default layout, faster at every
    preset size. On CUDA it is what cuDNN's fastest convolutions expect. MPS keeps the default.
    """
    return is_image and device_type in ("cuda", "cpu")


def set_seed(seed: int) -> None:
    """Seed PyTorch's generators, so a model built next starts from the same weights every time."""
    torch.manual_seed(seed)


# --- history -----------------------------------------------------------------------------------


@dataclass
class History:
    """What a run measured. Lists grow as it trains; a stopped run keeps what it has."""

    label: str = ""
    device: str = ""
    precision: str = "fp32"
    steps: list[int] = field(default_factory=list)  # step numbers at which step_loss was read
    step_loss: list[float] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)  # 1, 2, ... (a fraction for a stopped epoch)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    wall_time: float = 0.0
    stopped: bool = False
    diverged_at_step: int | None = None  # the step whose loss was no longer finite
    message: str = ""  # why the run ended early, in one sentence
    config: dict = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.diverged_at_step is not None

    @property
    def train_error(self) -> list[float]:
        return [100.0 * (1 - a) for a in self.train_acc]

    @property
    def test_error(self) -> list[float]:
        return [100.0 * (1 - a) for a in self.test_acc]

    def summary(self) -> str:
        if self.diverged:
            return f"{self.label or 'run'}: {self.message}"
        if not self.train_loss:
            return f"{self.label or 'run'}: no epoch finished ({len(self.steps)} steps, {self.wall_time:.1f} s)"
        test = f", test acc {self.test_acc[-1]:.1%}" if self.test_acc else ""
        speed = f", {self.images_per_s[-1]:,.0f} images/s" if self.images_per_s else ""
        state = " (stopped)" if self.stopped else ""
        return (
            f"{self.label or 'run'}: train loss {self.train_loss[-1]:.3f}, train acc {self.train_acc[-1]:.1%}"
            f"{test} after {self.epochs[-1]:g} epochs in {self.wall_time:.1f} s on {self.device}{speed}{state}"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "History":
        """The history :meth:`to_dict` wrote (fields it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=1)


# --- the loop ----------------------------------------------------------------------------------


def _should_stop(stop) -> bool:
    if stop is None:
        return False
    if hasattr(stop, "is_set"):  # threading.Event, asyncio.Event
        return stop.is_set()
    return bool(stop())


def _learning_rate(step: int, total: int, *, lr: float, schedule, milestones: tuple[float, ...], warmup_steps: int) -> float:
    if callable(schedule):  # a recipe's own schedule, e.g. the paper's lr drops at fixed iterations
        return schedule(step)
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total - warmup_steps)
        return 0.5 * lr * (1 + math.cos(math.pi * progress))
    # "step": divide by 10 at each milestone (fractions of training; 0.5 and 0.75 are 32k and 48k of 64k).
    return lr * 0.1 ** sum(step >= m * total for m in milestones)


class TrainingRun:
    """One training run, as an iterator that yields the step number after every step.

    Iterate it to train (``fit`` does exactly that). ``history`` fills in as it goes,
    and stays valid if iteration stops early, by a ``stop`` request or an error.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        *,
        epochs: float | None = None,
        steps: int | None = None,
        lr: float = 0.1,
        batch_size: int = 128,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        nesterov: bool = False,
        optimizer: str = "sgd",
        schedule: str | Callable[[int], float] = "step",
        milestones: tuple[float, ...] = (0.5, 0.75),
        warmup_epochs: float = 0.0,
        augment: bool = True,
        label_smoothing: float = 0.0,
        device: str | torch.device | None = None,
        precision: str = "auto",
        channels_last: bool | None = None,
        compile: bool = False,
        seed: int = 0,
        evaluate: bool = True,
        log_every: int | None = None,
        max_steps: int | None = None,
        stop=None,
        on_step: Callable[[History], None] | None = None,
        on_epoch: Callable[[History], None] | None = None,
        progress: bool = True,
        label: str = "",
        distributed: bool = False,
    ):
        if (epochs is None) == (steps is None):
            raise ValueError("give either epochs= or steps= (how long to train), not both and not neither.")
        if epochs is not None and not (isinstance(epochs, (int, float)) and math.isfinite(epochs) and epochs > 0):
            raise ValueError(f"epochs must be a positive number, got {epochs!r}.")
        if steps is not None and not (isinstance(steps, int) and steps > 0):
            raise ValueError(f"steps must be a positive whole number, got {steps!r}.")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"the learning rate must be a positive, finite number, got {lr!r}.")
        if not callable(schedule) and schedule not in ("step", "cosine", "constant"):
            raise ValueError(f"unknown schedule {schedule!r}; choose 'step', 'cosine', 'constant', or pass a function of the step.")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {optimizer!r}; choose 'sgd' or 'adam'.")
        if batch_size < 1 or batch_size > len(data.x_train):
            raise ValueError(f"batch_size must be between 1 and the {len(data.x_train)} training examples, got {batch_size}.")

        self.device = pick_device(device)
        on_cuda = self.device.type == "cuda"
        self.precision = choose_precision(precision, self.device.type, bf16_supported=on_cuda and torch.cuda.is_bf16_supported())
        self.use_bf16 = self.precision == "bf16"
        # fp16 has too few exponent bits for small gradients: the scaler multiplies the loss
        # before backward and divides the gradients again before the step, skipping steps that overflow.
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.channels_last = data.is_image and (use_channels_last(self.device.type, is_image=True) if channels_last is None else channels_last)
        self.data = data.to(self.device)
        self.model = model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        self.forward = torch.compile(self.model) if compile else self.model
        # Data parallel (torchrun): every process walks the same seeded batches and trains on
        # its own slice of each; DistributedDataParallel averages the gradients.
        self.rank, self.world_size = 0, 1
        self.train_forward = self.forward
        if distributed:
            if not (dist.is_available() and dist.is_initialized()):
                raise ValueError("distributed=True needs torch.distributed.init_process_group() first (torchrun, then init_process_group).")
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
            if batch_size % self.world_size:
                raise ValueError(f"batch_size {batch_size} does not split evenly over {self.world_size} processes; choose a multiple.")
            device_ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()] if on_cuda else None
            ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
            self.train_forward = torch.compile(ddp) if compile else ddp

        self.epochs = epochs
        self.batch_size = batch_size
        self.augment = augment
        self.label_smoothing = label_smoothing
        self.evaluate = evaluate
        self.stop = stop
        self.on_step, self.on_epoch = on_step, on_epoch
        self.progress = progress and self.rank == 0
        self.steps_per_epoch = max(1, len(self.data.x_train) // batch_size)
        self.total_steps = steps if steps is not None else math.ceil(epochs * self.steps_per_epoch)
        if epochs is None:
            epochs = steps / self.steps_per_epoch
        if max_steps is not None:
            self.total_steps = min(self.total_steps, max_steps)
        # On the CPU reading the loss costs nothing; on a GPU it waits for the queue to drain.
        self.log_every = log_every or (1 if self.device.type == "cpu" else 25)
        self.schedule = dict(lr=lr, schedule=schedule, milestones=tuple(milestones), warmup_steps=round(warmup_epochs * self.steps_per_epoch))

        # Weight decay on every parameter, as in the paper's recipe.
        params = list(self.model.parameters())
        fused = {"fused": True} if on_cuda else {"foreach": True}
        if optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, **fused)
        else:
            self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)

        self.generator = torch.Generator().manual_seed(seed)
        self.history = History(
            label=label,
            device=describe_device(self.device),
            precision=self.precision,
            config=dict(
                epochs=epochs, steps=self.total_steps, lr=lr, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay,
                optimizer=optimizer, schedule=schedule if isinstance(schedule, str) else repr(schedule),
                milestones=list(milestones), warmup_epochs=warmup_epochs,
                # The data by what it is and its file's name: a record never carries a path of the machine.
                augment=augment, seed=seed, data=repr(data).split(", from ")[0] + ")",
                data_file=os.path.basename(data.source), parameters=sum(p.numel() for p in model.parameters()),
                torch=torch.__version__, processes=self.world_size,
            ),
        )
        self.step = 0

    def _autocast(self):
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.precision != "fp32")

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.no_grad()
    def evaluate_test(self, data: Dataset | None = None) -> tuple[float, float]:
        """Loss and accuracy on the test split (of ``data``, else the run's), in eval mode (BN uses its running statistics)."""
        data = self.data if data is None else data.to(self.device)
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for x, y in data.test_batches():
            with self._autocast():
                logits = self.forward(self._inputs(x))
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
        self.model.train(was_training)
        n = data.y_test.numel()  # targets, not examples: a sequence has one per position
        return loss_sum.item() / n, correct.item() / n

    def __iter__(self) -> Iterator[int]:
        history, model = self.history, self.model
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            # leave=True: the finished bar stays as a record of the run (steps, time, last loss), in Jupyter
            # and in the built book, where a closed bar would leave an empty box.
            bar = tqdm(total=self.total_steps, desc=self.history.label or "training", unit="step", leave=True)
        start = time.perf_counter()
        try:
            model.train()
            epoch = 0
            while self.step < self.total_steps:
                epoch += 1
                loss_sum = torch.zeros((), device=self.device)
                correct = torch.zeros((), device=self.device)  # examples right (a fraction for a sequence)
                seen = 0
                pending = []  # step losses not yet read from the device
                epoch_start = time.perf_counter()
                for x, y in self.data.train_batches(self.batch_size, augment=self.augment, generator=self.generator):
                    if self.step >= self.total_steps or _should_stop(self.stop):
                        break
                    if self.world_size > 1:  # this process's contiguous slice of the batch
                        x, y = x.tensor_split(self.world_size)[self.rank], y.tensor_split(self.world_size)[self.rank]
                    lr = _learning_rate(self.step, self.total_steps, **self.schedule)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    with self._autocast():
                        logits = self.train_forward(self._inputs(x))
                        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
                    self.optimizer.zero_grad(set_to_none=True)
                    if self.scaler is None:
                        loss.backward()
                        self.optimizer.step()
                    else:
                        self.scaler.scale(loss).backward()
                        self.scaler.step(self.optimizer)
                        self.scaler.update()

                    self.step += 1
                    seen += len(y)
                    detached = loss.detach()
                    loss_sum += detached * len(y)
                    # Per example, the fraction of its targets that are right: 0 or 1 for a class
                    # label, per-position accuracy for a sequence of targets.
                    correct += (logits.detach().argmax(1) == y).reshape(len(y), -1).float().mean(1).sum()
                    pending.append((self.step, detached))
                    if len(pending) >= self.log_every:
                        self._read_step_losses(pending, bar)
                        if history.diverged:
                            break
                        if self.on_step:
                            self.on_step(history)
                    yield self.step
                self._read_step_losses(pending, bar)
                if seen == 0 or history.diverged:
                    break
                if self.world_size > 1:  # the epoch's figures over every process's slices
                    totals = torch.stack([loss_sum, correct.to(loss_sum.dtype), torch.tensor(float(seen), device=self.device)])
                    dist.all_reduce(totals)
                    loss_sum, correct, seen = totals[0], totals[1], round(totals[2].item())
                elapsed = time.perf_counter() - epoch_start
                history.epochs.append(round(epoch - 1 + seen / (self.steps_per_epoch * self.batch_size), 4))
                history.train_loss.append(loss_sum.item() / seen)
                history.train_acc.append(correct.item() / seen)
                history.images_per_s.append(seen / elapsed)
                history.lr.append(lr)
                if self.evaluate:
                    test_loss, test_acc = self.evaluate_test()
                    history.test_loss.append(test_loss)
                    history.test_acc.append(test_acc)
                history.wall_time = time.perf_counter() - start
                if self.on_epoch:
                    self.on_epoch(history)
                if _should_stop(self.stop):
                    break
            history.stopped = self.step < self.total_steps and not history.diverged
            if history.stopped and not history.message:
                history.message = f"stopped at step {self.step} of {self.total_steps}"
        finally:
            history.wall_time = time.perf_counter() - start
            if bar is not None:
                bar.close()

    def _read_step_losses(self, pending: list, bar) -> None:
        if not pending:
            return
        values = torch.stack([loss for _, loss in pending]).tolist()  # one device-to-host copy
        self.history.steps.extend(step for step, _ in pending)
        self.history.step_loss.extend(values)
        for (step, _), value in zip(pending, values):
            if not math.isfinite(value):
                lr = _learning_rate(step - 1, self.total_steps, **self.schedule)
                self.history.diverged_at_step = step
                self.history.message = (
                    f"diverged: the training loss became {value} at step {step} (learning rate {lr:g}); "
                    f"training stopped there - lower the learning rate (try {lr / 10:g}) or add warm-up."
                )
                break
        if bar is not None:
            bar.update(len(pending))
            bar.set_postfix(loss=f"{values[-1]:.3f}", refresh=False)
        pending.clear()


def fit(model: nn.Module, data: Dataset, *, epochs: float | None = None, steps: int | None = None, **options) -> History:
    """Train ``model`` on ``data`` for ``epochs`` (or exactly ``steps`` SGD steps) and return its :class:`History`.

    Options are those of :class:`TrainingRun`: ``lr``, ``batch_size``, ``momentum``,
    ``weight_decay``, ``schedule`` ('step', 'cosine', 'constant'), ``warmup_epochs``,
    ``device``, ``precision``, ``seed``, ``stop`` (an Event or a callable checked
    every step), ``on_step``/``on_epoch`` callbacks, ``progress``, ``label``.
    ``schedule`` may also be a function of the step number that returns the learning
    rate (it then replaces ``lr``'s schedule and ``warmup_epochs``).
    ``distributed=True`` (after ``torch.distributed.init_process_group``, e.g. under
    torchrun) trains each process on its slice of every batch with
    DistributedDataParallel; step losses are then this process's slice, epoch figures
    cover all of them, and ``stop`` must be set in every process alike.
    ``precision`` is 'auto' (bf16 or fp16 on CUDA, fp32 elsewhere), 'fp32', 'bf16' or 'fp16'.
    A run stopped early returns the history it has; a run whose loss stops being finite
    ends there, with ``history.diverged_at_step`` and a one-sentence ``history.message``.

    ``compile=True`` runs the model through ``torch.compile``. It is off by default because it
    does not pay at the presets' run lengths where it has been measured (``python -m tools.bench
    --only machine,compile``, recorded in ``results/bench/compile-cpu.json``, 2 CPU cores,
    ResNet-20, batch 128): compiling took 26-38 s; at the CPU presets' size (width 8, 16x16) a
    compiled step was no faster (x1.01), and at width 16 and 32x32 it was x1.11, paying from about
    940 steps. It also needs a C++ compiler on a CPU. It has not been measured on a GPU yet.
    """
    run = TrainingRun(model, data, epochs=epochs, steps=steps, **options)
    for _ in run:
        pass
    return run.history
