"""Exercise 2: a CIFAR ResNet and its plain twin, built and trained."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from torch import nn

from ...analysis import count_parameters
from ...models import cifar_resnet
from ...recipe import TrainConfig
from ...train import History, fit, set_seed
from ..probes import Case, call, module_state, probe_module
from ..report import Check, CheckFailed, Report
from .helpers import (
    expect_shape,
    load_reference,
    load_weights_by_position,
    module_record,
    output,
    same_function,
)


@dataclass(frozen=True)
class TrainingSetup:
    """Exercise 2's comparison: a CIFAR-10 slice and a recipe that fit in about a minute on a CPU.

    Students build ``make_cifar_net(SETUP.depth, ...)``, load the slice and train each network
    with ``fit(model, data, SETUP.training)``.
    """

    depth: int
    width: int
    image_size: int
    train_size: int
    test_size: int
    training: TrainConfig  # the recipe, passed to fit as it is

    # The recipe's fields the exercise names, and the check compares with each run's history.config.
    NAMED_FIELDS = ("epochs", "lr", "batch_size", "seed")

    def describe(self) -> str:
        names = ("depth", "width", "image_size", "train_size", "test_size")
        values = {name: getattr(self, name) for name in names}
        values |= {name: getattr(self.training, name) for name in self.NAMED_FIELDS}
        return ", ".join(f"{k}={v}" for k, v in values.items())


PLAIN_VS_RESIDUAL = TrainingSetup(
    depth=32,
    width=8,
    image_size=16,
    train_size=4000,
    test_size=500,
    training=TrainConfig(epochs=4, lr=0.1, batch_size=128, seed=0),
)

_KINDS = ("residual", "plain")


def _net_case(depth: int, residual: bool, width: int = 8, image_size: int = 16) -> Case:
    return Case(
        f"make_cifar_net({depth}, residual={residual}, width={width})",
        (depth,),
        (("residual", residual), ("width", width)),
        input_shape=(4, 3, image_size, image_size),
        # Depth 32 is judged by its layers only: its eval graph is enough.
        modes=("train", "eval") if depth == 20 else ("eval",),
        attributes=(),
    )


NETS = {
    (depth, residual): _net_case(depth, residual)
    for depth in (20, 32)
    for residual in (True, False)
}


def _probe_cifar_nets(seed, make_cifar_net):
    return {case.label: probe_module(make_cifar_net, case, seed) for case in NETS.values()}


# The exercise builds the nets from the course's blocks, in PyTorch's containers or a class of
# the student's; the course's own networks (resnet_course/models.py) do not count.
cifar_nets = Check(
    "cifar_nets",
    _probe_cifar_nets,
    own=("make_cifar_net",),
    allowed=("resnet_course/blocks.py",),
    through_cells=False,
)


def _nets(record, depth: int = 20) -> dict[str, dict]:
    return {
        ("residual" if residual else "plain"): module_record(record, NETS[depth, residual].label)
        for residual in (True, False)
    }


@cifar_nets.item(
    "make_cifar_net(20, ...) turns (4, 3, 16, 16) images into (4, 10) logits, residual or plain",
    hint="stem, three stages, global average pooling (nn.AdaptiveAvgPool2d(1)), flatten, then nn.Linear(4 * width, 10).",
)
def _nets_shape(record, seed):
    for kind, built in _nets(record).items():
        expect_shape(output(built), (4, 10), f"the {kind} net")


@cifar_nets.item(
    "depth counts the layers with weights: 20 and 32 convolution and linear layers",
    hint="n = (depth - 2) // 6 blocks per stage, two 3x3 convolutions per block, plus the stem "
    "convolution and the final linear layer; option A shortcuts have no weights.",
)
def _nets_depth(record, seed):
    for depth in (20, 32):
        for kind, built in _nets(record, depth).items():
            weighted = sum(row[1] in ("Conv2d", "Linear") for row in built["summary"])
            if weighted != depth:
                raise CheckFailed(
                    f"the {kind} net of depth {depth} has {weighted} convolution and linear layers."
                )


@cifar_nets.item(
    "the residual net and its plain twin have the same parameters as the course's resnet20",
    hint="use widths width, 2 width, 4 width and shortcut='A' (zero-padding: no parameters), so the "
    "two nets differ only in their shortcuts.",
)
def _nets_parameters(record, seed):
    expected = count_parameters(cifar_resnet(20, width=8))
    for kind, built in _nets(record).items():
        if built["parameters"] != expected:
            raise CheckFailed(
                f"the {kind} net has {built['parameters']:,} parameters, the course's resnet20 {expected:,}."
            )


def _same_as_course(record, seed, depth: int, residual: bool) -> None:
    kind = "residual" if residual else "plain"
    case = NETS[depth, residual]
    built = module_record(record, case.label)
    reference = cifar_resnet(depth, block="basic" if residual else "plain", width=8)
    what = f"the {kind} net of depth {depth}"
    load_reference(built, reference, what, seed, by_position=True)
    same_function(built, reference, case, seed, what, atol=1e-4)


@cifar_nets.item(
    "make_cifar_net(20, residual=True) computes what the course's resnet20 computes",
    hint="build the layers in order (stem conv, BN, ReLU; the blocks; pooling; linear), with "
    "BasicBlock(in, planes, stride, shortcut='A') and stride 2 on the first block of stages 2 and 3.",
)
def _nets_residual(record, seed):
    _same_as_course(record, seed, 20, residual=True)


@cifar_nets.item(
    "make_cifar_net(20, residual=False) computes what the course's plain20 computes",
    hint="the plain twin is the same network with PlainBlock(in, planes, stride) in place of BasicBlock.",
)
def _nets_plain(record, seed):
    _same_as_course(record, seed, 20, residual=False)


# --- training: the checker trains the student's networks itself ------------------------------

_HISTORY_FIELDS = ("train_loss", "epochs", "stopped", "diverged_at_step")
_CONFIG_FIELDS = ("epochs", "lr", "batch_size", "seed", "parameters", "steps")


def _plain(value):
    """A JSON-like copy of ``value`` (numbers, strings, lists), or None: a record holds nothing else."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return None


