"""Command line: ``python -m resnet_course COMMAND``.

* ``info``: the device, the preset, and where CIFAR-10 would come from.
* ``grade NOTEBOOK_OR_FOLDER...``: grade exercises, or a class (see :mod:`resnet_course.grading`).
* ``autograder EXERCISE --out autograder.zip``: a Gradescope autograder for one exercise.
* ``release OUT``: the student notebooks and a solution-free copy of the course, for a class.
* ``bench``: speed measurements, ``python -m tools.bench`` (see ``tools/bench/``).
* ``reproduce``: the paper's CIFAR-10 table, ``python -m tools.reproduce`` (see ``tools/reproduce.py``).

``bench`` and ``reproduce`` are tools of the course's repository, not part of the package: they
are found only where ``tools`` is importable, i.e. when run from the root of a clone.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .notebooks import REPOSITORY_URL


def _info(_args) -> int:
    import torch

    from .data import DataUnavailableError, load_cifar10
    from .devices import describe_device, pick_device
    from .presets import get_preset

    print(f"torch {torch.__version__}, device {describe_device(pick_device())}")
    print(get_preset().describe())
    try:
        print(f"CIFAR-10: {load_cifar10(download=False)}")
    except DataUnavailableError as error:
        print(f"CIFAR-10: not available offline ({error})")
    return 0


# Subcommands that live in their own modules; each module has add_arguments(parser) and main(args).
# A module is imported only when its command is run, so `info` works on a base install (the
# grader needs nbclient and ipykernel, release nbformat: the [grade] and [test] extras).
# bench and reproduce are delegated to the repository's tools/ package, which a wheel does not ship.
_MODULE_COMMANDS = {
    "grade": (
        "resnet_course.grading.cli",
        "grade exercise notebooks (needs the [grade] or [test] extra)",
    ),
    "autograder": (
        "resnet_course.grading.gradescope",
        "build a Gradescope autograder zip for one exercise",
    ),
    "release": (
        "resnet_course.grading.release",
        "write a class's student notebooks and a solution-free course",
    ),
    "bench": (
        "tools.bench.command",
        "speed measurements: throughput, chapter times per preset (from a clone)",
    ),
    "reproduce": (
        "tools.reproduce",
        "reproduce the paper's CIFAR-10 table, with provenance (from a clone)",
    ),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="python -m resnet_course", description="The Residual Networks course."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="device, preset and data source").set_defaults(run=_info)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (module_name, help_text) in _MODULE_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name != chosen:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if (error.name or "").startswith("resnet_course"):
                raise
            if module_name.startswith("tools.") and error.name in ("tools", module_name):
                tool = module_name.removesuffix(".command")  # tools.bench is a package
                print(
                    f"python -m resnet_course {name} runs python -m {tool}, a tool of the course's "
                    f"repository that the installed package does not include: run it from the root of a clone "
                    f"(git clone {REPOSITORY_URL}).",
                    file=sys.stderr,
                )
                return 2
            print(
                f"python -m resnet_course {name} needs {error.name}, which is not installed; "
                f"install the course with its extras: pip install 'resnet-course[grade,test]'.",
                file=sys.stderr,
            )
            return 2
        module.add_arguments(sub)
        sub.set_defaults(run=module.main)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
