"""The book as a product, checked without a browser: configuration, offline assets, the
table of contents, the deploy workflow, and the build extension in tools/book.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.book_pages import toc_files
from tools import book

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SPHINX = CONFIG["sphinx"]["config"]
MAKEFILE = (ROOT / "Makefile").read_text()


def make_variable(name: str) -> str:
    match = re.search(rf"^{name}\s*:?=\s*(.+)$", MAKEFILE, re.MULTILINE)
    assert match, f"the Makefile defines no {name}"
    return match.group(1).strip()


# ---------------------------------------------------------------- configuration


def test_chapters_execute_at_build_time_with_a_cache():
    assert CONFIG["execute"]["execute_notebooks"] == "cache"
    assert (
        CONFIG["execute"]["timeout"] > 0
    )  # a cell that hangs fails the build instead of hanging it


def test_launch_and_repository_buttons():
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert CONFIG["html"]["use_repository_button"] is True


def test_book_assets_come_from_the_book_not_a_cdn():
    assets = [SPHINX["mathjax_path"], *SPHINX["nb_ipywidgets_js"]]
    from_network = [asset for asset in assets if "://" in asset]
    assert not from_network, (
        f"these load from the network, so the book breaks offline: {from_network}"
    )
    assert any(asset.endswith("require.js") for asset in assets) and any(
        a.endswith("embed-amd.js") for a in assets
    )


def test_config_serves_what_the_makefile_vendors():
    # The Makefile copies the npm files into $(VENDOR)/static/vendor/; Sphinx copies
    # html_static_path into _static/, so the config names them as vendor/...
    assert SPHINX["html_static_path"] == [f"{make_variable('VENDOR')}/static"]
    assert make_variable("VENDOR_STATIC") == "$(VENDOR)/static/vendor"
    for asset in [SPHINX["mathjax_path"], *SPHINX["nb_ipywidgets_js"]]:
        folder = asset.split("/")[1]
        assert asset.startswith("vendor/") and f"$(VENDOR_STATIC)/{folder}" in MAKEFILE, asset


def test_npm_packages_are_pinned_and_match_ipywidgets():
    import ipywidgets

    packages = dict(spec.rsplit("@", 1) for spec in make_variable("NPM_PACKAGES").split())
    assert set(packages) == {"mathjax", "requirejs", "@jupyter-widgets/html-manager"}
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in packages.values()), packages
    assert packages["mathjax"].startswith("3.")
    # html-manager 0.x renders ipywidgets 7 state, 1.x renders ipywidgets 8 state.
    manager_major = {7: "0", 8: "1"}[int(ipywidgets.__version__.split(".")[0])]
    assert packages["@jupyter-widgets/html-manager"].split(".")[0] == manager_major


def test_vendored_assets_exist_after_make_book():
    static = ROOT / SPHINX["html_static_path"][0]
    if not static.is_dir():
        pytest.fail(f"{static} is missing: run `make book`, which fetches the offline assets.")
    missing = [
        a
        for a in [SPHINX["mathjax_path"], *SPHINX["nb_ipywidgets_js"]]
        if not (static / a).is_file()
    ]
    assert not missing, f"configured but not vendored: {missing}"


# ---------------------------------------------------------------- pages


def test_references_page_is_last_and_holds_the_bibliography():
    assert toc_files(ROOT / "_toc.yml")[-1] == "references"
    assert "{bibliography}" in (ROOT / "references.md").read_text()
    assert (
        "{bibliography}" not in (ROOT / "intro.md").read_text()
    )  # one bibliography, or Sphinx warns


def test_intro_links_every_chapter_of_the_toc():
    intro = (ROOT / "intro.md").read_text()
    chapters = [page for page in toc_files(ROOT / "_toc.yml") if page.startswith("chapters/")]
    unlinked = [page for page in chapters if f"({page}.ipynb)" not in intro]
    assert chapters and not unlinked, f"intro.md does not link: {unlinked}"


# ---------------------------------------------------------------- deploy workflow


def test_deploy_workflow_builds_the_book_and_publishes_it():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert (
        workflow["permissions"]["pages"] == "write"
        and workflow["permissions"]["id-token"] == "write"
    )
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-pages-artifact",
        "actions/deploy-pages",
    } <= set(uses)
    assert str(uses["actions/setup-python"]["with"]["python-version"]) == "3.11"
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    book_command = "make book EXTRAS=book TORCH_INDEX=https://download.pytorch.org/whl/cpu"
    assert any(
        step.get("run", "").strip() == book_command for step in steps
    )  # lean: no test extras, CPU torch
    build = next(
        job
        for job in workflow["jobs"].values()
        if any(s.get("run") == book_command for s in job["steps"])
    )
    assert build["env"]["RESNET_COURSE_PRESET"] == "cpu"  # a CPU runner builds the published preset


# ---------------------------------------------------------------- tools/book.py


def test_jupyter_book_loads_the_extension_from_tools_without_an_install(tmp_path):
    # Jupyter Book's own reading of _config.yml, in a child started elsewhere (so the repository is
    # not on sys.path by accident): the extension is listed, and importing it finds tools/book.py.
    pytest.importorskip("jupyter_book")
    script = f"""
