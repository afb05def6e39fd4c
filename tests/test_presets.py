"""The presets: how big a chapter's runs are, in their own module, with the values the scale study chose."""

import dataclasses
from pathlib import Path

from resnet_course import presets, runs, train
from resnet_course.recipe import TrainConfig


def test_presets_live_in_their_own_module_and_the_loop_module_holds_none():
    for name in ("Preset", "PRESETS", "get_preset", "default_preset_name"):
        assert hasattr(presets, name), name
        assert not hasattr(train, name), f"train.{name} is still there"
    import resnet_course

    assert resnet_course.get_preset is presets.get_preset
    assert resnet_course.PRESETS is presets.PRESETS and resnet_course.Preset is presets.Preset


def test_the_run_caches_code_hash_covers_the_presets(tmp_path, monkeypatch):
    assert "presets.py" in runs.CODE_MODULES
    assert {"blocks.py", "models.py", "train.py", "data.py", "presets.py"} <= set(runs.CODE_MODULES)


def test_the_preset_values_are_the_ones_the_scale_study_chose():
    values = {name: dataclasses.asdict(preset) for name, preset in presets.PRESETS.items()}
    for preset in values.values():
        del preset["audience"], preset["budget"]  # words, not sizes
    comparison = dict(
        TrainConfig().__dict__, lr=0.1, schedule="cosine", warmup_epochs=2.0, batch_size=128
    )
    archived = dict(
        image_size=16,
        train_size=4600,
        test_size=800,
        width=8,
        training=dict(comparison, steps=3150),
        epochs=8,
        mlp_steps=1500,
        archive="w8-16px-3150st-cos",
    )
    # A CUDA machine trains the archived recipe too, until a larger one is archived on a GPU.
    assert values == {"cpu": dict(archived, name="cpu"), "gpu": dict(archived, name="gpu")}


def test_every_preset_a_chapter_can_pick_has_an_archive_that_shows_its_claims():
    """The archive a preset names holds its recipe, at its sizes, and shows both halves of Fig. 6."""
    from resnet_course import evidence

    root = Path(__file__).resolve().parents[1]
    study = evidence.load_study(root / "results" / "scale-study" / "summary.json")
    assert study is not None, "results/scale-study/summary.json is part of the repository"
    for preset in presets.PRESETS.values():
        config = study["configs"].get(preset.archive)
        assert config is not None, (
            f"preset {preset.name}: no archived configuration {preset.archive}"
        )
        recipe = preset.training
        assert config == {
            **config,
            "image_size": preset.image_size,
            "width": preset.width,
            "train_size": preset.train_size,
            "test_size": preset.test_size,
            "steps": recipe.steps,
            "lr": recipe.lr,
            "schedule": recipe.schedule,
            "warmup_epochs": recipe.warmup_epochs,
            "batch_size": recipe.batch_size,
        }, f"preset {preset.name}: its archive was made with another recipe"
        for claim in ("degradation", "residual_depth"):
            verdict = evidence.verdict(study, claim, preset.archive)
            assert verdict is not None and verdict.verdict == "shown", (preset.name, claim)
            assert len(verdict.seeds) >= 5, (preset.name, claim, verdict.seeds)


def test_a_presets_recipe_is_a_train_config_passed_as_it_is():
    """Chapters pass ``preset.training`` to fit and runs.train_or_load: no keywords in between."""
    for preset in presets.PRESETS.values():
        assert isinstance(preset.training, TrainConfig)
        assert not hasattr(preset, "recipe") and not hasattr(preset, "steps")
