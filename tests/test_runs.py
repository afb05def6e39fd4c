"""The run cache: the same run is made once, a different one is made anew, and nothing unsafe is read back."""

import json

import pytest
import torch

from resnet_course import runs
from resnet_course.data import make_spirals

RECIPE = dict(steps=6, batch_size=32, lr=0.05, schedule="constant", progress=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_CACHE", str(tmp_path))
    monkeypatch.delenv("RESNET_COURSE_RUN_CACHE", raising=False)
    return tmp_path / "runs"


def _spiral_run(**overrides):
    recipe = {**RECIPE, **overrides}
    return runs.train_or_load(
        "mlp", make_spirals(100), model_options={"depth": 4, "width": 16}, **recipe
    )


def test_an_identical_run_is_read_back_with_the_same_weights_and_history(cache):
    model, first = _spiral_run(label="first")
    again_model, again = _spiral_run(label="again")
    assert first.config["cached"] is False and again.config["cached"] is True
    assert again.step_loss == first.step_loss and again.label == "again"
    for (name, a), (_, b) in zip(model.state_dict().items(), again_model.state_dict().items()):
        assert torch.equal(a, b), name
    assert len(list(cache.glob("*.json"))) == 1 and len(list(cache.glob("*.pt"))) == 1


@pytest.mark.parametrize(
    "change", [{"lr": 0.06}, {"seed": 1}, {"steps": 7}, {"schedule": "cosine"}]
)
def test_anything_that_changes_the_result_changes_the_key(cache, change):
    _, first = _spiral_run()
    _, other = _spiral_run(**change)
    assert other.config["cached"] is False and other.config["run_key"] != first.config["run_key"]


def test_other_data_or_other_model_options_are_other_runs(cache):
    _, first = _spiral_run()
    _, wider = runs.train_or_load(
        "mlp", make_spirals(100), model_options={"depth": 4, "width": 17}, **RECIPE
    )
    _, other_data = runs.train_or_load(
        "mlp", make_spirals(100, seed=3), model_options={"depth": 4, "width": 16}, **RECIPE
    )
    keys = {first.config["run_key"], wider.config["run_key"], other_data.config["run_key"]}
    assert len(keys) == 3


def test_display_options_do_not_change_the_key(cache):
    _, first = _spiral_run(progress=False)
    _, again = _spiral_run(progress=True, label="shown", log_every=3)
    assert again.config["cached"] is True and again.config["run_key"] == first.config["run_key"]


def test_the_code_version_is_part_of_the_key(cache, monkeypatch):
    _, first = _spiral_run()
    monkeypatch.setattr(runs, "code_version", lambda: "edited-train-py")
    _, after_edit = _spiral_run()
    assert after_edit.config["cached"] is False


def test_the_cache_can_be_turned_off(cache, monkeypatch):
    _spiral_run()
    monkeypatch.setenv("RESNET_COURSE_RUN_CACHE", "off")
    _, uncached = _spiral_run()
    assert uncached.config["cached"] is False
    _, explicit = runs.train_or_load(
        "mlp", make_spirals(100), model_options={"depth": 4, "width": 16}, cache=False, **RECIPE
    )
    assert explicit.config["cached"] is False


def test_a_stopped_run_is_not_cached(cache):
    _, stopped = _spiral_run(steps=50, stop=lambda: True)
    assert stopped.stopped and not list(cache.glob("*.json"))


def test_a_damaged_entry_is_trained_again(cache):
    _, first = _spiral_run()
    (cache / f"{first.config['run_key']}.pt").write_bytes(b"not a checkpoint")
    _, again = _spiral_run()
    assert again.config["cached"] is False and again.step_loss == first.step_loss


def test_a_weights_file_that_would_run_code_is_refused(cache):
    _, first = _spiral_run()

    class Payload:
        def __reduce__(self):
            return (exec, ("raise SystemExit('ran code from the cache')",))

    torch.save({"evil": Payload()}, cache / f"{first.config['run_key']}.pt")
    _, again = _spiral_run()  # weights_only=True refuses the pickle; the run is made again
    assert again.config["cached"] is False


def test_the_data_fingerprint_is_its_content_not_its_path():
    a, b = make_spirals(50), make_spirals(50)
    assert runs.data_fingerprint(a) == runs.data_fingerprint(b)
    assert runs.data_fingerprint(a) != runs.data_fingerprint(make_spirals(51))


def test_an_entry_records_what_made_it(cache):
    _, first = _spiral_run()
    record = json.loads((cache / f"{first.config['run_key']}.json").read_text())
    assert record["fields"]["model"] == "mlp" and record["fields"]["recipe"]["lr"] == 0.05
    assert len(record["fields"]["data"]) == 64 and record["fields"]["code"] == runs.code_version()


def test_a_config_is_keyed_as_the_keywords_that_say_the_same(cache):
    from resnet_course.recipe import TrainConfig

    _, by_keywords = _spiral_run()
    arithmetic = {key: value for key, value in RECIPE.items() if key != "progress"}
    config = TrainConfig(**arithmetic)
    _, by_config = runs.train_or_load(
        "mlp",
        make_spirals(100),
        model_options={"depth": 4, "width": 16},
        config=config,
        progress=False,
    )
    assert (
        by_config.config["cached"] is True
        and by_config.config["run_key"] == by_keywords.config["run_key"]
    )
    # A keyword beside the config replaces its field, in the run and in the key alike.
    _, faster = runs.train_or_load(
        "mlp",
        make_spirals(100),
        model_options={"depth": 4, "width": 16},
        config=config,
        lr=0.06,
        progress=False,
    )
    _, keyword_faster = _spiral_run(lr=0.06)
    assert faster.config["cached"] is False and keyword_faster.config["cached"] is True
    # The config's seed is the run's seed, unless one is given beside it.
    _, seeded = runs.train_or_load(
        "mlp",
        make_spirals(100),
        model_options={"depth": 4, "width": 16},
        config=config.replace(seed=1),
        progress=False,
    )
    _, keyword_seeded = _spiral_run(seed=1)
    assert (
        keyword_seeded.config["cached"] is True
        and keyword_seeded.config["run_key"] == seeded.config["run_key"]
    )


def test_a_diverged_run_read_back_from_the_cache_warns_as_the_first_did(cache):
    from resnet_course.train import TrainingDiverged

    with pytest.warns(TrainingDiverged, match="diverged"):
        _, first = _spiral_run(lr=1e6)
    with pytest.warns(TrainingDiverged, match="diverged") as record:
        _, again = _spiral_run(lr=1e6)
    assert again.config["cached"] is True and first.diverged and again.diverged
    assert str(record[0].message) == first.message
