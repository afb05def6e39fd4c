"""The page's own run is the archive's seed 0: the same numbers on the archive's machine, in its band elsewhere."""

from pathlib import Path

import pytest

from resnet_course import create_model, fit, get_preset, set_seed
from resnet_course.data import DataUnavailableError, load_cifar10
from resnet_course.replay import (
    BAND_MARGIN_POINTS,
    COMPARED,
    SeedCheck,
    archived_errors,
    archived_run,
    check_seed,
    same_machine_kind,
)
from resnet_course.runs import data_fingerprint
from resnet_course.train import History

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
PRESET = get_preset("cpu")
# The first epoch of a run lies inside its two epochs of warm-up, whose learning rates do not
# depend on the run's length: a run cut after one epoch computes exactly the archived first epoch.
ONE_EPOCH = PRESET.training.replace(seed=0, max_steps=PRESET.train_size // 128)


@pytest.fixture(scope="module")
def preset_data():
    try:
        return load_cifar10(
            image_size=PRESET.image_size,
            train_size=PRESET.train_size,
            test_size=PRESET.test_size,
            download=False,
        )
    except DataUnavailableError as error:
        pytest.skip(f"no offline CIFAR-10: {error}")


def _first_epoch(name: str, data, **options) -> History:
    set_seed(0)
    return fit(create_model(name, width=PRESET.width), data, ONE_EPOCH, progress=False, **options)


@pytest.mark.parametrize("name", ["plain20", "resnet20"])
def test_a_live_run_repeats_the_archived_seed(name, preset_data):
    record = archived_run(PRESET.archive, name, 0, folder=RESULTS)
    assert record is not None, f"the archive holds {name} seed 0 of {PRESET.archive}"
    live = _first_epoch(name, preset_data)
    assert live.device == "cpu (1 thread)"
    first = {key: getattr(live, key)[0] for key in COMPARED}
    archived = {key: record["history"][key][0] for key in COMPARED}
    if same_machine_kind(record, live, data_fingerprint(preset_data)):
        assert first == archived  # bit for bit
    else:  # another CPU or torch: the same experiment, other last bits
        assert first == pytest.approx(archived, rel=0.02), (first, archived)


def test_a_run_made_another_way_would_not_pass_for_the_archived_seed(preset_data):
    """Two threads in the default layout (what a chapter did before): other numbers."""
    record = archived_run(PRESET.archive, "plain20", 0, folder=RESULTS)
    live = _first_epoch("plain20", preset_data, threads=2)
    if not same_machine_kind(
        record, _first_epoch("plain20", preset_data), data_fingerprint(preset_data)
    ):
        pytest.skip("the archive was made on another kind of machine")
    assert live.device == "cpu (2 threads)"
    assert live.train_loss[0] != record["history"]["train_loss"][0]


def _check(live_error, *, same_machine=False, same_history=False):
    return SeedCheck(
        label="plain-20",
        seed=0,
        live_error=live_error,
        archived={0: 35.4, 1: 36.6, 2: 36.9, 3: 38.2, 4: 39.0},
        same_machine=same_machine,
        same_history=same_history,
    )


def test_elsewhere_a_run_passes_inside_the_widened_band_and_fails_outside():
    assert _check(36.0).band == (35.4 - BAND_MARGIN_POINTS, 39.0 + BAND_MARGIN_POINTS)
    assert _check(36.0).passed and _check(34.5).passed and _check(39.9).passed
    assert not _check(34.3).passed and not _check(40.1).passed
    assert "above 1 of the 5 archived seeds" in _check(36.0).words()
    assert "below every archived seed" in _check(34.5).words()
    assert "between 35.4% and 39.0%" in _check(36.0).words()


def test_on_the_archives_machine_only_the_same_history_passes():
    assert not _check(36.6, same_machine=True).passed  # inside the band is not enough there
    exact = _check(36.6, same_machine=True, same_history=True)
    assert exact.passed and "repeated its archived seed 0 exactly" in exact.words()


def test_check_seed_reads_the_archive_and_compares_every_epoch(preset_data):
    record = archived_run(PRESET.archive, "plain20", 0, folder=RESULTS)
    history = History.from_dict({**record["history"], "device": record["provenance"]["device"]})
    history.train_acc = list(record["history"]["train_acc"])
    check = check_seed(PRESET.archive, "plain20", 0, history, preset_data, folder=RESULTS)
    assert check.same_history and check.live_error == pytest.approx(record["final_train_error"])
    assert sorted(check.archived) == [0, 1, 2, 3, 4]
    assert check.archived == archived_errors(PRESET.archive, "plain20", folder=RESULTS)
    history.train_loss[-1] += 1e-9  # one epoch's loss in its last bits
    assert not check_seed(
        PRESET.archive, "plain20", 0, history, preset_data, folder=RESULTS
    ).same_history
    assert check_seed("no-such-config", "plain20", 0, history, preset_data, folder=RESULTS) is None
