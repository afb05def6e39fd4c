"""Evidence at scale: the archived runs in the repository's ``results/``, read back for a chapter.

Two archives, both written by tools outside the package and kept in the repository:

* ``python -m tools.scale_study`` writes ``results/scale-study/summary.json``: per claim and
  configuration, one value per seed for both networks (a final training error, or the accuracy
  a lesion costs), whether the claim was shown, and what machine made the runs (:func:`load_study`, :func:`table_rows`, ...).
* ``python -m tools.reproduce`` writes one JSON record per network trained with the paper's
  recipe (:func:`load_results`, :func:`format_results`).

A chapter shows them beside its live run, labelled as archived, so a reader sees what a
bigger budget gives.

Where ``results/`` is: the ``path`` or ``folder`` argument when given; else the folder named by
``RESNET_COURSE_RESULTS``; else ``results/`` in the current directory or in its parent (a
chapter's kernel runs in ``chapters/``, the tests and tools in the repository's root). The
package never looks for it next to its own files: installed from a wheel or in Colab it has
no ``results/``; then :func:`load_study` returns ``None``, :func:`load_results` raises
:class:`FileNotFoundError`, and :func:`study_note` says where the archive lives.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .devices import device_words
from .notebooks import REPOSITORY_URL

RESULTS_ENV = "RESNET_COURSE_RESULTS"

# --- the course's words for evidence, defined once ------------------------------------------------
# The scale study (tools/scale_study.py) applies these exactly as stated; chapters quote them.
CHANCE_ERROR = 90.0  # % training error of a uniform guess among CIFAR-10's ten classes
TRAINED_ERROR = CHANCE_ERROR - 10.0  # a network has *trained* at or below this final training error
MIN_SEEDS = 3  # a verdict needs at least this many seeds
VERDICT_WORDS = {
    "trained": f"a network whose final training error is at most {TRAINED_ERROR:.0f}%, "
    f"10 points below the {CHANCE_ERROR:.0f}% of guessing",
    "seed spread": "the larger of the two networks' standard deviations over the seeds",
    "shown": f"the claimed sign in every one of at least {MIN_SEEDS} seeds, a mean difference "
    "larger than the seed spread, and, for a claim about trained networks, both trained",
    "tie": "the mean difference no larger than the seed spread (both trained, where the claim "
    "is about trained networks)",
    "opposite": "the other sign in every seed, by a mean difference larger than the seed spread",
    "untrained": "a network the claim needs trained did not train, so the run proves nothing",
    "mixed": "the seeds disagree on the sign, yet the mean is outside the seed spread",
}
RULES = "; ".join(f"{word}: {meaning}" for word, meaning in VERDICT_WORDS.items()) + "."


@dataclass(frozen=True)
class Verdict:
    """What the scale study found for one claim in one configuration, over its seeds.

    ``tools/scale_study.py`` makes these and writes them into ``summary.json``; chapters read
    them back with :func:`verdicts` and :func:`verdict`. ``first`` and ``second`` are the claim's
    two runs (e.g. plain20 and plain56); every value list has one entry per seed; differences
    are second minus first, in points of the claim's ``metric``.
    """

    claim: str
    config: str  # the configuration's name in the study
    seeds: list[int]
    metric: str
    first: str
    second: str
    first_values: list[float]
    second_values: list[float]
    first_train_error: list[float]
    second_train_error: list[float]
    first_train_loss: list[float]
    second_train_loss: list[float]
    difference_points: list[float]
    mean_difference_points: float
    seed_spread_points: float | None  # None with one seed
    margin_points: float  # the mean difference in the claimed direction
    sign_in_every_seed: bool
    both_trained: bool
    both_trained_loss: bool
    shown: bool
    tie_within_spread: bool
    opposite_shown: bool
    clear_in_every_seed: bool  # shown, and every seed's own margin beyond the spread
    verdict: str  # one of VERDICT_WORDS' verdicts, or 'too few seeds'
    seconds_per_seed: float  # both runs of one seed, on the machine that made them
    device: str
    steps: int
    origin: dict = field(default_factory=dict)  # machines, versions, commits, data hashes, dates

    @classmethod
    def from_record(cls, record: dict) -> Verdict:
        """A verdict as ``summary.json`` holds it; a record of another layout is an error, named."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(record) - {"origin"})
        if missing or set(record) - names:
            raise ValueError(
                f"a scale-study verdict without {', '.join(missing) or 'the known fields'}: "
                "rewrite summary.json with `python -m tools.scale_study summary`."
            )
        return cls(**record)

    @staticmethod
    def table_header(first: str, second: str, unit: str) -> list[str]:
        """The header of :meth:`table_cells`, for a claim whose networks are ``first`` and ``second``."""
        return [
            f"{first} ({unit}, per seed)",
            f"{second} ({unit}, per seed)",
            "mean difference",
            "seed spread",
            "verdict",
        ]

    def table_cells(self) -> list[str]:
        """This verdict as a table row, the same in the study's README and in the chapters: each
        network's value per seed, the mean difference, the seed spread and the verdict."""
        return [
            " / ".join(f"{x:.1f}" for x in self.first_values),
            " / ".join(f"{x:.1f}" for x in self.second_values),
            f"{self.mean_difference_points:+.1f}",
            "-" if self.seed_spread_points is None else f"{self.seed_spread_points:.1f}",
            self.verdict,
        ]


