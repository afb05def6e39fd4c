"""Evidence about a student's code, and how the grader turns it into facts of its own.

A check's *probe* runs in the student's kernel: it builds the student's modules and records each
exported as a graph (:mod:`.programs`) with its state. Its *items* judge, in the grader's process,
what the grader computes from that graph itself (:func:`materialise`): outputs on its own inputs,
with BN statistics it draws or its reference's weights, gradients, layers, and where each
operation was traced from. A check cell in Jupyter runs both halves in the kernel, as feedback.
Where an exercise asks for a number or a function's result (``input_gradient``, ``sizes``,
``option_b_extra``, exercise 2's histories), the probe records it, on inputs drawn from a seed
chosen at grading time, and the judge compares it with what the grader computes.
"""

from __future__ import annotations

import contextlib
import io
import warnings
import zlib
from dataclasses import dataclass

import torch
from torch import nn

from . import programs

MODES = ("train", "eval")
_BATCH_NORMS = (
    "batch_norm",
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_functional",
)


def describe_error(error: BaseException) -> str:
    """``Name: first line of the message`` (shortened), for a sentence in a report."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def generator(seed: int, label: str) -> torch.Generator:
    """A generator for one labelled input: the same seed and label give the same tensors in any process."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(label.encode())) % (2**62))


def seeded_input(
    seed: int, label: str, shape, nonnegative: bool = False, shift: float = 0.0
) -> torch.Tensor:
    x = torch.randn(*shape, generator=generator(seed, label)) + shift
    return x.relu() if nonnegative else x


def randomise_batch_norm(module: nn.Module, gen: torch.Generator | None = None) -> nn.Module:
    """Give every BN random affine parameters and running statistics, so weight copies are tested for real."""
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                if bn.affine:
                    bn.weight.copy_(torch.rand(bn.weight.shape, generator=gen) + 0.5)
                    bn.bias.copy_(torch.rand(bn.bias.shape, generator=gen) - 0.5)
                if bn.running_mean is not None:
                    bn.running_mean.copy_(torch.rand(bn.running_mean.shape, generator=gen) - 0.5)
                    bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=gen) + 0.5)
    return module


CASES: dict[str, Case] = {}


@dataclass(frozen=True)
class Case:
    """One construction of a student's module, and what the grader computes from its graph.

    ``build`` is called as ``factory(*args, **kwargs)``. ``prepare`` names what is done to
    the module: ``zero_init_last`` (its own method, in the kernel, before export), or, by the
    grader on the exported weights, ``zero_bn2`` (bn2's scale set to 0) or ``zero_convs``
    (every convolution's weights set to 0).
    """

    label: str
    args: tuple = ()
    kwargs: tuple = ()  # (name, value) pairs
    input_shape: tuple = ()
    modes: tuple = MODES
    prepare: str = ""
    nonnegative: bool = False
    input_shift: float = 0.0
    also_positive_part: bool = False  # an eval-mode output on relu(x) too
    attributes: tuple = ("downsample",)  # submodules whose presence the judge reads
    # Give BNs random parameters and statistics (off: as the module built them)
    randomise: bool = True
    # Hand over the weights' values (off: shapes only, for a network the grader fills itself)
    values: bool = True

    def __post_init__(self):
        CASES[self.label] = self

    @property
    def stride(self) -> int:
        return dict(self.kwargs).get("stride", 1)

    def build(self, factory):
        return factory(*self.args, **dict(self.kwargs))

    def input(self, seed: int, salt: str = "") -> torch.Tensor:
        return seeded_input(
            seed, self.label + salt, self.input_shape, self.nonnegative, self.input_shift
        )


# --- in the kernel --------------------------------------------------------------------------


