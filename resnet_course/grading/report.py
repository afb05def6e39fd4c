"""Checks and the reports they print.

A :class:`Check` is a list of items, each a small test with a fixed name and a
hint. Running it gives a :class:`Report`, printed as a few stable lines::

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
    for start, line in enumerate(lines):
        header = _HEADER.match(line.strip())
        if header:
            break
    else:
        return None
    report = Report(header["name"])
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith((PASS, FAIL)):
            report.items.append(ItemResult(stripped[len(PASS) :].strip(), stripped.startswith(PASS)))
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
    test: Callable[..., None]
    hint: str


def _describe_error(error: BaseException) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class Check:
    """A named list of items. ``check.run(**objects)`` runs every item on the student's objects.

    Each item runs on its own: one that raises fails with a hint, and the others
    still run. Items are seeded (and leave the caller's random state alone), and
    whatever the student's code prints or warns is kept out of the report.
    """

    def __init__(self, name: str):
        self.name = name
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

    def run(self, **objects) -> Report:
        report = Report(self.name)
        for item in self.items:
            report.items.append(self._run_item(item, objects))
        return report

    @staticmethod
    def _run_item(item: Item, objects: dict) -> ItemResult:
        silenced = io.StringIO()
        try:
            with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), \
                    contextlib.redirect_stdout(silenced), contextlib.redirect_stderr(silenced), torch.enable_grad():
                warnings.simplefilter("ignore")
                torch.manual_seed(0)
                item.test(**objects)
        except CheckFailed as failure:
            return ItemResult(item.name, False, str(failure), item.hint)
        except NotImplementedError:
            return ItemResult(item.name, False, "not implemented yet (the code raised NotImplementedError).", item.hint)
        except Exception as error:  # the student's code may raise anything; it fails this item only
            return ItemResult(item.name, False, f"the code raised {_describe_error(error)}", item.hint)
        return ItemResult(item.name, True)
