"""Chapter and whole-book wall times, each notebook executed from an empty run cache."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

from resnet_course.presets import get_preset


def default_notebooks() -> list[Path]:
    """``chapters/*.ipynb`` of the repository this tool is in, else of the working directory."""
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        found = sorted((root / "chapters").glob("*.ipynb"))
        if found:
            return found
    return []


def time_notebooks(
    paths: list[Path], *, preset: str = "cpu", timeout: int = 1800, kernel_name: str | None = None
) -> dict:
    """Execute each notebook with nbclient, one after another, and time it (kernel start included).

    The chapters share one empty run cache, as on a fresh machine: a later chapter reads back
    the runs an earlier one made (chapter 2 those of chapter 1), but nothing from before.
    """
    import tempfile

    import nbformat
    from nbclient import NotebookClient

    results = []
    saved = {
        name: os.environ.get(name)
        for name in ("RESNET_COURSE_PRESET", "RESNET_COURSE_CACHE", "RESNET_COURSE_DATA")
    }
    fresh_cache = tempfile.TemporaryDirectory(prefix="bench-run-cache-")
    data_cache = Path(saved["RESNET_COURSE_CACHE"] or Path.home() / ".cache" / "resnet_course")
    # The downloaded CIFAR-10 is kept (a link into the fresh cache); only the runs start empty.
    if (data_cache / "cifar-10-batches-py").is_dir():
        os.symlink(
            data_cache / "cifar-10-batches-py", Path(fresh_cache.name) / "cifar-10-batches-py"
        )
    # Kernels run in the notebook's folder: a data folder given relative to here is made absolute.
    data_folder = os.environ.get("RESNET_COURSE_DATA")
    if data_folder:
        os.environ["RESNET_COURSE_DATA"] = str(Path(data_folder).expanduser().resolve())
    os.environ["RESNET_COURSE_PRESET"] = preset  # kernels inherit this process's environment
    os.environ["RESNET_COURSE_CACHE"] = fresh_cache.name
    try:
        for path in paths:
            notebook = nbformat.read(path, as_version=4)
            options = {"kernel_name": kernel_name} if kernel_name else {}
            client = NotebookClient(
                notebook,
                timeout=timeout,
                resources={"metadata": {"path": str(Path(path).parent)}},
                **options,
            )
            start = time.perf_counter()
            error = None
            try:
                client.execute()
            except (
                Exception
            ) as failure:  # a failing cell, a timeout, a dead kernel: record it, time the rest
                error = f"{type(failure).__name__}: {str(failure).strip().splitlines()[-1] if str(failure).strip() else ''}"
            results.append(
                {
                    "notebook": str(path),
                    "seconds": time.perf_counter() - start,
                    "ok": error is None,
                    "error": error,
                    "slowest_cells": slowest_cells(notebook),
                }
            )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        fresh_cache.cleanup()
    return {
        "preset": preset,
        "notebooks": results,
        "total_seconds": sum(r["seconds"] for r in results),
        "all_ok": all(r["ok"] for r in results),
    }


def cell_seconds(cell) -> float | None:
    """How long a code cell ran, from the timing nbclient records in its metadata (None: not run)."""
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.datetime.fromisoformat(
            timing["iopub.execute_input"].replace("Z", "+00:00")
        )
        end = datetime.datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        return None
    return (end - start).total_seconds()


def slowest_cells(notebook, count: int = 3) -> list[dict]:
    """The ``count`` code cells that ran longest: their index, seconds and first line."""
    timed = [
        {
            "cell": index,
            "seconds": seconds,
            "first_line": (cell.source.strip().splitlines() or [""])[0][:60],
        }
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (seconds := cell_seconds(cell)) is not None
    ]
    return sorted(timed, key=lambda entry: -entry["seconds"])[:count]


def format_chapters(chapters: dict) -> str:
    """One line per chapter (seconds, kernel start included), quiet and, where measured, under load."""
    if not chapters["notebooks"]:
        return "Chapters: no chapters/*.ipynb found."
    budget = get_preset(chapters["preset"]).budget
    loaded = chapters.get("under_load")
    lines = [
        f"Chapters executed with the '{chapters['preset']}' preset ({budget}), one after another, from an empty "
        "run cache (seconds, kernel start included)"
        + (f"; under load: beside {loaded['load']}:" if loaded else ":"),
        f"  {'':<40} {'quiet':>8}" + (f" {'loaded':>8}" if loaded else ""),
    ]
    by_notebook = {entry["notebook"]: entry for entry in (loaded or {}).get("notebooks", [])}
    for entry in chapters["notebooks"]:
        other = by_notebook.get(entry["notebook"])
        states = [f"FAILED: {e['error']}" for e in (entry, other) if e and not e["ok"]]
        column = f" {other['seconds']:8.1f}" if other else ""
        lines.append(
            f"  {Path(entry['notebook']).name:<40} {entry['seconds']:8.1f}{column}"
            + (f"  {'; '.join(states)}" if states else "")
        )
        for cell in entry.get("slowest_cells", []):
            lines.append(
                f"      cell {cell['cell']:>3} {cell['seconds']:7.1f}  {cell['first_line']}"
            )
    total = f" {loaded['total_seconds']:8.1f}" if loaded else ""
    lines.append(f"  {'whole book':<40} {chapters['total_seconds']:8.1f}{total}")
    return "\n".join(lines)
