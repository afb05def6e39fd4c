"""The one training loop of the course.

``fit(model, data, epochs=...)`` trains and returns a :class:`History`. The recipe (length,
optimizer, schedule, augmentation, precision, seed) is one :class:`~resnet_course.recipe.TrainConfig`,
given as ``config`` or as its fields' keywords (:mod:`resnet_course.recipe`). Underneath,
:class:`TrainingRun` is the same loop as an iterator that yields after every
step, so a dashboard can interleave training with button clicks
(``for _ in run: await asyncio.sleep(0)``) without a second copy of the loop.

Defaults follow He et al. 2015 (SGD, momentum 0.9, weight decay 1e-4, lr 0.1
divided by 10 at 50% and 75% of training). On CUDA the loop uses bf16 autocast
where the GPU supports it and fp16 with a gradient scaler where it does not (T4,
V100); image models run channels_last on CUDA and on a CPU's one thread. The course's networks
train on one CPU thread (see :func:`resnet_course.devices.place`). The loss is read from
the device every ``log_every`` steps, not every step, so the GPU is never made to
wait for the host; a loss that is no longer finite stops the run at that read.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .data import TensorData
from .devices import autocast, device_words, place, using_threads
from .modes import eval_mode
from .progress import progress_bar
from .recipe import TrainConfig

# --- seeds ---------------------------------------------------------------------------------------


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
    def images_per_second(self) -> float | None:
        """The run's training speed: every image it trained on over the seconds its training steps
        took (test passes and set-up excluded). The course's one measure of speed: pages and
        summaries quote this, not one epoch's figure."""
        if not self.images_per_s:
            return None
        # Each epoch's share of the images, from its length in epochs (the last may be partial).
        shares = [end - start for start, end in zip([0.0, *self.epochs], self.epochs)]
        seconds = sum(share / speed for share, speed in zip(shares, self.images_per_s))
        return sum(shares) / seconds

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
        speed = (
            f" (training at {self.images_per_second:,.0f} images/s)" if self.images_per_s else ""
        )
        state = " (stopped)" if self.stopped else ""
        epochs = self.epochs[-1]
        epochs_text = f"{epochs:.0f}" if epochs == int(epochs) else f"{epochs:.1f}"
        return (
            f"{self.label or 'run'}: train loss {self.train_loss[-1]:.3f}, train acc {self.train_acc[-1]:.1%}"
            f"{test} after {epochs_text} epochs in {self.wall_time:.1f} s on "
            f"{device_words(self.device)}{speed}{state}"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "History":
        """The history :meth:`to_dict` wrote (fields it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


# --- the loop ----------------------------------------------------------------------------------


class TrainingDiverged(RuntimeWarning):
    """A run's loss stopped being finite; it ended there, and the warning's text is ``history.message``.

    A warning, not an exception: the history up to that step is still returned, and Jupyter
    shows the sentence under the cell that trained.
    """


def warn_if_diverged(history: History, *, stacklevel: int = 2) -> None:
    """Warn with ``history.message`` (a :class:`TrainingDiverged`) when the run diverged.

    ``stacklevel`` counts from the caller of this function, as :func:`warnings.warn`'s does.
    """
    if history.diverged:
        warnings.warn(history.message, TrainingDiverged, stacklevel=stacklevel + 1)


def _should_stop(stop) -> bool:
    if stop is None:
        return False
    if hasattr(stop, "is_set"):  # threading.Event, asyncio.Event
        return stop.is_set()
    return bool(stop())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: TensorData,
    *,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
) -> tuple[float, float]:
    """Loss and accuracy on ``data``'s test split, per target, in eval mode (BN uses its running statistics).

    ``forward`` is what computes the logits (the model, or its compiled version). Every
    submodule has its own mode back afterwards, so a frozen (eval-mode) part stays frozen.
    """
    device = next(model.parameters()).device
    data = data.to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    with eval_mode(model):
        for x, y in data.test_batches():
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device.type, precision):
                logits = (forward or model)(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    n = data.y_test.numel()  # targets, not examples: a sequence has one per position
    return loss_sum.item() / n, correct.item() / n


# The layers whose input says what a model takes, and how to say it.
_INPUT_LAYERS = (nn.Conv2d, nn.Conv1d, nn.Linear, nn.Embedding)


def _takes(layer: nn.Module) -> str:
    """What ``layer`` takes as input, in words, with the shape of a batch."""
    if isinstance(layer, nn.Conv2d):
        return f"images with {layer.in_channels} channels (batches N x {layer.in_channels} x H x W)"
    if isinstance(layer, nn.Conv1d):
        return f"sequences of {layer.in_channels} channels (batches N x {layer.in_channels} x L)"
    if isinstance(layer, nn.Linear):
        return f"vectors of {layer.in_features} numbers (batches N x {layer.in_features})"
    return f"token ids from 0 to {layer.num_embeddings - 1}"


def _what_fits(data: TensorData) -> str:
    """A model that would take ``data``, by what its examples are."""
    if data.is_image:
        channels = data.input_shape[0]
        option = "" if channels == 3 else f", in_channels={channels}"
        return f"for images, a CIFAR network such as cifar_resnet(20{option}) fits"
    if data.is_vectors:
        return (
            f"for points of {data.input_shape[0]} numbers, an MLP such as "
            f"MLP(8, in_features={data.input_shape[0]}, num_classes={data.num_classes}) fits"
        )
    return "build the model for this data's examples"


@torch.no_grad()
def check_fits(model: nn.Module, data: TensorData, inputs: torch.Tensor) -> None:
    """Refuse, in one sentence naming both shapes, a model that cannot take ``data``.

    ``inputs`` is one example of ``data`` as the model would see it. The model runs it once in
    eval mode (BatchNorm's running statistics untouched, no gradient, every submodule's mode
    restored), so a CIFAR network given the 2-D spirals, or an MLP given images, is refused
    before training starts instead of failing inside torch; a model with fewer outputs than the
    data has classes is refused too.
    """
    first: list[tuple[str, nn.Module]] = []  # the first input layer that ran
    names = {module: name for name, module in model.named_modules()}

    def note(module, _args):
        if not first:
            first.append((names[module], module))

    handles = [m.register_forward_pre_hook(note) for m in names if isinstance(m, _INPUT_LAYERS)]
    try:
        with eval_mode(model):
            logits = model(inputs)
    except (RuntimeError, IndexError) as error:
        batch = " x ".join(map(str, ("N", *data.input_shape)))
        takes = f"{type(model).__name__} takes other inputs"
        if first:
            name, layer = first[0]
            takes = f"{type(model).__name__}'s first layer ({name}, a {type(layer).__name__}) takes {_takes(layer)}"
        torch_said = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise ValueError(
            f"the model and the data do not fit: {takes}, but {data.name!r} gives batches of {batch}; "
            f"{_what_fits(data)} (torch: {torch_said})."
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    outputs = logits.shape[1] if isinstance(logits, torch.Tensor) and logits.dim() >= 2 else None
    if outputs is not None and outputs < data.num_classes:
        raise ValueError(
            f"the model gives {outputs} class scores per example but {data.name!r} has "
            f"{data.num_classes} classes; build it with num_classes={data.num_classes}."
        )


def build_optimizer(parameters, config: TrainConfig, *, on_cuda: bool) -> torch.optim.Optimizer:
    """SGD (momentum, optionally Nesterov) or Adam, with weight decay on every parameter.

    No learning rate is given here: the loop sets each step's from the recipe's schedule.
    """
    fused = {"fused": True} if on_cuda else {"foreach": True}
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
            **fused,
        )
    return torch.optim.Adam(parameters, weight_decay=config.weight_decay, **fused)


def data_parallel(
    model: nn.Module, device: torch.device, config: TrainConfig
) -> tuple[int, int, nn.Module]:
    """This process's rank, the number of processes, and ``model`` wrapped to average gradients over them.

    Under torchrun, after ``init_process_group``: every process walks the same seeded batches
    and trains on its own slice of each; DistributedDataParallel averages the gradients.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "distributed=True needs torch.distributed.init_process_group() first (torchrun, then init_process_group)."
        )
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if config.batch_size % world_size:
        raise ValueError(
            f"batch_size {config.batch_size} does not split evenly over {world_size} processes; choose a multiple."
        )
    device_ids = None
    if device.type == "cuda":
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return rank, world_size, torch.compile(ddp) if config.compile else ddp