STUDY_PATH = Path("scale-study") / "summary.json"  # inside results/


def results_dir(folder: str | os.PathLike | None = None) -> Path | None:
    """The repository's ``results/`` folder (see the module's docstring), or None where there is none."""
    if folder is not None:
        return Path(folder)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    for candidate in (Path.cwd() / "results", Path.cwd().parent / "results"):
        if candidate.is_dir():
            return candidate
    return None


# --- the scale study -------------------------------------------------------------------------------


def load_study(path: str | os.PathLike | None = None) -> dict | None:
    """The scale study's summary (``path``, else ``results/scale-study/summary.json``), or None where it is absent."""
    if path is None:
        results = results_dir()
        if results is None:
            return None
        path = results / STUDY_PATH
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def study_note() -> str:
    return (
        f"The archived runs are not part of this installation; they are in {REPOSITORY_URL}/tree/main/results/scale-study "
        "(open the chapter from a clone of the repository to see them here)."
    )


def all_verdicts(study: dict) -> list[Verdict]:
    """Every verdict in the study, as written: the study's own table. Pages read :func:`verdicts`."""
    return [Verdict.from_record(record) for record in study["verdicts"]]


def counts(verdict: Verdict) -> bool:
    """The one rule for what a page may cite: a configuration run with at least :data:`MIN_SEEDS`
    seeds. Fewer is a probe; it stays in the study's own table (``results/scale-study/``) and is
    printed, plotted or quoted on no page."""
    return len(verdict.seeds) >= MIN_SEEDS


def verdicts(study: dict, claim: str) -> list[Verdict]:
    """The verdicts for ``claim`` that a page may cite (:func:`counts`), cheapest configuration first.

    A chapter's prose, figure and folded table all read this one list, so a sentence about
    "every configuration" speaks of exactly the rows the table beside it lists.
    """
    return sorted(
        (v for v in all_verdicts(study) if v.claim == claim and counts(v)),
        key=lambda v: v.seconds_per_seed,
    )


def verdict(study: dict, claim: str, config: str) -> Verdict | None:
    """The verdict for ``claim`` in ``config``, where a page may cite it (:func:`counts`), else None."""
    return next((v for v in verdicts(study, claim) if v.config == config), None)


def verdicts_by_length(study: dict, claim: str, **recipe) -> dict[int, Verdict]:
    """The claim's verdict at each length (steps) of one recipe: the configurations whose values
    (``width=8, image_size=16, batch_size=128, lr=0.1``, ...) are all ``recipe``'s."""
    return {
        v.steps: v
        for v in verdicts(study, claim)
        if all(study["configs"][v.config].get(key) == value for key, value in recipe.items())
    }


