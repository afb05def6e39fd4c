"""The grader against students who try to pass without doing the exercise, and against broken kernels.

Each attack is a notebook: the shipped stub (or the solution) with a cell a
student could add. None of them may earn a point the stub does not earn.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from resnet_course.grading.exercises import EXERCISES
from resnet_course.grading.grader import grade_notebook, restore_check_cells, run_notebook
from resnet_course.grading.sandbox import become_subreaper

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_DIR = ROOT / "exercises"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def notebook_with(
    name: str, source: str, *, solution: bool = False, before_checks: bool = True
) -> nbformat.NotebookNode:
    """Exercise ``name`` (stub or solution) with a code cell ``source`` added before its first check cell."""
    path = (EXERCISE_DIR / "solutions" if solution else EXERCISE_DIR) / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    first_check = next(
        i for i, cell in enumerate(notebook.cells) if cell.get("id", "").startswith("check-")
    )
    cell = nbformat.v4.new_code_cell(source)
    cell.id = "student-addition"
    notebook.cells.insert(first_check if before_checks else len(notebook.cells), cell)
    return notebook


def grade(tmp_path: Path, notebook: nbformat.NotebookNode, name: str = "01_basic_block", **options):
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return grade_notebook(path, timeout=options.pop("timeout", 120), **options)


# Every one of these gave full marks on exercise 1's untouched stub under the old grader, or is a
# variant of one of them.
ATTACKS_ON_THE_STUB = {
    "patch the Check machinery": "import resnet_course.grading.report as report\n"
    "report.Check.judge = lambda self, *a, **k: None",
    "patch the probe's emitter": "import resnet_course\n"
    "resnet_course.grading.probes.emit = lambda *a, **k: None",
    "patch a torch utility": "import torch\ntorch.random.fork_rng = None",
    "an IPython display formatter": "ip = get_ipython()\nip.display_formatter.formatters['text/plain'].for_type(object, print)",
    "a shell escape": "!echo passed > /tmp/forged",
    "a background thread": "import threading\nthreading.Thread(target=print).start()",
    "a detached process": "import subprocess\nsubprocess.Popen(['sleep', '5'], start_new_session=True)",
    "exec'ing the solution": "exec(open('../exercises/solutions/01_basic_block.py').read())",
    "running the solution with runpy": "import runpy\nrunpy.run_path('solutions/01_basic_block.py')",
    "built-ins reached by name": "b = __builtins__\nb.exec('x = 1')",
    "a class built by type()": "from resnet_course import blocks\nBasicBlock = type('BasicBlock', (blocks.BasicBlock,), {})",
    "writing into the course": "import numpy\nnumpy.savetxt('grader.py', [], header='x = 1', comments='')",
    "a private door into torch": "import torch\nC = torch._C",
    "pickled code": "import torch\nBasicBlock = torch.load('block.pt', weights_only=False)",
    # Full marks before the model zoo counted as an oracle: the layers and forward of
    # torchvision's own BasicBlock, which matches the exercise's layout, inside the student's class.
    "torchvision's block inside the student's": (
        "import torchvision\nfrom torch import nn\n\n"
        "class BasicBlock(nn.Module):\n"
        "    def __init__(self, in_channels, planes, stride=1):\n"
        "        super().__init__()\n"
        "        down = None\n"
        "        if stride != 1 or in_channels != planes:\n"
        "            down = nn.Sequential(\n"
        "                nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False),\n"
        "                nn.BatchNorm2d(planes),\n"
        "            )\n"
        "        inner = torchvision.models.resnet.BasicBlock(in_channels, planes, stride, down)\n"
        "        self.conv1, self.bn1, self.conv2 = inner.conv1, inner.bn1, inner.conv2\n"
        "        self.bn2, self.relu, self.downsample = inner.bn2, inner.relu, inner.downsample\n"
        "        self.inner_forward = inner.forward\n\n"
        "    def forward(self, x):\n"
        "        return self.inner_forward(x)\n"
    ),
    "torch's jit through an alias": "import torch\nt = torch\nt.jit.script(lambda x: x)",
    # typing evaluates a string annotation: an import of the course that the reader never saw.
    "the course's block through a string annotation": (
        "import typing\nfrom torch import nn\n\n"
        "def oracle(block: \"__import__('resnet_course').blocks.BasicBlock\"):\n"
        "    pass\n\n"
        "Oracle = typing.get_type_hints(oracle)['block']\n\n"
        "class BasicBlock(nn.Module):\n"
        "    def __init__(self, in_channels, planes, stride=1):\n"
        "        super().__init__()\n"
        "        self.inner = Oracle(in_channels, planes, stride, shortcut='B')\n\n"
        "    def forward(self, x):\n"
        "        return self.inner(x)\n"
    ),
    # torch holds the sys module as an attribute, and sys.modules holds the course's blocks.
    "the course's block through torch.sys": (
        "import torch\nfrom torch import nn\n\n"
        "class BasicBlock(nn.Module):\n"
        "    def __init__(self, in_channels, planes, stride=1):\n"
        "        super().__init__()\n"
        "        oracle = torch.sys.modules['resnet_course.blocks'].BasicBlock\n"
        "        self.inner = oracle(in_channels, planes, stride, shortcut='B')\n\n"
        "    def forward(self, x):\n"
        "        return self.inner(x)\n"
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS_ON_THE_STUB))
def test_an_attack_on_the_stub_earns_nothing(tmp_path, attack):
    result = grade(tmp_path, notebook_with("01_basic_block", ATTACKS_ON_THE_STUB[attack]))
    assert result.passed == 0, (attack, result.checks)
    assert result.problems and not result.all_passed
    assert result.problems[0].startswith("not run: code cell"), (
        result.problems
    )  # refused before it ran


BORROWED_ANSWERS = {
    "the course's block under the graded name": "from resnet_course.blocks import BasicBlock",
    "the course's block, assigned": "from resnet_course import BasicBlock as B\nBasicBlock = B",
    "a subclass of the course's block": "from resnet_course.blocks import BasicBlock as Oracle\n\n"
    "class BasicBlock(Oracle):\n    pass",
    "a wrapper that calls the course's block": (
        "import resnet_course\nfrom torch import nn\n\n"
        "def make(*args, **kwargs):\n    return resnet_course.blocks.BasicBlock(*args, **kwargs, shortcut='B')\n\n"
        "class BasicBlock(nn.Module):\n"
        "    def __new__(cls, *args, **kwargs):\n        return make(*args, **kwargs)"
    ),
}


@pytest.mark.parametrize("attack", sorted(BORROWED_ANSWERS))
def test_a_borrowed_block_does_not_count(tmp_path, attack):
    result = grade(tmp_path, notebook_with("01_basic_block", BORROWED_ANSWERS[attack]))
    block_check = result.checks[0]
    assert block_check.passed == 0, (attack, block_check)
    assert any(
        "check_basic_block" in problem and "scores 0" in problem for problem in result.problems
    ), result.problems


def test_an_honest_solution_that_prints_inside_its_block_passes(tmp_path):
    notebook = nbformat.read(EXERCISE_DIR / "solutions" / "01_basic_block.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code" and "def forward(self, x):" in cell.source:
            cell.source = cell.source.replace(
                "def forward(self, x):\n",
                "def forward(self, x):\n        print('block input', tuple(x.shape))\n",
                1,
            )
    result = grade(tmp_path, notebook)
    assert result.all_passed, (result.problems, result.checks)


def test_a_record_made_for_another_seed_cannot_pass(tmp_path):
    """Outputs computed in advance (here: by the course's block, for seed 0) do not match a fresh seed."""
    from resnet_course import blocks
    from resnet_course.grading import checks

    forged = checks.basic_block.probe(0, BasicBlock=blocks.BasicBlock)
    assert checks.basic_block.judge(forged, 0, own_code_required=False).all_passed
    assert not checks.basic_block.judge(forged, 12345, own_code_required=False).all_passed


def test_a_dying_kernel_is_reported_within_seconds(tmp_path):
    notebook = notebook_with("01_basic_block", "import os\nos._exit(1)")
    exercise = EXERCISES["01_basic_block"]
    restore_check_cells(notebook, exercise)
    started = time.monotonic()
    run = run_notebook(notebook, {}, seed=1, timeout=120)
    assert time.monotonic() - started < 30
    assert run.died_in is not None and "os._exit" in run.died_in.source


def test_nothing_a_notebook_starts_outlives_it(tmp_path):
    """A detached process (its own session, so outside the kernel's process group) is ended with the notebook."""
    become_subreaper()
    pid_file = tmp_path / "pid"
    source = (
        "import subprocess\n"
        f"p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        f"import pathlib; pathlib.Path({str(pid_file)!r}).write_text(str(p.pid))"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    run = run_notebook(notebook, {}, seed=1, timeout=60)
    assert not run.cells[0].error, run.cells[0].error
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"process {pid}, started by the notebook, is still running")


def test_the_kernel_imports_a_read_only_copy_of_the_course_with_no_solutions_beside_it(tmp_path):
    source = (
        "import resnet_course, os, stat\n"
        "folder = os.path.dirname(resnet_course.__file__)\n"
        "print(folder)\n"
        "print(os.path.exists(os.path.join(folder, '..', 'exercises')))\n"
        "print(oct(os.stat(os.path.join(folder, 'grading', 'grader.py')).st_mode & 0o777))"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    run = run_notebook(notebook, {}, seed=1, timeout=60)
    folder, solutions_beside, mode = "".join(
        o.get("text", "") for o in run.notebook.cells[0].outputs
    ).split()
    assert not Path(folder).resolve().is_relative_to(ROOT), folder
    assert solutions_beside == "False"
    assert mode == "0o444"
    assert not Path(folder).exists(), "the sandbox is removed after the notebook"


def test_a_hang_costs_one_time_limit_and_names_its_cell(tmp_path):
    notebook = notebook_with("01_basic_block", "import time\nwhile True:\n    time.sleep(0.1)")
    started = time.monotonic()
    result = grade(tmp_path, notebook, timeout=5)
    assert time.monotonic() - started < 90
    assert any(
        "did not finish within 5 s" in problem and "`import time`" in problem
        for problem in result.problems
    ), result.problems
    assert result.passed == 0


def test_a_flood_of_output_is_cut_off(tmp_path):
    notebook = notebook_with(
        "01_basic_block", "for _ in range(200):\n    print('x' * 100_000)", solution=True
    )
    result = grade(tmp_path, notebook)
    assert result.passed == result.total, result.checks  # the checks still ran
    assert any("printed more than" in problem for problem in result.problems)


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
    assert (
        "histories come from those runs: their final training losses match the checker's"
        in " ".join(training.failed_items)
    ), training
    assert training.passed < training.total


def test_a_class_gradebook(tmp_path):
    """Three students, four notebooks (one a saboteur): the table and the CSV say who got what; one incomplete means exit 1."""
    for student, name, source in (
        ("ada", "01_basic_block", "solutions"),
        ("ada", "05_preactivation", ""),
        ("bo", "05_preactivation", "solutions"),
        ("abe", "01_basic_block", "saboteur"),
    ):
        folder = tmp_path / "submissions" / student
        folder.mkdir(parents=True, exist_ok=True)
        if (
            source == "saboteur"
        ):  # "abe" sorts first, so it is graded first: it tries to end every later kernel
            saboteur = notebook_with(
                name,
                "import subprocess\n"
                "subprocess.Popen('sleep 3; pkill -f ipykernel', shell=True, start_new_session=True)",
            )
            nbformat.write(saboteur, folder / f"{name}.ipynb")
            continue
        origin = (
            EXERCISE_DIR / source / f"{name}.ipynb" if source else EXERCISE_DIR / f"{name}.ipynb"
        )
        (folder / f"{name}.ipynb").write_bytes(origin.read_bytes())
    gradebook = tmp_path / "gradebook.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "resnet_course",
            "grade",
            str(tmp_path / "submissions"),
            "--csv",
            str(gradebook),
            "--jobs",
            "1",
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
    assert (
        rows["abe", "01_basic_block"]["points"] == "0"
        and "not run" in rows["abe", "01_basic_block"]["problems"]
    )
    assert (
        rows["ada", "01_basic_block"]["points"] == "10"
        and rows["ada", "01_basic_block"]["problems"] == ""
    )
    assert rows["bo", "05_preactivation"]["points"] == "10"
    assert rows["ada", "05_preactivation"]["points"] == "0"
    assert "NotImplementedError" in rows["ada", "05_preactivation"]["problems"]
    assert rows["ada", "05_preactivation"]["checks_passed"] == "0"
    assert rows["ada", "05_preactivation"]["checks_total"] == "5"


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


def test_a_saboteur_that_got_past_the_reading_cannot_reach_the_next_notebook(tmp_path):
    """Run unvetted (as if a new trick slipped through), a saboteur's delayed kill of every kernel dies with it."""
    become_subreaper()
    saboteur = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import subprocess\nsubprocess.Popen('sleep 2; pkill -f ipykernel', shell=True, start_new_session=True)"
            )
        ]
    )
    run = run_notebook(saboteur, {}, seed=1, timeout=60)
    assert not run.cells[0].error, run.cells[0].error
    path = tmp_path / "01_basic_block.ipynb"
    path.write_bytes((EXERCISE_DIR / "solutions" / "01_basic_block.ipynb").read_bytes())
    time.sleep(0.5)
    started = time.monotonic()
    result = grade_notebook(path, timeout=60)
    assert time.monotonic() - started > 2.5, (
        "the solution must still be running when the saboteur would strike"
    )
    assert result.all_passed, (result.problems, result.checks)


