"""Where one notebook's kernel runs: a bubblewrap (``bwrap``) sandbox the operating system enforces.

A read-only view of the system's folders (``/usr``, ``/etc``, ...), the Python installation and
environment, the course's package and the data folder, wherever they live (``/tmp`` included),
and nothing else of the machine: no home folders, no class folder, no other clone, and of the
course's repository only the package; a private, writable home, working directory and ``/tmp``; its own PID,
network (none), IPC and UTS namespaces, the kernel reached over Unix sockets in a shared folder
(jupyter_client's ``ipc`` transport); limits on memory, CPU time, file size, open files and
processes; and ``--die-with-parent``: killing the sandbox kills every process the notebook started.

The process limit keeps a fork bomb from taking every PID on the machine, which the other
students' kernels and the grader need. Linux enforces ``RLIMIT_NPROC`` per user namespace, but
never for a process whose user is root outside it; so a grader run as root also puts each
sandbox in a ``pids`` cgroup of its own (cgroup v2 or v1), which holds for any user.

Without ``bwrap`` (:func:`isolation_available` is False) the kernel is a plain subprocess, whose
session and marked processes are killed at the end; that protects nothing from a hostile notebook.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import resnet_course

_PASSED_THROUGH = (
    "PATH LANG LC_ALL RESNET_COURSE_DATA RESNET_COURSE_PRESET OMP_NUM_THREADS MKL_NUM_THREADS "
    "CUDA_VISIBLE_DEVICES VIRTUAL_ENV"
).split()
_RLIMITS = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC")
# Sets the limits, then becomes the kernel: ``python -c LIMITS AS CPU FSIZE NOFILE NPROC -m ipykernel_launcher ...``
_LIMITS = (
    "import os, resource, sys\n"
    f"for name, value in zip({_RLIMITS!r}, sys.argv[1:{1 + len(_RLIMITS)}]):\n"
    "    if int(value) > 0:\n"
    "        resource.setrlimit(getattr(resource, name), (int(value), int(value)))\n"
    f"os.execv(sys.executable, [sys.executable, *sys.argv[{1 + len(_RLIMITS)}:]])\n"
)
# Joins the cgroup named by $0, then becomes the sandbox (what it starts stays in the cgroup).
_JOIN_CGROUP = 'echo $$ > "$0/cgroup.procs" && exec "$@"'


@dataclass(frozen=True)
class Limits:
    """Per-notebook resource limits; 0 leaves one unset."""

    memory_bytes: int = 16 << 30  # address space: torch maps far more than it touches
    cpu_seconds: int = 3600
    file_bytes: int = 1 << 30
    open_files: int = 1024
    # Processes and threads together: a kernel training on 16 cores runs about 60.
    processes: int = 512
    # The private /tmp and /dev/shm, each (RAM-backed: unsized, each could take half the machine).
    tmp_bytes: int = 1 << 30


def isolation_available() -> bool:
    """Whether bubblewrap is installed and can make a sandbox on this machine."""
    if not sys.platform.startswith("linux") or shutil.which("bwrap") is None:
        return False
    try:
        probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net"]
        probe += ["--unshare-user", "--die-with-parent", "true"]
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=1)
def _sizes_tmpfs() -> bool:
    """Whether this bubblewrap can size a tmpfs (``--size``, bubblewrap 0.7 and later)."""
    try:
        help_text = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--size" in help_text.stdout + help_text.stderr


def _repository() -> Path | None:
    """The clone the package is imported from (its solutions must stay hidden), or None."""
    package = Path(resnet_course.__file__).resolve().parent
    root = package.parent
    return root if (root / "exercises").is_dir() or (root / ".git").exists() else None


# The system a kernel runs on, shown read-only; nothing else of the machine is (no home folders,
# no class folder, no other clone). Where one is a link (/bin -> usr/bin), its target is shown.
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")


def _needed() -> list[Path]:
    """What a kernel needs beside the system, wherever it lives (/tmp included): the Python
    installation and environment, the course's package and the data folder."""
    wanted = [
        Path(sys.base_prefix),
        Path(sys.prefix),
        Path(sys.executable).resolve().parent,
        Path(resnet_course.__file__).resolve().parent,
    ]
    if os.environ.get("RESNET_COURSE_DATA"):
        wanted.append(Path(os.environ["RESNET_COURSE_DATA"]))
    found = []
    for path in wanted:
        path = path.resolve()
        if path.exists() and path not in found:
            found.append(path)
    return found


def _visible_inside(repository: Path) -> list[Path]:
    """What the kernel needs from inside the clone: the package, the environment, the data."""
    wanted = [Path(resnet_course.__file__).resolve().parent, Path(sys.prefix).resolve()]
    if os.environ.get("RESNET_COURSE_DATA"):
        wanted.append(Path(os.environ["RESNET_COURSE_DATA"]).resolve())
    return [p for p in wanted if p.exists() and p != repository and p.is_relative_to(repository)]