@dataclass
class _EpochTotals:
    """One epoch's sums, kept on the device until the epoch ends."""

    loss_sum: torch.Tensor
    correct: torch.Tensor  # examples right (a fraction for a sequence)
    seen: int = 0
    lr: float = 0.0  # the learning rate of the epoch's last step


class TrainingRun:
    """One training run, as an iterator that yields the step number after every step.

    Iterate it to train (``fit`` does exactly that). ``history`` fills in as it goes,
    and stays valid if iteration stops early, by a ``stop`` request or an error.
    The recipe is ``config`` (a :class:`TrainConfig`) with the recipe keywords given beside
    it; the other keywords say where and how the run is made and shown.
    """

    def __init__(
        self,
        model: nn.Module,
        data: TensorData,
        config: TrainConfig | None = None,
        *,
        device: str | torch.device | None = None,
        threads: int | None = None,
        test_every_epoch: bool = True,
        log_every: int | None = None,
        stop=None,
        on_step: Callable[[History], None] | None = None,
        progress: bool = True,
        label: str = "",
        distributed: bool = False,
        **recipe,
    ):
        # Where a recipe and the keywords given beside it are merged (the run cache merges its
        # keywords into the config it passes, and passes none beside it).
        self.config = config = (config or TrainConfig()).replace(**recipe)
        config.check(len(data.x_train))

        self.placement = placement = place(
            model,
            is_image=data.is_image,
            precision=config.precision,
            channels_last=config.channels_last,
            device=device,
            threads=threads,
        )
        self.device, self.precision = placement.device, placement.precision
        self.channels_last, self.threads = placement.channels_last, placement.threads
        # fp16 has too few exponent bits for small gradients: the scaler multiplies the loss
        # before backward and divides the gradients again before the step, skipping steps that overflow.
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.data = data.to(self.device)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=memory_format)
        check_fits(self.model, self.data, self._inputs(self.data.normalise(self.data.x_train[:1])))
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.rank, self.world_size, self.train_forward = 0, 1, self.forward
        if distributed:
            self.rank, self.world_size, self.train_forward = data_parallel(
                self.model, self.device, config
            )

        self.test_every_epoch = test_every_epoch
        self.stop = stop
        self.on_step = on_step
        self.progress = progress and self.rank == 0
        self.steps_per_epoch = max(1, len(self.data.x_train) // config.batch_size)
        self.total_steps = config.total_steps(self.steps_per_epoch)
        # On the CPU reading the loss costs nothing; on a GPU it waits for the queue to drain.
        self.log_every = log_every or (1 if self.device.type == "cpu" else 25)
        self.lr_at = config.learning_rates(self.total_steps, self.steps_per_epoch)
        self.optimizer = build_optimizer(
            list(self.model.parameters()), config, on_cuda=self.device.type == "cuda"
        )
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history = History(
            label=label,
            device=placement.describe(),
            precision=self.precision,
            config=self._record(model, data),
        )
        self.step = 0

    def _record(self, model: nn.Module, data: TensorData) -> dict:
        """The history's account of the recipe, the data and the machine."""
        config = self.config
        epochs = config.epochs if config.epochs is not None else config.steps / self.steps_per_epoch
        return dict(
            epochs=epochs,
            steps=self.total_steps,
            lr=config.lr,
            batch_size=config.batch_size,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            optimizer=config.optimizer,
            schedule=config.schedule if isinstance(config.schedule, str) else repr(config.schedule),
            milestones=list(config.milestones),
            warmup_epochs=config.warmup_epochs,
            # The data by what it is and its file's name: a record never carries a path of the machine.
            augment=config.augment,
            seed=config.seed,
            data=data.description,
            data_file=os.path.basename(data.source),
            parameters=sum(p.numel() for p in model.parameters()),
            torch=torch.__version__,
            processes=self.world_size,
            threads=self.threads,  # CPU threads (None off the CPU)
            channels_last=self.channels_last,
        )

    @property
    def batch_size(self) -> int:
        """Examples per step, over all processes (the dashboards count images/s with it)."""
        return self.config.batch_size

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def evaluate_test(self, data: TensorData | None = None) -> tuple[float, float]:
        """Loss and accuracy on the test split (of ``data``, else the run's), with the run's precision and layout."""
        return evaluate(
            self.model,
            self.data if data is None else data,
            forward=self.forward,
            precision=self.precision,
            channels_last=self.channels_last,
        )

    def __iter__(self) -> Iterator[int]:
        with using_threads(self.threads):
            yield from self._train()

    def _train(self) -> Iterator[int]:
        bar = self._progress_bar()
        start = time.perf_counter()
        try:
            self.model.train()
            epoch = 0
            while self.step < self.total_steps:
                epoch += 1
                epoch_start = time.perf_counter()
                totals = yield from self._train_epoch(bar)
                if totals.seen == 0 or self.history.diverged:
                    break
                self._end_epoch(epoch, totals, time.perf_counter() - epoch_start)
                self.history.wall_time = time.perf_counter() - start
                if _should_stop(self.stop):
                    break
            self.history.stopped = self.step < self.total_steps and not self.history.diverged
            if self.history.stopped and not self.history.message:
                self.history.message = f"stopped at step {self.step} of {self.total_steps}"
        finally:
            self.history.wall_time = time.perf_counter() - start
            if bar is not None:
                bar.close()

    def _progress_bar(self):
        if not self.progress:
            return None
        # leave=True: in Jupyter the finished bar stays as a record of the run (steps, time, last
        # loss); the built book has no bars at all (resnet_course.progress).
        return progress_bar(
            total=self.total_steps, label=self.history.label or "training", leave=True
        )

    def _train_epoch(self, bar) -> Iterator[int]:
        """One pass over the shuffled training set (or what is left of the run); returns its totals."""
        device = self.device
        totals = _EpochTotals(torch.zeros((), device=device), torch.zeros((), device=device))
        pending = []  # step losses not yet read from the device
        for x, y in self.data.train_batches(
            self.config.batch_size, augment=self.config.augment, generator=self.generator
        ):
            if self.step >= self.total_steps or _should_stop(self.stop):
                break
            if self.world_size > 1:  # this process's contiguous slice of the batch
                x, y = (part.tensor_split(self.world_size)[self.rank] for part in (x, y))
            totals.lr = self.lr_at(self.step)
            loss, logits = self._train_step(x, y, totals.lr)
            self.step += 1
            totals.seen += len(y)
            totals.loss_sum += loss * len(y)
            # Per example, the fraction of its targets that are right: 0 or 1 for a class
            # label, per-position accuracy for a sequence of targets.
            totals.correct += (logits.argmax(1) == y).reshape(len(y), -1).float().mean(1).sum()
            pending.append((self.step, loss))
            if len(pending) >= self.log_every:
                self._read_step_losses(pending, bar)
                if self.history.diverged:
                    break
                if self.on_step:
                    self.on_step(self.history)
            yield self.step
        self._read_step_losses(pending, bar)
        return totals

    def _train_step(
        self, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step at learning rate ``lr``; returns the (detached) loss and logits."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device.type, self.precision):
            logits = self.train_forward(self._inputs(x))
            loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss.detach(), logits.detach()

    def _end_epoch(self, epoch: int, totals: _EpochTotals, elapsed_s: float) -> None:
        """The epoch's figures into the history (over every process's slices), then the test pass."""
        loss_sum, correct, seen = totals.loss_sum, totals.correct, totals.seen
        if self.world_size > 1:
            count = torch.tensor(float(seen), device=self.device)
            summed = torch.stack([loss_sum, correct.to(loss_sum.dtype), count])
            dist.all_reduce(summed)
            loss_sum, correct, seen = summed[0], summed[1], round(summed[2].item())
        history = self.history
        history.epochs.append(
            round(epoch - 1 + seen / (self.steps_per_epoch * self.config.batch_size), 4)
        )
        history.train_loss.append(loss_sum.item() / seen)
        history.train_acc.append(correct.item() / seen)
        history.images_per_s.append(seen / elapsed_s)
        history.lr.append(totals.lr)
        if self.test_every_epoch:
            test_loss, test_acc = self.evaluate_test()
            history.test_loss.append(test_loss)
            history.test_acc.append(test_acc)

    def _read_step_losses(self, pending: list, bar) -> None:
        if not pending:
            return
        values = torch.stack([loss for _, loss in pending]).tolist()  # one device-to-host copy
        self.history.steps.extend(step for step, _ in pending)
        self.history.step_loss.extend(values)
        for (step, _), value in zip(pending, values):
            if not math.isfinite(value):
                lr = self.lr_at(step - 1)
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


def fit(
    model: nn.Module, data: TensorData, config: TrainConfig | None = None, **options
) -> History:
    """Train ``model`` on ``data`` with the recipe ``config`` and return its :class:`History`.

    The recipe is ``config`` (a :class:`TrainConfig`: ``fit(model, data, preset.training)``), or its fields as keywords:
    ``epochs`` (or exactly ``steps`` optimisation steps), ``lr``, ``batch_size``,
    ``momentum``, ``weight_decay``, ``schedule`` ('step', 'cosine', 'constant', or a function
    of the step), ``warmup_epochs``, ``seed``, ... Keywords given beside ``config`` replace
    its fields (a length given beside it replaces its length). The run's own options:
    ``device``, ``stop`` (an Event or a callable checked every step), ``on_step`` (called
    with the history whenever step losses are read), ``progress``, ``label``, ``test_every_epoch``
    (a test pass after every epoch), ``log_every``.
    ``distributed=True`` (after ``torch.distributed.init_process_group``, e.g. under
    torchrun) trains each process on its slice of every batch with
    DistributedDataParallel; step losses are then this process's slice, epoch figures
    cover all of them, and ``stop`` must be set in every process alike.
    A run stopped early returns the history it has; a run whose loss stops being finite
    ends there, with ``history.diverged_at_step`` and a one-sentence ``history.message``,
    which ``fit`` also gives as a :class:`TrainingDiverged` warning.

    ``compile=True`` runs the model through ``torch.compile``. It is off by default because it
    does not pay at the presets' run lengths where it has been measured (``python -m tools.bench
    --only machine,compile``, recorded in ``results/bench/compile-cpu.json``, 2 CPU cores,
    ResNet-20, batch 128): compiling took 26-38 s; at the CPU presets' size (width 8, 16x16) a
    compiled step was no faster (x1.01), and at width 16 and 32x32 it was x1.11, paying from about
    940 steps. It also needs a C++ compiler on a CPU. It has not been measured on a GPU yet.
    """
    run = TrainingRun(model, data, config, **options)
    for _ in run:
        pass
    warn_if_diverged(run.history)  # points at the line that called fit
    return run.history
