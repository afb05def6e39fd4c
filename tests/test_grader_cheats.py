"""Notebooks that pass without writing the block: each is flagged, or earns no full marks.

Each class of cheat from issue 23 is here: the course's or torchvision's block reached
without a plain import (a global, a list, a class attribute, ``operator.attrgetter``),
someone else's code run (``exec`` of the solution, from its file or a string, reached
through ``attrgetter``; torch.fx's code generator; a pickle that runs code; a matplotlib
backend the notebook wrote), and a forged ``state_dict``. The same tricks are tried on
exercises 3, 5 and 6. All are graded in one class run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from grader_notebooks import ROOT, Style, full_marks, grade_batch

pytestmark = pytest.mark.slow

SOLUTION = (ROOT / "exercises" / "solutions" / "01_basic_block.py").read_text()
SOLUTION_BLOCK = SOLUTION[SOLUTION.index("class BasicBlock") : SOLUTION.index("def input_gradient")]
CLASS_CELL = "class BasicBlock(nn.Module):"


def wearing(
    oracle: str,
    *,
    build: str = "{oracle}(in_channels, planes, stride)",
    cls="BasicBlock",
    args="in_channels, planes, stride=1",
    head="",
    more="",
) -> str:
    """A class named as the exercise asks, whose layers and forward are another block's."""
    return (
        f"{head}\nclass {cls}(nn.Module):\n"
        f"{more}"
        f"    def __init__(self, {args}, **unused):\n"
        "        super().__init__()\n"
        f"        inner = {build.format(oracle=oracle)}\n"
        "        for name, child in inner.named_children():\n"
        "            setattr(self, name, child)\n"
        "        self._forward = type(inner).forward\n\n"
        "    def forward(self, x):\n"
        "        return self._forward(self, x)\n\n"
        "    def zero_init_last(self):\n"
        "        nn.init.zeros_(self.bn2.weight)\n"
    )


def cheat(source: str, exercise="01_basic_block", marker=CLASS_CELL) -> Style:
    return Style(replace=((marker, source),), exercise=exercise)


TORCHVISION_BLOCK = (
    "{oracle}(in_channels, planes, stride, None if stride == 1 and in_channels == planes else "
    "nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)))"
)
RUN_AS_MAIN = (
    "import torch\nfrom torch import nn\n"
    + SOLUTION_BLOCK
    + ("\nimport __main__\n__main__.BasicBlock = BasicBlock\n")
)

