"""A pytest plugin the grader loads next to nbval: it writes what happened in each cell to a JSON-lines file.

nbval runs each code cell as a test and compares the outputs of check cells;
this plugin adds, per cell, the outcome, the error (if any) and the output text,
so the grader can read the check reports and explain failures in a sentence.
"""

from __future__ import annotations

import json
import os

import pytest

LOG_ENV = "RESNET_COURSE_GRADING_LOG"


def output_text(outputs) -> str:
    """The text a cell showed: its streams and the plain-text form of its results."""
    parts = []
    for output in outputs or []:
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def _error(item, call) -> str:
    """``timeout``, ``output differs``, or the exception the cell raised, as ``Name: message``."""
    text = str(call.excinfo.value).strip() if call.excinfo is not None else ""
    message = text.splitlines()[0] if text else ""
    if "Timeout" in message:  # nbval interrupts the kernel, so the cell also shows a KeyboardInterrupt
        return "timeout"
    for output in item.test_outputs or []:
        if output.get("output_type") == "error":
            value = (str(output.get("evalue", "")).strip().splitlines() or [""])[0]
            value = value if len(value) <= 160 else value[:157] + "..."
            return f"{output.get('ename', 'Error')}: {value}".strip().rstrip(":")
    if "Cell outputs differ" in message:
        return "output differs"
    return message or (call.excinfo.typename if call.excinfo is not None else "an error")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    log = os.environ.get(LOG_ENV)
    if not log or not hasattr(item, "cell_num"):
        return
    # One record per cell: its call, or its set-up where the cell never got to run.
    if report.when != "call" and report.passed:
        return
    record = {
        "cell": item.cell_num,  # index among the notebook's code cells
        "outcome": "not run" if report.when != "call" else report.outcome,
        "error": _error(item, call) if report.failed and report.when == "call" else "",
        "output": output_text(getattr(item, "test_outputs", None)),
    }
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
