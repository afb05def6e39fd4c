"""Grading one notebook: put the canonical cells back, run it in a sandbox, judge the evidence.

As nbgrader does, the grader trusts nothing in the student's copy of a check cell: it puts the
canonical one back (found by id, metadata or the call it makes). It runs the notebook with
nbclient in a sandbox (:mod:`.sandbox`), each check cell replaced by its probe, which exports
the student's modules; then it loads those graphs without running any code from them
(:mod:`.programs`) and judges what it computes from them. A cell past its time limit is killed
with its sandbox. Reading the source is advice (:mod:`.advice`), never a reason not to run.
"""

from __future__ import annotations

import math
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import programs
from .advice import flags_for
from .checks import ALL_CHECKS
from .exercises import EXERCISES, METADATA_KEY, STUB_TAG, CheckCell, Exercise, find_exercise
from .report import Report
from .sandbox import Limits, Sandbox

DEFAULT_LIMITS = Limits()

# Seconds per cell; exercise 2's training takes about a minute on a laptop CPU
DEFAULT_TIMEOUT = 600
# Per student cell: a notebook that floods its output is cut off, not held in memory
MAX_OUTPUT_CHARS = 2_000_000
KERNEL_STARTUP_TIMEOUT = 120
# After a cell's time limit, the seconds nbclient has to give up before the sandbox is killed
GRACE = 3
SETUP_TAG = "colab-setup"
# Judging uses torch's global random state (references are built with it): one notebook at a time.
_JUDGING = threading.Lock()


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
    problems: list[
        str
    ]  # one sentence each: time-outs, a dead kernel, missing or broken check cells
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # errors in scratch cells: reported, not failed
    flags: list[str] = field(default_factory=list)  # advice for the instructor, from the source

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


# A submitted notebook larger than this is not read: exercises with their outputs are well under 1 MB.
MAX_NOTEBOOK_BYTES = 20 * 2**20
# A whole notebook may run this long (every cell together), besides each cell's own limit.
DEFAULT_NOTEBOOK_TIMEOUT = 600


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path``: a regular file of at most :data:`MAX_NOTEBOOK_BYTES`, read without
    following a symbolic link. Anything else is refused in one sentence (a class folder may hold
    anything: a link to a solution, ``/dev/zero``, a pipe that never ends)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise GradingError(f"{path} does not exist.") from None
    except OSError as error:
        raise GradingError(f"{path} could not be read ({error.strerror}).") from None
    if stat.S_ISLNK(info.st_mode):
        raise GradingError(
            f"{path} is a symbolic link; a submitted notebook must be a regular file, and the "
            "link is not followed."
        )
    if stat.S_ISDIR(info.st_mode) or path.suffix != ".ipynb":
        raise GradingError(f"{path} is not a Jupyter notebook (an .ipynb file).")
    if not stat.S_ISREG(info.st_mode):
        raise GradingError(
            f"{path} is not a regular file (a device, a pipe or a socket); it is not read."
        )
    too_big = f"{path} is larger than the {MAX_NOTEBOOK_BYTES // 2**20} MB a notebook may be; it is not read."
    if info.st_size > MAX_NOTEBOOK_BYTES:
        raise GradingError(too_big)
    try:
        # O_NOFOLLOW and a second look at what was opened: a file swapped for a link or a device
        # after the first look is refused too; at most one byte past the limit is read.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        with os.fdopen(os.open(path, flags), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise GradingError(f"{path} is not a regular file; it is not read.")
            data = handle.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError as error:
        raise GradingError(f"{path} could not be read ({error.strerror}).") from None
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise GradingError(too_big)
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as error:  # NotJSONError, ValidationError, UnicodeDecodeError...
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
class NotebookRun:
    cells: list[CellOutcome] = field(default_factory=list)
    # check cell id -> record, or why there is none
    evidence: dict[str, dict | str] = field(default_factory=dict)
    died_in: CellOutcome | None = None
    out_of_time: CellOutcome | None = (
        None  # the cell running when the whole notebook's time ran out
    )
    flooded: list[int] = field(default_factory=list)
    notebook: nbformat.NotebookNode | None = None  # as it ran, with its outputs


def _error_of(outputs) -> str:
    for output in outputs:
        if output.get("output_type") == "error":
            value = (str(output.get("evalue", "")).strip().splitlines() or [""])[0]
            value = value if len(value) <= 160 else value[:157] + "..."
            return f"{output.get('ename', 'Error')}: {value}".strip().rstrip(":")
    return ""


