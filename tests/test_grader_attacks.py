"""The grader against broken kernels and notebooks that reach for the grader: one notebook at a time.

Each test runs a notebook (or part of one) in the grader's sandbox; the class-wide attacks,
run beside an honest student, are in test_grader_isolation.py.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from grader_notebooks import EXERCISE_DIR, ROOT, Style, notebook_for

from resnet_course.grading.exercises import EXERCISES
from resnet_course.grading.grader import grade_notebook, restore_check_cells, run_notebook
from resnet_course.grading.sandbox import isolation_available

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]
ISOLATED = isolation_available()
needs_sandbox = pytest.mark.skipif(not ISOLATED, reason="bubblewrap (bwrap) is not available")


def notebook_with(name: str, source: str, *, solution: bool = False) -> nbformat.NotebookNode:
    """Exercise ``name`` (stub or solution) with a code cell ``source`` added before its first check cell."""
    return notebook_for(Style(extra=(source,), exercise=name, solution=solution))


def grade(tmp_path: Path, notebook: nbformat.NotebookNode, name: str = "01_basic_block", **options):
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return grade_notebook(path, timeout=options.pop("timeout", 120), isolate=ISOLATED, **options)


def cells(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def printed(run, index: int) -> str:
    return "".join(o.get("text", "") for o in run.notebook.cells[index].outputs)


def processes_with(token: str) -> list[int]:
    """Processes on this machine whose command line holds ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_record_made_for_another_seed_cannot_pass():
    """input_gradient's record holds values on inputs drawn from the seed: one made for seed 0 fails another."""
    from resnet_course.grading import checks

    def right(block, x, grad_output):
        import torch

        x = x.detach().requires_grad_(True)
        branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
        upstream = grad_output * (torch.relu(branch + x) > 0)
        return upstream, torch.autograd.grad(branch, x, upstream)[0]

    forged = checks.input_gradient.probe(0, input_gradient=right)
    assert checks.input_gradient.judge(forged, 0, own_code_required=False).all_passed
    forged = checks.input_gradient.probe(0, input_gradient=right)
    assert not checks.input_gradient.judge(forged, 12345, own_code_required=False).all_passed


def test_a_dying_kernel_is_reported_within_seconds():
    notebook = notebook_with("01_basic_block", "import os\nos._exit(1)")
    restore_check_cells(notebook, EXERCISES["01_basic_block"])
    started = time.monotonic()
    run = run_notebook(notebook, {}, seed=1, timeout=120, isolate=ISOLATED)
    assert time.monotonic() - started < 30
    assert run.died_in is not None and "os._exit" in run.died_in.source


@needs_sandbox
def test_the_sandbox_hides_the_grader_the_solutions_and_the_network():
    """One kernel, several probes: what a notebook can see and touch from inside its sandbox."""
    run = run_notebook(
        cells(
            "import os\nprint(os.getppid(), len([p for p in os.listdir('/proc') if p.isdigit()]))",
            "import resnet_course, pathlib\n"
            "root = pathlib.Path(resnet_course.__file__).parents[1]\n"
            "print((root / 'exercises').exists(), (root / 'resnet_course').exists())",
            "import resnet_course, site\n"
            "for path in (resnet_course.__file__, site.getsitepackages()[0] + '/x.pth'):\n"
            "    try:\n        open(path, 'a')\n        print('wrote', path)\n"
            "    except OSError as error:\n        print(error.errno)",
            "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=3)\n"
            "    print('online')\nexcept OSError:\n    print('offline')",
            "import os, pathlib\npathlib.Path('here.txt').write_text('x')\n"
            "(pathlib.Path.home() / 'there.txt').write_text('y')\nprint(sorted(os.listdir('.')))",
        ),
        {},
        seed=1,
        timeout=60,
    )
    parent, count = printed(run, 0).split()
    assert parent == "1" and int(count) < 10, "the kernel sees only its own sandbox's processes"
    assert printed(run, 1).split() == ["False", "True"], "the package is there, the solutions not"
    assert printed(run, 2).split() == ["30", "30"], "read-only: the course and site-packages"
    assert printed(run, 3).strip() == "offline"
    assert printed(run, 4).strip() == "['here.txt']"


