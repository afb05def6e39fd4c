"""A reader's check of the built book, in a real browser with no network.

Serves the built site (``_build/html``, or ``$RESNET_COURSE_SITE``) on loopback and opens
every page of the table of contents in headless Chromium through Playwright. Each page
must load without console errors or failed requests (any request that leaves loopback
counts as failed: the book is self-contained), show its figures, render its math with
MathJax, render its stored widget state as visible controls, and, for a chapter, offer
Colab and Binder links to that chapter's notebook in the course repository. A full-page
screenshot of each page is saved under ``_build/screenshots/``.

Debian's Chromium is used (``apt-get install chromium``); no browser is ever downloaded.
Without it the test is skipped, unless ``RESNET_COURSE_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.book_pages import source_of, toc_files

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("RESNET_COURSE_SITE", ROOT / "_build" / "html")).resolve()
# The book the site was built from: by default the folder that holds `_build/html`.
BOOK = Path(
    os.environ.get(
        "RESNET_COURSE_BOOK",
        SITE.parent.parent if (SITE.parent.parent / "_config.yml").is_file() else ROOT,
    )
)
TOC = Path(os.environ.get("RESNET_COURSE_TOC", BOOK / "_toc.yml"))
SCREENSHOTS = SITE.parent / "screenshots"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PAGE_TIMEOUT_MS = 60_000

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# The element each kind of control renders to (ipywidgets 8, @jupyter-widgets/controls 5).
CONTROL_SELECTORS = {
    "IntSliderModel": ".widget-slider",
    "FloatSliderModel": ".widget-slider",
    "FloatLogSliderModel": ".widget-slider",
    "IntRangeSliderModel": ".widget-slider",
    "FloatRangeSliderModel": ".widget-slider",
    "SelectionSliderModel": ".widget-slider",
    "ButtonModel": ".widget-button",
    "ToggleButtonModel": ".widget-toggle-button",
    "ToggleButtonsModel": ".widget-toggle-buttons",
    "DropdownModel": ".widget-dropdown",
    "CheckboxModel": ".widget-checkbox",
    "IntProgressModel": ".widget-hprogress, .widget-vprogress",
    "FloatProgressModel": ".widget-hprogress, .widget-vprogress",
}


# ---------------------------------------------------------------- what the book holds


_CODE = re.compile(r"```.*?```|~~~.*?~~~|`[^`\n]*`", re.DOTALL)
# MyST dollar math: $$...$$, or $...$ with no space just inside the dollars.
_MATH = re.compile(r"\$\$.+?\$\$|\$[^\s$][^$\n]*?(?<=\S)\$", re.DOTALL)


def source_has_math(path: Path | None) -> bool:
    """Whether the page's markdown (outside code) contains dollar math or a math directive."""
    if path is None:
        return False
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text()
    text = _CODE.sub("", text)
    return bool(_MATH.search(text) or re.search(r"\{math\}|\\begin\{(equation|align)", text))


def book_config() -> dict:
    return yaml.safe_load((BOOK / "_config.yml").read_text())


def expected_launch_links(page: str) -> dict[str, str]:
    """The Colab and Binder links sphinx-book-theme must show on a chapter page."""
    config = book_config()
    repository = config["repository"]
    owner_repo = urlsplit(repository["url"]).path.strip("/")
    branch = repository.get("branch", "main")
    path = f"{repository.get('path_to_book', '').strip('/')}/{page}.ipynb".lstrip("/")
    launch = config["launch_buttons"]
    return {
        "Colab": f"{launch['colab_url'].rstrip('/')}/github/{owner_repo}/blob/{branch}/{path}",
        "Binder": f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{owner_repo}/{branch}?urlpath=tree/{path}",
    }