class Sandbox:
    """``with Sandbox(isolate=True) as box:`` a folder for one notebook, and the kernel's command."""

    def __init__(self, isolate: bool, limits: Limits | None = None):
        self.isolate = isolate
        self.limits = limits or Limits()

    def __enter__(self) -> Sandbox:
        self.root = Path(tempfile.mkdtemp(prefix="rcg-"))
        self.work, self.home, self.ipc = self.root / "work", self.root / "home", self.root / "ipc"
        self.exchange = self.root / "exchange"  # where the probes write the programs they export
        for folder in (self.work, self.home, self.home / "tmp", self.ipc, self.exchange):
            folder.mkdir()
        self.cgroup = None
        if self.isolate and self.limits.processes > 0 and os.geteuid() == 0:
            self.cgroup = _pids_cgroup(self.root.name, self.limits.processes)
        return self

    @property
    def environment(self) -> dict[str, str]:
        env = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
        env.update(
            HOME=str(self.home),
            TMPDIR="/tmp" if self.isolate else str(self.home / "tmp"),
            MPLCONFIGDIR=str(self.home / "matplotlib"),
            IPYTHONDIR=str(self.home / "ipython"),
            JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
            RESNET_COURSE_CACHE=str(self.home / "cache"),
            MPLBACKEND="Agg",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONNOUSERSITE="1",
            RESNET_COURSE_SANDBOX=str(self.root),  # also marks the kernel's processes
        )
        return env

    def _bwrap(self) -> list[str]:
        sized = (
            ["--size", str(self.limits.tmp_bytes)]
            if self.limits.tmp_bytes and _sizes_tmpfs()
            else []
        )
        argv = ["bwrap", "--dev", "/dev", "--proc", "/proc"]
        argv += [*sized, "--tmpfs", "/tmp", *sized, "--tmpfs", "/dev/shm"]
        for system in _SYSTEM:
            if Path(system).exists():
                argv += ["--ro-bind", str(Path(system).resolve()), system]
        repository = _repository()
        for path in _needed():  # the environment and the data, even under /tmp
            if repository is None or not path.is_relative_to(repository):
                argv += ["--ro-bind", str(path), str(path)]
        if repository is not None:  # only what the kernel needs of the clone: not its solutions
            for path in _visible_inside(repository):
                argv += ["--ro-bind", str(path), str(path)]
        argv += ["--bind", str(self.root), str(self.root), "--chdir", str(self.work)]
        argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        argv += ["--unshare-user", "--uid", "1000", "--gid", "1000"]
        # ipykernel would watch the grader's pid, which means nothing in another PID namespace.
        argv += ["--unsetenv", "JPY_PARENT_PID"]
        argv += ["--die-with-parent", "--new-session", "--"]
        return argv

    def python_argv(self, *arguments: str) -> list[str]:
        """``python *arguments`` run in the sandbox, under its limits."""
        limits = self.limits
        # Without a sandbox the process count would be the whole user's, the grader's included.
        processes = limits.processes if self.isolate else 0
        numbers = (
            limits.memory_bytes,
            limits.cpu_seconds,
            limits.file_bytes,
            limits.open_files,
            processes,
        )
        python = [sys.executable, "-c", _LIMITS, *map(str, numbers), *arguments]
        if not self.isolate:
            return python
        joined = ["sh", "-c", _JOIN_CGROUP, str(self.cgroup)] if self.cgroup else []
        return joined + self._bwrap() + python

    def kernel_argv(self) -> list[str]:
        """The kernel's command line, ``{connection_file}`` left for jupyter_client to fill in."""
        return self.python_argv("-m", "ipykernel_launcher", "-f", "{connection_file}")

    @property
    def popen_kwargs(self) -> dict:
        # What the kernel itself prints (ipykernel's warnings) is not the notebook's output.
        return {
            "cwd": str(self.work),
            "env": self.environment,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
        }

    def kill(self, pid: int | None) -> None:
        """Kill the kernel's sandbox: with bwrap, every process in it dies with its first one."""
        if pid:
            try:
                os.killpg(
                    pid, signal.SIGKILL
                )  # jupyter_client starts the kernel in its own session
            except OSError:
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not self.isolate:
            _kill_marked(f"RESNET_COURSE_SANDBOX={self.root}".encode())

    def __exit__(self, *exc) -> None:
        if self.cgroup is not None:
            _remove_cgroup(self.cgroup)
        shutil.rmtree(self.root, ignore_errors=True)


def _pids_cgroup(name: str, limit: int) -> Path | None:
    """A new ``pids`` cgroup allowing ``limit`` tasks (cgroup v2 or v1), or None where none can be made."""
    for parent in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/pids")):
        try:
            if (
                parent.name == "cgroup"
                and "pids" not in (parent / "cgroup.controllers").read_text()
            ):
                continue
            if not (parent / "cgroup.procs").exists():
                continue
            _remove_stale_cgroups(parent)
            group = parent / name
            group.mkdir()
        except OSError:
            continue
        try:
            (group / "pids.max").write_text(str(limit))
            return group
        except OSError:  # cgroup v2 without the pids controller delegated to this level
            group.rmdir()
    return None


STALE_CGROUP_SECONDS = 60  # an empty sandbox group this old belongs to no running grade


def _remove_stale_cgroups(parent: Path) -> None:
    """Remove the empty ``rcg-*`` groups that graders killed before their clean-up left behind.

    A group of a running sandbox holds its kernel; one that is empty and older than a minute is
    left over (a grader stopped by SIGTERM or SIGKILL). ``rmdir`` refuses a group with tasks.
    """
    for group in parent.glob("rcg-*"):
        try:
            empty = not (group / "cgroup.procs").read_text().split()
            if empty and time.time() - group.stat().st_mtime > STALE_CGROUP_SECONDS:
                group.rmdir()
        except OSError:
            continue


def _remove_cgroup(group: Path) -> None:
    """Kill what is left in ``group`` and remove it (a cgroup is removed only when empty).

    A sandbox's processes die with it, but hundreds of them take a moment to go: wait up to 10 s.
    """
    try:
        (group / "cgroup.kill").write_text("1")  # cgroup v2: the kernel kills them all at once
    except OSError:
        pass
    for _ in range(200):
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.05)


def _kill_marked(marker: bytes) -> None:
    """Without a sandbox: the processes whose environment holds ``marker`` (the kernel's descendants)."""
    for _ in range(3):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "environ").read_bytes().split(b"\0"):
                        os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    continue
