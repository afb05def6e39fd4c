"""Independent jobs side by side: one worker process per free CPU core, one progress bar per job.

:func:`run_side_by_side` is how the run cache trains a chapter's independent CPU runs at once
(:func:`resnet_course.runs.train_or_load_many`). A worker is a fresh interpreter,
``python -m resnet_course.workers``, that imports the package and reads its job from a pipe: a
module-level function named by its module and name, and plain values (a job's description, the
data's tensors). Nothing of the notebook's own state is sent, and nothing in the notebook is
imported again, so it behaves the same in Jupyter, in Colab, in the book's build, in a script
without a ``__main__`` guard, on macOS and on Windows, and never inherits a kernel's threads.

Each worker reports through its own standard output, so a worker killed mid-message breaks
only its own pipe. A worker that ends without finishing (killed, out of memory) is named in one
sentence; interrupting the notebook stops every worker; a worker whose notebook dies stops by
itself (its standard input closes). Nothing is left running.
"""

from __future__ import annotations

import importlib
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

# How often a worker reports its progress, in seconds: often enough for a live bar, rarely
# enough that the notebook's process does no work worth measuring.
REPORT_EVERY_S = 0.5
# How long a stopped worker has to end by itself before it is killed.
STOP_GRACE_S = 5.0


def free_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system has one, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class WorkerFailed(RuntimeError):
    """One or more jobs ended without a result; the message names each in one sentence."""


@dataclass(frozen=True)
class Job:
    """One job for a worker: ``target(payload, shared, report)`` in a process of its own.

    ``target`` must be a module-level function (the worker imports it by its module and name);
    ``report`` takes the number of steps done so far. ``label`` names the job in bars and
    messages, and ``total`` is its length in steps (for the bar).
    """

    target: Callable[[Any, Any, Callable[[int], None]], None]
    payload: Any
    label: str
    total: int


def run_side_by_side(
    jobs: Sequence[Job], shared: Any = None, *, workers: int | None = None, progress: bool = True
) -> None:
    """Run ``jobs`` in worker processes, at most ``workers`` (default: the free cores) at a time.

    ``shared`` is given to every job (the data). Returns when every job has finished; raises
    :class:`WorkerFailed` naming each job that did not, after the others have finished (what they
    made is kept). An interrupt (Ctrl-C, Jupyter's stop button) stops every worker first.
    """
    limit = max(1, workers or free_cores())
    bars = _bars(jobs) if progress else [None] * len(jobs)
    messages: queue.Queue = queue.Queue()  # (job index, message) from every worker's reader
    waiting = list(range(len(jobs)))
    running: dict[int, _Worker] = {}
    failures: list[str] = []
    try:
        while waiting or running:
            while waiting and len(running) < limit:
                index = waiting.pop(0)
                running[index] = _Worker.start(index, jobs[index], shared, messages)
            try:
                index, message = messages.get(timeout=1.0)
            except queue.Empty:
                continue
            worker, bar = running[index], bars[index]
            if message[0] == "step" and bar is not None:
                bar.update(message[1] - bar.n)
            elif message[0] == "done":
                worker.outcome = message
            elif message[0] == "error":
                worker.outcome = message
            elif message[0] == "closed":  # the worker's output ended: it has exited or is exiting
                worker.process.wait()
                worker.close()
                del running[index]
                outcome = worker.outcome or ("died", worker.exit_words())
                if bar is not None:
                    if outcome[0] == "done":
                        bar.update(bar.total - bar.n)
                    bar.close()
                if outcome[0] != "done":
                    failures.append(f"{jobs[index].label}: {outcome[1]}")
    except BaseException:
        _stop(list(running.values()))
        for bar in bars:
            if bar is not None:
                bar.close()
        raise
    if failures:
        finished = len(jobs) - len(failures)
        raise WorkerFailed(
            f"{len(failures)} of {len(jobs)} runs did not finish ({'; '.join(failures)}); "
            f"the {finished} that finished are kept, so running the cell again trains only "
            f"what is missing."
        )