def widgets_on_page(html: str) -> tuple[int, set[str]]:
    """How many widget views the page displays, and the control models they reach."""
    states = re.findall(
        rf'<script type="{re.escape(WIDGET_STATE)}">(.*?)</script>', html, re.DOTALL
    )
    views = re.findall(rf'<script type="{re.escape(WIDGET_VIEW)}">(.*?)</script>', html, re.DOTALL)
    if not views:
        return 0, set()
    models = json.loads(states[0])["state"] if states else {}

    def hidden(model_id: str) -> bool:
        layout = models[model_id]["state"].get("layout", "").removeprefix("IPY_MODEL_")
        style = models.get(layout, {}).get("state", {})
        return style.get("display") == "none" or style.get("visibility") == "hidden"

    # Follow "IPY_MODEL_<id>" references from each displayed view to the visible controls it contains.
    reached, stack = set(), [json.loads(view)["model_id"] for view in views]
    while stack:
        model_id = stack.pop()
        if model_id in reached or model_id not in models or hidden(model_id):
            continue
        reached.add(model_id)
        stack.extend(re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(models[model_id]["state"])))
    return len(views), {models[m]["model_name"] for m in reached}


PAGES = toc_files(TOC)


# ---------------------------------------------------------------- server and browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output for failures
        pass


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "index.html").is_file():
        pytest.fail(
            f"The built book is missing ({SITE / 'index.html'} does not exist): run `make book` first."
        )
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    required = os.environ.get("RESNET_COURSE_REQUIRE_BROWSER") == "1"
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "Playwright is not installed (pip install playwright)"
    if reason is None and not CHROMIUM.is_file():
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if reason:
        if required:
            pytest.fail(
                f"{reason}, and RESNET_COURSE_REQUIRE_BROWSER=1 requires the browser check."
            )
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


# ---------------------------------------------------------------- one page, as a reader sees it


_MATH_REPORT = """() => {
    const article = document.querySelector('article') || document.body;
    const math = Array.from(article.querySelectorAll('.math'));
    const text = article.cloneNode(true);
    text.querySelectorAll('pre, code, script, style, mjx-container').forEach(el => el.remove());
    return {
        elements: math.length,
        rendered: article.querySelectorAll('mjx-container').length,
        unrendered: math.filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.trim().slice(0, 60)),
        errors: Array.from(article.querySelectorAll('mjx-merror')).map(el => el.textContent.slice(0, 60)),
        rawDisplayMath: text.textContent.includes('$$'),
    };
}"""

# A Markdown table that was not parsed shows its rule row as text in a paragraph: "|---|---|",
# or "|—|—|" once smart quotes have turned the dashes into em dashes.
_RAW_TABLES = """() => {
    const article = document.querySelector('article') || document.body;
    const text = article.cloneNode(true);
    text.querySelectorAll('pre, code, script, style').forEach(el => el.remove());
    return (text.textContent.match(/\\|\\s*:?[-\\u2013\\u2014]+:?\\s*\\|/g) || []).length;
}"""

_BROKEN_IMAGES = """() => Array.from(document.querySelectorAll('article img'))
    .filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => img.getAttribute('src'))"""

_VISIBLE = """selector => Array.from(document.querySelectorAll(selector))
    .filter(el => { const box = el.getBoundingClientRect(); return box.width > 0 && box.height > 0; }).length"""


