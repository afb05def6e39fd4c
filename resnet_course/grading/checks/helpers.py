"""What the judges share: reading a probe's record, comparing values, clear failures.

Every function here runs on records (see :mod:`..probes`), never on the student's
objects, so the same judge serves a check cell and the grader's own process.
"""

from __future__ import annotations

import torch
from torch import nn

from ..probes import Case, randomise_batch_norm  # noqa: F401  (re-exported for the checks and tests)
from ..report import CheckFailed


def module_record(record: dict, key: str) -> dict:
    """The record of one built module, failing with the student's error if it could not be built."""
    built = record.get(key)
    if not isinstance(built, dict):
        raise CheckFailed(f"nothing was recorded for {key}.")
    if built.get("error"):
        raise CheckFailed(built["error"])
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


def load_weights(reference: nn.Module, state: dict, what: str, strict: bool = True) -> nn.Module:
    """``reference.load_state_dict(state)``, failing with the names or shapes that differ."""
    reference_keys, student_keys = set(reference.state_dict()), set(state)
    missing, unexpected = (
        sorted(reference_keys - student_keys),
        sorted(student_keys - reference_keys),
    )
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
    try:
        reference.load_state_dict({key: state[key] for key in reference_keys})
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise CheckFailed(f"{what}'s weights have the wrong shapes ({first}).") from None
    return reference


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


def same_function(
    built: dict, reference: nn.Module, case: Case, seed: int, what: str, atol: float = 1e-5
) -> None:
    """The recorded outputs equal the reference's, in training mode then eval mode, on the same input."""
    for mode in case.modes:
        reference.train(mode == "train")
        with torch.no_grad():
            expected = reference(case.input(seed))
        expect_close(output(built, mode), expected, f"{what}'s output in {mode} mode", atol)


def expect_reference(
    record: dict,
    case: Case,
    reference: nn.Module,
    seed: int,
    *,
    strict: bool = True,
    atol: float = 1e-5,
) -> None:
    """The module built for ``case`` computes what ``reference`` does once given its weights."""
    built = module_record(record, case.label)
    load_weights(reference, built["state"], case.label, strict=strict)
    same_function(built, reference, case, seed, case.label, atol)
