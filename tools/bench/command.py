"""``python -m tools.bench``: which parts run, the goals, the report."""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import torch

from resnet_course.data import DataUnavailableError, load_cifar10
from resnet_course.devices import pick_device
from resnet_course.presets import get_preset

from .chapters import default_notebooks, format_chapters, time_notebooks
from .compile_speed import COMPILE_SIZES, format_compile, measure_compile
from .degradation_clock import degradation_clock, format_degradation
from .gpu_estimate import estimate_gpu_seconds, format_gpu_estimate
from .load import DESCRIPTION as LOAD_DESCRIPTION
from .load import competing_load
from .machine import describe_machine, format_machine
from .memory_format import MEMORY_FORMAT_SIZES, format_memory_format, measure_memory_format
from .throughput import format_throughput, measure_throughput, resnet_depth

PARTS = (
    "machine",
    "memory_format",
    "compile",
    "throughput",
    "chapters",
    "gpu_estimate",
    "degradation",
)
# compile is asked for by name (--only machine,compile): it compiles two networks, a minute or more on a CPU.
DEFAULT_PARTS = tuple(part for part in PARTS if part != "compile")
GOALS = {
    "throughput_ratio": 0.95,
    "tutorial_ratio": 1.3,
    # The cpu preset builds the published book too, on 2 cores: the whole book within 25 minutes,
    # quiet or beside a process that keeps one core half busy; chapters 1 and 2 (Fig. 6) within 8
    # minutes quiet and 10 under that load, every other chapter within 10.
    "book_seconds": 1500.0,
    "chapter_seconds": 600.0,
    "fig6_chapter_seconds": 480.0,
    "loaded_chapter_seconds": 600.0,
    "degradation_seconds": 60.0,
}


def notebooks_to_time(spec: str) -> list[Path]:
    """The notebooks that ``--notebooks`` names: comma-separated paths or globs, each matching one or more."""
    paths = []
    for pattern in (part.strip() for part in spec.split(",") if part.strip()):
        matched = sorted(Path(p) for p in glob.glob(pattern))
        if not matched:
            raise SystemExit(f"--notebooks: no notebook matches {pattern!r}.")
        paths += [path for path in matched if path not in paths]
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_PARTS),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all but compile)",
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out")
    parser.add_argument(
        "--no-chapters",
        action="store_true",
        help="leave out executing the chapters (it takes minutes)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write every figure to this JSON file"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="device for throughput and degradation (default cpu; 'auto' picks CUDA, MPS, CPU)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's choice, one per core)"
    )
    parser.add_argument(
        "--preset",
        help="preset whose sizes are used (default: $RESNET_COURSE_PRESET, else by device)",
    )
    parser.add_argument("--image-size", type=int, help="override the preset's image size")
    parser.add_argument("--width", type=int, help="override the preset's network width")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument(
        "--models", default="resnet20,resnet56", help="CIFAR ResNets whose throughput is measured"
    )
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per repetition")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repetitions (the median is reported)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument(
        "--notebooks",
        help="comma-separated notebooks or globs to time (default: chapters/*.ipynb)",
    )
    parser.add_argument(
        "--chapter-presets",
        default="cpu",
        help="comma-separated presets the chapters are executed with, "
        "each from an empty run cache (default cpu, the preset that builds the book)",
    )
    parser.add_argument(
        "--timeout", type=int, default=1800, help="seconds one notebook cell may take"
    )
    parser.add_argument(
        "--under-load",
        action="store_true",
        help="time the chapters twice, quiet and beside a process that keeps one core half busy",
    )
    parser.add_argument(
        "--epochs", type=float, help="override the preset's epochs in the degradation clock"
    )
    parser.add_argument(
        "--train-size",
        type=int,
        help="override the preset's training images in the degradation clock",
    )
    parser.add_argument(
        "--test-size", type=int, help="override the preset's test images in the degradation clock"
    )
    parser.add_argument(
        "--window", type=int, default=10, help="steps averaged when comparing the two losses"
    )


def _parts(args: argparse.Namespace) -> list[str]:
    chosen = [part.strip() for part in args.only.split(",") if part.strip()]
    skipped = {part.strip() for part in args.skip.split(",") if part.strip()} | (
        {"chapters"} if args.no_chapters else set()
    )
    unknown = sorted((set(chosen) | skipped) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}.")
    return [part for part in PARTS if part in chosen and part not in skipped]


FIG6_CHAPTERS = ("01_degradation", "02_residual_block")


def chapter_goals(chapters: dict, how: str) -> list[str]:
    """The cpu preset's chapter budgets, met or missed, for one timing (``how``: 'quiet', 'under load')."""
    lines = []
    total = chapters["total_seconds"]
    met = "met" if total <= GOALS["book_seconds"] and chapters["all_ok"] else "MISSED"
    lines.append(
        f"the {len(chapters['notebooks'])} chapters timed at the cpu preset, {how}: {total:.0f} s "
        f"<= {GOALS['book_seconds']:.0f} s, every chapter ran: {met}"
    )
    for entry in chapters["notebooks"]:
        name = Path(entry["notebook"]).stem
        if how == "quiet":
            budget = GOALS["fig6_chapter_seconds" if name in FIG6_CHAPTERS else "chapter_seconds"]
        else:
            budget = GOALS["loaded_chapter_seconds"]
        met = "met" if entry["seconds"] <= budget and entry["ok"] else "MISSED"
        lines.append(f"{name}, {how}: {entry['seconds']:.0f} s <= {budget:.0f} s: {met}")
    return lines


