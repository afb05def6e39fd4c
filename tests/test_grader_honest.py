"""Honest solutions in ordinary styles: every one earns full marks, whatever else its notebook does.

Each style is exercise 1's solution with its block written differently or with a scratch
cell a student might add (magics, shell commands, files, plots, the course's block for a
comparison, a cell that raises). All are graded in one class run (``--jobs 2 --csv``).
"""

from __future__ import annotations

import pytest
from grader_notebooks import Style, full_marks, grade_batch

pytestmark = pytest.mark.slow

CLASS_CELL = "class BasicBlock(nn.Module):"

INIT = """\
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
"""
FORWARD = """\
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)
"""
ZERO = "        nn.init.zeros_(self.bn2.weight)\n"


def block(
    forward=FORWARD, zero=ZERO, init=INIT, more="", head="", base="nn.Module", signature=""
) -> str:
    """Exercise 1's block, with parts of it written another way."""
    return (
        f"{head}class BasicBlock({base}):\n"
        f"    def __init__(self, in_channels, planes, stride=1){signature}:\n{init}\n"
        f"    def forward(self, x):\n{forward}\n"
        f"    def zero_init_last(self):\n{zero}{more}"
    )


def written(source: str, **extra) -> Style:
    return Style(replace=((CLASS_CELL, source),), **extra)


def scratch(*cells: str) -> Style:
    return Style(extra=cells)


FORWARD_IMPL = block(
    more=("\n    def _forward_impl(self, x):\n" + FORWARD + "\n    forward = _forward_impl\n")
).replace("    def forward(self, x):\n" + FORWARD, "")
FORWARD_AFTER = (
    block().replace("    def forward(self, x):\n" + FORWARD, "")
    + "\n\ndef residual_forward(self, x):\n"
    + FORWARD.replace("        ", "    ")
    + "\n\nBasicBlock.forward = residual_forward\n"
)
AUTOCAST_OFF = block(
    forward='        with torch.autocast("cpu", enabled=False):\n'
    + "".join("    " + line + "\n" for line in FORWARD.splitlines())
)
LOGGING_SUBCLASS = (
    "\nclass LoggedBlock(BasicBlock):\n"
    "    calls = 0\n\n"
    "    def forward(self, x):\n"
    "        LoggedBlock.calls += 1\n"
    "        return super().forward(x)\n\n\n"
    "BasicBlock = LoggedBlock"
)