class _Worker:
    """One worker process, seen from the notebook: its pipes, its last words on stderr, its outcome."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.outcome: tuple[str, str] | None = None
        self.stderr_tail: deque[str] = deque(maxlen=5)

    @classmethod
    def start(cls, index: int, job: Job, shared: Any, messages: queue.Queue) -> _Worker:
        process = subprocess.Popen(
            [sys.executable, "-m", "resnet_course.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # One thread each, from the first import on: the workers are the parallelism.
            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )
        worker = cls(process)
        order = pickle.dumps(
            (job.target.__module__, job.target.__qualname__, job.payload, shared),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        # The order, then nothing: standard input stays open, and closes when the notebook's
        # process ends or stops the worker, which tells the worker to end too.
        process.stdin.write(struct.pack("<Q", len(order)) + order)
        process.stdin.flush()
        threading.Thread(target=worker._read_reports, args=(index, messages), daemon=True).start()
        threading.Thread(target=worker._read_stderr, daemon=True).start()
        return worker

    def _read_reports(self, index: int, messages: queue.Queue) -> None:
        for line in self.process.stdout:
            word, _, rest = line.decode("utf-8", "replace").strip().partition(" ")
            if word == "step" and rest.isdigit():
                messages.put((index, ("step", int(rest))))
            elif word in ("done", "error"):
                messages.put((index, (word, rest)))
        messages.put((index, ("closed", "")))

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self.stderr_tail.append(text)

    def exit_words(self) -> str:
        """Why the worker ended without a result, in words."""
        code = self.process.returncode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            memory = ", perhaps for lack of memory" if name == "SIGKILL" else ""
            return f"its worker process was killed ({name}{memory}) before it finished"
        said = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
        return f"its worker process ended (exit code {code}) before it finished{said}"

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass


def _stop(workers: list[_Worker]) -> None:
    """End every worker: asked first (its standard input closes), then killed; none is left running."""
    for worker in workers:
        try:
            worker.process.stdin.close()
        except OSError:
            pass
        worker.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in workers:
        try:
            worker.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.close()


def _bars(jobs: Sequence[Job]) -> list:
    from .progress import progress_bar

    return [
        progress_bar(total=job.total, label=job.label, position=i) for i, job in enumerate(jobs)
    ]


# --- in the worker -------------------------------------------------------------------------------


def _serve() -> int:
    """A worker's life: read the order, end when the notebook's process ends, do the job, report."""
    # Ctrl-C in a terminal reaches every process of the group: the notebook's process stops the
    # workers itself, so a worker does not print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reports = sys.stdout
    sys.stdout = sys.stderr  # anything the job prints stays out of the reports
    # Raw reads of the file descriptor: a thread blocked in a buffered read would stop the
    # interpreter from exiting.
    stdin = sys.stdin.fileno()
    (length,) = struct.unpack("<Q", _read_exactly(stdin, 8))
    module, name, payload, shared = pickle.loads(_read_exactly(stdin, length))

    def end_with_parent():
        while os.read(
            stdin, 4096
        ):  # b'' at end of file: the notebook's process closed the pipe or ended
            pass
        os._exit(1)

    threading.Thread(target=end_with_parent, daemon=True).start()
    import torch

    torch.set_num_threads(1)
    last_report = [0.0]

    def report(step: int) -> None:
        now = time.monotonic()
        if now - last_report[0] >= REPORT_EVERY_S:
            last_report[0] = now
            print(f"step {step}", file=reports, flush=True)

    try:
        target = getattr(importlib.import_module(module), name)
        target(payload, shared, report)
    except Exception as error:  # noqa: BLE001 - sent to the notebook as one sentence
        sentence = " ".join(f"{type(error).__name__}: {error}".split())
        print(f"error {sentence}", file=reports, flush=True)
        return 1
    print("done", file=reports, flush=True)
    return 0


def _read_exactly(descriptor: int, count: int) -> bytes:
    chunks = []
    while count:
        chunk = os.read(descriptor, count)
        if not chunk:
            raise EOFError("the notebook's process closed the pipe before the order was whole")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    code = _serve()
    sys.stderr.flush()
    os._exit(code)  # no interpreter shutdown: the watching thread is still reading
