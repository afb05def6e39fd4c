"""Grading one notebook: put the canonical cells back, vet the source, run it, judge the evidence.

As nbgrader does, the grader trusts nothing in the student's copy of a check
cell: it finds each check cell (by cell id, by its metadata, or by the call it
makes) and puts the canonical one in its place. Then, unlike a check cell in
Jupyter, it splits the check in two (see :mod:`.probes`):

1. it reads the notebook's source in its own process (:mod:`.vetting`): a graded
   class must be the notebook's own, and nothing may patch or reach into the
   interpreter;
2. it runs the notebook itself with nbclient, in a sandbox (:mod:`.sandbox`),
   with each check cell replaced by its probe and a seed drawn now; the record
   comes back as the output of that cell, over the kernel protocol;
3. it judges each record in its own process, against its own reference.

Nothing the kernel does can change a verdict except computing what a correct
implementation computes.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .checks import ALL_CHECKS
from .exercises import EXERCISES, METADATA_KEY, STUB_TAG, CheckCell, Exercise, find_exercise
from .probes import EVIDENCE_MIME, decode
from .report import Report
from .vetting import vet

# Seconds per cell; exercise 2's training takes about a minute on a laptop CPU
DEFAULT_TIMEOUT = 600
# Per student cell: a notebook that floods its output is cut off, not held in memory
MAX_OUTPUT_CHARS = 2_000_000
MAX_EVIDENCE_CHARS = 200_000_000  # per check cell: a record holds weights (a few MB for exercise 3)
KERNEL_STARTUP_TIMEOUT = 180
SETUP_TAG = "colab-setup"


class GradingError(Exception):
    """A notebook that cannot be graded at all; the message is one sentence for the student."""


@dataclass
class CheckResult:
    cell: CheckCell
    passed: int
    total: int
    failed_items: list[str] = field(default_factory=list)


@dataclass
class NotebookGrade:
    path: Path
    exercise: Exercise
    checks: list[CheckResult]
    problems: list[str]  # one sentence each: errors, time-outs, missing or broken check cells
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(check.passed for check in self.checks)

    @property
    def total(self) -> int:
        return sum(check.total for check in self.checks)

    @property
    def points(self) -> float:
        return round(self.exercise.points * self.passed / self.total, 1) if self.total else 0.0

    @property
    def all_passed(self) -> bool:
        return self.passed == self.total and not self.problems


# --- reading and restoring -------------------------------------------------------------------


def read_notebook(path: Path) -> nbformat.NotebookNode:
    if not path.exists():
        raise GradingError(f"{path} does not exist.")
    if path.is_dir() or path.suffix != ".ipynb":
        raise GradingError(f"{path} is not a Jupyter notebook (an .ipynb file).")
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # NotJSONError, ValidationError, UnicodeDecodeError, OSError...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise GradingError(f"{path} could not be read as a notebook ({reason[:120]}).") from None
    if not isinstance(notebook.get("cells"), list):
        raise GradingError(f"{path} could not be read as a notebook (it has no list of cells).")
    return notebook


def identify_exercise(notebook: nbformat.NotebookNode, path: Path) -> Exercise:
    """The exercise named in the notebook's metadata, else by its file name, else by its check cells."""
    named = notebook.metadata.get(METADATA_KEY, {}).get("exercise")
    for candidate in (named, path.stem):
        exercise = find_exercise(candidate) if isinstance(candidate, str) else None
        if exercise is not None:
            return exercise
    for exercise in EXERCISES.values():
        if any(find_check_cell(notebook, cell) is not None for cell in exercise.checks):
            return exercise
    raise GradingError(
        f"{path} is not one of the course's exercises (neither its metadata nor its file name names one of "
        f"{', '.join(EXERCISES)})."
    )


def find_check_cell(notebook: nbformat.NotebookNode, check: CheckCell) -> int | None:
    """The index of ``check``'s cell: by id, by metadata, or by the call it makes (Colab drops ids)."""
    cells = notebook.cells
    for matches in (
        lambda cell: cell.get("id") == check.id,
        lambda cell: cell.get("metadata", {}).get(METADATA_KEY, {}).get("check") == check.id,
        lambda cell: cell.get("cell_type") == "code" and check.call in cell.get("source", ""),
    ):
        for index, cell in enumerate(cells):
            if matches(cell):
                return index
    return None