HONEST = {
    # Styles a grader that read traces refused (issue 31): torchvision's own `forward = _forward_impl`,
    # a forward assigned after the class, a forward inside autocast(enabled=False), and a cell
    # that starts with a blank line and subclasses the student's block to count its calls.
    "forward-impl-alias": written(FORWARD_IMPL),
    "forward-assigned-after-class": written(FORWARD_AFTER),
    "autocast-off-in-forward": written(AUTOCAST_OFF),
    "blank-line-logging-subclass": scratch(LOGGING_SUBCLASS),
    # The lines the old grader refused, each in an otherwise plain solution.
    "getattr": written(
        block(
            forward=FORWARD.replace(
                "self.downsample is None", "getattr(self, 'downsample', None) is None"
            )
        )
    ),
    "class-name-in-repr": written(
        block(more="\n    def __repr__(self):\n        return f'{self.__class__.__name__}()'\n")
    ),
    "autoreload": scratch("%load_ext autoreload\n%autoreload 2"),
    "shell-commands": scratch("!pip list | head -3\n!nvidia-smi || true"),
    "config-magic": scratch("%config InlineBackend.figure_format = 'retina'"),
    "help-magic": scratch("nn.Conv2d?"),
    "notes-file": scratch("with open('notes.txt', 'w') as f:\n    f.write('block done')"),
    "getcwd": scratch("import os\nprint(os.getcwd())"),
    "torch-version": scratch("print(torch.__version__)"),
    "cudnn-deterministic": scratch("torch.backends.cudnn.deterministic = True"),
    "forward-reference": written(
        block(
            more='\n    @classmethod\n    def same(cls, channels) -> "BasicBlock":\n'
            "        return cls(channels, channels)\n"
        )
    ),
    "rcparams": scratch("import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (4, 3)"),
    "ipython-display": scratch("from IPython.display import display\ndisplay(BasicBlock(16, 16))"),
    "warnings": scratch("import warnings\nwarnings.filterwarnings('ignore')"),
    "torch-save-scratch": scratch(
        "torch.save(BasicBlock(16, 16).state_dict(), 'block.pt')\n"
        "print(len(torch.load('block.pt')))"
    ),
    "torchvision-resnet50-scratch": scratch(
        "import torchvision\nm = torchvision.models.resnet50()\n"
        "print(sum(p.numel() for p in m.parameters()))"
    ),
    "logging-in-forward": written(
        block(
            head="import logging\nlog = logging.getLogger('block')\n\n",
            forward="        log.debug('input %s', tuple(x.shape))\n" + FORWARD,
        )
    ),
    "course-block-before-own": Style(
        before=((CLASS_CELL, "from resnet_course import BasicBlock\nprint(BasicBlock(16, 16))"),)
    ),
    "scratch-cell-raises": scratch("raise ValueError('just trying something')"),
    # Other ordinary ways of writing the block.
    "functional": written(
        block(
            head="import torch.nn.functional as F\n\n",
            forward=FORWARD.replace(
                "self.relu(out + identity)", "F.relu(torch.add(out, identity))"
            ),
        )
    ),
    "in-place-add": written(
        block(
            forward=FORWARD.replace(
                "return self.relu(out + identity)", "out += identity\n        return self.relu(out)"
            )
        )
    ),
    "if-downsample": written(
        block(
            forward="        identity = x\n        if self.downsample is not None:\n"
            "            identity = self.downsample(x)\n"
            "        out = self.conv1(x)\n        out = self.bn1(out)\n        out = self.relu(out)\n"
            "        out = self.conv2(out)\n        out = self.bn2(out)\n"
            "        return self.relu(out + identity)\n"
        )
    ),
    "identity-module": written(
        block(
            init=INIT.replace("self.downsample = None\n", "self.downsample = nn.Identity()\n"),
            forward=FORWARD.replace(
                "x if self.downsample is None else self.downsample(x)", "self.downsample(x)"
            ),
        )
    ),
    "old-style-super": written(
        block(init=INIT.replace("super().__init__()", "super(BasicBlock, self).__init__()"))
    ),
    "type-hints": written(
        block(
            head="from __future__ import annotations\n\n",
            signature=" -> None",
        ).replace("def forward(self, x):", "def forward(self, x: torch.Tensor) -> torch.Tensor:")
    ),
    "print-in-forward": written(
        block(forward="        print('block', tuple(x.shape))\n" + FORWARD)
    ),
    "assert-in-forward": written(block(forward="        assert x.dim() == 4, x.shape\n" + FORWARD)),
    "zero-with-no-grad": written(
        block(zero="        with torch.no_grad():\n            self.bn2.weight.fill_(0.0)\n")
    ),
    "zero-with-data": written(block(zero="        self.bn2.weight.data.zero_()\n")),
    "helper-function": Style(
        before=(
            (
                CLASS_CELL,
                "def conv3x3(cin, cout, stride=1):\n"
                "    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)",
            ),
        ),
        replace=(
            (
                CLASS_CELL,
                block(
                    init=INIT.replace(
                        "nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)",
                        "conv3x3(in_channels, planes, stride)",
                    )
                ),
            ),
        ),
    ),
    "own-base-class": Style(
        before=((CLASS_CELL, "class Residual(nn.Module):\n    expansion = 1"),),
        replace=((CLASS_CELL, block(base="Residual")),),
    ),
    "module-imported-by-name": written(
        block(head="from torch.nn import Module\n\n", base="Module")
    ),
    "timed-cell": written("%%time\n" + block()),
    "matplotlib-inline": scratch(
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])"
    ),
    "inplace-false-relu": written(block(init=INIT.replace("nn.ReLU(inplace=True)", "nn.ReLU()"))),
    "pathlib-home": scratch(
        "from pathlib import Path\n(Path.home() / 'scratch.txt').write_text('hi')"
    ),
    # Code run by a cell magic, or written to a module by one and imported, is the notebook's own.
    "capture-cell": written("%%capture\n" + block()),
    "writefile-module": Style(
        replace=(
            (
                CLASS_CELL,
                "%%writefile my_block.py\nimport torch\nfrom torch import nn\n\n" + block(),
            ),
        ),
        extra=("from my_block import BasicBlock",),
    ),
    "method-added-later": Style(
        replace=((CLASS_CELL, block(forward="        raise NotImplementedError\n")),),
        extra=("def forward(self, x):\n" + FORWARD + "\nBasicBlock.forward = forward",),
    ),
    # The exercise names the block's layers, not the parts of its shortcut.
    "named-shortcut-parts": written(
        block(
            head="from collections import OrderedDict\n\n",
            init=INIT.replace("nn.Sequential(", "nn.Sequential(OrderedDict(")
            .replace("nn.Conv2d(in_channels, planes, 1,", "conv=nn.Conv2d(in_channels, planes, 1,")
            .replace(
                "nn.BatchNorm2d(planes),\n            )",
                "bn=nn.BatchNorm2d(planes),\n            ))",
            ),
        )
    ),
    "timeit-scratch": scratch("%%timeit -n 2 -r 1\nBasicBlock(16, 16)(torch.randn(2, 16, 8, 8))"),
    "keyword-only-stride": written(
        block().replace(
            "def __init__(self, in_channels, planes, stride=1)",
            "def __init__(self, in_channels: int, planes: int, *, stride: int = 1)",
        )
    ),
    "float64-scratch": scratch(
        "torch.set_default_dtype(torch.float64)\nprint(torch.ones(1).dtype)\n"
        "torch.set_default_dtype(torch.float32)"
    ),
}