@pytest.mark.parametrize(
    "source",
    [
        "import torch\nt = torch\nt.hub.list('owner/repo')",
        "import torch as t\nx = [t][0]\nx.jit.script",
        "from torch import nn\nnn.init.torch.hub.list('owner/repo')",
        "from torchvision import models",
        "import torchvision.models.resnet as zoo",
        "import torchvision as tv\nBlock = tv.models.resnet.Bottleneck",
        "import torch\nblocks = torch.sys.modules['resnet_course.blocks']",
        "from torch import os",
        "import typing\ntyping.sys.modules",
        "import torch\nt = torch\nt.importlib.import_module('resnet_course.blocks')",
        "import torch\ntorch.builtins.print",
    ],
)
def test_a_forbidden_module_is_refused_however_it_is_reached(source):
    from resnet_course.grading.vetting import vet

    refusals = vet([(1, source)], ()).refusals
    assert len(refusals) == 1, refusals


@pytest.mark.parametrize(
    "source",
    [
        "g = (x for x in [1])\nrun = g.gi_frame.f_builtins['ex' + 'ec']",
        "async def f():\n    pass\n\nf().cr_frame.f_globals",
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    frame = e.with_traceback(None).tb_frame",
        "def f(x: \"__import__('sys')\"):\n    pass",
        "def f(x) -> list['sys']:\n    pass",
        "x: 'int' = 1",
        "class C:\n    __annotations__ = {'x': 'y'}",
    ],
)
def test_a_string_run_as_code_is_refused_however_it_is_reached(source):
    from resnet_course.grading.vetting import vet

    assert vet([(1, source)], ()).refusals