def restore_check_cells(notebook: nbformat.NotebookNode, exercise: Exercise) -> dict[str, int]:
    """Replace every check cell with its canonical version, in place.

    Returns where each check cell now is, as its index among the code cells (as
    nbval counts them); a check cell that was not found is left out.
    """
    _give_every_cell_an_id(notebook)
    positions = {}
    for check in exercise.checks:
        index = find_check_cell(notebook, check)
        if index is None:
            continue
        code_cells_before = sum(cell.cell_type == "code" for cell in notebook.cells[:index])
        notebook.cells[index] = check.cell(execution_count=code_cells_before + 1)
        positions[check.id] = code_cells_before
    canonical_ids = {check.id for check in exercise.checks}
    for index, cell in enumerate(
        notebook.cells
    ):  # a student's copy of a check cell must not share its id
        if (
            cell.id in canonical_ids
            and cell.get("metadata", {}).get(METADATA_KEY, {}).get("check") != cell.id
        ):
            cell.id = f"cell-{index}"
    notebook.metadata.setdefault(METADATA_KEY, {})["exercise"] = exercise.name
    return positions


def _give_every_cell_an_id(notebook: nbformat.NotebookNode) -> None:
    # Notebooks saved by Colab are nbformat 4.0-4.4, whose cells have no ids.
    notebook.nbformat, notebook.nbformat_minor = 4, max(notebook.get("nbformat_minor", 0), 5)
    seen = set()
    for index, cell in enumerate(notebook.cells):
        if not cell.get("id") or cell.id in seen:
            cell.id = f"cell-{index}"
        seen.add(cell.id)