def _probe_plain_vs_residual(seed, histories, make_cifar_net=None):
    record: dict = {"histories": None}
    if isinstance(histories, dict):
        record["histories"] = {}
        for kind, history in histories.items():
            if isinstance(history, History):
                entry = {name: _plain(getattr(history, name)) for name in _HISTORY_FIELDS}
                config = history.config if isinstance(history.config, dict) else {}
                entry["config"] = {name: _plain(config.get(name)) for name in _CONFIG_FIELDS}
            else:
                entry = {"type": type(history).__name__}
            record["histories"][str(kind)] = entry
    else:
        record["histories_type"] = type(histories).__name__
    # The networks the runs started from: SETUP says to seed before building each one.
    setup = PLAIN_VS_RESIDUAL
    record["starts"] = {}
    for residual in (True, False):
        kind = "residual" if residual else "plain"
        if make_cifar_net is None:
            record["starts"][kind] = {"error": "make_cifar_net was not given to the check."}
            continue
        set_seed(setup.training.seed)
        built = call(make_cifar_net, setup.depth, residual=residual, width=setup.width)
        if "value" in built and isinstance(built["value"], nn.Module):
            built = {"state": module_state(built["value"])}
        elif "value" in built:
            built = {
                "error": f"make_cifar_net returned {type(built['value']).__name__}, not an nn.Module."
            }
        record["starts"][kind] = built
    return record


plain_vs_residual = Check("plain_vs_residual", _probe_plain_vs_residual, own=("make_cifar_net",))


def _training_runs(record) -> dict:
    histories = record.get("histories")
    if not isinstance(histories, dict) or set(histories) != set(_KINDS):
        keys = (
            sorted(histories)
            if isinstance(histories, dict)
            else record.get("histories_type", "nothing")
        )
        raise CheckFailed(
            f"histories should have exactly the keys 'residual' and 'plain', got {keys}."
        )
    for kind, history in histories.items():
        if "train_loss" not in history or not history["train_loss"]:
            raise CheckFailed(
                f"histories[{kind!r}] should be the History that fit returned, with finished epochs."
            )
    return histories