def probe_module(factory, case: Case, seed: int = 0) -> dict:
    """Build ``case`` with the student's factory and export it, once per mode it is judged in."""
    record: dict = {"label": case.label, "error": None}
    try:
        module = case.build(factory)
    except Exception as error:
        record["error"] = f"{case.label} failed: {describe_error(error)}"
        return record
    if not isinstance(module, nn.Module):
        record["error"] = f"{case.label} returned {type(module).__name__}, not an nn.Module."
        return record
    if case.prepare == "zero_init_last":
        try:
            module.zero_init_last()
        except Exception as error:
            record["error"] = f"{case.label}: zero_init_last() failed: {describe_error(error)}"
            return record
    state = module_state(module)
    if not case.values:
        state = {name: torch.zeros((), dtype=v.dtype).expand(v.shape) for name, v in state.items()}
    record["state"] = state
    example = torch.randn(*case.input_shape)
    record["programs"] = {}
    for mode in ("train", "eval") if ("train" in case.modes) else ("eval",):
        try:
            record["programs"][mode] = programs.export(module, example.clone(), mode == "train")
        except Exception as error:
            record["error"] = (
                f"{case.label} could not be exported in {mode} mode ({describe_error(error)}); "
                "its forward should be plain tensor operations on its input."
            )
            return record
    return record


def module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of ``module``'s parameters and buffers, read by torch's own ``state_dict``.

    The base class's method, not the module's: a class of the student's may override
    ``state_dict`` to report weights its forward never uses.
    """
    return {name: value.detach().clone() for name, value in nn.Module.state_dict(module).items()}


def quietly(function, *args, **kwargs):
    """Call ``function`` with the student's prints, warnings and random state kept out of the way."""
    silenced = io.StringIO()
    with (
        torch.random.fork_rng(devices=[]),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(silenced),
        contextlib.redirect_stderr(silenced),
        torch.enable_grad(),
    ):
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return function(*args, **kwargs)


def call(function, *args, **kwargs) -> dict:
    """``{"value": function(...)}``, or ``{"error": sentence}`` if it raised."""
    try:
        return {"value": function(*args, **kwargs)}
    except NotImplementedError:
        return {"error": "not implemented yet (the code raised NotImplementedError)."}
    except Exception as error:
        return {"error": f"the code raised {describe_error(error)}"}


# --- in the grader ----------------------------------------------------------------------------


def _weight_name(program: programs.Program, node: programs.Node, position: int) -> str | None:
    argument = node.args[position] if len(node.args) > position else None
    if isinstance(argument, dict) and "node" in argument:
        return program.state_names().get(argument["node"])
    return None


def layer_summary(program: programs.Program, state: dict) -> list[list]:
    """Rows [name, type, attributes] for the convolutions, BNs and linear layers the graph runs."""
    rows = []
    for node in program.operations:
        kind = node.target.split(".")[1]
        weight = _weight_name(program, node, 1)
        shape = tuple(state[weight].shape) if weight in state else None
        name = weight.rsplit(".", 1)[0] if weight and "." in weight else ""
        args = node.args + [None] * 10
        if kind in ("conv2d", "convolution") and shape is not None and len(shape) == 4:
            if kind == "conv2d":
                stride, padding, groups = args[3] or [1, 1], args[4] or [0, 0], args[6] or 1
            else:
                stride, padding, groups = args[3], args[4], args[8]
            stride = list(stride) * (2 if len(list(stride)) == 1 else 1)
            attributes = {"in": shape[1] * groups, "out": shape[0], "kernel": list(shape[2:])}
            attributes |= {"stride": stride, "padding": padding, "groups": groups}
            attributes["bias"] = _weight_name(program, node, 2) is not None
            rows.append([name, "Conv2d", attributes])
        elif kind in _BATCH_NORMS and shape is not None:
            rows.append([name, "BatchNorm2d", {"features": shape[0]}])
        elif kind == "linear" and shape is not None:
            rows.append([name, "Linear", {"in": shape[1], "out": shape[0]}])
    return rows


