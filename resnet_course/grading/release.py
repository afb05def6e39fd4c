"""release a class: the student notebooks and a copy of the course with no solution in it.

``python -m resnet_course release OUT [--solutions exercises/solutions]`` (from a clone)
writes ``OUT/exercises/NN_name.ipynb``, made from the solutions exactly as the shipped
notebooks are, and ``OUT/resnet_course/``, the package (what the notebooks import,
checks included). Nothing under ``OUT`` holds a solution: hand it to a class as it is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import resnet_course

from .build_exercises import SolutionError, build


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out", type=Path, metavar="OUT", help="an empty or new folder to write the release into"
    )
    parser.add_argument(
        "--solutions",
        type=Path,
        default=Path("exercises/solutions"),
        help="the solution notebooks (default: exercises/solutions, from a clone's root)",
    )


def release(solutions: Path, out: Path) -> list[Path]:
    """Write the release; return the notebooks written."""
    notebooks = []
    for path, text in build(solutions, out / "exercises").items():
        if (
            "solutions" in path.relative_to(out).parts
        ):  # the solution notebooks and their code: not for students
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        notebooks.append(path)
    package = Path(resnet_course.__file__).resolve().parent
    shutil.copytree(
        package, out / "resnet_course", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return sorted(notebooks)


def main(args: argparse.Namespace) -> int:
    if not args.solutions.is_dir():
        print(
            f"release: {args.solutions} is not a folder of solution notebooks; run from the root of a clone "
            f"or pass --solutions.",
            file=sys.stderr,
        )
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(
            f"release: {args.out} is not empty; choose a new folder, so nothing of an earlier release is mixed in.",
            file=sys.stderr,
        )
        return 2
    try:
        notebooks = release(args.solutions, args.out)
    except SolutionError as error:
        print(f"release: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(notebooks)} student notebooks to {args.out / 'exercises'} and the course to "
        f"{args.out / 'resnet_course'}; no solution is in either."
    )
    return 0
