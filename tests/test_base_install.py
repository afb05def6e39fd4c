"""What a chapter, a dashboard or a check cell imports works with the package's declared dependencies alone.

The tools' dependencies (nbformat, nbclient, nbval, pytest, the book's Sphinx stack, Playwright)
are made unimportable in a child interpreter; the package, its dashboards and its checks must
import, and `info` must run. `grade` then says in one sentence what to install.
"""

import subprocess
import sys

TOOLS_ONLY = ["nbval", "pytest", "nbformat", "nbclient", "myst_nb", "jupyter_book", "sphinx", "playwright", "yaml"]

SCRIPT = f"""
import sys
for name in {TOOLS_ONLY!r}:
    sys.modules[name] = None  # import name -> ImportError, as on a base install
import resnet_course, resnet_course.widgets, resnet_course.grading, resnet_course.runs
import resnet_course.evidence, resnet_course.claims, resnet_course.analysis, resnet_course.plots
from resnet_course.grading import check_basic_block
from resnet_course.__main__ import main
assert main(["info"]) == 0
assert main(["grade", "missing.ipynb"]) == 2
"""


def test_the_package_imports_and_info_runs_without_the_tools():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "preset" in done.stdout and "Traceback" not in done.stderr
    assert "needs" in done.stderr and "pip install" in done.stderr