def wait_for(
    page, expression: str, what: str, problems: list[str], timeout_ms: int = 20_000
) -> bool:
    """Wait until ``expression`` is true in the page; on timeout, note the problem and go on."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(expression, timeout=timeout_ms)
        return True
    except PlaywrightTimeout:
        problems.append(f"gave up waiting {timeout_ms // 1000} s for {what}")
        return False


# The longest line of each visible code block (not a cell's output) that is wider than the block.
_CUT_CODE = """() => [...document.querySelectorAll('article div.highlight pre')]
    .filter(pre => !pre.closest('.cell_output') && pre.clientWidth > 0 && pre.scrollWidth > pre.clientWidth + 1)
    .map(pre => pre.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '').slice(0, 80))"""


# A reader's page shows no plumbing, and every output is readable whole (chapters/README.md):
# each check below is a function of the page, run on every page of the book and, in the tests
# at the end of this file, on a small page made to fail it.

# Output blocks (text a cell printed, or a table it displayed) wider than their column.
_CUT_OUTPUT = """() => [...document.querySelectorAll('article .cell_output pre, article .cell_output table')]
    .filter(el => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1
        && !(el.tagName === 'TABLE' && el.parentElement.scrollWidth <= el.parentElement.clientWidth + 1
             && el.getBoundingClientRect().right <= document.querySelector('article').getBoundingClientRect().right + 1))
    .map(el => el.innerText.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '').slice(0, 80))"""

# What a cell printed that names a place on the build machine.
_MACHINE_PATHS = """() => [...document.querySelectorAll('article .cell_output')]
    .map(el => el.innerText)
    .flatMap(text => text.match(/(?:\\/(?:home|root|work|tmp|Users|usr|opt|var|private)\\/[^\\s'",)]+|site-packages|[A-Z]:\\\\[^\\s]+)/g) || [])"""

# The scale study's names for its configurations (w8-16px-525st-cos), which the text spells out.
_CONFIG_CODES = """() => (document.querySelector('article').innerText
    .match(/\\b(?:w\\d+-\\d+px(?:-[\\w.]+)*|\\d+st-(?:cos|step|const)|sort\\d+-d\\d+-\\d+ep)\\b/g) || [])"""

# An output that is nothing but a value: a number, a quoted string, a bare object or figure repr.
_STRAY_VALUES = """() => [...document.querySelectorAll('article .cell_output .output')]
    .filter(el => !el.querySelector('img, table, .widget-subarea, details'))
    .map(el => el.innerText.trim())
    .filter(text => /^(?:-?[\\d.,]+(?:e[-+]?\\d+)?%?|'[^'\\n]*'|"[^"\\n]*"|True|False|None|<Figure size[^>]*>|<[\\w.]+ object at 0x[0-9a-f]+>)$/.test(text))"""

# The same figure twice on one page: identical image data.
_DUPLICATE_FIGURES = """() => {
    const seen = new Map(), twice = [];
    for (const img of document.querySelectorAll('article img')) {
        const src = img.getAttribute('src') || '';
        if (!/\\.png$|^data:image\\/png/.test(src)) continue;
        if (seen.has(src)) twice.push(src.slice(0, 60)); else seen.set(src, true);
    }
    return twice;
}"""

# A drawn figure (PNG) shown at less than 90% of its own width: its tick labels shrink with it.
_SHRUNK_FIGURES = """() => [...document.querySelectorAll('article img')]
    .filter(img => /\\.png$|^data:image\\/png/.test(img.getAttribute('src') || ''))
    .filter(img => img.naturalWidth > 0 && img.getBoundingClientRect().width > 0
        && img.getBoundingClientRect().width < 0.9 * img.naturalWidth)
    .map(img => `${(img.getAttribute('src') || '').slice(0, 50)}: ${img.naturalWidth}px shown at ${Math.round(img.getBoundingClientRect().width)}px`)"""

# Visible code of the kind the page-style guide keeps behind the page.
_VISIBLE_PLUMBING = """() => [...document.querySelectorAll('article .cell_input')]
    .filter(el => el.getBoundingClientRect().height > 0 && el.offsetParent !== null)
    .map(el => el.innerText)
    .flatMap(text => text.match(/(?:\\bglue\\(|\\bexpect\\(|%xmode|\\bload_study\\(|\\bshow_details\\(|\\bshow_about\\(|\\bprovenance_line\\(|%pip install|RESNET_COURSE_PIP_SOURCE)/g) || [])"""

READER_CHECKS = {
    "output wider than its block (cut at the right edge)": _CUT_OUTPUT,
    "a machine path in an output": _MACHINE_PATHS,
    "a configuration code in the text": _CONFIG_CODES,
    "a stray value as an output": _STRAY_VALUES,
    "the same figure twice": _DUPLICATE_FIGURES,
    "a figure shrunk below 90% of its width (its labels shrink too)": _SHRUNK_FIGURES,
    "visible plumbing code": _VISIBLE_PLUMBING,
}


def check_page(browser, site_url: str, page_name: str) -> list[str]:
    """Open one page like a reader would; return every problem found (empty when all is well)."""
    html_path = SITE / f"{page_name}.html"
    if not html_path.is_file():
        return [f"{page_name} is in {TOC.name} but {html_path} is missing: run `make book`."]
    html = html_path.read_text()
    problems: list[str] = []

    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def guard(route):
        # The book must not need the network: anything beyond loopback is a failure.
        parts = urlsplit(route.request.url)
        if parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname not in LOOPBACK:
            problems.append(f"request leaves loopback: {route.request.url}")
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.on(
        "console",
        lambda msg: problems.append(f"console error: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "requestfailed",
        lambda request: problems.append(f"failed request: {request.url} ({request.failure})"),
    )
    page.on(
        "response",
        lambda response: (
            problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400
            else None
        ),
    )
    try:
        page.goto(f"{site_url}/{page_name}.html", wait_until="load")

        # Math: MathJax typesets after loading; wait for it, then nothing may be left raw.
        if source_has_math(source_of(BOOK, page_name)) or 'class="math' in html:
            if "mathjax" not in html.lower():
                problems.append("the page has math but does not load MathJax")
            elif wait_for(
                page,
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                "MathJax to start",
                problems,
            ):
                page.evaluate("() => MathJax.startup.promise.then(() => true)")
                math = page.evaluate(_MATH_REPORT)
                if math["elements"] == 0 or math["rendered"] == 0:
                    problems.append(
                        f"math is not rendered ({math['elements']} math elements, {math['rendered']} mjx-container)"
                    )
                if math["unrendered"]:
                    problems.append(f"math left unrendered: {math['unrendered']}")
                if math["errors"]:
                    problems.append(f"MathJax errors: {math['errors']}")
                if math["rawDisplayMath"]:
                    problems.append("raw $$ in the page text: display math was not parsed")

        # Tables: displayed Markdown tables (markdown_table) must be real tables.
        raw_tables = page.evaluate(_RAW_TABLES)
        if raw_tables:
            problems.append(
                f"{raw_tables} Markdown table rule(s) shown as text: a table output was not parsed"
            )

        # Widgets: the stored state must render, every displayed view as visible controls.
        views, control_models = widgets_on_page(html)
        if views:
            rendered = f"() => document.querySelectorAll('.widget-subarea').length >= {views}"
            wait_for(page, rendered, f"all {views} stored widget views to render", problems)
            page.wait_for_load_state("networkidle")
            for model in sorted(control_models):
                selector = CONTROL_SELECTORS.get(model)
                if selector and page.evaluate(_VISIBLE, selector) == 0:
                    problems.append(f"no visible {selector} for the page's {model}")

        # Code: every visible block of code shows its lines whole, without a horizontal scroll
        # (tests/test_notebook_conventions.py keeps the source within the column; this is the page).
        cut = page.evaluate(_CUT_CODE)
        if cut:
            problems.append(f"code wider than its block (cut at the right edge): {cut}")

        # The reader's checks: no plumbing, nothing cut off, no machine path, no configuration
        # code, no stray value, no figure twice, no figure shrunk (chapters/README.md).
        for problem, check in READER_CHECKS.items():
            found = page.evaluate(check)
            if found:
                problems.append(f"{problem}: {found[:5]}")

        # Figures: every image in the article has loaded with a real size.
        broken = page.evaluate(_BROKEN_IMAGES)
        if broken:
            problems.append(f"images that did not load: {broken}")

        # Launch links: a chapter opens its own notebook, in the course repository.
        source = source_of(BOOK, page_name)
        if source is not None and source.suffix == ".ipynb":
            for service, expected in expected_launch_links(page_name).items():
                prefix = (
                    expected.split("/github/")[0]
                    if service == "Colab"
                    else expected.split("/v2/")[0]
                )
                links = page.eval_on_selector_all(
                    f'a[href^="{prefix}"]', "els => els.map(a => a.href)"
                )
                if links != [expected]:
                    problems.append(f"{service} link is {links}, expected [{expected!r}]")

        # The Exercises page: every exercise notebook opens in Colab with one visible click.
        if page_name == "exercises/index":
            notebooks = sorted(path.name for path in (BOOK / "exercises").glob("*.ipynb"))
            links = page.eval_on_selector_all(
                'article a[href^="https://colab.research.google.com/github/"]',
                "els => els.filter(a => a.getBoundingClientRect().width > 0).map(a => a.href)",
            )
            if sorted(link.rsplit("/", 1)[-1] for link in links) != notebooks:
                problems.append(
                    f"Open-in-Colab links on the Exercises page: {links}, expected one per {notebooks}"
                )

        page.wait_for_load_state("networkidle")
        screenshot = SCREENSHOTS / f"{page_name}.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return problems


@pytest.mark.browser
@pytest.mark.parametrize("page_name", PAGES)
def test_page_reads_well_offline(browser, site_url, page_name):
    problems = check_page(browser, site_url, page_name)
    assert not problems, f"{page_name}: " + "; ".join(problems)


# ---------------------------------------------------------------- the helpers themselves


def test_source_has_math_ignores_code_and_prices(tmp_path):
    with_math = tmp_path / "a.md"
    with_math.write_text("The gradient is $1 + \\partial F/\\partial x$.\n")
    without = tmp_path / "b.md"
    without.write_text(
        "Set `$RESNET_COURSE_PRESET`; it costs $5 and $6 more.\n\n```bash\necho $$\n```\n"
    )
    assert source_has_math(with_math)
    assert not source_has_math(without)


@pytest.mark.browser
def test_the_cut_code_check_finds_a_line_wider_than_its_block(browser):
    page = browser.new_page()
    try:
        block = '<article><div class="highlight"><pre style="width: 300px; overflow: auto">{}</pre></div></article>'
        page.set_content(block.format("short = 1\nx = " + "1 + " * 40 + "1"))
        assert page.evaluate(_CUT_CODE) == [("x = " + "1 + " * 40)[:80]]
        page.set_content(block.format("short = 1\nalso_short = 2"))
        assert page.evaluate(_CUT_CODE) == []
    finally:
        page.close()


# Each reader's check, on a page made to fail it and on the same page made right.
READER_CHECK_CASES = {
    "output wider than its block (cut at the right edge)": (
        '<article style="width: 400px"><div class="cell_output"><pre style="overflow: auto">'
        + "x" * 200
        + "</pre></div></article>",
        '<article style="width: 400px"><div class="cell_output"><pre style="overflow: auto">'
        + "x" * 20
        + "</pre></div></article>",
    ),
    "a machine path in an output": (
        '<article><div class="cell_output"><pre>Dataset from /work/shared/data/x.npz</pre></div></article>',
        '<article><div class="cell_output"><pre>cifar10@16px: 4,600 training images</pre></div></article>',
    ),
    "a configuration code in the text": (
        "<article><p>Shown at w8-16px-2100st-cos.</p></article>",
        "<article><p>Shown at 2,100 steps at width 8 on 16-pixel images.</p></article>",
    ),
    "a stray value as an output": (
        '<article><div class="cell_output"><div class="output"><pre>0.7629034063331966</pre></div></div></article>',
        '<article><div class="cell_output"><div class="output"><pre>plain-20: 0.76 of the input</pre></div></div></article>',
    ),
    "the same figure twice": (
        '<article><img src="data:image/png;base64,AAAA"><img src="data:image/png;base64,AAAA"></article>',
        '<article><img src="data:image/png;base64,AAAA"><img src="data:image/png;base64,BBBB"></article>',
    ),
    "a figure shrunk below 90% of its width (its labels shrink too)": (
        '<article><img style="width: 300px" src="{png}"></article>',
        '<article><img src="{png}"></article>',
    ),
    "visible plumbing code": (
        '<article><div class="cell_input"><pre>glue("ch1_steps", STEPS)</pre></div></article>',
        '<article><div class="cell_input"><pre>model = cifar_resnet(20)</pre></div></article>',
    ),
}


def _png_data_url(width: int = 600, height: int = 20) -> str:
    """A real PNG of ``width`` pixels, so the page knows its natural size."""
    import base64
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + b"\xff" * width for _ in range(height))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.mark.browser
@pytest.mark.parametrize("problem", list(READER_CHECK_CASES))
def test_each_readers_check_can_fail(browser, problem):
    bad, good = (page.replace("{png}", _png_data_url()) for page in READER_CHECK_CASES[problem])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.set_content(bad)
        page.wait_for_load_state("load")
        assert page.evaluate(READER_CHECKS[problem]), f"the check for {problem} missed it"
        page.set_content(good)
        page.wait_for_load_state("load")
        assert page.evaluate(READER_CHECKS[problem]) == [], f"the check for {problem} misfired"
    finally:
        page.close()
