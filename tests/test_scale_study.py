"""The scale study's bookkeeping: runs are written as they finish, skipped when done, and judged by a rule that can fail."""

import json

import pytest

from tools import scale_study as study


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "STUDY_DIR", tmp_path / "scale-study")
    monkeypatch.setenv("RESNET_COURSE_CACHE", str(tmp_path / "cache"))
    tiny = study.cifar("tiny", 8, 2, steps=3, batch_size=32, train_size=64, test_size=32)
    monkeypatch.setattr(study, "CONFIGS", {"tiny": tiny})
    return tmp_path / "scale-study"


def _record(config, model, seed, error, loss=1.0, seconds=1.0):
    return {
        "config": {"name": config},
        "model": model,
        "seed": seed,
        "final_train_error": error,
        "final_train_loss": loss,
        "train_seconds": seconds,
        "steps": 10,
        "provenance": {"device": "cpu", "date": "2026-12-02T10:00:00+00:00"},
    }


def _pair(first, first_errors, second, second_errors):
    """Records of two networks in configuration "c", one final training error per seed."""
    records = {("c", first, s): _record("c", first, s, e) for s, e in enumerate(first_errors)}
    records.update(
        {("c", second, s): _record("c", second, s, e) for s, e in enumerate(second_errors)}
    )
    return records


def test_runs_are_written_when_they_finish_and_skipped_when_done(tiny_study, cifar_available):
    study.run(["degradation"], ["tiny"], [0])
    written = sorted(p.name for p in (tiny_study / "runs" / "tiny").glob("*.json"))
    assert written == ["plain20-seed0.json", "plain56-seed0.json"]
    record = json.loads((tiny_study / "runs" / "tiny" / "plain20-seed0.json").read_text())
    assert record["steps"] == 3 and len(record["provenance"]["data_sha256"]) == 64
    assert record["provenance"]["commit"] is None or len(record["provenance"]["commit"]) == 40
    before = {p: p.stat().st_mtime_ns for p in (tiny_study / "runs" / "tiny").glob("*.json")}
    study.run(["degradation"], ["tiny"], [0])  # a rerun trains nothing
    assert before == {
        p: p.stat().st_mtime_ns for p in (tiny_study / "runs" / "tiny").glob("*.json")
    }
    summary = json.loads((tiny_study / "summary.json").read_text())
    assert (
        summary["verdicts"][0]["seeds"] == [0] and summary["verdicts"][0]["shown"] is False
    )  # one seed never suffices
    assert (tiny_study / "README.md").exists()


def test_a_claim_is_shown_only_with_its_sign_in_every_seed_and_a_margin_above_the_spread():
    claim = study.CLAIMS["degradation"]
    clear = _pair("plain20", (40.0, 41.0, 42.0), "plain56", (60.0, 61.0, 59.0))
    assert study.judge(claim, "c", clear).shown

    mixed = dict(clear)
    mixed["c", "plain56", 2] = _record("c", "plain56", 2, 41.5)  # one seed the other way round
    assert not study.judge(claim, "c", mixed).shown

    noisy = _pair("plain20", (30.0, 50.0, 40.0), "plain56", (31.0, 52.0, 43.0))
    verdict = study.judge(claim, "c", noisy)
    assert verdict.sign_in_every_seed and not verdict.shown  # margin 2 points, spread 8

    at_chance = {
        k: {**v, "final_train_error": 88.0, "final_train_loss": 2.29} if k[1] == "plain56" else v
        for k, v in clear.items()
    }
    # A network that never trained proves nothing.
    assert not study.judge(claim, "c", at_chance).shown


def test_the_residual_claim_reads_at_or_below():
    claim = study.CLAIMS["residual_depth"]
    records = _pair("resnet20", (40.0, 41.0, 42.0), "resnet56", (35.0, 36.0, 35.5))
    assert study.judge(claim, "c", records).shown
    behind = {
        k: {**v, "final_train_error": v["final_train_error"] + 10} if k[1] == "resnet56" else v
        for k, v in records.items()
    }
    assert not study.judge(claim, "c", behind).shown


def test_a_difference_within_the_seed_spread_is_a_tie_not_a_result():
    claim = study.CLAIMS["residual_depth"]
    records = _pair("resnet20", (42.0, 44.0, 43.0), "resnet56", (42.5, 43.0, 43.2))
    verdict = study.judge(claim, "c", records)
    assert verdict.tie_within_spread and not verdict.shown