CHEATS = {
    # The course's own block, reached without a direct import.
    "global-in-helper": cheat(
        wearing(
            "Oracle",
            head="def fetch():\n    global Oracle\n    import resnet_course.blocks as b\n"
            "    Oracle = b.BasicBlock\n\nfetch()\n",
        )
    ),
    "list-append": cheat(
        wearing(
            "found[0]",
            head="found = []\nfound.append(__import__('resnet_course.blocks', fromlist=['x']).BasicBlock)\n",
        )
    ),
    "class-attribute": cheat(
        wearing(
            "Holder.block",
            head="class Holder:\n    from resnet_course.blocks import BasicBlock as block\n",
        )
    ),
    "attrgetter-sys-modules": cheat(
        wearing(
            "Oracle",
            head="import typing\nimport resnet_course\n"
            "Oracle = typing.operator.attrgetter('modules')(typing.sys)['resnet_course.blocks'].BasicBlock\n",
        )
    ),
    "attrgetter-torchvision": cheat(
        wearing(
            "TV",
            build=TORCHVISION_BLOCK,
            head="import operator\nimport torchvision\n"
            "TV = operator.attrgetter('models.resnet.BasicBlock')(torchvision)\n",
        )
    ),
    # Someone else's code, run.
    "exec-solution-file": Style(
        extra=(
            "import pathlib\nimport resnet_course\n"
            "root = pathlib.Path(resnet_course.__file__).parents[1]\n"
            "exec((root / 'exercises/solutions/01_basic_block.py').read_text())",
        ),
        solution=False,
    ),
    "exec-solution-text-via-attrgetter": Style(
        extra=(
            f"import operator, builtins\nrun = operator.attrgetter('exec')(builtins)\nrun({SOLUTION!r})",
        ),
        solution=False,
    ),
    "fx-codegen": cheat(
        wearing(
            "torch.fx.symbolic_trace",
            build="{oracle}(" + TORCHVISION_BLOCK.format(oracle="TV") + ")",
            head="import torch.fx\nimport torchvision\nTV = torchvision.models.resnet.BasicBlock\n",
        )
    ),
    "numpy-pickle": Style(
        extra=(
            "import numpy as np\n\nclass Payload:\n    def __reduce__(self):\n"
            f"        return (exec, ({RUN_AS_MAIN!r}, {{'__name__': 'payload'}}))\n\n"
            "np.save('payload.npy', np.array([Payload()], dtype=object), allow_pickle=True)\n"
            "np.load('payload.npy', allow_pickle=True)",
        ),
        solution=False,
    ),
    "matplotlib-backend": Style(
        extra=(
            "source = "
            + repr(
                RUN_AS_MAIN
                + "from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas\n"
            )
            + "\nopen('cheat_backend.py', 'w').write(source)\n"
            "import matplotlib\nmatplotlib.use('module://cheat_backend')\n"
            "import matplotlib.pyplot as plt\nplt.figure()",
        ),
        solution=False,
    ),
    # Code placed where the trace would take it for PyTorch's or a notebook cell's.
    "file-under-a-torch-folder": Style(
        extra=(
            "import pathlib, sys\nfolder = pathlib.Path('site-packages/torch')\n"
            "folder.mkdir(parents=True, exist_ok=True)\n"
            f"(folder / 'oracle.py').write_text({RUN_AS_MAIN!r})\n"
            "sys.path.insert(0, str(folder))\nimport oracle",
        ),
        solution=False,
    ),
    "compiled-as-an-old-cell-name": Style(
        extra=(f"exec(compile({SOLUTION_BLOCK!r}, '<ipython-input-1-0123abcd>', 'exec'))",),
        solution=False,
    ),
    "forged-state-dict": cheat(
        "class BasicBlock(nn.Module):\n"
        "    def __init__(self, in_channels, planes, stride=1):\n"
        "        super().__init__()\n"
        "        real = __import__('resnet_course').blocks.BasicBlock(in_channels, planes, stride)\n"
        "        self.shapes = {k: v.shape for k, v in real.state_dict().items()}\n\n"
        "    def state_dict(self, *args, **kwargs):\n"
        "        return {k: torch.zeros(s) for k, s in self.shapes.items()}\n\n"
        "    def forward(self, x):\n"
        "        return torch.relu(x)\n\n"
        "    def zero_init_last(self):\n"
        "        pass\n"
    ),
    # The block written right, but zero_init_last left undone and its effect reported instead.
    "zero-init-reported-not-done": cheat(
        SOLUTION_BLOCK.replace("nn.init.zeros_(self.bn2.weight)", "pass")
        + "\n    def state_dict(self, *args, **kwargs):\n"
        "        state = super().state_dict(*args, **kwargs)\n"
        "        state['bn2.weight'] = torch.zeros_like(state['bn2.weight'])\n"
        "        return state\n"
    ),
    # The same tricks on exercises 3, 5 and 6.
    "ex3-torchvision-bottleneck": cheat(
        wearing(
            "TV",
            build=TORCHVISION_BLOCK.replace("in_channels == planes", "in_channels == planes * 4")
            .replace("nn.Conv2d(in_channels, planes, 1", "nn.Conv2d(in_channels, planes * 4, 1")
            .replace("nn.BatchNorm2d(planes)))", "nn.BatchNorm2d(planes * 4)))"),
            cls="Bottleneck",
            head="import operator\nimport torchvision\n"
            "TV = operator.attrgetter('models.resnet.Bottleneck')(torchvision)\n",
            more="    expansion = 4\n    preact = False\n\n",
        ),
        exercise="03_bottleneck",
        marker="class Bottleneck(nn.Module):",
    ),
    "ex5-class-attribute": cheat(
        wearing(
            "Holder.block",
            cls="PreActBlock",
            head="class Holder:\n    from resnet_course.blocks import PreActBlock as block\n",
        ),
        exercise="05_preactivation",
        marker="class PreActBlock(nn.Module):",
    ),
    "ex6-global-in-helper": cheat(
        wearing(
            "Oracle",
            build="{oracle}(in_channels, out_channels // 4, stride, groups=32, "
            "width_per_group=4 * 64 // (out_channels // 4))",
            cls="ResNeXtBlock",
            args="in_channels, out_channels, stride=1",
            head="def fetch():\n    global Oracle\n    import resnet_course.blocks as b\n"
            "    Oracle = b.Bottleneck\n\nfetch()\n",
        ),
        exercise="06_resnext",
        marker="class ResNeXtBlock(nn.Module):",
    ),
}
# Where the reason is the block's provenance, the report says so.
BORROWED = {
    "global-in-helper",
    "list-append",
    "class-attribute",
    "attrgetter-sys-modules",
    "attrgetter-torchvision",
    "exec-solution-text-via-attrgetter",
    "fx-codegen",
    "numpy-pickle",
    "matplotlib-backend",
    "ex3-torchvision-bottleneck",
    "ex5-class-attribute",
    "ex6-global-in-helper",
    "file-under-a-torch-folder",
    "compiled-as-an-old-cell-name",
}


@pytest.fixture(scope="module")
def cheat_batch(tmp_path_factory):
    return grade_batch(tmp_path_factory.mktemp("cheats") / "class", CHEATS)


@pytest.mark.parametrize("student", sorted(CHEATS))
def test_a_cheat_is_flagged_or_earns_no_full_marks(cheat_batch, student):
    """Origin is reported, never scored: borrowed code that computes the block keeps its points and
    carries a flag naming where it came from; a cheat that does not compute it loses them."""
    row = cheat_batch.rows[student]
    if student in BORROWED:
        assert "not code written in this notebook" in row["flags"], row
        assert "origin" in row["flags"] and "not code written" not in row["problems"], row
    else:
        assert not full_marks(cheat_batch, student), row


def test_the_cheats_would_run(cheat_batch):
    """Not refused unread: each cheat's block was built and exported (its check did run)."""
    for student in BORROWED:
        assert "did not run" not in cheat_batch.rows[student]["problems"], student


def test_nothing_was_left_on_disk_by_the_cheats(cheat_batch):
    assert not list(Path(ROOT).glob("cheat_backend.py"))