def test_a_hang_that_swallows_interrupts_is_killed_at_its_time_limit(tmp_path):
    swallow = (
        "import time\nwhile True:\n    try:\n        time.sleep(1)\n"
        "    except KeyboardInterrupt:\n        pass"
    )
    started = time.monotonic()
    result = grade(tmp_path, notebook_with("01_basic_block", swallow, solution=True), timeout=5)
    assert time.monotonic() - started < 5 + 30  # start-up, the limit, and the kill
    assert any(
        "did not finish within 5 s" in problem and "`import time`" in problem
        for problem in result.problems
    ), result.problems
    assert not result.all_passed


def test_nothing_a_notebook_starts_outlives_it():
    token = f"outlive-{uuid.uuid4().hex}"
    run = run_notebook(
        cells(
            "import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {token!r}],\n"
            "                 start_new_session=True)\n"
            "subprocess.Popen(f'setsid sleep 300 & disown', shell=True)"
        ),
        {},
        seed=1,
        timeout=60,
        isolate=ISOLATED,
    )
    assert not run.cells[0].error, run.cells[0].error
    deadline = time.monotonic() + 10
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(token) == []


def test_a_flood_of_output_is_cut_off(tmp_path):
    notebook = notebook_with(
        "01_basic_block", "for _ in range(200):\n    print('x' * 100_000)", solution=True
    )
    result = grade(tmp_path, notebook)
    assert result.passed == result.total, result.checks  # the checks still ran
    assert any("printed more than" in note for note in result.notes)


@needs_sandbox
def test_a_saboteur_cannot_reach_the_next_notebook(tmp_path):
    """A saboteur that kills every other kernel it can see, in a loop, is stopped with its notebook.

    No timing: the saboteur's last cell shows its loop running (so it was active when its
    notebook ended), and the loop never stops on its own, so had it outlived its sandbox it
    would still be killing kernels when the next notebook runs.
    """
    token = f"saboteur-{uuid.uuid4().hex}"
    loop = (
        "while true; do for p in $(pgrep -f [i]pykernel_launcher); do "
        '[ "$p" != "$KERNEL" ] && kill -9 "$p"; done; sleep 0.05; done # ' + token
    )
    saboteur = cells(
        "import os, subprocess\n"
        f"subprocess.Popen({loop!r}, shell=True, start_new_session=True,\n"
        "                 env={**os.environ, 'KERNEL': str(os.getpid())})",
        f"import subprocess\nprint(subprocess.run(['pgrep', '-f', {token!r}], capture_output=True).returncode)",
    )
    run = run_notebook(saboteur, {}, seed=1, timeout=60)
    assert printed(run, 1).strip() == "0", "the saboteur's loop was running"
    assert processes_with(token) == []
    path = tmp_path / "01_basic_block.ipynb"
    path.write_bytes((EXERCISE_DIR / "solutions" / "01_basic_block.ipynb").read_bytes())
    result = grade_notebook(path, timeout=60)
    assert result.all_passed, (result.problems, result.checks)


@pytest.mark.slow
def test_hand_written_histories_fail_exercise_2(tmp_path):
    """A correct make_cifar_net, but histories built without training: the checker's own run disagrees."""
    forged = (
        "from resnet_course.train import History\n"
        "histories = {kind: History(train_loss=[2.0, 1.9, 1.8, loss], epochs=[1, 2, 3, 4],\n"
        "                           config=dict(epochs=4, lr=0.1, batch_size=128, seed=0, parameters=PARAMETERS))\n"
        "             for kind, loss in (('residual', 1.0), ('plain', 1.5))}"
    )
    notebook = nbformat.read(
        EXERCISE_DIR / "solutions" / "02_plain_vs_residual.ipynb", as_version=4
    )
    for cell in notebook.cells:
        if cell.cell_type == "code" and "for name, residual in" in cell.source:
            cell.source = (
                "PARAMETERS = sum(p.numel() for p in make_cifar_net(SETUP.depth, residual=True).parameters())\n"
                + forged
            )
    result = grade(tmp_path, notebook, name="02_plain_vs_residual")
    training = result.checks[1]
    failed = " ".join(training.failed_items)
    assert "their final training losses match the checker's" in failed, training
    # The settings the forged histories claim are not taken on their word either.
    assert "trained with SETUP's settings" in failed, training
    assert training.passed < training.total


