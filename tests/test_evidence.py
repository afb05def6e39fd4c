"""The archive a chapter shows: read from the scale study's summary, or a clear note where it is absent."""

import json
from pathlib import Path

import pytest

from resnet_course import evidence

ROOT = Path(__file__).resolve().parents[1]


def _summary(tmp_path):
    verdict = {
        "claim": "degradation",
        "config": "c1",
        "seeds": [0, 1, 2],
        "first": "plain20",
        "second": "plain56",
        "metric": "final_train_error",
        "first_values": [50.0, 51.0, 52.0],
        "second_values": [70.0, 72.0, 71.0],
        "first_train_error": [50.0, 51.0, 52.0],
        "second_train_error": [70.0, 72.0, 71.0],
        "first_train_loss": [1.4, 1.4, 1.5],
        "second_train_loss": [1.9, 2.0, 1.9],
        "difference_points": [20.0, 21.0, 19.0],
        "mean_difference_points": 20.0,
        "seed_spread_points": 0.8,
        "margin_points": 20.0,
        "sign_in_every_seed": True,
        "both_trained": True,
        "both_trained_loss": True,
        "shown": True,
        "tie_within_spread": False,
        "opposite_shown": False,
        "clear_in_every_seed": True,
        "verdict": "shown",
        "seconds_per_seed": 160.0,
        "device": "cpu (2 threads)",
        "steps": 1050,
    }
    summary = {
        "verdicts": [
            verdict,
            {
                **verdict,
                "config": "c2",
                "shown": False,
                "verdict": "untrained",
                "seconds_per_seed": 50.0,
                "steps": 124,
            },
        ],
        "claims": {
            "degradation": {"labels": ["plain-20", "plain-56"], "metric": "final_train_error"},
            "lesion": {"labels": ["ResNet-20", "plain-20"], "metric": "lesion_mean_drop_points"},
        },
        "metrics": {
            "final_train_error": "training error (%)",
            "lesion_mean_drop_points": "test accuracy lost when one block is deleted (points, mean)",
        },
        "configs": {
            "c2": {
                "width": 8,
                "image_size": 16,
                "steps": 124,
                "batch_size": 128,
                "schedule": "step",
                "lr": 0.1,
                "warmup_epochs": 0.0,
                "train_size": 4600,
            },
            "c1": {
                "width": 8,
                "image_size": 16,
                "steps": 1050,
                "batch_size": 128,
                "schedule": "cosine",
                "lr": 0.1,
                "warmup_epochs": 2.0,
                "train_size": 4600,
            },
        },
        "provenance": {
            "cpu": "Some CPU",
            "device": "cpu (2 threads)",
            "torch": "2.14.1",
            "commit": "a" * 40,
            "data": "Dataset('cifar10@16px': 4600 train / 800 test)",
            "data_sha256": "b" * 64,
            "date": "2026-12-02",
        },
    }
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    return path


def test_the_provenance_names_machine_versions_commit_and_data_hash(tmp_path):
    line = evidence.provenance_line(evidence.load_study(_summary(tmp_path)))
    assert (
        "Some CPU" in line and "2.14.1" in line and "aaaaaaaaaa" in line and "bbbbbbbbbbbb" in line
    )


def test_without_the_repository_the_note_says_where_the_archive_is(tmp_path, monkeypatch):
    assert evidence.load_study(tmp_path / "missing.json") is None
    assert "results/scale-study" in evidence.study_note()


def test_results_are_found_from_the_working_directory_its_parent_or_the_environment(
    tmp_path, monkeypatch
):
    # The package never looks next to its own files: a chapter runs in chapters/, the tests in the root.
    study = tmp_path / "repo" / "results" / "scale-study"
    study.mkdir(parents=True)
    (tmp_path / "repo" / "chapters").mkdir()
    (study / "summary.json").write_text(_summary(tmp_path).read_text())
    monkeypatch.delenv(evidence.RESULTS_ENV, raising=False)
    for cwd in (tmp_path / "repo", tmp_path / "repo" / "chapters"):
        monkeypatch.chdir(cwd)
        assert evidence.results_dir() == tmp_path / "repo" / "results"
        assert evidence.load_study()["configs"]["c1"]["width"] == 8
    monkeypatch.chdir(tmp_path)
    assert evidence.results_dir() is None and evidence.load_study() is None
    with pytest.raises(FileNotFoundError, match="tools.reproduce"):
        evidence.load_results()
    monkeypatch.setenv(evidence.RESULTS_ENV, str(tmp_path / "repo" / "results"))
    assert evidence.load_study() is not None and evidence.load_results() == []