@pytest.fixture(scope="module")
def honest_batch(tmp_path_factory):
    return grade_batch(tmp_path_factory.mktemp("honest") / "class", HONEST)


def test_there_are_at_least_thirty_styles():
    assert len(HONEST) >= 30


@pytest.mark.parametrize("student", sorted(HONEST))
def test_an_honest_style_earns_full_marks(honest_batch, student):
    row = honest_batch.rows[student]
    assert full_marks(honest_batch, student), row
    assert honest_batch.table_row(student)[3] == "10/10", honest_batch.stdout[-3000:]


def test_a_scratch_error_is_reported_but_fails_nothing(honest_batch):
    row = honest_batch.rows["scratch-cell-raises"]
    assert "raised ValueError: just trying something" in row["problems"]
    assert full_marks(honest_batch, "scratch-cell-raises")
    assert honest_batch.returncode == 0 and "All checks passed." in honest_batch.stdout


def test_flags_name_what_the_student_wrote(honest_batch):
    flags = honest_batch.rows["course-block-before-own"]["flags"]
    assert "`from resnet_course import BasicBlock`" in flags
    assert "get_ipython" not in honest_batch.rows["autoreload"]["flags"]


# Exercise 2's networks, without the training (its check cell removed: the grader would train).
NETWORKS = {
    "sequential-of-course-blocks": Style(
        exercise="02_plain_vs_residual",
        drop=("for name, residual in", "check_plain_vs_residual(", "plot_step_losses("),
    ),
    "course-network-borrowed": Style(
        exercise="02_plain_vs_residual",
        drop=("for name, residual in", "check_plain_vs_residual(", "plot_step_losses("),
        replace=(
            (
                "def make_cifar_net(",
                "from resnet_course import cifar_resnet\n\n"
                "def make_cifar_net(depth, *, residual, width=8, num_classes=10):\n"
                "    return cifar_resnet(depth, block='basic' if residual else 'plain', width=width)",
            ),
        ),
    ),
}


def test_exercise_2_networks_are_judged_by_what_they_compute_and_flagged_by_origin(tmp_path):
    batch = grade_batch(tmp_path / "class", NETWORKS)
    own, borrowed = batch.rows["sequential-of-course-blocks"], batch.rows["course-network-borrowed"]
    assert own["checks_passed"] == "5", own  # cifar_nets in full; the training check is missing
    # Origin is reported, never scored: the course's network computes the right function, so it
    # keeps its points, and the flag names where its operations come from.
    assert borrowed["checks_passed"] == "5", borrowed
    assert "resnet_course/models.py" in borrowed["flags"], borrowed
    assert "origin" not in own["flags"], own
