"""The pages of the book, as the tests find them: the table of contents and the file behind each page."""

from __future__ import annotations

from pathlib import Path


def toc_files(toc_path: str | Path) -> list[str]:
    """The documents a Jupyter Book ``_toc.yml`` lists, in reading order, without suffixes
    (``intro``, ``chapters/01_degradation``, ...)."""
    import yaml  # a book-build dependency, not one of the course's

    toc = yaml.safe_load(Path(toc_path).read_text())
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(
            f"{toc_path} is not a Jupyter Book table of contents: it has no 'root' entry."
        )
    files = [_without_suffix(toc["root"])]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(_without_suffix(entry["file"]))
            walk(entry.get("sections"))
            walk(entry.get("chapters"))
            for part in entry.get("parts", []):
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return files


def _without_suffix(name: str) -> str:
    return name.rsplit(".", 1)[0] if name.endswith((".md", ".ipynb")) else name


def source_of(book: str | Path, document: str) -> Path | None:
    """The ``.ipynb`` or ``.md`` file behind a document of the table of contents, if it exists."""
    for suffix in (".ipynb", ".md"):
        path = Path(book) / f"{document}{suffix}"
        if path.is_file():
            return path
    return None
