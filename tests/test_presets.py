"""The presets: how big a chapter's runs are, in their own module, with the values the scale study chose."""

import dataclasses

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
    assert values == {
        "cpu": dict(
            name="cpu",
            image_size=16,
            train_size=4600,
            test_size=800,
            width=8,
            training=dict(comparison, steps=3150),
            epochs=8,
            mlp_steps=1500,
        ),
        "gpu": dict(
            name="gpu",
            image_size=32,
            train_size=None,
            test_size=None,
            width=16,
            training=dict(comparison, steps=900),
            epochs=4,
            mlp_steps=3000,
        ),
    }


def test_a_presets_recipe_is_a_train_config_passed_as_it_is():
    """Chapters pass ``preset.training`` to fit and runs.train_or_load: no keywords in between."""
    for preset in presets.PRESETS.values():
        assert isinstance(preset.training, TrainConfig)
        assert not hasattr(preset, "recipe") and not hasattr(preset, "steps")