def goals(report: dict) -> list[str]:
    """One line per budget of the design: met or missed, with the figure."""
    lines = []
    for result in report.get("throughput", []):
        for kind in ("network", "loop"):
            ratio = result[f"ratio_{kind}"]
            met = "met" if ratio >= GOALS["throughput_ratio"] else "MISSED"
            lines.append(
                f"{result['model']} throughput ratio ({kind}) {ratio:.3f} >= {GOALS['throughput_ratio']}: {met}"
            )
        if "ratio_loop_vs_tutorial" in result:
            ratio = result["ratio_loop_vs_tutorial"]
            met = "met" if ratio >= GOALS["tutorial_ratio"] else "MISSED"
            lines.append(
                f"{result['model']} fit against the tutorial pipeline {ratio:.3f} >= {GOALS['tutorial_ratio']}: {met}"
            )
    for preset_name, chapters in report.get("chapters_by_preset", {}).items():
        if preset_name == "cpu" and chapters["notebooks"]:
            lines += chapter_goals(chapters, "quiet")
            if chapters.get("under_load"):
                lines += chapter_goals(chapters["under_load"], "under load")
    clock = report.get("degradation")
    if clock and "error" not in clock:
        seconds = clock["seconds_to_behind"]
        met = "met" if seconds is not None and seconds <= GOALS["degradation_seconds"] else "MISSED"
        shown = "never" if seconds is None else f"{seconds:.1f} s"
        lines.append(
            f"plain-56 behind plain-20 after {shown} <= {GOALS['degradation_seconds']:.0f} s: {met}"
        )
    return lines


def main(args: argparse.Namespace) -> int:
    try:
        parts = _parts(args)
        for name in args.models.split(","):
            if name.strip():
                resnet_depth(name.strip())
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(None if args.device == "auto" else args.device)
    preset = get_preset(args.preset)
    image_size = args.image_size or preset.image_size
    width = args.width or preset.width
    batch_size = args.batch_size or preset.training.batch_size
    report: dict = {"parts": parts, "preset": preset.name}

    if "machine" in parts:
        report["machine"] = describe_machine(device)
        print(format_machine(report["machine"]), flush=True)

    if "memory_format" in parts:
        # The preset-sized table by default; the sizes asked for when --image-size or --width is given.
        sizes = (
            MEMORY_FORMAT_SIZES
            if not (args.image_size or args.width)
            else tuple((m.strip(), width, image_size) for m in args.models.split(",") if m.strip())
        )
        report["memory_format"] = measure_memory_format(
            device=device,
            batch_size=batch_size,
            sizes=sizes,
            steps=args.steps,
            repeats=args.repeats,
        )
        print(format_memory_format(report["memory_format"]), flush=True)

    if "compile" in parts:
        sizes = (
            COMPILE_SIZES
            if not (args.image_size or args.width)
            else tuple((m.strip(), width, image_size) for m in args.models.split(",") if m.strip())
        )
        report["compile"] = measure_compile(device=device, batch_size=batch_size, sizes=sizes)
        print(format_compile(report["compile"]), flush=True)

    if "throughput" in parts:
        report["throughput"] = []
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            report["throughput"].append(
                measure_throughput(
                    name,
                    image_size=image_size,
                    width=width,
                    batch_size=batch_size,
                    steps=args.steps,
                    repeats=args.repeats,
                    warmup=args.warmup,
                    device=device,
                )
            )
        print(format_throughput(report["throughput"]), flush=True)

    if "chapters" in parts:
        paths = notebooks_to_time(args.notebooks) if args.notebooks else default_notebooks()
        report["chapters_by_preset"] = {}
        for preset_name in [p.strip() for p in args.chapter_presets.split(",") if p.strip()]:
            timed = time_notebooks(paths, preset=get_preset(preset_name).name, timeout=args.timeout)
            if args.under_load:
                with competing_load():
                    timed["under_load"] = time_notebooks(
                        paths, preset=timed["preset"], timeout=args.timeout
                    )
                timed["under_load"]["load"] = LOAD_DESCRIPTION
            report["chapters_by_preset"][timed["preset"]] = timed
            print(format_chapters(timed), flush=True)
        report["chapters"] = next(iter(report["chapters_by_preset"].values()))

    if "gpu_estimate" in parts:
        report["gpu_estimate"] = estimate_gpu_seconds()
        print(format_gpu_estimate(report["gpu_estimate"]), flush=True)

    if "degradation" in parts:
        try:
            data = load_cifar10(
                image_size=image_size,
                train_size=args.train_size or preset.train_size,
                test_size=args.test_size or preset.test_size,
            )
        except DataUnavailableError as error:
            report["degradation"] = {"error": str(error)}
            print(f"Degradation clock: skipped, no CIFAR-10 ({error})", flush=True)
        else:
            report["degradation"] = degradation_clock(
                data,
                width=width,
                batch_size=batch_size,
                epochs=args.epochs or preset.epochs,
                window=args.window,
                device=device,
            )
            print(format_degradation(report["degradation"]), flush=True)

    report["goals"] = goals(report)
    if report["goals"]:
        print("Goals:\n" + "\n".join(f"  {line}" for line in report["goals"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``python -m tools.bench ARGS``; ``python -m resnet_course bench ARGS`` calls :func:`main` alike."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
