"""Attacks on the class: one batch, each attack beside an honest student, graded with ``--jobs 2 --csv``.

The honest student keeps full marks in the table and the gradebook, the run ends within its
time limit plus a minute, and nothing an attack started is left in site-packages or in the
process table. Without bubblewrap, grading a class refuses unless told to go on.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from grader_notebooks import ROOT, Style, full_marks, grade_batch

from resnet_course.grading.sandbox import Limits, Sandbox, isolation_available

pytestmark = pytest.mark.slow
TIMEOUT = 20
TOKEN = f"attack-{uuid.uuid4().hex}"
PTH = f"zz_{TOKEN.replace('-', '_')}.pth"


def attack(source: str) -> Style:
    return Style(extra=(source,), solution=False)


def attacks(gradebook: Path) -> dict[str, Style]:
    rewriter = (
        "import time\nwhile True:\n    try:\n"
        f"        open({str(gradebook)!r}, 'w').write('student,points\\nanyone,10\\n')\n"
        "    except OSError:\n        pass\n    time.sleep(0.2)\n"
        f"# {TOKEN}"
    )
    return {
        "a-kill-parent": attack("import os\nos.kill(os.getppid(), 9)"),
        "a-sigstop-everything": attack(
            "import os, signal\nfor pid in os.listdir('/proc'):\n"
            "    if pid.isdigit() and int(pid) != os.getpid():\n"
            "        try:\n            os.kill(int(pid), signal.SIGSTOP)\n"
            "        except OSError:\n            pass"
        ),
        "a-swallow-interrupts": attack(
            "import time\nwhile True:\n    try:\n        time.sleep(1)\n"
            "    except KeyboardInterrupt:\n        pass"
        ),
        "a-pth-in-site-packages": attack(
            "import site\n"
            f"open(site.getsitepackages()[0] + '/{PTH}', 'w').write('import os  # {TOKEN}')"
        ),
        "a-detached-rewriter": attack(
            "import subprocess, sys\n"
            f"subprocess.Popen(['setsid', 'env', '-i', sys.executable, '-c', {rewriter!r}],\n"
            "                 start_new_session=True)"
        ),
        "a-kernel-killer": attack(
            "import os, subprocess\n"
            "subprocess.Popen('while true; do pkill -9 -f [i]pykernel_launcher; sleep 0.05; done "
            f"# {TOKEN}', shell=True, start_new_session=True)\n"
            "import time\ntime.sleep(5)"
        ),
        # Every PID on the machine is shared: without a limit, this would starve the other kernels.
        "a-fork-bomb": attack(
            "import os, time\nwhile True:\n    try:\n        if os.fork() == 0:\n"
            "            time.sleep(600)\n    except OSError:\n        time.sleep(0.01)"
        ),
        "honest": Style(),
    }


def python_in_sandbox(source: str, limits: Limits | None = None, timeout: float = 120):
    """Run ``python -c source`` in a fresh sandbox, as a kernel would run; the finished process."""
    with Sandbox(isolate=True, limits=limits) as box:
        return subprocess.run(
            box.python_argv("-c", source),
            capture_output=True,
            text=True,
            env=box.popen_kwargs["env"],
            timeout=timeout,
        )


def leftovers() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if TOKEN.encode() in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                continue
    return found


@pytest.mark.skipif(not isolation_available(), reason="bubblewrap (bwrap) is not available")
def test_class_attacks_do_not_reach_an_honest_student(tmp_path):
    folder = tmp_path / "class"
    gradebook = tmp_path / "class-gradebook.csv"
    groups_before = set(Path("/sys/fs/cgroup/pids").glob("rcg-*"))  # another run's are not ours
    batch = grade_batch(folder, attacks(gradebook), "--timeout", str(TIMEOUT))
    assert batch.seconds < TIMEOUT + 60 + 30, batch.seconds  # and 30 s to start six kernels
    assert set(batch.rows) == set(attacks(gradebook)), batch.stdout + batch.stderr
    assert full_marks(batch, "honest"), batch.rows["honest"]
    assert batch.table_row("honest")[3] == "10/10"
    for student in batch.rows:
        if student != "honest":
            assert not full_marks(batch, student), batch.rows[student]
    assert "did not finish within 20 s" in batch.rows["a-swallow-interrupts"]["problems"]
    for folder_ in {*site.getsitepackages(), site.getusersitepackages()}:
        assert not (Path(folder_) / PTH).exists()
    assert leftovers() == []
    # Each sandbox's cgroup is removed: none that this run made is left (a group is named after its
    # sandbox's folder, made fresh by this run, so one that was not there before is this run's).
    left = set(Path("/sys/fs/cgroup/pids").glob("rcg-*")) - groups_before
    assert not [
        group
        for group in left
        if (group / "cgroup.procs").exists() and not (group / "cgroup.procs").read_text().split()
    ], left
    assert "anyone" not in gradebook.read_text()


FORK_COUNT = """
import os, time
forked = 0
for _ in range(2000):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    except OSError:
        break
    forked += 1
