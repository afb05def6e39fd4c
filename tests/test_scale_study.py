"""The scale study's bookkeeping: runs are written as they finish, skipped when done, and judged by a rule that can fail."""

import json

import pytest

from tools import scale_study as study


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "STUDY_DIR", tmp_path / "scale-study")
    monkeypatch.setenv("RESNET_COURSE_CACHE", str(tmp_path / "cache"))
    tiny = study.Config("tiny", image_size=8, width=2, steps=3, batch_size=32, train_size=64, test_size=32)
    monkeypatch.setattr(study, "CONFIGS", {"tiny": tiny})
    return tmp_path / "scale-study"


def _record(config, model, seed, error, loss=1.0, seconds=1.0):
    return {"config": {"name": config}, "model": model, "seed": seed, "final_train_error": error,
            "final_train_loss": loss, "train_seconds": seconds, "steps": 10, "provenance": {"device": "cpu"}}


def test_runs_are_written_when_they_finish_and_skipped_when_done(tiny_study, cifar_available):
    study.run(["degradation"], ["tiny"], [0])
    written = sorted(p.name for p in (tiny_study / "runs" / "tiny").glob("*.json"))
    assert written == ["plain20-seed0.json", "plain56-seed0.json"]
    record = json.loads((tiny_study / "runs" / "tiny" / "plain20-seed0.json").read_text())
    assert record["steps"] == 3 and len(record["provenance"]["data_sha256"]) == 64
    assert record["provenance"]["commit"] is None or len(record["provenance"]["commit"]) == 40
    before = {p: p.stat().st_mtime_ns for p in (tiny_study / "runs" / "tiny").glob("*.json")}
    study.run(["degradation"], ["tiny"], [0])  # a rerun trains nothing
    assert before == {p: p.stat().st_mtime_ns for p in (tiny_study / "runs" / "tiny").glob("*.json")}
    summary = json.loads((tiny_study / "summary.json").read_text())
    assert summary["verdicts"][0]["seeds"] == [0] and summary["verdicts"][0]["shown"] is False  # one seed never suffices
    assert (tiny_study / "README.md").exists()


def test_a_claim_is_shown_only_with_its_sign_in_every_seed_and_a_margin_above_the_spread():
    claim = study.CLAIMS["degradation"]
    clear = {("c", "plain20", s): _record("c", "plain20", s, e) for s, e in enumerate((40.0, 41.0, 42.0))}
    clear.update({("c", "plain56", s): _record("c", "plain56", s, e) for s, e in enumerate((60.0, 61.0, 59.0))})
    assert study.judge(claim, "c", clear)["shown"]

    mixed = dict(clear)
    mixed["c", "plain56", 2] = _record("c", "plain56", 2, 41.5)  # one seed the other way round
    assert not study.judge(claim, "c", mixed)["shown"]

    noisy = {("c", "plain20", s): _record("c", "plain20", s, e) for s, e in enumerate((30.0, 50.0, 40.0))}
    noisy.update({("c", "plain56", s): _record("c", "plain56", s, e) for s, e in enumerate((31.0, 52.0, 43.0))})
    verdict = study.judge(claim, "c", noisy)
    assert verdict["sign_in_every_seed"] and not verdict["shown"]  # margin 2 points, spread 8

    at_chance = {k: {**v, "final_train_error": 88.0, "final_train_loss": 2.29} if k[1] == "plain56" else v
                 for k, v in clear.items()}
    assert not study.judge(claim, "c", at_chance)["shown"]  # a network that never trained proves nothing


def test_the_residual_claim_reads_at_or_below():
    claim = study.CLAIMS["residual_depth"]
    records = {("c", "resnet20", s): _record("c", "resnet20", s, e) for s, e in enumerate((40.0, 41.0, 42.0))}
    records.update({("c", "resnet56", s): _record("c", "resnet56", s, e) for s, e in enumerate((35.0, 36.0, 35.5))})
    assert study.judge(claim, "c", records)["shown"]
    behind = {k: {**v, "final_train_error": v["final_train_error"] + 10} if k[1] == "resnet56" else v for k, v in records.items()}
    assert not study.judge(claim, "c", behind)["shown"]


def test_a_difference_within_the_seed_spread_is_a_tie_not_a_result():
    claim = study.CLAIMS["residual_depth"]
    records = {("c", "resnet20", s): _record("c", "resnet20", s, e) for s, e in enumerate((42.0, 44.0, 43.0))}
    records.update({("c", "resnet56", s): _record("c", "resnet56", s, e) for s, e in enumerate((42.5, 43.0, 43.2))})
    verdict = study.judge(claim, "c", records)
    assert verdict["tie_within_spread"] and not verdict["shown"]
