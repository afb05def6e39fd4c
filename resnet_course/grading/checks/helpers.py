"""What the judges share: reading a probe's record, comparing values, clear failures.

Every function here runs on records (see :mod:`..probes`), never on the student's
objects, so the same judge serves a check cell and the grader's own process.
"""

from __future__ import annotations

import torch
from torch import nn

from ..probes import (  # noqa: F401  (randomise_batch_norm re-exported for the checks and tests)
    Case,
    describe_error,
    generator,
    randomise_batch_norm,
)
from ..report import CheckFailed


def module_record(record: dict, key: str) -> dict:
    """The record of one built module, failing with the student's error if it could not be built."""
    built = record.get(key)
    if not isinstance(built, dict):
        raise CheckFailed(f"nothing was recorded for {key}.")
    if built.get("error"):
        raise CheckFailed(built["error"])
    if "module" not in built:
        raise CheckFailed(f"nothing the grader can run was recorded for {key}.")
    return built


def output(built: dict, mode: str = "train") -> torch.Tensor:
    """The module's recorded output in ``mode``, failing with what went wrong if there is none."""
    value = built["outputs"].get(mode)
    if isinstance(value, str):
        raise CheckFailed(f"{built['label']} in {mode.replace('_', ' ')} mode: {value}")
    return value


def expect_shape(value, expected: tuple[int, ...], what: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} returned {type(value).__name__}, not a tensor.")
    if tuple(value.shape) != tuple(expected):
        raise CheckFailed(f"{what} gave shape {tuple(value.shape)}, expected {tuple(expected)}.")


def expect_close(actual, expected: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    if not isinstance(actual, torch.Tensor):
        raise CheckFailed(f"{what} is {type(actual).__name__}, not a tensor.")
    if actual.shape != expected.shape:
        raise CheckFailed(
            f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}."
        )
    difference = (actual.detach().float() - expected.detach().float()).abs().max().item()
    if not difference <= atol:  # also catches NaN
        raise CheckFailed(f"{what} differs from the expected values by up to {difference:.3g}.")


def attribute(built: dict, name: str) -> str:
    """``absent``, ``None`` or the type name of the module's attribute ``name``."""
    value = built["attributes"].get(name, "absent")
    if value == "absent":
        raise CheckFailed(
            f"{built['label']} has no attribute {name!r}; name the layers as the exercise asks."
        )
    return value


def layers(built: dict, prefix: str = "", kind: str | None = None) -> list[list]:
    """Summary rows of the submodules under ``prefix`` (``""``: all), optionally of one type."""
    rows = [
        row
        for row in built["summary"]
        if row[0] == prefix or row[0].startswith(prefix + ".") or not prefix
    ]
    return [row for row in rows if kind is None or row[1] == kind]


def convolutions(built: dict, prefix: str = "") -> list[dict]:
    return [row[2] for row in layers(built, prefix) if "kernel" in row[2]]


def _reference_state(reference: nn.Module, seed: int, label: str) -> dict:
    """The reference's weights: its own initialisation, with BN parameters and statistics drawn from the seed."""
    randomise_batch_norm(reference, generator(seed, label + "/reference"))
    return reference.state_dict()


def _match_by_name(student: dict, target: dict) -> dict[str, str]:
    """Student tensor name -> reference name: the same names, then, inside a layer the exercise
    names (``downsample``), the student's own names for its parts, in order, where the shapes agree.

    The exercise names a block's layers, not what a ``Sequential`` calls its parts: an
    ``OrderedDict(conv=..., bn=...)`` shortcut is as right as a numbered one.
    """
    mapping = {name: name for name in target if name in student}
    for layer in {name.split(".")[0] for name in target} - {""}:
        missing = [n for n in target if n.startswith(layer + ".") and n not in mapping.values()]
        spare = [n for n in student if n.startswith(layer + ".") and n not in mapping]
        if missing and len(missing) == len(spare):
            if all(
                tuple(student[a].shape) == tuple(target[b].shape) for a, b in zip(spare, missing)
            ):
                mapping.update(zip(spare, missing))
    return mapping