print(forked)
"""


@pytest.mark.skipif(not isolation_available(), reason="bubblewrap (bwrap) is not available")
def test_a_sandbox_holds_no_more_processes_than_its_limit():
    """A fork bomb stops at the limit (the kernel's RLIMIT_NPROC, or a pids cgroup when root)."""
    with Sandbox(isolate=True, limits=Limits(processes=64)) as box:
        env = box.popen_kwargs["env"]
        result = subprocess.run(
            box.python_argv("-c", FORK_COUNT), capture_output=True, text=True, env=env, timeout=120
        )
    forked = int(result.stdout.split()[-1])
    assert 0 < forked < 64, (forked, result.stderr[-500:])
    with Sandbox(isolate=True, limits=Limits(processes=200)) as box:
        env = box.popen_kwargs["env"]
        result = subprocess.run(
            box.python_argv("-c", FORK_COUNT), capture_output=True, text=True, env=env, timeout=120
        )
    assert 64 < int(result.stdout.split()[-1]) < 200, "the limit is the one asked for"


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/sys/fs/cgroup/pids").is_dir(),
    reason="needs root and a cgroup v1 pids hierarchy",
)
def test_a_group_left_by_a_killed_grader_is_removed_and_a_live_one_kept(monkeypatch):
    from resnet_course.grading import sandbox

    parent = Path("/sys/fs/cgroup/pids")
    left = parent / f"rcg-left-{uuid.uuid4().hex[:8]}"
    live = parent / f"rcg-live-{uuid.uuid4().hex[:8]}"
    left.mkdir()
    live.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (live / "cgroup.procs").write_text(str(sleeper.pid))
        monkeypatch.setattr(sandbox, "STALE_CGROUP_SECONDS", -1)  # both count as old
        sandbox._remove_stale_cgroups(parent)
        assert not left.exists() and live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        for group in (left, live):
            for _ in range(100):
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # the killed sleeper takes a moment to leave
                    time.sleep(0.05)


def test_a_class_is_not_graded_without_a_sandbox_unless_told(tmp_path):
    """Without bwrap on the PATH: a class is refused in one sentence; --no-isolation is the way on."""
    for student in ("ann", "ben"):
        (tmp_path / student).mkdir()
        (tmp_path / student / "05_preactivation.ipynb").write_bytes(
            (ROOT / "exercises" / "05_preactivation.ipynb").read_bytes()
        )
    result = subprocess.run(
        [sys.executable, "-m", "resnet_course", "grade", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PATH": str(tmp_path / "no-bin")},
    )
    assert result.returncode == 2
    assert "--no-isolation" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_one_notebook_is_graded_without_a_sandbox_with_a_warning(tmp_path):
    path = tmp_path / "05_preactivation.ipynb"
    path.write_bytes((ROOT / "exercises" / "solutions" / "05_preactivation.ipynb").read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "resnet_course", "grade", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PATH": str(tmp_path / "no-bin")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: no sandbox here (install bubblewrap): the notebook runs with your rights."
    ]


@pytest.mark.skipif(not isolation_available(), reason="bubblewrap (bwrap) is not available")
def test_a_whole_notebook_has_a_time_limit_beside_each_cells(tmp_path):
    """Thirty short sleeps each keep under the cell limit; the notebook's own limit stops them."""
    import nbformat
    from grader_notebooks import notebook_for

    from resnet_course.grading.grader import grade_notebook

    sleepy = Style(extra=tuple("import time\ntime.sleep(2)" for _ in range(30)))
    path = tmp_path / "01_basic_block.ipynb"
    nbformat.write(notebook_for(sleepy), path)
    started = time.monotonic()
    grade = grade_notebook(path, timeout=20, notebook_timeout=8)
    assert time.monotonic() - started < 8 + 60  # and a minute to start the kernel and judge
    assert any("used up its 8 s" in problem for problem in grade.problems), grade.problems
    assert not grade.all_passed


@pytest.mark.skipif(not isolation_available(), reason="bubblewrap (bwrap) is not available")
def test_a_kernel_sees_its_environment_and_data_under_tmp_and_nothing_else(tmp_path, monkeypatch):
    """The data folder under /tmp is shown (the sandbox's own /tmp hid it); a classmate's folder,
    the repository's solutions and the user's home are not."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "marker.txt").write_text("data")
    classmate = tmp_path / "class" / "bob"
    classmate.mkdir(parents=True)
    (classmate / "01_basic_block.ipynb").write_text("{}")
    monkeypatch.setenv("RESNET_COURSE_DATA", str(data))
    probe = (
        "import os, sys\n"
        f"print(open({str(data / 'marker.txt')!r}).read())\n"
        f"print(os.path.exists({str(classmate)!r}), os.path.exists({str(ROOT / 'exercises')!r}),"
        " os.path.exists(os.path.expanduser('~root/.cache')))\n"
        "import torch, ipykernel, resnet_course\n"
        "print('imports')"
    )
    result = python_in_sandbox(probe)
    assert result.stdout.split() == ["data", "False", "False", "False", "imports"], (
        result.stdout + result.stderr[-800:]
    )


@pytest.mark.skipif(not isolation_available(), reason="bubblewrap (bwrap) is not available")
def test_the_sandboxs_tmp_and_shm_are_sized():
    """/tmp and /dev/shm are RAM: a notebook may not fill them past its limit."""
    filler = (
        "import sys\n"
        "for folder in ('/tmp', '/dev/shm'):\n"
        "    try:\n"
        "        with open(folder + '/fill', 'wb') as f:\n"
        "            f.write(b'x' * (32 << 20))\n"
        "        print(folder, 'filled')\n"
        "    except OSError as error:\n"
        "        print(folder, 'refused', error.errno)\n"
    )
    result = python_in_sandbox(filler, Limits(tmp_bytes=8 << 20), timeout=60)
    assert result.stdout.split() == ["/tmp", "refused", "28", "/dev/shm", "refused", "28"], (
        result.stdout + result.stderr[-500:]
    )
