"""A competing process for timing under load: a reader's machine is never idle.

:func:`competing_load` keeps one core half busy while its ``with`` block runs: a separate process
that spins for 5 ms and sleeps for 5 ms, over and over (a browser, an IDE, a second notebook).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

SPIN_MS = 5.0
SLEEP_MS = 5.0
DESCRIPTION = (
    f"one process spinning {SPIN_MS:g} ms and sleeping {SLEEP_MS:g} ms in turn (one core half busy)"
)

_SPINNER = f"""
import time
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < {SPIN_MS / 1000!r}:
        pass
    time.sleep({SLEEP_MS / 1000!r})
"""


@contextlib.contextmanager
def competing_load():
    """One core half busy for the length of the ``with`` block; the process ends with it."""
    process = subprocess.Popen([sys.executable, "-c", _SPINNER])
    try:
        yield process
    finally:
        process.kill()
        process.wait()