def test_what_the_exercises_use_is_not_refused():
    from resnet_course.grading.vetting import vet

    fine = vet(
        [
            (1, "import torchvision.transforms as T\nfrom torch import nn"),
            (2, "print(data.classes)\nflip = T.RandomHorizontalFlip()"),
            (3, "class Net(nn.Module):\n    def f(self):\n        return self.ops"),
            (
                4,
                "import numpy as np\nimport torch\nx = np.array([1])\ny = torch.ones(2).select(0, 1)",
            ),
            (
                5,
                "import torch.nn.functional as F\nF.relu(torch.nn.modules.conv.Conv2d(1, 1, 1).weight)",
            ),
            (
                6,
                "from __future__ import annotations\n\n"
                "class B(nn.Module):\n"
                "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
                "        self.n: int = 1\n"
                "        return x\n\n"
                "print(B.__name__)",
            ),
        ],
        (),
    )
    assert fine.refusals == []


def test_harmless_magics_are_read_as_the_code_they_wrap():
    from resnet_course.grading.vetting import vet

    fine = vet(
        [
            (1, "%matplotlib inline\nimport torch"),
            (2, "%%time\nx = torch.ones(2)"),
            (3, "%time y = x + 1"),
        ],
        (),
    )
    assert fine.refusals == []
    hidden = vet([(1, "%%time\nexec('x = 1')"), (2, "%time eval('1')"), (3, "%%bash\necho hi")], ())
    assert len(hidden.refusals) == 3, hidden.refusals