def _evidence_of(outputs, path: Path) -> dict | str:
    error = _error_of(outputs)
    try:
        if error:
            return f"it raised {error}"
        return programs.load(path)
    except programs.ProgramError as problem:
        return str(problem)
    finally:
        path.unlink(missing_ok=True)


def _client_class():
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """nbclient, with each cell's output cut off past its limit."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.output_sizes: dict[int, int] = {}
            self.flooded: set[int] = set()

        def output(self, outs, msg, display_id, cell_index):
            size = self.output_sizes.get(cell_index, 0) + len(str(msg.get("content", "")))
            self.output_sizes[cell_index] = size
            if size > MAX_OUTPUT_CHARS:
                self.flooded.add(cell_index)
                return None
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


def run_notebook(
    notebook: nbformat.NotebookNode,
    probes: dict[int, CheckCell],
    seed: int,
    timeout: float,
    isolate: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT,
) -> NotebookRun:
    """Run the notebook in a sandbox, each check cell (by index) replaced by its probe; collect what happened.

    A cell that runs past ``timeout`` seconds, or past what is left of the whole notebook's
    ``notebook_timeout``, ends the run: its sandbox is killed, with every process the notebook
    started.
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    run = NotebookRun()
    to_run = nbformat.from_dict(notebook)
    with Sandbox(isolate, limits) as box:
        paths = {index: box.exchange / f"{check.id}.pt" for index, check in probes.items()}
        for index, check in probes.items():
            to_run.cells[index].source = check.evidence_source(seed, str(paths[index]))
            to_run.cells[index].outputs = []
        km = AsyncKernelManager(
            transport="ipc", ip=str(box.ipc / "k"), connection_file=str(box.ipc / "kernel.json")
        )
        km._kernel_spec = KernelSpec(
            argv=box.kernel_argv(), display_name="grader", language="python"
        )
        client = _client_class()(
            to_run,
            km=km,
            timeout=timeout,
            allow_errors=True,
            interrupt_on_timeout=False,
            startup_timeout=KERNEL_STARTUP_TIMEOUT,
            shutdown_kernel="immediate",
            record_timing=False,
        )
        pid = None
        try:
            with client.setup_kernel(**box.popen_kwargs):
                pid = getattr(km.provisioner, "pid", None)
                number = 0
                deadline = time.monotonic() + notebook_timeout
                for index, cell in enumerate(to_run.cells):
                    if cell.cell_type != "code":
                        continue
                    number += 1
                    tags = notebook.cells[index].get("metadata", {}).get("tags", [])
                    outcome = CellOutcome(
                        number, notebook.cells[index].source, may_raise=STUB_TAG in tags
                    )
                    run.cells.append(outcome)
                    # This cell's limit: its own, or what is left of the notebook's, whichever is less.
                    left = deadline - time.monotonic()
                    limit = min(timeout, left)
                    if limit <= 0:
                        run.out_of_time = outcome
                        break
                    client.timeout = max(1, math.ceil(limit))  # nbclient takes whole seconds
                    # nbclient gives up at the limit; should it not, the sandbox is killed a little later.
                    watchdog = threading.Timer(limit + GRACE, box.kill, [pid])
                    watchdog.start()
                    try:
                        client.execute_cell(cell, index)
                    except CellTimeoutError:
                        if left < timeout:
                            run.out_of_time = outcome
                        else:
                            outcome.timed_out = True
                    except DeadKernelError:
                        killed = watchdog.finished.is_set()
                        if killed and left < timeout:
                            run.out_of_time = outcome
                        elif killed:
                            outcome.timed_out = True
                        else:
                            run.died_in = outcome
                    finally:
                        watchdog.cancel()
                    if outcome.timed_out or run.died_in or run.out_of_time:
                        box.kill(pid)
                        break
                    outcome.error = _error_of(cell.outputs)
                    if index in probes:
                        run.evidence[probes[index].id] = _evidence_of(cell.outputs, paths[index])
        except DeadKernelError:
            run.died_in = run.died_in or CellOutcome(0, "")
        except RuntimeError as error:  # the kernel did not start
            raise GradingError(
                f"could not start a kernel ({str(error).splitlines()[0][:160]})."
            ) from None
        finally:
            box.kill(pid)
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