def labels(study: dict, claim: str) -> tuple[str, str]:
    """How the chapter names the claim's two networks, e.g. ('plain-20', 'plain-56')."""
    first, second = study["claims"][claim]["labels"]
    return first, second


def metric_name(study: dict, claim: str) -> str:
    """The claim's metric in words, with its unit: 'training error (%)'."""
    return study["metrics"][study["claims"][claim]["metric"]]


def metric_unit(study: dict, claim: str) -> str:
    """'%' for a metric in percent, else 'points'."""
    return "%" if metric_name(study, claim).endswith("(%)") else "points"


# "shown": the claimed sign in every seed by more than the seed spread; "tie": the two within the
# spread; "opposite": the other sign in every seed by more than the spread.


_DATA = re.compile(
    r"\w+\('(?P<name>[^']*)': (?P<train>\d+) train / (?P<test>\d+) test, "
    r"inputs \((?P<shape>[\d, ]*)\), (?P<classes>\d+) classes\)"
)


def data_words(description: str) -> str:
    """A recorded data set in words: ``TensorData('cifar10@16px': 4600 train / 800 test, inputs
    (3, 16, 16), 10 classes)`` is 'CIFAR-10 at 16x16 pixels, 4,600 training and 800 test images'."""
    match = _DATA.fullmatch(description.strip())
    if not match:
        return description
    name, _, size = match.group("name").partition("@")
    shape = [int(n) for n in match.group("shape").replace(" ", "").split(",") if n]
    if name == "cifar10":
        side = size.removesuffix("px") or (str(shape[-1]) if shape else "")
        what = f"CIFAR-10 at {side}x{side} pixels" if side else "CIFAR-10"
        unit = "images"
    else:
        what, unit = name, "examples"
    return f"{what}, {int(match.group('train')):,} training and {int(match.group('test')):,} test {unit}"


def provenance_line(study: dict, claim: str | tuple[str, ...] | None = None) -> str:
    """Where the archived runs came from: machine, versions, commits, data hash and dates.

    For ``claim`` (one name or several), from its own runs (every distinct value among them);
    without one, from the study's first record (summaries written before verdicts carried
    their origin have only that).
    """
    claims = (claim,) if isinstance(claim, str) else tuple(claim or ())
    origins = [v.origin for name in claims for v in verdicts(study, name) if v.origin]
    if not origins:
        origin = study.get("provenance") or {}
        if not origin:
            return ""
        commit = (origin.get("commit") or "unknown")[:10]
        return (
            f"Archived runs made on {origin.get('cpu', '?')} ({device_words(origin.get('device', '?'))}), "
            f"torch {origin.get('torch', '?')}, commit {commit}, data: "
            f"{data_words(origin.get('data', '?'))}, with SHA-256 "
            f"{origin.get('data_sha256', '?')[:12]}..., {origin.get('date', '?')}."
        )

    def joined(key: str, shorten=lambda value: value, separator: str = ", ") -> str:
        return separator.join(sorted({shorten(value) for o in origins for value in o[key]}))

    first = min(o["dates"][0] for o in origins)[:10]
    last = max(o["dates"][1] for o in origins)[:10]
    dates = first if first == last else f"{first} to {last}"
    commits = sorted({value[:10] for o in origins for value in o["commit"]})
    commit_text = ", ".join(commits[:3]) + (
        f" and {len(commits) - 3} more" if len(commits) > 3 else ""
    )
    return (
        f"Archived runs made on {joined('cpu')} ({joined('device', device_words)}), torch "
        f"{joined('torch')}, commit{'s' if len(commits) > 1 else ''} {commit_text}, data: "
        f"{joined('data', data_words, '; ')}, with SHA-256 {joined('data_sha256', lambda h: h[:12] + '...')}, "
        f"{dates}."
    )