def test_a_class_gradebook(tmp_path):
    """Three students, four notebooks: the table and the CSV say who got what; one incomplete means exit 1."""
    for student, name, source in (
        ("ada", "01_basic_block", "solutions"),
        ("ada", "05_preactivation", ""),
        ("bo", "05_preactivation", "solutions"),
        ("abe", "01_basic_block", "borrowed"),
    ):
        folder = tmp_path / "submissions" / student
        folder.mkdir(parents=True, exist_ok=True)
        if source == "borrowed":
            nbformat.write(
                notebook_with(name, "from resnet_course.blocks import BasicBlock"),
                folder / f"{name}.ipynb",
            )
            continue
        origin = EXERCISE_DIR / source / f"{name}.ipynb"
        (folder / f"{name}.ipynb").write_bytes(origin.read_bytes())
    gradebook = tmp_path / "gradebook.csv"
    command = [sys.executable, "-m", "resnet_course", "grade", str(tmp_path / "submissions")]
    result = subprocess.run(
        [
            *command,
            "--csv",
            str(gradebook),
            "--jobs",
            "2",
            *([] if ISOLATED else ["--no-isolation"]),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {(row["student"], row["exercise"]): row for row in csv.DictReader(gradebook.open())}
    assert set(rows) == {
        ("ada", "01_basic_block"),
        ("ada", "05_preactivation"),
        ("bo", "05_preactivation"),
        ("abe", "01_basic_block"),
    }
    borrowed = rows["abe", "01_basic_block"]
    # Origin is reported, never scored: the course's block computes the block, and is flagged.
    assert "resnet_course/blocks.py" in borrowed["flags"]
    assert "not code written" not in borrowed["problems"]
    assert "imports the course's or torchvision's reference" in borrowed["flags"]
    assert rows["ada", "01_basic_block"]["points"] == "10"
    assert rows["bo", "05_preactivation"]["points"] == "10"
    assert rows["ada", "05_preactivation"]["points"] == "0"
    assert "NotImplementedError" in rows["ada", "05_preactivation"]["problems"]
    assert rows["ada", "05_preactivation"]["checks_total"] == "5"
    assert not list(tmp_path.glob(".gradebook-*")), "the gradebook is renamed into place"


def test_release_writes_student_notebooks_and_a_course_without_solutions(tmp_path):
    out = tmp_path / "class"
    result = subprocess.run(
        [sys.executable, "-m", "resnet_course", "release", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    notebooks = sorted(p.name for p in (out / "exercises").glob("*.ipynb"))
    assert notebooks == sorted(f"{name}.ipynb" for name in EXERCISES)
    for path in out.rglob("*"):
        assert "solutions" not in path.relative_to(out).parts, path
    for path in (out / "exercises").rglob("*"):
        if path.is_file():
            assert "BEGIN SOLUTION" not in path.read_text(), path
    for name in EXERCISES:  # the released notebook is the shipped one
        assert (out / "exercises" / f"{name}.ipynb").read_text() == (
            EXERCISE_DIR / f"{name}.ipynb"
        ).read_text()
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resnet_course.grading, resnet_course; print(resnet_course.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(out)},
    )
    assert imported.stdout.strip().startswith(str(out)), imported.stdout + imported.stderr
    again = subprocess.run(
        [sys.executable, "-m", "resnet_course", "release", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert again.returncode == 2 and "is not empty" in again.stderr