@plain_vs_residual.item(
    "histories holds a residual and a plain run of the set depth, trained with SETUP's settings",
    hint="train make_cifar_net(SETUP.depth, residual=..., width=SETUP.width) with "
    "fit(model, data, SETUP.training), once with residual=True and once with False.",
)
def _runs_settings(record, seed):
    setup = PLAIN_VS_RESIDUAL
    expected_parameters = count_parameters(cifar_resnet(setup.depth, width=setup.width))
    for kind, history in _training_runs(record).items():
        config = history["config"]
        for key in setup.NAMED_FIELDS:
            value = getattr(setup.training, key)
            if config.get(key) != value:
                raise CheckFailed(
                    f"histories[{kind!r}] was trained with {key}={config.get(key)!r}, not {value!r}."
                )
        if config.get("parameters") != expected_parameters:
            raise CheckFailed(
                f"histories[{kind!r}] trained a network of {config.get('parameters')} parameters, "
                f"not depth {setup.depth} at width {setup.width} ({expected_parameters:,})."
            )
        if history["stopped"] or len(history["train_loss"]) != setup.training.epochs:
            raise CheckFailed(
                f"histories[{kind!r}] has {len(history['train_loss'])} finished epochs, not {setup.training.epochs}."
            )
    # What a history says about its own settings is the student's code's word; the verdict rests
    # on the checker's run with SETUP's settings, which must give the same loss every epoch.
    curves = _checker_curves(record)
    for kind, history in _training_runs(record).items():
        for epoch, (reported, replayed) in enumerate(zip(history["train_loss"], curves[kind]), 1):
            if not _close(reported, replayed):
                raise CheckFailed(
                    f"histories[{kind!r}] has a training loss of {reported!r} after epoch {epoch}; the "
                    f"checker's run with SETUP's settings, from the same start, has {replayed:.3f}."
                )


@functools.lru_cache(maxsize=4)
def _rerun(start_states: tuple) -> dict[str, list[float]]:
    """The checker's own run of each network from its recorded start: the training loss per epoch, per kind."""
    from ...data import load_cifar10

    setup = PLAIN_VS_RESIDUAL
    data = load_cifar10(
        image_size=setup.image_size, train_size=setup.train_size, test_size=setup.test_size
    )
    losses = {}
    for kind, state in zip(_KINDS, start_states):
        model = cifar_resnet(
            setup.depth, block="basic" if kind == "residual" else "plain", width=setup.width
        )
        load_weights_by_position(model, dict(state), f"the {kind} net of depth {setup.depth}")
        history = fit(model, data, setup.training, progress=False)
        losses[kind] = list(history.train_loss) or [float("nan")]
    return losses


def _checker_curves(record) -> dict[str, list[float]]:
    starts = record.get("starts", {})
    for kind in _KINDS:
        start = starts.get(kind, {})
        if "error" in start or "state" not in start:
            raise CheckFailed(
                f"the {kind} net could not be built for the checker's run: {start.get('error', 'no weights')}"
            )
    return _rerun(tuple(tuple(starts[kind]["state"].items()) for kind in _KINDS))


@plain_vs_residual.item(
    "trained again by the checker from the same start, the residual net ends with the lower training loss",
    hint="with the set-up above this holds for every seed we tried; check that the residual net's "
    "blocks really add their input and that make_cifar_net passes the cifar_nets check.",
)
def _runs_residual_wins(record, seed):
    losses = {kind: curve[-1] for kind, curve in _checker_curves(record).items()}
    if not losses["residual"] < losses["plain"]:
        raise CheckFailed(
            f"the residual net ended at {losses['residual']:.3f}, the plain net at {losses['plain']:.3f}."
        )


# The grader re-executes the notebook, so the student's run and the checker's run are the same
# seeded recipe on the same machine; the tolerance leaves room for float sums taken in another
# order (other thread counts), and stays well below the gap between a trained and an untrained net.
HISTORY_TOLERANCE = 0.05


def _close(reported, replayed: float) -> bool:
    """Whether a loss the student's run reported is the checker's, within HISTORY_TOLERANCE."""
    return (
        isinstance(reported, (int, float))
        and not isinstance(reported, bool)
        and abs(reported - replayed) <= HISTORY_TOLERANCE
    )


@plain_vs_residual.item(
    "histories come from those runs: their final training losses match the checker's",
    hint="call set_seed(SETUP.training.seed) just before building each network, then train it with "
    "fit(model, data, SETUP.training) on the data loaded above; do not edit the histories.",
)
def _runs_reproduced(record, seed):
    histories = _training_runs(record)
    losses = {kind: curve[-1] for kind, curve in _checker_curves(record).items()}
    for kind in _KINDS:
        reported = histories[kind]["train_loss"][-1]
        if not _close(reported, losses[kind]):
            raise CheckFailed(
                f"histories[{kind!r}] ends at a training loss of {reported!r}; the checker's run of the same "
                f"network from the same start ends at {losses[kind]:.3f}."
            )


def check_cifar_nets(make_cifar_net) -> Report:
    """Exercise 2: the residual CIFAR network and its plain twin, layer for layer."""
    return cifar_nets.run(make_cifar_net=make_cifar_net)


def check_plain_vs_residual(histories, make_cifar_net=None) -> Report:
    """Exercise 2: both runs trained as set, and the checker's own runs of the same networks."""
    return plain_vs_residual.run(histories=histories, make_cifar_net=make_cifar_net)