def load_reference(
    built: dict, reference: nn.Module, what: str, seed: int, *, strict=True, by_position=False
) -> nn.Module:
    """The student's graph, given the reference's weights (by name, or in order): the grader's own numbers."""
    module = built["module"]
    student = {name: value for name, value in module.tensors().items()}
    target = _reference_state(reference, seed, built["label"])
    if by_position:
        if len(student) != len(target):
            raise CheckFailed(
                f"{what} has {len(student)} weight tensors, the reference {len(target)}."
            )
        mapping = dict(zip(student, target))
    else:
        mapping = _match_by_name(student, target)
        missing = [name for name in target if name not in mapping.values()]
        unexpected = [name for name in student if name not in mapping]
        if missing or (unexpected and strict):
            detail = []
            if missing:
                detail.append(f"lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
            if unexpected and strict:
                detail.append(
                    f"has extra {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}"
                )
            raise CheckFailed(
                f"{what}'s weights do not match the reference's names: it {' and '.join(detail)}."
            )
    for index, (name, reference_name) in enumerate(mapping.items()):
        if tuple(student[name].shape) != tuple(target[reference_name].shape):
            raise CheckFailed(
                f"{what}'s weight {name} (number {index + 1}) has shape {tuple(student[name].shape)} "
                f"where the reference has {tuple(target[reference_name].shape)} ({reference_name})."
            )
    module.load({name: target[reference_name] for name, reference_name in mapping.items()})
    module.reference_names = mapping
    return module


def _gradients(module: nn.Module, x: torch.Tensor, upstream, tensors: list):
    """The output on ``x`` and the gradients of ``(output * upstream).sum()`` (``upstream`` drawn
    for the output's shape when it is a generator) with respect to ``x`` and ``tensors``."""
    leaf = x.clone().requires_grad_(True)
    out = module(leaf * 1)  # a copy: an in-place operation on the input must not touch the leaf
    if isinstance(upstream, torch.Generator):
        upstream = torch.randn(out.shape, generator=upstream)
    if not isinstance(out, torch.Tensor) or out.shape != upstream.shape:
        return out, [None] * (1 + len(tensors)), upstream  # the output's check says what is wrong
    grads = torch.autograd.grad((out * upstream).sum(), [leaf, *tensors], allow_unused=True)
    return out, grads, upstream


def same_function(
    built: dict, reference: nn.Module, case: Case, seed: int, what: str, atol: float = 1e-5
) -> None:
    """The student's graph, with the reference's weights, gives the reference's outputs and gradients.

    Training mode first (outputs, the gradient with respect to the input and to every weight),
    then eval mode, with the BN statistics that training step left.
    """
    module = built["module"]
    mapping = getattr(module, "reference_names", {})
    student_tensors, reference_tensors = module.tensors(), dict(reference.named_parameters())
    pairs = [(n, r) for n, r in mapping.items() if r in reference_tensors]
    for mode in case.modes:
        reference.train(mode == "train")
        module.train(mode == "train")
        x = case.input(seed)
        if mode != "train":
            with torch.no_grad():
                expected = reference(x.clone())
            expect_close(output_of(module, x), expected, f"{what}'s output in {mode} mode", atol)
            continue
        upstream = generator(seed, case.label + "/upstream")
        expected, reference_grads, upstream = _gradients(
            reference, x, upstream, [reference_tensors[r] for _, r in pairs]
        )
        try:
            out, grads, _ = _gradients(module, x, upstream, [student_tensors[n] for n, _ in pairs])
        except Exception as error:  # a graph that does not run with the reference's weights
            raise CheckFailed(f"{what} in {mode} mode: {describe_error(error)}") from None
        expect_close(out, expected, f"{what}'s output in {mode} mode", atol)
        grad_x = grads[0]
        expect_close(grad_x, reference_grads[0], f"{what}'s gradient for its input", 10 * atol)
        for (name, _), grad, reference_grad in zip(pairs, grads[1:], reference_grads[1:]):
            if reference_grad is not None:
                if grad is None:
                    raise CheckFailed(f"{what}'s output does not depend on {name}.")
                expect_close(grad, reference_grad, f"{what}'s gradient for {name}", 10 * atol)


def output_of(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        with torch.no_grad():
            return module(x.clone())
    except Exception as error:
        raise CheckFailed(f"the graph did not run: {describe_error(error)}") from None


def expect_reference(
    record: dict,
    case: Case,
    reference: nn.Module,
    seed: int,
    *,
    strict: bool = True,
    atol: float = 1e-5,
    by_position: bool = False,
) -> None:
    """The module built for ``case``, given the reference's weights, computes what the reference does."""
    built = module_record(record, case.label)
    load_reference(built, reference, case.label, seed, strict=strict, by_position=by_position)
    same_function(built, reference, case, seed, case.label, atol)


def load_weights_by_position(reference: nn.Module, state: dict, what: str) -> nn.Module:
    """Load every parameter and buffer in registration order, whatever the names (layouts must agree)."""
    values, target = list(state.values()), reference.state_dict()
    if len(values) != len(target):
        raise CheckFailed(f"{what} has {len(values)} weight tensors, the reference {len(target)}.")
    for index, ((name, target_value), value) in enumerate(zip(target.items(), values)):
        if tuple(value.shape) != tuple(target_value.shape):
            raise CheckFailed(
                f"{what}'s weight tensor number {index + 1} has shape {tuple(value.shape)} where "
                f"the reference has {tuple(target_value.shape)} ({name})."
            )
    reference.load_state_dict(dict(zip(target, values)))
    return reference
