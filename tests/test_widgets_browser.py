"""End to end: the degradation explorer in JupyterLab, driven in headless Chromium.

The test starts JupyterLab on loopback (no token, a temporary root folder, the
repository's Python as the kernel), opens a notebook, runs the cells up to the
dashboard, drags the depth slider, presses Train, watches the plot change, presses
Stop, and saves a screenshot to ``_build/screenshots/widgets_jupyterlab.png``.

The notebook is a small generated one unless ``RESNET_COURSE_WIDGET_NOTEBOOK`` names
another (a chapter, say); it is copied into the temporary root, so JupyterLab's
autosave never writes outputs into the repository. The dashboard cell is the first
code cell that calls ``degradation_explorer(``; its depth slider must be a spirals
or CIFAR-10 depth slider labelled "depth (layers)".

Chromium is Debian's (``/usr/bin/chromium``); the test never downloads a browser.
Without it the test is skipped, unless ``RESNET_COURSE_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from resnet_course.notebooks import code, md, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOT = ROOT / "_build" / "screenshots" / "widgets_jupyterlab.png"
DASHBOARD_CALL = "degradation_explorer("


def _require_browser():
    if not Path(CHROMIUM).exists():
        message = (
            f"{CHROMIUM} is missing; install it with: apt-get install -y chromium chromium-driver"
        )
        if os.environ.get("RESNET_COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """JupyterLab user settings: every cell in the DOM, and no news or update prompts."""
    overrides = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for name, values in overrides.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _generated_notebook(path: Path) -> Path:
    return write_notebook(
        path,
        [
            md("# Degradation explorer"),
            code(
                "from resnet_course.widgets import degradation_explorer\n\n"
                "explorer = degradation_explorer(depth=6, epochs=300)\n"
                "explorer"
            ),
        ],
    )


@pytest.fixture
def notebook(tmp_path) -> Path:
    """The notebook to open, inside the server's temporary root."""
    root = tmp_path / "root"
    root.mkdir()
    chosen = os.environ.get("RESNET_COURSE_WIDGET_NOTEBOOK")
    if chosen:
        source = Path(chosen)
        if not source.is_absolute():
            source = ROOT / source
        return Path(shutil.copy(source, root / source.name))
    return _generated_notebook(root / "dashboard.ipynb")


@pytest.fixture
def jupyterlab(notebook, tmp_path):
    """A JupyterLab server on loopback serving the notebook's folder; yields its base URL."""
    port = _free_port()
    settings = tmp_path / "lab-settings"
    _write_settings(settings)
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel's own inline backend, as for a reader
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={notebook.parent}",
        "--ServerApp.open_browser=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.allow_root=True",  # containers and CI often run as root
        "--ServerApp.terminals_enabled=False",
    ]
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}"
                    )
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _dashboard_cell_index(path: Path) -> int:
    cells = nbformat.read(path, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.cell_type == "code" and DASHBOARD_CALL in cell.source:
            return index
    raise AssertionError(f"{path.name} has no code cell calling {DASHBOARD_CALL}...)")


def _slider_readout(page, label: str) -> str:
    slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=label)).first
    return slider.locator(".widget-readout").inner_text().strip()


def _train_then_stop(page, plot_image, *, label: str) -> float:
    """Press Train, see the run named ``label`` start and the plot change, press Stop; seconds until it shows."""
    src_before = plot_image.get_attribute("src")
    page.locator(".widget-button", has_text="Train").first.click()
    running = page.locator(".widget-html", has_text=re.compile(rf"{label}.*step [0-9,]+ of")).first
    running.wait_for()
    page.wait_for_function(
        "before => document.querySelector('.resnet-course-plot img').src !== before", arg=src_before
    )
    page.locator(".widget-button", has_text="Stop").first.click()
    pressed = time.perf_counter()
    # The dashboard says "Stopped ..." after its last redraw, so the plot is final when this shows.
    page.locator(".widget-html", has_text=re.compile(r"Stopped [0-9.]+ s after")).first.wait_for(
        timeout=60_000
    )
    latency = time.perf_counter() - pressed
    assert latency < 10, f"Stop took {latency:.1f} s to show"
    return latency


def test_sliders_drive_training_in_jupyterlab(notebook, jupyterlab):
    sync_api = _require_browser()
    dashboard_index = _dashboard_cell_index(notebook)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(int(os.environ.get("RESNET_COURSE_BROWSER_TIMEOUT_MS", "180000")))
        try:
            page.goto(f"{jupyterlab}/lab/tree/{notebook.name}?reset")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            # Keys pressed before the kernel is ready are lost: wait for "Idle" in the status bar.
            page.locator(".jp-StatusBar-Item", has_text=re.compile(r"\|\s*Idle")).first.wait_for()

            # Run every cell up to the dashboard, as a reader would, with Shift+Enter.
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Escape")
            for _ in range(dashboard_index + 1):
                page.keyboard.press("Shift+Enter")

            train = page.locator(".widget-button", has_text="Train").first
            train.wait_for()
            plot_image = page.locator(".resnet-course-plot img").first
            plot_image.wait_for()

            # Move the depth slider in the browser: drag its handle to the right.
            before_depth = _slider_readout(page, "depth (layers)")
            handle = page.locator(
                ".widget-slider", has=page.locator(".widget-label", has_text="depth (layers)")
            ).first.locator(".noUi-handle")
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 25, box["y"] + box["height"] / 2, steps=5)
            page.mouse.up()
            page.wait_for_function(
                """([label, before]) => {
                    const sliders = [...document.querySelectorAll('.widget-slider')];
                    const slider = sliders.find(s => s.querySelector('.widget-label')?.textContent.includes(label));
                    return slider && slider.querySelector('.widget-readout').textContent.trim() !== before;
                }""",
                arg=["depth (layers)", before_depth],
            )
            new_depth = _slider_readout(page, "depth (layers)")
            assert new_depth != before_depth

            # Train: the kernel must see the new depth, and the plot must change. Stop it, then
            # train the residual twin, so the screenshot shows the two runs overlaid.
            latency = _train_then_stop(page, plot_image, label=rf"plain-[a-z-]*{new_depth}\b")
            print(
                f"browser: plain run stopped and shown {latency:.2f} s after Stop (depth {before_depth} -> {new_depth})"
            )
            page.locator(".widget-toggle-button", has_text="residual").first.click()
            latency = _train_then_stop(
                page, plot_image, label=rf"(resnet|residual)-[a-z-]*{new_depth}\b"
            )
            print(f"browser: residual run stopped and shown {latency:.2f} s after Stop")
            page.screenshot(path=str(SCREENSHOT), full_page=False)
        except Exception:
            # What the page showed when it went wrong, for whoever reads the failure.
            page.screenshot(
                path=str(SCREENSHOT.with_name("widgets_jupyterlab_failure.png")), full_page=True
            )
            raise
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
