"""A class run's finished grades, kept as they come, so a stopped run resumes where it stopped.

Grading three hundred notebooks takes an hour or more; a closed laptop or a Ctrl-C must not cost
the grades already made. With ``--csv FILE``, each notebook's grade is written to ``FILE.grades/``
the moment it is made (one small JSON file, written atomically). Started again on the same class,
``grade`` reads back every grade whose notebook and grader are unchanged, grades only the rest,
and writes the whole gradebook at the end. A grade is keyed by the notebook's path and bytes, the
limits it ran under and the grading code, so an edited notebook or an updated grader is graded
again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .exercises import EXERCISES
from .grader import MAX_NOTEBOOK_BYTES, CheckResult, GradingError, NotebookGrade

KEPT_VERSION = 1


def grader_version() -> str:
    """A short hash of the grading package's source: a new grader grades everything again."""
    digest = hashlib.sha256()
    folder = Path(__file__).resolve().parent
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def grade_key(path: Path, settings: dict, version: str) -> str | None:
    """The key of one notebook's grade, or None where its file cannot be read as it is (a link,
    a pipe: those are refused again, quickly, rather than kept)."""
    try:
        if not path.is_file() or path.is_symlink():
            return None
        data = path.read_bytes() if path.stat().st_size <= MAX_NOTEBOOK_BYTES else b""
    except OSError:
        return None
    digest = hashlib.sha256()
    digest.update(json.dumps([KEPT_VERSION, str(path), settings, version]).encode())
    digest.update(data)
    return digest.hexdigest()[:32]


def to_record(result: NotebookGrade | GradingError) -> dict:
    if isinstance(result, GradingError):
        return {"error": str(result)}
    return {
        "path": str(result.path),
        "exercise": result.exercise.name,
        "checks": [
            {
                "cell": check.cell.id,
                "passed": check.passed,
                "total": check.total,
                "failed": list(check.failed_items),
            }
            for check in result.checks
        ],
        "problems": list(result.problems),
        "seconds": result.seconds,
        "notes": list(result.notes),
        "flags": list(result.flags),
    }


def from_record(record: dict) -> NotebookGrade | GradingError:
    if "error" in record:
        return GradingError(record["error"])
    exercise = EXERCISES[record["exercise"]]
    cells = {cell.id: cell for cell in exercise.checks}
    return NotebookGrade(
        Path(record["path"]),
        exercise,
        [
            CheckResult(cells[c["cell"]], c["passed"], c["total"], list(c["failed"]))
            for c in record["checks"]
        ],
        list(record["problems"]),
        record["seconds"],
        list(record["notes"]),
        list(record["flags"]),
    )


class KeptGrades:
    """``folder/<key>.json``: the grades of one class run, read back and written one at a time."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def read(self, key: str | None) -> NotebookGrade | GradingError | None:
        if key is None:
            return None
        try:
            return from_record(json.loads((self.folder / f"{key}.json").read_text()))
        except (OSError, ValueError, KeyError, TypeError):  # absent, half-written or foreign
            return None

    def write(self, key: str | None, result: NotebookGrade | GradingError) -> None:
        if key is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{key}.{os.getpid()}"
        temporary.write_text(json.dumps(to_record(result)))
        os.replace(temporary, self.folder / f"{key}.json")