def test_the_provenance_of_a_claim_comes_from_its_own_runs(tmp_path):
    study = evidence.load_study(_summary(tmp_path))
    for v, day in zip(study["verdicts"], ("2026-12-01", "2026-12-02")):
        v["origin"] = {
            "cpu": ["Other CPU"],
            "device": ["cpu (1 threads)"],
            "torch": ["2.14.1"],
            "commit": ["c" * 40, "d" * 40],
            "data": ["Dataset('cifar10@16px')"],
            "data_sha256": ["e" * 64],
            "dates": [day + "T10:00", day + "T11:00"],
        }
    line = evidence.provenance_line(study, "degradation")
    assert "Other CPU" in line and "Some CPU" not in line and "cccccccccc, dddddddddd" in line
    assert "2026-12-01 to 2026-12-02" in line and "eeeeeeeeeeee..." in line
    assert "Some CPU" in evidence.provenance_line(
        study
    )  # no claim: the study's first record, as before


def test_the_readme_says_what_the_archive_shows():
    # README.md's preset section summarises the scale study in words; this keeps the words true.
    study = evidence.load_study()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()

    def check(claim, config, outcome):
        v = evidence.verdict(study, claim, config)
        assert v is not None and len(v.seeds) >= 3, f"{claim} at {config} has no three-seed verdict"
        found = {
            "shown": v.verdict == "shown",
            "tie": v.verdict == "tie",
            "opposite": v.verdict == "opposite",
            "not trained": v.verdict == "untrained",
        }[outcome]
        assert found, (
            f"README.md says {claim} at {config} is '{outcome}'; the archive says otherwise: {v}"
        )

    assert (
        "degradation (plain-56 above plain-20 in training error, both trained) is shown from 1,050"
        in readme
    )
    said = " ".join(readme.split())
    preset = "w8-16px-3150st-cos"
    assert (
        "so the `cpu` preset trains 3,150 steps: the shortest length tried that shows both" in said
    )
    assert "of the paper's Fig. 6 over five seeds" in said
    for claim in ("degradation", "residual_depth"):
        check(claim, preset, "shown")
        assert len(evidence.verdict(study, claim, preset).seeds) == 5
    lengths = evidence.verdicts_by_length(study, "residual_depth", width=8, image_size=16)
    shorter = [steps for steps, v in lengths.items() if steps < 3150 and v.verdict == "shown"]
    assert not shorter, f"README says 3,150 is the shortest length shown; shown at {shorter}"
    at_2100 = evidence.verdict(study, "residual_depth", "w8-16px-2100st-cos")
    assert sum(d < 0 for d in at_2100.difference_points) == 4 and len(at_2100.seeds) == 5
    check("degradation", "w8-16px-2100st-cos", "shown")
    assert "below it in every seed at 3,150 (five seeds);" in said
    # A configuration with fewer seeds than a verdict needs is cited nowhere (evidence.counts).
    assert evidence.verdict(study, "residual_depth", "w8-16px-4200st-cos") is None
    assert "4,200 (two)" not in said
    check("degradation", "w8-16px-1050st-cos", "shown")
    check("degradation", "w8-16px-525st-cos", "not trained")
    assert (
        "ResNet-56 is behind ResNet-20 in every seed at 525 steps, tied with it at 1,050" in readme
    )
    assert "below it in four seeds of five at 2,100" in said
    check("residual_depth", "w8-16px-525st-cos", "opposite")
    check("residual_depth", "w8-16px-1050st-cos", "tie")
    assert evidence.verdict(study, "residual_depth", "w8-16px-2100st-cos").verdict == "mixed"
    assert (
        "is shown at\n  525 steps, and the transformer with and without residuals at 2 epochs"
        in readme
    )
    check("lesion", "w8-16px-525st-cos", "shown")
    check("transformer_residual", "sort6-d4-2ep", "shown")
    assert "at 60 and 200 steps, and with warm-up and a cosine decay at 1,050" in readme
    check("preact_depth", "w8-16px-60st-b32-const", "shown")
    check("preact_depth", "w8-16px-200st-b32-const", "shown")
    check("preact_depth", "w8-16px-1050st-cos", "shown")
    assert (
        "option B is tied with option A at 525 steps, and option C ends behind B in every seed"
        in readme
    )
    check("shortcut_b", "w8-16px-525st-cos", "tie")
    check("shortcut_c", "w8-16px-525st-cos", "opposite")
    check("shortcut_c", "w8-16px-1050st-cos", "opposite")
    assert (
        "preset), degradation and the lesion study are shown, and ResNet-56 ends behind" in readme
    )
    seconds_per_seed = sum(
        evidence.verdict(study, claim, "w16-32px-1050st-cos").seconds_per_seed
        for claim in ("degradation", "residual_depth")
    )
    assert seconds_per_seed > 600, "README.md says one seed takes longer than 10 minutes"
    check("degradation", "w16-32px-1050st-cos", "shown")
    check("lesion", "w16-32px-1050st-cos", "shown")
    check("residual_depth", "w16-32px-1050st-cos", "opposite")


