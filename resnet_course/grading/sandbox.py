"""Where one notebook's kernel runs: its own directory, its own read-only copy of the course, its own user.

* The kernel's working directory, home and temporary files are a fresh directory.
* ``resnet_course`` is imported from a copy made for this notebook (first on
  ``PYTHONPATH``), with its files made read-only; no solution is beside it.
* When the grader runs as root (and its Python is one another user can run), the
  kernel runs as a user id of its own with no groups, so it can neither write the course nor touch another notebook's files
  or processes; at the end every process of that user is killed. Otherwise the
  kernel's session (its process group) is killed, and the grader, a child
  subreaper, kills whatever was left under it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import resnet_course

# Kernels' user ids when the grader runs as root: unused by any account here
FIRST_KERNEL_UID = 61_000
_PASSED_THROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "RESNET_COURSE_DATA",
    "RESNET_COURSE_PRESET",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
)


def become_subreaper() -> None:
    """Orphans of the kernels become the grader's children, so it can find and end them (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _copy_package(target: Path) -> None:
    source = Path(resnet_course.__file__).resolve().parent
    shutil.copytree(
        source, target / "resnet_course", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for path in sorted(target.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    target.chmod(0o555)


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _children_of(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (orphans handed to a subreaper may be any thread's)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def _processes_marked(marker: bytes) -> list[int]:
    """Processes whose environment holds ``marker``: a kernel's descendants inherit it."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _others_can_run(path: Path) -> bool:
    """Whether a user with no groups can run ``path``: every folder above it searchable, the file readable."""
    path = path.resolve()
    folders_ok = all(folder.stat().st_mode & stat.S_IXOTH for folder in path.parents)
    return (
        folders_ok
        and bool(path.stat().st_mode & stat.S_IROTH)
        and bool(path.stat().st_mode & stat.S_IXOTH)
    )


def separate_users_possible() -> bool:
    """Root on Linux, with a Python that another user can run (a Python under /root cannot be)."""
    if not (sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0):
        return False
    try:
        return _others_can_run(Path(sys.executable)) and _others_can_run(Path(torch_file()))
    except OSError:
        return False


def torch_file() -> str:
    import torch

    return torch.__file__


class Sandbox:
    """A context manager: ``with Sandbox(slot) as box: ...box.kernel_kwargs...``; everything ends on exit."""

    def __init__(self, slot: int = 0, sweep_children: bool = True):
        self.uid = FIRST_KERNEL_UID + slot if separate_users_possible() else None
        self.sweep_children = sweep_children

    def __enter__(self) -> "Sandbox":
        if self.uid is not None:
            self._kill_user()  # a process left by an earlier grading with this id
        self.root = Path(tempfile.mkdtemp(prefix="resnet-course-grade-"))
        self.lib, self.work, self.home = self.root / "lib", self.root / "work", self.root / "home"
        for folder in (self.lib, self.work, self.home, self.home / "tmp"):
            folder.mkdir()
        _copy_package(self.lib)
        self.connection_file = self.home / "kernel.json"
        if self.uid is not None:
            for folder in (self.work, self.home, self.home / "tmp"):
                os.chown(folder, self.uid, self.uid)
            for folder in (self.work, self.home):
                folder.chmod(0o700)
            self.root.chmod(0o755)
        return self

    @property
    def environment(self) -> dict[str, str]:
        env = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
        env.update(
            PYTHONPATH=str(self.lib),
            HOME=str(self.home),
            TMPDIR=str(self.home / "tmp"),
            MPLCONFIGDIR=str(self.home / "matplotlib"),
            IPYTHONDIR=str(self.home / "ipython"),
            JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
            RESNET_COURSE_CACHE=str(self.home / "cache"),
            MPLBACKEND="Agg",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONNOUSERSITE="1",
        )
        return env

    @property
    def kernel_kwargs(self) -> dict:
        """Keywords for the kernel's Popen (through jupyter_client): where and as whom it runs."""
        # What the kernel itself prints (ipykernel's warnings) is not the notebook's output: drop it.
        kwargs = {
            "cwd": str(self.work),
            "env": self.environment,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
        }
        if self.uid is not None:
            kwargs.update(user=self.uid, group=self.uid, extra_groups=[])
        return kwargs

    def hand_over(self, path: Path) -> None:
        """Let the kernel's user read a file the grader wrote (its connection file)."""
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)

    def _kill_user(self) -> None:
        for _ in range(3):
            pids = _processes_of(self.uid)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def end(self, kernel_pid: int | None = None) -> None:
        """Kill everything the notebook started: its session, its user, its marked and orphaned processes."""
        if kernel_pid:
            try:
                os.killpg(kernel_pid, signal.SIGKILL)  # the kernel leads its own session
            except OSError:
                pass
        marker = f"HOME={self.home}".encode()
        for _ in range(3):  # a process may fork while it is being killed: sweep until none is left
            if self.uid is not None:
                self._kill_user()
            _kill(_processes_marked(marker))
            if self.sweep_children:
                _kill(_children_of(os.getpid()))
            time.sleep(0.1)
            for pid in _children_of(os.getpid()) if self.sweep_children else ():
                try:
                    os.waitpid(pid, os.WNOHANG)  # reap what was killed, so no zombie is left
                except OSError:
                    pass

    def __exit__(self, *exc) -> None:
        self.end()
        for path in self.root.rglob("*"):
            try:
                path.chmod(0o700 if path.is_dir() else 0o600)
            except OSError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