def restore_setup_cell(notebook: nbformat.NotebookNode) -> int | None:
    """The set-up cell, if any, becomes a plain import: the grader provides the course itself."""
    for index, cell in enumerate(notebook.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and (
            SETUP_TAG in tags or "Set-up: make `resnet_course` importable" in cell.source
        ):
            cell.source = "import resnet_course"
            return index
    return None


# --- running ---------------------------------------------------------------------------------


@dataclass
class CellOutcome:
    number: int  # 1-based among the code cells
    source: str
    error: str = ""  # "" when it ran without error
    timed_out: bool = False
    # Tagged raises-exception: a stub that fails until the student writes it
    may_raise: bool = False


@dataclass
class Run:
    cells: list[CellOutcome] = field(default_factory=list)
    evidence: dict[str, dict | str] = field(
        default_factory=dict
    )  # check cell id -> record, or why there is none
    died_in: CellOutcome | None = None
    flooded: list[int] = field(default_factory=list)
    notebook: nbformat.NotebookNode | None = None  # as it ran, with its outputs


def _error_of(outputs) -> str:
    for output in outputs:
        if output.get("output_type") == "error":
            value = (str(output.get("evalue", "")).strip().splitlines() or [""])[0]
            value = value if len(value) <= 160 else value[:157] + "..."
            return f"{output.get('ename', 'Error')}: {value}".strip().rstrip(":")
    return ""


def _evidence_of(outputs) -> dict | str:
    payloads = [
        o["data"][EVIDENCE_MIME]
        for o in outputs
        if o.get("output_type") in ("execute_result", "display_data")
        and EVIDENCE_MIME in o.get("data", {})
    ]
    error = _error_of(outputs)
    if error:
        return f"it raised {error}"
    if len(payloads) != 1:
        return "it printed no evidence" if not payloads else "it printed more than one record"
    try:
        return decode(payloads[0])
    except Exception:  # a record that does not decode was not written by the probe
        return "its record could not be read"


def _client_class():
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """nbclient, with each cell's output cut off past its limit (larger for the probes' records)."""

        def __init__(self, *args, probe_indices=(), **kwargs):
            super().__init__(*args, **kwargs)
            self.probe_indices = set(probe_indices)
            self.output_sizes: dict[int, int] = {}
            self.flooded: set[int] = set()

        def output(self, outs, msg, display_id, cell_index):
            size = self.output_sizes.get(cell_index, 0) + len(str(msg.get("content", "")))
            self.output_sizes[cell_index] = size
            if size > (
                MAX_EVIDENCE_CHARS if cell_index in self.probe_indices else MAX_OUTPUT_CHARS
            ):
                self.flooded.add(cell_index)
                return None
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


def run_notebook(
    notebook: nbformat.NotebookNode,
    probes: dict[int, CheckCell],
    seed: int,
    timeout: float,
    slot: int = 0,
    sweep_children: bool = True,
) -> Run:
    """Run the notebook in a sandbox, each check cell (by index) replaced by its probe; collect what happened."""
    import sys

    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from .sandbox import Sandbox

    run = Run()
    to_run = nbformat.from_dict(notebook)
    for index, check in probes.items():
        to_run.cells[index].source = check.evidence_source(seed)
        to_run.cells[index].outputs = []
    with Sandbox(slot, sweep_children) as box:
        km = AsyncKernelManager(connection_file=str(box.connection_file))
        # The kernel is this Python, whatever kernels are installed; it imports the sandbox's course first.
        km._kernel_spec = KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="grader",
            language="python",
        )
        km.write_connection_file()
        box.hand_over(box.connection_file)
        client = _client_class()(
            to_run,
            km=km,
            timeout=timeout,
            allow_errors=True,
            interrupt_on_timeout=True,
            startup_timeout=KERNEL_STARTUP_TIMEOUT,
            record_timing=False,
            probe_indices=probes,
        )
        kernel_pid = None
        try:
            with client.setup_kernel(**box.kernel_kwargs):
                kernel_pid = getattr(km.provisioner, "pid", None)
                timeouts_in_a_row, number = 0, 0
                for index, cell in enumerate(to_run.cells):
                    if cell.cell_type != "code":
                        continue
                    number += 1
                    tags = notebook.cells[index].get("metadata", {}).get("tags", [])
                    outcome = CellOutcome(
                        number, notebook.cells[index].source, may_raise=STUB_TAG in tags
                    )
                    started = time.monotonic()
                    try:
                        client.execute_cell(cell, index)
                    except CellTimeoutError:
                        outcome.timed_out = True
                    except DeadKernelError:
                        run.died_in = outcome
                        run.cells.append(outcome)
                        break
                    outcome.error = _error_of(cell.outputs)
                    # nbclient interrupts a cell at its time limit: the cell then shows a KeyboardInterrupt.
                    if (
                        outcome.error.startswith("KeyboardInterrupt")
                        and time.monotonic() - started >= timeout
                    ):
                        outcome.timed_out = True
                    if outcome.timed_out:
                        outcome.error = ""
                    timeouts_in_a_row = timeouts_in_a_row + 1 if outcome.timed_out else 0
                    run.cells.append(outcome)
                    if index in probes:
                        run.evidence[probes[index].id] = (
                            "it did not finish in time"
                            if outcome.timed_out
                            else _evidence_of(cell.outputs)
                        )
                    if (
                        timeouts_in_a_row >= 2
                    ):  # a kernel that ignores interrupts would hold every later cell
                        break
        except DeadKernelError:
            run.died_in = run.died_in or CellOutcome(0, "")
        except RuntimeError as error:  # the kernel did not start
            raise GradingError(
                f"could not start a kernel ({str(error).splitlines()[0][:160]})."
            ) from None
        finally:
            box.end(kernel_pid)
        run.flooded = sorted(client.flooded)
    run.notebook = to_run
    return run


# --- scoring ---------------------------------------------------------------------------------


def _first_line(source: str, limit: int = 48) -> str:
    line = next(
        (
            line.strip()
            for line in source.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ),
        "",
    )
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _where(cell: CellOutcome) -> str:
    return f"code cell {cell.number} (`{_first_line(cell.source)}`)"


