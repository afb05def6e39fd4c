"""Checks and the reports they print.

A :class:`Check` is a probe (it records what the student's code computes, see
:mod:`.probes`) and a list of items, each a small test of that record with a
fixed name and a hint. Judging gives a :class:`Report`, printed as a few stable lines::

    Check basic_block: 4/5 passed
      [pass] BasicBlock(16, 16) keeps a (2, 16, 8, 8) input's shape
      [FAIL] zero_init_last() makes the block an identity on non-negative inputs
             the zero-initialised block's output differs from the expected values by up to 1.3.
             hint: zero_init_last() sets bn2's weight (gamma) to 0, so ...

The text holds no timings and no random numbers, so the all-passed report of a
check is known in advance: it is what a check cell stores, and what nbval
compares a fresh run with.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..data import DataUnavailableError
from . import programs
from .probes import describe_error, materialise, quietly

PASS, FAIL = "[pass]", "[FAIL]"
_INDENT = " " * 9  # under the item's name
_HEADER = re.compile(r"^Check (?P<name>\S+): (?P<passed>\d+)/(?P<total>\d+) passed$")


class CheckFailed(Exception):
    """Raised by an item to fail with a specific hint (what was expected, what came out)."""


@dataclass
class ItemResult:
    name: str
    passed: bool
    detail: str = ""  # what went wrong (failures only)
    hint: str = ""  # what to look at (failures only)


@dataclass
class Report:
    """The outcome of one check: one line per item, a hint under each failure."""

    check: str
    items: list[ItemResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(item.passed for item in self.items)

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def all_passed(self) -> bool:
        return self.passed == self.total

    def text(self) -> str:
        lines = [f"Check {self.check}: {self.passed}/{self.total} passed"]
        for item in self.items:
            lines.append(f"  {PASS if item.passed else FAIL} {item.name}")
            if not item.passed:
                lines += [f"{_INDENT}{item.detail}"] if item.detail else []
                lines += [f"{_INDENT}hint: {item.hint}"] if item.hint else []
        return "\n".join(lines)

    __str__ = text

    def _repr_pretty_(self, printer, cycle) -> None:
        # A check cell ends with the check call, so Jupyter shows the report as the cell's result.
        printer.text(self.text())

    def __repr__(self) -> str:
        return f"<Report {self.check}: {self.passed}/{self.total} passed>"


def parse_report(text: str) -> Report | None:
    """The report printed in ``text`` (a check cell's output), or ``None`` if there is none."""
    lines = text.splitlines()
    for start, line in enumerate(lines):  # noqa: B007  (start is read after the loop)
        header = _HEADER.match(line.strip())
        if header:
            break
    else:
        return None
    report = Report(header["name"])
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith((PASS, FAIL)):
            report.items.append(
                ItemResult(stripped[len(PASS) :].strip(), stripped.startswith(PASS))
            )
        elif line.startswith(_INDENT) and report.items and not report.items[-1].passed:
            if stripped.startswith("hint:"):
                report.items[-1].hint = stripped[len("hint:") :].strip()
            else:
                report.items[-1].detail = stripped
        else:
            break
    # A report whose header disagrees with its own lines was not printed by a check.
    if len(report.items) != int(header["total"]) or report.passed != int(header["passed"]):
        return None
    return report


@dataclass
class Item:
    name: str
    test: Callable[..., None]  # test(evidence, seed) raises to fail
    hint: str


class Check:
    """A probe and a named list of items that judge what the grader computes from its record.

    ``check.probe(seed, **objects)`` runs the student's code and returns a record (see
    :mod:`.probes`); ``check.judge(record, seed)`` gives the report. ``check.run(**objects)``
    does both, which is what a check cell shows. ``own`` names the objects that must be the
    notebook's own code: the graphs of the modules they build must come from the notebook's
    cells (or the course files in ``allowed``, which the exercise builds on); with
    ``through_cells`` off, operations of PyTorch's own layers alone also count (a network
    assembled from ``nn.Sequential``).
    Each item runs on its own: one that raises fails with a hint, and the others still run.
    """

    def __init__(
        self,
        name: str,
        probe: Callable[..., dict] | None = None,
        own: tuple[str, ...] = (),
        allowed: tuple[str, ...] = (),
        through_cells: bool = True,
    ):
        self.name = name
        self.through_cells = through_cells
        self._probe = probe or (lambda seed, **objects: {})
        self.own = own
        self.allowed = allowed
        self.items: list[Item] = []

    def item(self, name: str, *, hint: str):
        """Decorator: add a test to this check. The test raises (CheckFailed or anything) to fail."""

        def register(test: Callable[..., None]) -> Callable[..., None]:
            self.items.append(Item(name, test, hint))
            return test

        return register

    @property
    def item_names(self) -> list[str]:
        return [item.name for item in self.items]

    def all_passed_text(self) -> str:
        """The report every item passing gives: a check cell's stored output."""
        return Report(self.name, [ItemResult(name, True) for name in self.item_names]).text()

    def probe(self, seed: int, **objects) -> dict:
        """The record of the student's objects (run in the kernel). It never raises."""
        try:
            return dict(quietly(self._probe, seed, **objects))
        except (
            Exception
        ) as error:  # a probe records the student's errors itself; this is the last resort
            return {"probe_error": f"the code raised {describe_error(error)}"}

    def emit(self, seed: int, path: str, **objects) -> str:
        """The grader's version of a check cell: the probe's record, written to ``path``."""
        programs.save(self.probe(seed, **objects), path)
        return f"evidence for the check {self.name} written"

    def borrowed(self, record: dict, cells: dict[str, str] | None) -> str | None:
        """A sentence if a graded module's operations come from code other than the notebook's."""
        for built in record.values():
            if not (isinstance(built, dict) and isinstance(built.get("module"), nn.Module)):
                continue
            for program in built["module"].programs.values():
                source = programs.foreign_source(program, cells, self.allowed, self.through_cells)
                if source:
                    name = " and ".join(self.own)
                    return (
                        f"{built['label']} runs {source}, not code written in this notebook; "
                        f"write {name} yourself in a code cell."
                    )
        return None

    def judge(
        self,
        record: dict,
        seed: int,
        *,
        own_code_required: bool = True,
        cells: dict[str, str] | None = None,
    ) -> Report:
        """The report on a record (in the grader's process, or in the kernel for feedback).

        ``cells``: the notebook's cells by the hash ipykernel names them with, where the grader knows them.
        """
        report = Report(self.name)
        for built in record.values():
            if isinstance(built, dict) and "programs" in built:
                materialise(built, seed)
        borrowed = self.borrowed(record, cells) if (own_code_required and self.own) else None
        for item in self.items:
            if borrowed:
                report.items.append(ItemResult(item.name, False, borrowed, item.hint))
            elif record.get("probe_error"):
                report.items.append(ItemResult(item.name, False, record["probe_error"], item.hint))
            else:
                report.items.append(self._run_item(item, record, seed))
        return report

    def run(self, *, own_code_required: bool = True, seed: int = 0, **objects) -> Report:
        return self.judge(self.probe(seed, **objects), seed, own_code_required=own_code_required)

    @staticmethod
    def _run_item(item: Item, record: dict, seed: int) -> ItemResult:
        silenced = io.StringIO()
        try:
            with (
                torch.random.fork_rng(devices=[]),
                warnings.catch_warnings(),
                contextlib.redirect_stdout(silenced),
                contextlib.redirect_stderr(silenced),
                torch.enable_grad(),
            ):
                warnings.simplefilter("ignore")
                torch.manual_seed(0)
                item.test(record, seed)
        except CheckFailed as failure:
            return ItemResult(item.name, False, str(failure), item.hint)
        except NotImplementedError:
            return ItemResult(
                item.name,
                False,
                "not implemented yet (the code raised NotImplementedError).",
                item.hint,
            )
        except DataUnavailableError as error:  # the grader's machine, not the student's code
            return ItemResult(
                item.name,
                False,
                f"this item needs CIFAR-10 on the grading machine, which could not "
                f"load it: {str(error).strip().splitlines()[0]}",
                item.hint,
            )
        except Exception as error:  # a malformed record fails this item only
            return ItemResult(
                item.name,
                False,
                f"the check could not read the result ({describe_error(error)})",
                item.hint,
            )
        return ItemResult(item.name, True)