# --- the paper's table, reproduced -----------------------------------------------------------------

# The "kind" of every record tools/reproduce.py writes: a format tag that the records in results/
# carry, so a reader of results/ can tell them from other JSON files.
RESULT_KIND = "resnet_course.reproduce"


@dataclass(frozen=True)
class ResultRow:
    """One reproduced run as a table row, with where it came from."""

    model: str
    depth: int
    residual: bool
    recipe: str
    test_error: float
    paper_test_error: float | None
    full_scale: bool
    scale_notes: tuple[str, ...]
    iterations: int
    device: str
    processes: int
    wall_time_s: float
    commit: str | None
    torch: str
    data_source: str
    finished_at: str
    path: str
    record: dict = field(repr=False, compare=False)  # the whole JSON, history included

    @property
    def provenance(self) -> str:
        commit = (self.commit or "unknown commit")[:10]
        scale = "paper scale" if self.full_scale else "reduced: " + "; ".join(self.scale_notes)
        return f"{self.recipe} recipe, {self.iterations:,} iterations on {self.device}, torch {self.torch}, commit {commit}, {self.finished_at} ({scale})"


def load_results(folder: str | os.PathLike | None = None) -> list[ResultRow]:
    """Every run ``python -m tools.reproduce`` wrote under ``folder`` (default: :func:`results_dir`),
    searched recursively, full-scale runs first.

    Other JSON files are skipped; a reproduce record that cannot be read is an error.
    """
    found = results_dir(folder)
    if found is None or not found.is_dir():
        where = found or "results/ of the current directory or its parent"
        raise FileNotFoundError(
            f"no results folder at {where}; the reproduced runs are in the course's repository "
            f"({REPOSITORY_URL}/tree/main/results), written by `python -m tools.reproduce`."
        )
    folder = found
    rows = []
    for path in sorted(folder.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} could not be read as JSON ({error}).") from None
        if isinstance(record, dict) and record.get("kind") == RESULT_KIND:
            rows.append(row_from_record(record, path))
    return sorted(
        rows,
        key=lambda row: (
            not row.full_scale,
            row.recipe,
            not row.residual,
            row.depth,
            row.finished_at,
        ),
    )


def row_from_record(record: dict, path: str | os.PathLike) -> ResultRow:
    try:
        return ResultRow(
            model=record["model"],
            depth=record["depth"],
            residual=record["residual"],
            recipe=record["recipe"]["name"],
            test_error=record["final_test_error"],
            paper_test_error=record["paper_test_error"],
            full_scale=record["full_scale"],
            scale_notes=tuple(record["scale_notes"]),
            iterations=record["plan"]["iterations"],
            device=record["device"],
            processes=record["processes"],
            wall_time_s=record["wall_time_s"],
            commit=record["git"]["commit"],
            torch=record["versions"]["torch"],
            data_source=record["data"]["source"],
            finished_at=record["finished_at"],
            path=str(path),
            record=record,
        )
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is a reproduce record without the field {error}; rewrite it with the current code."
        ) from None


def format_results(rows: list[ResultRow]) -> str:
    """A Markdown table: model, recipe, test error against the paper's, scale, device, time, commit."""
    lines = [
        "| model | recipe | test error (%) | paper (%) | scale | device | time | commit |",
        "|---|---|---:|---:|---|---|---:|---|",
    ]
    for row in rows:
        paper = f"{row.paper_test_error:.2f}" if row.paper_test_error is not None else "-"
        scale = "paper" if row.full_scale else "reduced: " + "; ".join(row.scale_notes)
        device = row.device + (f" x{row.processes}" if row.processes > 1 else "")
        lines.append(
            f"| {row.model} | {row.recipe} | {row.test_error:.2f} | {paper} | {scale} | {device} | "
            f"{row.wall_time_s / 60:.1f} min | {(row.commit or '?')[:10]} |"
        )
    return "\n".join(lines)
