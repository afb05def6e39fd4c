"""Bad data files get one sentence naming the file; good ones, protocol-5 pickles included, load without running code."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

from resnet_course.data import DataUnavailableError, load_cifar10, read_cifar_batches, read_npz


def _arrays(n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train),
        "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test),
    }


def _write(path, **changes):
    arrays = {**_arrays(), **changes}
    np.savez(path, **arrays)
    return path


def _one_sentence(error, path):
    message = str(error.value)
    assert str(path) in message and "\n" not in message and "Traceback" not in message
    return message


def test_a_good_file_loads(tmp_path):
    arrays = read_npz(_write(tmp_path / "good.npz"))
    assert arrays["x_train"].shape == (20, 32, 32, 3)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04truncated"])
def test_garbage_and_truncated_files_are_named(tmp_path, content):
    path = tmp_path / "broken.npz"
    path.write_bytes(content)
    with pytest.raises(DataUnavailableError) as error:
        read_npz(path)
    assert "could not be read as an .npz" in _one_sentence(error, path)


def test_a_cut_off_real_file_is_named(tmp_path):
    whole = _write(tmp_path / "whole.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataUnavailableError) as error:
        read_npz(path)
    _one_sentence(error, path)


def test_an_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{**_arrays(), "y_train": np.array([{"label": 1}] * 20, dtype=object)})
    with pytest.raises(DataUnavailableError) as error:
        read_npz(path)
    assert "never unpickles" in _one_sentence(error, path)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"y_train": np.full(20, 10)}, "labels from"),
        ({"y_train": np.full(20, -1)}, "labels from"),
        ({"y_train": np.zeros(20, dtype=np.float32)}, "integer class labels"),
        ({"y_train": np.zeros((20, 1), dtype=np.int64)}, "1-D array"),
        ({"y_test": np.zeros(9, dtype=np.int64)}, "must match one to one"),
        ({"x_train": np.zeros((20, 16, 16, 3), dtype=np.uint8)}, "N x 32 x 32 x 3"),
        ({"x_test": np.zeros((10, 32, 32, 3), dtype=np.float32)}, "uint8 images"),
    ],
)
def test_wrong_arrays_are_named(tmp_path, change, words):
    path = _write(tmp_path / "wrong.npz", **change)
    with pytest.raises(DataUnavailableError) as error:
        read_npz(path)
    assert words in _one_sentence(error, path)


def _cifar_folder(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 4]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=protocol))
    return folder


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_pickled_with_any_protocol_load(tmp_path, protocol):
    arrays = read_cifar_batches(_cifar_folder(tmp_path, protocol))
    assert arrays["x_train"].shape == (20, 32, 32, 3) and arrays["y_test"].tolist() == [1, 2, 3, 4]


def test_a_batch_file_that_would_run_code_is_refused(tmp_path):
    folder = _cifar_folder(tmp_path, 5)

    class Payload:
        def __reduce__(self):
            return (print, ("ran code from a data file",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": Payload(), "labels": [1]}))
    with pytest.raises(DataUnavailableError) as error:
        read_cifar_batches(folder)
    assert "refused" in _one_sentence(error, folder / "data_batch_3")


def test_info_names_a_broken_file_in_one_sentence(tmp_path):
    (tmp_path / "class.npz").write_bytes(b"garbage")
    done = subprocess.run(
        [sys.executable, "-m", "resnet_course", "info"],
        capture_output=True,
        text=True,
        env={"RESNET_COURSE_DATA": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "class.npz could not be read" in done.stdout


def test_load_cifar10_reports_a_broken_offline_file(tmp_path, monkeypatch):
    (tmp_path / "class.npz").write_bytes(b"garbage")
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="class.npz could not be read"):
        load_cifar10()
