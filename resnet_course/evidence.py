"""Evidence at scale: the scale study's archived runs, read back for a chapter with their provenance.

``python -m tools.scale_study`` writes ``results/scale-study/summary.json`` in the repository:
per claim and configuration, the final training errors of both networks over 3 seeds,
whether the claim was shown, and what machine made the runs. A chapter shows that beside
its live run, labelled as archived, so a reader sees what a bigger budget gives.

In Colab the package is installed without the repository's ``results/`` folder; then
:func:`load_study` returns ``None`` and :func:`study_note` says where the archive lives.
"""

from __future__ import annotations

import json
from pathlib import Path

from .notebooks import REPOSITORY_URL

STUDY_PATH = Path("results") / "scale-study" / "summary.json"


def _candidates() -> list[Path]:
    # An editable install or a clone: the repository is the package's parent; a chapter runs in chapters/.
    package_root = Path(__file__).resolve().parents[1]
    return [package_root / STUDY_PATH, Path.cwd() / STUDY_PATH, Path.cwd().parent / STUDY_PATH]


def load_study(path: str | Path | None = None) -> dict | None:
    """The scale study's summary, or None where this installation has no ``results/`` folder."""
    for candidate in [Path(path)] if path else _candidates():
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def study_note() -> str:
    return (f"The archived runs are not part of this installation; they are in {REPOSITORY_URL}/tree/main/results/scale-study "
            "(open the chapter from a clone of the repository to see them here).")


def verdicts(study: dict, claim: str) -> list[dict]:
    """The study's verdicts for ``claim``, cheapest configuration first."""
    return sorted((v for v in study["verdicts"] if v["claim"] == claim), key=lambda v: v["seconds_per_seed"])


def verdict(study: dict, claim: str, config: str) -> dict | None:
    return next((v for v in study["verdicts"] if v["claim"] == claim and v["config"] == config), None)


def describe_config(study: dict, config: str) -> str:
    c = study["configs"][config]
    images = "all" if c["train_size"] is None else f"{c['train_size']:,}"
    return (f"width {c['width']}, {c['image_size']}x{c['image_size']} images, {c['steps']:,} steps of batch "
            f"{c['batch_size']}, {c['schedule']} learning rate from {c['lr']:g} after {c['warmup_epochs']:g} epochs "
            f"of warm-up, {images} training images")


def table_rows(study: dict, claim: str) -> list[list[str]]:
    """One row per configuration: the errors per seed, the mean difference, the spread, the verdict, the cost."""
    rows = []
    for v in verdicts(study, claim):
        spread = "-" if v["seed_spread_points"] is None else f"{v['seed_spread_points']:.1f}"
        rows.append([
            v["config"], f"{v['steps']:,}", str(len(v["seeds"])),
            " / ".join(f"{e:.1f}" for e in v["shallow_train_error"]),
            " / ".join(f"{e:.1f}" for e in v["deep_train_error"]),
            f"{v['mean_difference_points']:+.1f}", spread,
            "yes" if v["shown"] else ("tie" if v.get("tie_within_spread") else "no"),
            f"{v['seconds_per_seed']:.0f} s on {v['device']}",
        ])
    return rows


TABLE_HEADER = ["configuration", "steps", "seeds", "shallow: training error (%)", "deep: training error (%)",
                "deep - shallow (points)", "seed spread (points)", "shown", "time for both (1 seed)"]
# "shown": the claimed sign in every seed by more than the seed spread; "tie": the two within the spread.


def provenance_line(study: dict) -> str:
    """Where the archived runs came from: machine, versions, commit, data hash (of the first record)."""
    origin = study.get("provenance") or {}
    if not origin:
        return ""
    commit = (origin.get("commit") or "unknown")[:10]
    return (f"Archived runs made on {origin.get('cpu', '?')} ({origin.get('device', '?')}), torch {origin.get('torch', '?')}, "
            f"commit {commit}, data {origin.get('data', '?')} with SHA-256 {origin.get('data_sha256', '?')[:12]}..., "
            f"{origin.get('date', '?')}.")


def _configurations(count: int) -> str:
    return f"{count} archived configuration{'s' if count != 1 else ''}"


def claim_sentence(study: dict, claim: str, *, deep: str, shallow: str) -> str:
    """What the archive shows for ``claim``, written from its verdicts: shown, tied, or not shown."""
    archived = verdicts(study, claim)
    shown = [v for v in archived if v["shown"]]
    if shown:
        best = shown[0]  # cheapest first
        return (f"Shown by {len(shown)} of the {_configurations(len(archived))}. The cheapest is "
                f"`{best['config']}` ({describe_config(study, best['config'])}): {deep} minus {shallow} is "
                f"{best['mean_difference_points']:+.1f} points of training error on average, against a seed "
                f"spread of {best['seed_spread_points']:.1f} points.")
    sentence = f"Not shown by {'any of ' if len(archived) != 1 else ''}the {_configurations(len(archived))}."
    ties = [v for v in archived if v.get("tie_within_spread")]
    if ties:
        tie = ties[0]
        sentence += (f" In {len(ties)} of them the two are tied within the seed spread; the cheapest is "
                     f"`{tie['config']}` ({describe_config(study, tie['config'])}): {deep} minus {shallow} is "
                     f"{tie['mean_difference_points']:+.1f} points on average, seed spread "
                     f"{tie['seed_spread_points']:.1f}.")
    return sentence


def depth_gaps(study: dict) -> list[list[str]]:
    """Per configuration with both families over 3 seeds: the 56-minus-20 gap of plain and residual networks."""
    rows = []
    for plain in verdicts(study, "degradation"):
        residual = verdict(study, "residual_depth", plain["config"])
        if residual is None or min(len(plain["seeds"]), len(residual["seeds"])) < 3:
            continue
        spread = max(plain["seed_spread_points"], residual["seed_spread_points"])
        rows.append([plain["config"], f"{plain['mean_difference_points']:+.1f}",
                     f"{residual['mean_difference_points']:+.1f}", f"{spread:.1f}"])
    return rows


DEPTH_GAP_HEADER = ["configuration", "plain-56 - plain-20 (points)", "resnet-56 - resnet-20 (points)",
                    "largest seed spread (points)"]