def _run_problems(
    run: NotebookRun,
    check_numbers: set[int],
    timeout: float,
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT,
) -> tuple[list[str], list[str]]:
    """Sentences about the run: problems (a dead kernel, a time-out) and notes (errors in scratch cells)."""
    problems, notes = [], []
    if run.died_in is not None:
        where = _where(run.died_in) if run.died_in.number else "starting up"
        problems.append(f"the kernel died in {where}; nothing after it ran.")
    if run.out_of_time is not None:
        problems.append(
            f"the notebook used up its {notebook_timeout:g} s in {_where(run.out_of_time)}, so it "
            "was stopped there (grade --notebook-timeout sets a longer limit)."
        )
    student = [cell for cell in run.cells if cell.number not in check_numbers]
    problems += [
        f"{_where(cell)} did not finish within {timeout:g} s, so the notebook was stopped there "
        "(grade --timeout sets a longer limit)."
        for cell in student
        if cell.timed_out
    ]
    errors = [cell for cell in student if cell.error and not cell.may_raise]
    if errors:
        # The first error explains the rest (a NameError after it, say): one sentence, and a count.
        more = len(errors) - 1
        notes.append(
            f"{_where(errors[0])} raised {errors[0].error}"
            + (f" ({more} more cell{'s' if more > 1 else ''} failed after it)." if more else ".")
        )
    if run.flooded:
        notes.append(
            f"{len(run.flooded)} cell(s) printed more than {MAX_OUTPUT_CHARS:,} characters; the rest was dropped."
        )
    return problems, notes


def judge_checks(
    exercise: Exercise,
    evidence: dict,
    seed: int,
    present: set[str],
    cells: dict[str, str] | None,
    probe_seed: int | None = None,
) -> tuple[list[CheckResult], list[str], list[str]]:
    """Each check's result, judged here from its record; a sentence for each check that has none;
    and the flags on where the graded code came from.

    Correctness alone is scored. Where a graded module's operations come from code other than
    the notebook's cells (the course's or torchvision's block, say), that is a flag for the
    instructor, in the report and the gradebook, and costs no points: who wrote the code is the
    instructor's judgement, and the traces it is read from are the kernel's to write.

    ``seed`` is the judging seed: the weights, batch-norm statistics and inputs at which the
    grader runs each exported graph are drawn from it, here, after the notebook has run, so
    nothing in the kernel could know them. ``probe_seed`` is the one the kernel was given (for
    the few values a check has the kernel compute, such as exercise 1's gradient terms); the
    grader writes it into each record itself, over anything the kernel wrote there.
    """
    results, problems, flags = [], [], []
    for cell in exercise.checks:
        check = ALL_CHECKS[cell.check]
        record = evidence.get(cell.id)
        if cell.id not in present:
            problems.append(
                f"the check cell `{cell.call}` is missing; copy it back from a fresh copy of the exercise."
            )
        elif record is None:
            problems.append(f"the check `{cell.call}` did not run.")
        elif isinstance(record, str):
            problems.append(f"the check `{cell.call}` failed: {record}.")
        if not isinstance(record, dict) or cell.id not in present:
            results.append(CheckResult(cell, 0, cell.item_count))
            continue
        if probe_seed is not None:
            record["probe_seed"] = probe_seed
        report: Report = check.judge(record, seed, own_code_required=False, cells=cells)
        origin = check.borrowed(record, cells) if check.own else None
        if origin:
            flags.append(f"origin, `{cell.call}`: {origin}")
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
    return results, problems, flags


def grade_notebook(
    path: str | os.PathLike,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    isolate: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT,
) -> NotebookGrade:
    """Grade one exercise notebook; raises :class:`GradingError` if it cannot be graded at all.

    ``timeout`` limits each cell, ``notebook_timeout`` every cell together (seconds).
    """
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
    cells = programs.notebook_code(source for _, source in student_cells)
    # The kernel's seed, drawn now: no record made before this run can match it.
    probe_seed = secrets.randbelow(2**31 - 1) + 1
    try:
        run = run_notebook(
            notebook, check_indices, probe_seed, timeout, isolate, limits, notebook_timeout
        )
    except GradingError as error:
        raise GradingError(f"{path} {error}") from None
    # The judging seed, drawn only now that the kernel has ended: the points every graph is judged
    # at were never in the kernel, so no code there could have tuned itself to them.
    judge_seed = secrets.randbelow(2**31 - 1) + 1
    check_numbers = {code_indices.index(i) + 1 for i in check_indices}
    with _JUDGING:
        checks, check_problems, origin_flags = judge_checks(
            exercise, run.evidence, judge_seed, set(positions), cells, probe_seed=probe_seed
        )
    problems, notes = _run_problems(run, check_numbers, timeout, notebook_timeout)
    return NotebookGrade(
        path,
        exercise,
        checks,
        problems + check_problems,
        time.monotonic() - started,
        notes,
        flags_for(student_cells, exercise) + origin_flags,
    )
