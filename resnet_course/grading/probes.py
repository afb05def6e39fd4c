"""Evidence about a student's code: what it computes on inputs drawn from a seed, never a verdict.

A check is split in two. Its *probe* runs the student's code (in the student's
kernel) and records plain data: outputs on seeded inputs, state_dicts, layer
summaries, where a class was defined. Its *items* then judge that record
against the course's own reference. In a check cell both halves run in the
kernel, which is the student's feedback; ``python -m resnet_course grade`` runs
only the probe in the kernel, with a seed drawn at grading time, and judges the
record in its own process, so nothing the kernel patches can change a verdict.

To pass with a seed it has never seen, a probe's record has to hold what a
correct implementation computes: outputs on those inputs, for those weights.
"""

from __future__ import annotations

import base64
import contextlib
import io
import warnings
import zlib
from dataclasses import dataclass, field

import torch
from torch import nn

# The MIME type of a probe's record in a cell's output: the grader reads only this, from the
# restored check cell's own execution, over the kernel protocol.
EVIDENCE_MIME = "application/vnd.resnet-course.evidence+base64"

MODES = ("train", "eval")


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


def origin(obj) -> dict:
    """Where a class or function was defined: its module, its bases, and its own methods' modules."""
    record = {
        "type": type(obj).__name__,
        "module": getattr(obj, "__module__", None),
        "name": getattr(obj, "__qualname__", None),
        "mro": [],
        "methods": {},
    }
    if isinstance(obj, type):
        record["mro"] = [
            [getattr(c, "__module__", ""), getattr(c, "__qualname__", "")] for c in obj.__mro__
        ]
        record["methods"] = {
            name: getattr(value, "__module__", None)
            for name, value in vars(obj).items()
            if callable(value) and hasattr(value, "__code__")
        }
    return record


def layer_summary(module: nn.Module) -> list[list]:
    """One row per submodule: [name, type name, attributes]; convolutions and BNs with their sizes."""
    rows = []
    for name, sub in module.named_modules():
        attributes = {}
        if isinstance(sub, nn.Conv2d):
            attributes = {
                "in": sub.in_channels,
                "out": sub.out_channels,
                "kernel": list(sub.kernel_size),
                "stride": list(sub.stride),
                "groups": sub.groups,
                "bias": sub.bias is not None,
            }
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
            attributes = {"features": sub.num_features}
        elif isinstance(sub, nn.Linear):
            attributes = {"in": sub.in_features, "out": sub.out_features}
        rows.append([name, type(sub).__name__, attributes])
    return rows


@dataclass(frozen=True)
class Case:
    """One construction of a student's module, and what to record about it.

    ``build`` is called as ``factory(*args, **kwargs)``. ``prepare`` names what is done to
    the module before its forward passes: ``zero_init_last`` (its own method), ``zero_bn2``
    (bn2's scale set to 0) or ``zero_convs`` (every convolution's weights set to 0).
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
    attributes: tuple = ("downsample",)  # attributes to record: absent, None, or a type name
    # Give BNs random parameters and statistics (off: as the module built them)
    randomise: bool = True

    @property
    def stride(self) -> int:
        return dict(self.kwargs).get("stride", 1)

    def build(self, factory):
        return factory(*self.args, **dict(self.kwargs))

    def input(self, seed: int, salt: str = "") -> torch.Tensor:
        return seeded_input(
            seed, self.label + salt, self.input_shape, self.nonnegative, self.input_shift
        )


def _prepare(module: nn.Module, how: str) -> None:
    if how == "zero_init_last":
        module.zero_init_last()
    elif how == "zero_bn2":
        nn.init.zeros_(module.bn2.weight)
    elif how == "zero_convs":
        with torch.no_grad():
            for conv in (m for m in module.modules() if isinstance(m, nn.Conv2d)):
                conv.weight.zero_()


def _forward(module: nn.Module, x: torch.Tensor):
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as error:  # the student's code may raise anything; the judge says which
        return describe_error(error)
    return (
        out.detach().clone()
        if isinstance(out, torch.Tensor)
        else f"returned {type(out).__name__}, not a tensor"
    )


def probe_module(factory, case: Case, seed: int) -> dict:
    """Build ``case`` with the student's factory and record its weights, layers and outputs."""
    record: dict = {"label": case.label, "error": None}
    try:
        module = case.build(factory)
    except Exception as error:
        record["error"] = f"{case.label} failed: {describe_error(error)}"
        return record
    if not isinstance(module, nn.Module):
        record["error"] = f"{case.label} returned {type(module).__name__}, not an nn.Module."
        return record
    if case.randomise:
        randomise_batch_norm(module, generator(seed, case.label + "/weights"))
    if case.prepare:
        try:
            _prepare(module, case.prepare)
        except Exception as error:
            record["error"] = (
                f"preparing {case.label} ({case.prepare}) failed: {describe_error(error)}"
            )
            return record
    record["state"] = {name: value.detach().clone() for name, value in module.state_dict().items()}
    record["summary"] = layer_summary(module)
    record["parameters"] = sum(p.numel() for p in module.parameters())
    record["attributes"] = {
        name: (
            "absent"
            if not hasattr(module, name)
            else "None"
            if getattr(module, name) is None
            else type(getattr(module, name)).__name__
        )
        for name in case.attributes
    }
    record["outputs"], record["input_changed"] = {}, {}
    for (
        mode
    ) in case.modes:  # training first: its BN statistics update is part of what eval then sees
        module.train(mode == "train")
        x = case.input(seed)
        before = x.clone()
        record["outputs"][mode] = _forward(module, x)
        record["input_changed"][mode] = not torch.equal(x, before)
    if case.also_positive_part:
        module.eval()
        record["outputs"]["eval_positive_part"] = _forward(module, case.input(seed).relu())
    return record


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


def encode(evidence: dict) -> str:
    buffer = io.BytesIO()
    torch.save(evidence, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(text: str) -> dict:
    """The record back, read with ``weights_only`` so that no code in it can run."""
    data = base64.b64decode(text.encode("ascii"), validate=True)
    evidence = torch.load(io.BytesIO(data), weights_only=True)
    if not isinstance(evidence, dict):
        raise ValueError("the evidence is not a record")
    return evidence


@dataclass
class Emitted:
    """What ``emit`` shows: a line for a person, and the record for the grader."""

    check: str
    payload: str = field(repr=False)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {
            "text/plain": f"evidence for the check {self.check} ({len(self.payload):,} characters)",
            EVIDENCE_MIME: self.payload,
        }


def emit(check_name: str, seed: int, **objects) -> Emitted:
    """Run a check's probe on the student's objects; the grader's version of a check cell ends with this."""
    from .checks import ALL_CHECKS

    return Emitted(check_name, encode(ALL_CHECKS[check_name].probe(seed, **objects)))