def _run_problems(run: Run, check_numbers: set[int], timeout: float) -> list[str]:
    sentences = []
    if run.died_in is not None:
        where = _where(run.died_in) if run.died_in.number else "starting up"
        sentences.append(f"the kernel died in {where}; nothing after it ran.")
    student = [cell for cell in run.cells if cell.number not in check_numbers]
    sentences += [
        f"{_where(cell)} did not finish within {timeout:g} s (grade --timeout sets a longer limit)."
        for cell in student
        if cell.timed_out
    ]
    errors = [cell for cell in student if cell.error and not cell.may_raise]
    if errors:
        # The first error explains the rest (a NameError after it, say): one sentence, and a count.
        more = len(errors) - 1
        sentences.append(
            f"{_where(errors[0])} raised {errors[0].error}"
            + (f" ({more} more cell{'s' if more > 1 else ''} failed after it)." if more else ".")
        )
    if run.flooded:
        sentences.append(
            f"{len(run.flooded)} cell(s) printed more than {MAX_OUTPUT_CHARS:,} characters; the rest was dropped."
        )
    return sentences


def judge_checks(
    exercise: Exercise, evidence: dict, seed: int, not_own: dict[str, str], present: set[str]
) -> tuple[list[CheckResult], list[str]]:
    """Each check's result, judged here from its record, and a sentence for each check that has none."""
    results, problems = [], []
    for cell in exercise.checks:
        check = ALL_CHECKS[cell.check]
        refused = next((not_own[name] for name in cell.own_names if name in not_own), None)
        record = evidence.get(cell.id)
        if cell.id not in present:
            problems.append(
                f"the check cell `{cell.call}` is missing; copy it back from a fresh copy of the exercise."
            )
        elif refused:
            problems.append(f"the check `{cell.call}` scores 0: {refused}")
        elif record is None:
            problems.append(f"the check `{cell.call}` did not run.")
        elif isinstance(record, str):
            problems.append(f"the check `{cell.call}` failed: {record}.")
        if refused or not isinstance(record, dict) or cell.id not in present:
            results.append(CheckResult(cell, 0, cell.item_count))
            continue
        report: Report = check.judge(record, seed)
        results.append(
            CheckResult(
                cell,
                report.passed,
                report.total,
                [
                    f"{item.name}: {item.detail}" if item.detail else item.name
                    for item in report.items
                    if not item.passed
                ],
            )
        )
    return results, problems


def grade_notebook(
    path: str | os.PathLike,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    slot: int = 0,
    sweep_children: bool = True,
) -> NotebookGrade:
    """Grade one exercise notebook; raises :class:`GradingError` if it cannot be graded at all."""
    started = time.monotonic()
    path = Path(path)
    notebook = read_notebook(path)
    exercise = identify_exercise(notebook, path)
    positions = restore_check_cells(notebook, exercise)
    setup_index = restore_setup_cell(notebook)
    code_indices = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    check_indices = {
        code_indices[position]: cell
        for cell in exercise.checks
        if (position := positions.get(cell.id)) is not None
    }
    student_cells = [
        (number + 1, notebook.cells[i].source)
        for number, i in enumerate(code_indices)
        if i not in check_indices and i != setup_index
    ]
    vetting = vet(student_cells, exercise.own_names, exercise.course_names)
    if vetting.refusals:
        more = len(vetting.refusals) - 1
        problem = f"not run: {vetting.refusals[0]}" + (
            f" ({more} more such line{'s' if more > 1 else ''})" if more else ""
        )
        checks = [CheckResult(cell, 0, cell.item_count) for cell in exercise.checks]
        return NotebookGrade(path, exercise, checks, [problem], time.monotonic() - started)
    seed = (
        secrets.randbelow(2**31 - 1) + 1
    )  # drawn now: no record made before this run can match it
    try:
        run = run_notebook(notebook, check_indices, seed, timeout, slot, sweep_children)
    except GradingError as error:
        raise GradingError(f"{path} {error}") from None
    check_numbers = {code_indices.index(i) + 1 for i in check_indices}
    checks, problems = judge_checks(exercise, run.evidence, seed, vetting.not_own, set(positions))
    return NotebookGrade(
        path,
        exercise,
        checks,
        _run_problems(run, check_numbers, timeout) + problems,
        time.monotonic() - started,
    )