def batch_norm_tensors(program: programs.Program) -> list[list[str | None]]:
    """[weight, bias, running_mean, running_var] state names of each BN the graph runs."""
    found = []
    for node in program.operations:
        if node.target.split(".")[1] in _BATCH_NORMS:
            names = [_weight_name(program, node, i) for i in (1, 2, 3, 4)]
            if names not in found:
                found.append(names)
    return found


def load_module(built: dict) -> programs.ProgramModule:
    """The student's exported module, checked and ready to run in the grader's process."""
    loaded = {mode: programs.Program(data) for mode, data in built["programs"].items()}
    any_program = next(iter(loaded.values()))
    parameters = {t for k, _, t in any_program.inputs if k == "PARAMETER"}
    state = {str(k): v for k, v in built["state"].items() if isinstance(v, torch.Tensor)}
    return programs.ProgramModule(loaded, state, parameters)


def forward(module: nn.Module, x: torch.Tensor):
    try:
        with torch.no_grad():
            out = module(x)
    except programs.ProgramError as error:
        return str(error) + "."
    except Exception as error:  # a graph that does not run on the grader's input
        return describe_error(error)
    if not isinstance(out, torch.Tensor):
        return f"returned {type(out).__name__}, not a tensor"
    return out.detach().clone()


def materialise(built: dict, seed: int) -> dict:
    """What the grader computes from a case's graph: outputs, layers, parameter count.

    Fills ``built`` in place with ``module`` (the graph as a module, its weights prepared as
    the case says), ``outputs``, ``input_changed``, ``summary``, ``parameters`` and
    ``attributes``; records a sentence under ``error`` if the graph cannot be used.
    """
    if built.get("error") or "module" in built or "programs" not in built:
        return built
    case = CASES.get(built.get("label"))
    if case is None:
        built["error"] = "the evidence names a module the check did not build."
        return built
    try:
        _materialise(built, case, seed)
    except programs.ProgramError as error:
        built["error"] = f"{case.label}: {error}."
    except Exception as error:  # a record the probe did not write
        built["error"] = f"{case.label}: its evidence could not be used ({describe_error(error)})."
    return built


def _materialise(built: dict, case: Case, seed: int) -> None:
    module = load_module(built)
    program = next(iter(module.programs.values()))
    state = module.tensors()
    gen = generator(seed, case.label + "/weights")
    with torch.no_grad():
        if case.randomise:
            for weight, bias, mean, var in batch_norm_tensors(program):
                for name, low in ((weight, 0.5), (bias, -0.5), (mean, -0.5), (var, 0.5)):
                    if name in state:
                        state[name].copy_(torch.rand(state[name].shape, generator=gen) + low)
        if case.prepare == "zero_bn2" and "bn2.weight" in state:
            state["bn2.weight"].zero_()
        for row in layer_summary(program, state) if case.prepare == "zero_convs" else ():
            if row[1] == "Conv2d" and f"{row[0]}.weight" in state:
                state[f"{row[0]}.weight"].zero_()
    parameters = [t for kind, _, t in program.inputs if kind == "PARAMETER" and t in state]
    built["summary"] = layer_summary(program, state)
    built["parameters"] = sum(state[name].numel() for name in parameters)
    built["attributes"] = {
        name: "module" if any(key.startswith(name + ".") for key in state) else "None"
        for name in case.attributes
    }
    built["state"] = {name: value.detach().clone() for name, value in state.items()}
    built["outputs"], built["input_changed"] = {}, {}
    # Training first: its BN statistics update is part of what eval then sees.
    for mode in case.modes:
        module.train(mode == "train")
        x = case.input(seed)
        given = x.clone()
        built["outputs"][mode] = forward(module, given)
        built["input_changed"][mode] = not torch.equal(x, given)
    if case.also_positive_part:
        module.eval()
        built["outputs"]["eval_positive_part"] = forward(module, case.input(seed).relu())
    built["module"] = module
