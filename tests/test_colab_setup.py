"""The Colab set-up cell, run as Colab runs it: a kernel that has PyTorch but not the course.

A fresh virtual environment sees this environment's packages (torch, ipykernel,
numpy...) through a path file, as Colab's kernel sees its preinstalled ones, but
not the course: its editable install is not visible there. The set-up cell,
with RESNET_COURSE_PIP_SOURCE pointing at this clone as a git URL (what the cell
installs in Colab is the repository's git URL), must install the course, leave
torch as it was, and import it.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from resnet_course.notebooks import COLAB_SETUP_SOURCE, PIP_SOURCE_ENV

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def colab_like(tmp_path_factory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("the set-up cell installs from git; this copy of the course is not a git clone")
    venv = tmp_path_factory.mktemp("colab") / "venv"
    # No pip of its own: this environment's pip, seen through the path file, installs into it (as Colab's does).
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300
    )
    packages = subprocess.run(
        [str(_python(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # This environment's packages, as a plain path entry: its .pth files (the course's editable install) stay unread.
    Path(packages, "preinstalled.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


def test_the_set_up_cell_installs_the_course_and_keeps_torch(colab_like, tmp_path):
    python = _python(colab_like)
    probe = "import torch; print(torch.__version__, torch.__file__)"
    missing = subprocess.run(
        [str(python), "-c", "import resnet_course"], capture_output=True, text=True, cwd=tmp_path
    )
    assert missing.returncode != 0, "the course must be missing before the set-up cell runs"
    torch_before = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True
    ).stdout

    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpec
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(COLAB_SETUP_SOURCE),
            nbformat.v4.new_code_cell(
                "import torch\nprint(resnet_course.__file__)\nprint(torch.__version__, torch.__file__)"
            ),
        ]
    )
    manager = KernelManager()
    manager._kernel_spec = KernelSpec(
        argv=[str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name="colab-like",
        language="python",
    )
    env = {
        **os.environ,
        PIP_SOURCE_ENV: f"resnet-course @ git+file://{ROOT}",
        "PYTHONPATH": "",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    client = NotebookClient(notebook, km=manager, timeout=900, allow_errors=True)
    with client.setup_kernel(cwd=str(tmp_path), env=env):
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
    errors = [o for cell in notebook.cells for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    printed = "".join(o.get("text", "") for o in notebook.cells[1].outputs).splitlines()
    assert printed[0].startswith(str(colab_like)), (
        f"the course should be installed in the new environment: {printed}"
    )
    assert printed[1] == torch_before.strip(), (
        "the set-up cell must leave the installed torch as it is"
    )
    torch_after = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert torch_after == torch_before