def test_verdicts_come_cheapest_first_each_with_its_defined_word(tmp_path):
    study = evidence.load_study(_summary(tmp_path))
    archived = evidence.verdicts(study, "degradation")
    assert [v.config for v in archived] == ["c2", "c1"]
    assert [v.verdict for v in archived] == ["untrained", "shown"]
    assert all(v.verdict in evidence.VERDICT_WORDS for v in archived)


def test_the_folded_table_names_configurations_in_words(tmp_path):
    from resnet_course.archive_figures import claim_details_html, short_config

    study = evidence.load_study(_summary(tmp_path))
    study["claims"]["degradation"]["statement"] = "plain-56 ends higher than plain-20"
    assert short_config(study, "c1") == "1,050 steps, width 8, 16-px images"
    assert short_config(study, "c2") == "124 steps, width 8, 16-px images, step learning rate"
    folded = claim_details_html(study, "degradation")
    assert "<td>1,050 steps, width 8, 16-px images</td><td>50.0 / 51.0 / 52.0</td>" in folded
    assert "<td>untrained</td>" in folded and "Some CPU" in folded and ">c1<" not in folded


def test_the_repository_holds_a_verdict_for_every_archived_claim():
    study = evidence.load_study()
    assert study is not None, (
        "results/scale-study/summary.json is missing: run python -m tools.scale_study summary"
    )
    for claim in ("degradation", "residual_depth", "lesion", "preact_depth"):
        assert evidence.verdicts(study, claim), f"the archive has no runs for {claim}"
    for v in evidence.all_verdicts(study):  # each a typed Verdict: summary.json has the layout
        assert v.verdict in set(evidence.VERDICT_WORDS) | {"too few seeds"}


def test_without_results_a_chapter_says_where_the_archive_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(evidence.RESULTS_ENV, raising=False)
    assert evidence.load_study() is None
    assert "results/scale-study" in evidence.study_note()


def test_a_verdict_of_another_layout_is_refused_in_one_sentence(tmp_path):
    study = evidence.load_study(_summary(tmp_path))
    del study["verdicts"][0]["seed_spread_points"]
    with pytest.raises(ValueError, match="without seed_spread_points.*tools.scale_study summary"):
        evidence.verdicts(study, "degradation")


def test_one_recipes_lengths_are_read_by_its_values(tmp_path):
    study = evidence.load_study(_summary(tmp_path))
    assert sorted(evidence.verdicts_by_length(study, "degradation", width=8)) == [124, 1050]
    only_step = evidence.verdicts_by_length(study, "degradation", schedule="step")
    assert [v.config for v in only_step.values()] == ["c2"]
    assert evidence.verdicts_by_length(study, "degradation", width=16) == {}


def test_folds_print_words_not_reprs():
    """A provenance line says 'one CPU thread' and what the data is, never a repr or '1 threads'."""
    assert evidence.device_words("cpu (1 threads)") == "one CPU thread"
    assert evidence.device_words("cpu (1 thread)") == "one CPU thread"
    assert evidence.device_words("cpu (2 threads)") == "2 CPU threads"
    assert evidence.device_words("cuda (NVIDIA H100 80GB HBM3)") == "NVIDIA H100 80GB HBM3"
    described = "TensorData('cifar10@16px': 4600 train / 800 test, inputs (3, 16, 16), 10 classes)"
    assert (
        evidence.data_words(described)
        == "CIFAR-10 at 16x16 pixels, 4,600 training and 800 test images"
    )
    study = evidence.load_study(ROOT / "results" / "scale-study" / "summary.json")
    for claim in study["claims"]:
        line = evidence.provenance_line(study, claim)
        for machine_text in ("TensorData(", "Dataset(", "cpu (", "1 threads", "@16px"):
            assert machine_text not in line, (claim, line)