def test_the_lesion_claim_is_judged_by_the_accuracy_a_deleted_block_costs():
    claim = study.CLAIMS["lesion"]
    records = {
        ("c", "resnet20", s): {**_record("c", "resnet20", s, 40.0), "lesion_mean_drop_points": d}
        for s, d in enumerate((1.0, 1.5, 0.5))
    }
    records.update(
        {
            ("c", "plain20", s): {**_record("c", "plain20", s, 45.0), "lesion_mean_drop_points": d}
            for s, d in enumerate((30.0, 25.0, 35.0))
        }
    )
    verdict = study.judge(claim, "c", records)
    assert (
        verdict.shown
        and verdict.metric == "lesion_mean_drop_points"
        and verdict.first_values == [1.0, 1.5, 0.5]
    )
    old = {
        k: {key: value for key, value in v.items() if key != "lesion_mean_drop_points"}
        for k, v in records.items()
    }
    assert (
        study.judge(claim, "c", old) is None
    )  # records made before the lesion was measured do not count


def test_networks_that_differ_only_by_an_option_get_their_own_records():
    assert [study.CLAIMS["shortcut_c"].run_name(i) for i in (0, 1)] == [
        "resnet20-shortcutB",
        "resnet20-shortcutC",
    ]
    assert (
        study.CLAIMS["shortcut_b"].run_name(0)
        == study.CLAIMS["residual_depth"].run_name(0)
        == "resnet20"
    )
    assert study.CLAIMS["transformer_residual"].run_name(1) == "transformer-noresidual"


def test_a_record_without_the_claims_metric_is_run_again(tiny_study, cifar_available):
    config = study.CONFIGS["tiny"]
    path = study.record_path(config, "resnet20", 0)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(_record("tiny", "resnet20", 0, 50.0))
    )  # an old record: no lesion metric
    assert study.finished(config, study.CLAIMS["residual_depth"], 0, 0)
    assert not study.finished(config, study.CLAIMS["lesion"], 0, 0)
    study.run(["lesion"], ["tiny"], [0])
    record = json.loads(path.read_text())
    assert record["lesion_mean_drop_points"] is not None and record["steps"] == 3


def test_the_transformer_claim_trains_on_the_sorting_task(tiny_study, monkeypatch):
    monkeypatch.setitem(
        study.CONFIGS,
        "tinysort",
        study.SequenceConfig("tinysort", epochs=1, train_size=128, test_size=64),
    )
    study.run(["transformer_residual"], ["tinysort"], [0])
    written = sorted(p.name for p in (tiny_study / "runs" / "tinysort").glob("*.json"))
    assert written == ["transformer-noresidual-seed0.json", "transformer-seed0.json"]
    summary = json.loads((tiny_study / "summary.json").read_text())
    assert [v["claim"] for v in summary["verdicts"]] == [
        "transformer_residual"
    ]  # CIFAR claims skip the sorting task


def test_the_opposite_of_a_claim_is_reported_when_every_seed_shows_it():
    claim = study.CLAIMS["shortcut_c"]
    records = _pair(
        "resnet20-shortcutB", (51.8, 52.7, 51.8), "resnet20-shortcutC", (56.4, 54.7, 55.0)
    )
    verdict = study.judge(claim, "c", records)
    assert verdict.opposite_shown and not verdict.shown and not verdict.tie_within_spread
    records["c", "resnet20-shortcutC", 1] = _record(
        "c", "resnet20-shortcutC", 1, 51.0
    )  # one seed the claimed way
    assert not study.judge(claim, "c", records).opposite_shown


def test_missing_data_stops_the_study_with_one_sentence(tiny_study, monkeypatch, capsys):
    from resnet_course.data import DataUnavailableError

    def no_data(config):
        raise DataUnavailableError("CIFAR-10 could not be downloaded (no network).")

    monkeypatch.setattr(study, "load_data", no_data)
    code = study.main(["run", "--configs", "tiny", "--claims", "degradation", "--seeds", "0"])
    err = capsys.readouterr().err
    assert code == 1 and err == "scale_study: CIFAR-10 could not be downloaded (no network).\n"