import importlib, sys
from pathlib import Path
from jupyter_book.config import get_final_config
config, _ = get_final_config(user_yaml=Path({str(ROOT / "_config.yml")!r}), sourcedir=Path({str(ROOT)!r}), cli_config={{"latex_individualpages": False}},
                             validate=True, raise_on_invalid=True)
assert "tools.book" in config["extensions"], config["extensions"]
module = importlib.import_module("tools.book")
print(Path(module.__file__).resolve())
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(ROOT / "tools" / "book.py")
    assert not any(
        ext.startswith("resnet_course") for ext in CONFIG["sphinx"].get("extra_extensions") or []
    )


def test_toc_files_reads_parts_sections_and_suffixes(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n- caption: A\n  chapters:\n  - file: chapters/01_a\n"
        "    sections:\n    - file: chapters/01_b.md\n- caption: B\n  chapters:\n  - file: references\n"
    )
    assert toc_files(toc) == ["intro", "chapters/01_a", "chapters/01_b", "references"]


def test_toc_files_refuses_a_file_that_is_not_a_toc(tmp_path):
    not_toc = tmp_path / "x.yml"
    not_toc.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="no 'root' entry"):
        toc_files(not_toc)


def script(filename, priority=500, **attributes):
    return SimpleNamespace(filename=filename, priority=priority, attributes=attributes)


def test_unique_scripts_takes_none_and_empty_name_as_one():
    config = script(None, body="const THEBE_JS_URL = 1")
    same = script("", body="const THEBE_JS_URL = 1")
    other = script(None, body="const other = 2")
    assert book.unique_scripts([config, same, other]) == [config, other]


def test_widget_support_runs_just_before_require_js():
    scripts = [
        script("_static/a.js"),
        script("_static/vendor/requirejs/require.js"),
        script("_static/vendor/html-manager/embed-amd.js"),
    ]
    app = SimpleNamespace(add_js_file=lambda filename, **kw: scripts.append(script(filename, **kw)))
    book._fix_page_scripts(app, "page", "page.html", {"script_files": scripts}, None)
    assert [s.filename for s in scripts][1:3] == [None, "_static/vendor/requirejs/require.js"]
    assert '"_static/vendor/html-manager"' in scripts[1].attributes["body"]


def test_pages_without_widgets_get_no_widget_support():
    scripts = [script("_static/a.js")]
    app = SimpleNamespace(add_js_file=lambda filename, **kw: scripts.append(script(filename, **kw)))
    book._fix_page_scripts(app, "page", "page.html", {"script_files": scripts}, None)
    assert [s.filename for s in scripts] == ["_static/a.js"]


def test_missing_offline_assets_stop_the_build_with_advice(tmp_path):
    app = SimpleNamespace(
        confdir=str(tmp_path),
        config=SimpleNamespace(
            mathjax_path="vendor/mathjax/tex-chtml.js", html_static_path=["_build/vendor/static"]
        ),
    )
    with pytest.raises(book.OfflineAssetsMissing, match="run `make book`"):
        book.check_offline_assets(app)
    asset = tmp_path / "_build/vendor/static/vendor/mathjax/tex-chtml.js"
    asset.parent.mkdir(parents=True)
    asset.write_text("// MathJax")
    book.check_offline_assets(app)  # present: no error


def make_echo(tmp_path, what: str, **env: str) -> str:
    """What the Makefile's variables (or the environment it exports) make ``echo what`` print."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    probe = tmp_path / "probe.mk"
    probe.write_text(f"include {ROOT / 'Makefile'}\nshow:\n\t@echo {what}\n")
    shown = subprocess.run(
        ["make", "-s", "-f", str(probe), "show"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.strip()


def test_make_hands_chapters_an_absolute_data_folder_and_the_book_preset(tmp_path):
    """Chapters execute in chapters/: a relative RESNET_COURSE_DATA from the command line must still find the data."""
    shown = '"$$RESNET_COURSE_DATA|$$RESNET_COURSE_PRESET"'
    data, preset = make_echo(tmp_path, shown, RESNET_COURSE_DATA="../shared/data").split("|")
    assert (
        os.path.normpath(data) == os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
        and preset == "cpu"
    )
    chosen = make_echo(
        tmp_path, shown, RESNET_COURSE_DATA="../shared/data", RESNET_COURSE_PRESET="gpu"
    )
    assert chosen.endswith("|gpu")  # a preset the user sets is kept


def test_the_book_is_executed_again_only_when_what_chapters_import_changes(tmp_path):
    """The execution cache is dropped when the package changes, not when a tool or the exercises' checks do."""
    watched = set(make_echo(tmp_path, "$(CHAPTER_CODE)").split())
    assert {
        "resnet_course/__init__.py",
        "resnet_course/train.py",
        "resnet_course/evidence.py",
    } <= watched
    assert not {
        path for path in watched if not path.startswith("resnet_course/") or "/grading/" in path
    }
    # The stamp that drops the cache depends on exactly these: what chapters import, the scale
    # study's summary that they show, and the package's metadata.
    assert "$(CHAPTER_CODE) $(CHAPTER_DATA) pyproject.toml" in MAKEFILE
    assert make_echo(tmp_path, "$(CHAPTER_DATA)").split() == ["results/scale-study/summary.json"]
