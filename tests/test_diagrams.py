"""The drawn diagrams of the book (chapters/images/*.svg) stay readable and self-contained.

Every SVG must parse as XML, carry a viewBox and a <title>, load nothing from outside the file,
and set no text smaller than 12 px. The book's content column is about 680 px wide, so a viewBox
no wider than 700 is shown at about its natural size and its font sizes are what a reader sees.
"""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[1] / "chapters" / "images"
DIAGRAMS = sorted(IMAGES.glob("*.svg"))
# The diagrams the chapters reference; the check below runs on every SVG in the folder.
EXPECTED = {
    "plain_vs_residual_block.svg",
    "shortcut_options.svg",
    "bottleneck.svg",
    "v1_v2_ordering.svg",
    "resnext_split_transform_merge.svg",
    "unrolled_paths.svg",
    "residual_stream.svg",
}
SVG_NS = "{http://www.w3.org/2000/svg}"
MIN_FONT_PX = 12
MAX_VIEWBOX_WIDTH = 700

FONT_SIZE_IN_CSS = re.compile(r"font-size\s*:\s*([^;}\"']+)")
URL = re.compile(r"url\(\s*['\"]?([^'\")]*)")
SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(px|pt)?\s*$")


def font_size_px(value: str):
    """A font size in px, or None when it is not an absolute size (em, %, keywords)."""
    match = SIZE.match(value)
    if not match:
        return None
    size = float(match.group(1))
    return size * 4 / 3 if match.group(2) == "pt" else size


def svg_problems(text: str) -> list:
    """Everything that keeps an SVG from being a readable, self-contained diagram."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        return [f"not XML: {error}"]
    if root.tag != f"{SVG_NS}svg":
        return [f"root element is {root.tag}, not an SVG <svg>"]
    problems = []

    view_box = (root.get("viewBox") or "").replace(",", " ").split()
    if len(view_box) != 4:
        problems.append("no viewBox")
    elif not 0 < float(view_box[2]) <= MAX_VIEWBOX_WIDTH:
        problems.append(f"viewBox width {view_box[2]} is not in (0, {MAX_VIEWBOX_WIDTH}]")

    title = root.find(f"{SVG_NS}title")
    if title is None or not (title.text or "").strip():
        problems.append("no <title>")

    if "<!ENTITY" in text:
        problems.append("declares an entity (entities can load files)")
    sizes = []
    for element in root.iter():
        tag = element.tag.replace(SVG_NS, "")
        for name, value in element.attrib.items():
            if name.endswith("href") and not value.startswith("#"):
                problems.append(f"<{tag}> {name}={value!r} points outside the file")
            if re.search(r"\b(https?|file|ftp):", value):
                problems.append(f"<{tag}> {name}={value!r} names a URL")
            if name == "font-size":
                sizes.append((tag, value))
        css = " ".join(
            [element.get("style") or ""] + ([element.text or ""] if tag == "style" else [])
        )
        sizes += [(tag, value) for value in FONT_SIZE_IN_CSS.findall(css)]
        for target in URL.findall(css) + URL.findall(" ".join(element.attrib.values())):
            if not target.startswith("#"):
                problems.append(f"<{tag}> url({target}) points outside the file")
        if tag == "style" and "@import" in (element.text or ""):
            problems.append("<style> imports a stylesheet")
        if re.search(r"\b(https?|file|ftp):", element.text or "") and tag not in ("title", "desc"):
            problems.append(f"<{tag}> text names a URL")

    for tag, value in sizes:
        size = font_size_px(value)
        if size is None:
            problems.append(f"<{tag}> font-size {value!r} is not an absolute size in px")
        elif size < MIN_FONT_PX:
            problems.append(f"<{tag}> font-size {value} is below {MIN_FONT_PX} px")
    return problems


def test_the_diagrams_are_there():
    assert EXPECTED <= {path.name for path in DIAGRAMS}


@pytest.mark.parametrize("path", DIAGRAMS, ids=[path.name for path in DIAGRAMS])
def test_diagram_is_readable_and_self_contained(path):
    assert svg_problems(path.read_text(encoding="utf-8")) == []


GOOD = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 660 100" font-size="14">'
    "<title>t</title>{extra}"
    '<defs><marker id="m"><path d="M 0 0 L 10 5 z"/></marker></defs>'
    '<path d="M 0 0 L 10 10" marker-end="url(#m)"/><text x="5" y="20">ok</text></svg>'
)


def test_checker_accepts_a_good_svg():
    assert svg_problems(GOOD.format(extra="")) == []


@pytest.mark.parametrize(
    "svg, expected",
    [
        (GOOD.format(extra='<text font-size="6">tiny</text>'), "below 12 px"),
        (GOOD.format(extra='<text style="font-size: 8px">tiny</text>'), "below 12 px"),
        (GOOD.format(extra='<text font-size="0.5em">relative</text>'), "not an absolute size"),
        (GOOD.format(extra='<image href="photo.png" width="10" height="10"/>'), "outside the file"),
        (
            GOOD.format(
                extra='<image xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="a.png"/>'
            ),
            "outside the file",
        ),
        (GOOD.format(extra="<style>@import url(https://fonts.example/x.css);</style>"), "imports"),
        (GOOD.format(extra='<rect fill="url(other.svg#g)"/>'), "outside the file"),
        (GOOD.replace(' viewBox="0 0 660 100"', ""), "no viewBox"),
        (GOOD.replace("0 0 660 100", "0 0 1200 100"), "viewBox width"),
        (GOOD.replace("<title>t</title>", ""), "no <title>"),
        (GOOD.replace("</svg>", ""), "not XML"),
    ],
)
def test_checker_rejects_a_bad_svg(svg, expected):
    problems = svg_problems(svg)
    assert any(expected in problem for problem in problems), problems


def test_checker_catches_a_real_diagram_with_tiny_text():
    text = (IMAGES / "bottleneck.svg").read_text(encoding="utf-8")
    shrunk = re.sub(r'font-size="13"', 'font-size="6"', text, count=1)
    assert shrunk != text
    assert any("below 12 px" in problem for problem in svg_problems(shrunk))
