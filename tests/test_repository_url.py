"""The course's repository URL is written in one place and agrees everywhere it is used.

The book's launch and repository buttons take it from ``_config.yml``; the Colab set-up
cell (the first code cell of every notebook) installs the course from it; the package
names it as ``resnet_course.notebooks.REPOSITORY_URL``; pyproject.toml lists it as the
homepage. Changing any one of them alone must fail here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from resnet_course import notebooks

ROOT = Path(__file__).resolve().parents[1]
GITHUB_REPOSITORY = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")


def setup_cell_url(source: str) -> str | None:
    """The URL the Colab set-up cell pip-installs from (``git+URL``), or None."""
    match = re.search(r"git\+(\S+?)[\"'\s]", source)
    return match.group(1) if match else None


def repository_urls(
    config_text: str, setup_source: str, package_url: str, pyproject_text: str
) -> dict[str, str | None]:
    """Every place that states the repository URL, by name."""
    config = yaml.safe_load(config_text)
    homepage = re.search(r'^Homepage\s*=\s*"([^"]*)"', pyproject_text, re.MULTILINE)
    return {
        "_config.yml repository.url": config.get("repository", {}).get("url"),
        "the Colab set-up cell": setup_cell_url(setup_source),
        "resnet_course.notebooks.REPOSITORY_URL": package_url,
        "pyproject.toml [project.urls] Homepage": homepage.group(1) if homepage else None,
    }


def disagreements(urls: dict[str, str | None]) -> list[str]:
    """One line per place whose URL differs from _config.yml's (the book's own)."""
    reference = urls["_config.yml repository.url"]
    return [
        f"{place} says {url!r}, _config.yml says {reference!r}"
        for place, url in urls.items()
        if url != reference
    ]


def current_texts() -> dict[str, str]:
    return {
        "config_text": (ROOT / "_config.yml").read_text(),
        "setup_source": notebooks.COLAB_SETUP_SOURCE,
        "package_url": notebooks.REPOSITORY_URL,
        "pyproject_text": (ROOT / "pyproject.toml").read_text(),
    }


def test_every_place_states_the_same_repository_url():
    urls = repository_urls(**current_texts())
    assert not disagreements(urls), "\n".join(disagreements(urls))


def test_repository_url_is_a_github_repository():
    # Colab's and Binder's launch links are built from a github.com/OWNER/REPO address.
    url = repository_urls(**current_texts())["_config.yml repository.url"]
    assert url and GITHUB_REPOSITORY.fullmatch(url), (
        f"repository.url {url!r} is not https://github.com/OWNER/REPO"
    )


def test_setup_cell_installs_without_reinstalling_torch():
    # Colab's torch satisfies the package's range, so a plain (non --upgrade) install keeps it.
    install = [line for line in notebooks.COLAB_SETUP_SOURCE.splitlines() if "%pip install" in line]
    assert len(install) == 1, "the set-up cell should have exactly one %pip install line"
    assert "--upgrade" not in install[0] and "torch" not in install[0], install[0]


@pytest.mark.parametrize("place", ["config_text", "setup_source", "package_url", "pyproject_text"])
def test_changing_one_place_alone_is_caught(place):
    texts = current_texts()
    texts[place] = texts[place].replace(
        notebooks.REPOSITORY_URL, "https://github.com/someone-else/fork"
    )
    assert texts[place] != current_texts()[place], f"the URL was not found in {place}"
    assert disagreements(repository_urls(**texts)), f"a changed URL in {place} alone went unnoticed"


def test_every_exercise_opens_in_colab_from_the_one_repository_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url, branch = (
        config["repository"]["url"].rstrip("/"),
        config["repository"].get("branch", "main"),
    )
    owner_repo = url.removeprefix("https://github.com/")
    page = (ROOT / "exercises" / "index.md").read_text()
    links = re.findall(r"\[Open in Colab\]\((\S+?)\)", page)
    expected = [
        f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/exercises/{path.name}"
        for path in sorted((ROOT / "exercises").glob("*.ipynb"))
    ]
    assert links == expected, (
        "the Exercises page's Colab links must follow _config.yml's repository URL, one per exercise"
    )
