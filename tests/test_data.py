import numpy as np
import pytest
import torch

from resnet_course.data import (
    DataUnavailableError,
    load_cifar10,
    make_spirals,
    pack_subset,
    random_crop_flip,
)


def test_spirals_are_balanced_and_seeded():
    a, b = make_spirals(200, seed=3), make_spirals(200, seed=3)
    assert torch.equal(a.x_train, b.x_train)
    assert len(a.x_train) + len(a.x_test) == 400
    assert torch.bincount(torch.cat([a.y_train, a.y_test])).tolist() == [200, 200]


def test_offline_npz_loads_as_uint8_nchw(cifar_available):
    data = load_cifar10(image_size=32, download=False)
    assert data.x_train.dtype == torch.uint8
    assert data.x_train.shape[1:] == (3, 32, 32)
    assert len(data.x_train) == 4660 and len(data.x_test) == 846
    assert data.source.endswith(".npz")


def test_downscale_and_subset(cifar_available):
    data = load_cifar10(image_size=16, train_size=1000, test_size=100, download=False)
    assert data.x_train.shape == (1000, 3, 16, 16)
    assert len(data.x_test) == 100


def test_no_data_and_no_network_gives_one_clear_sentence(tmp_path, monkeypatch):
    monkeypatch.delenv("RESNET_COURSE_DATA", raising=False)
    monkeypatch.setenv("RESNET_COURSE_CACHE", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", no_network)
    with pytest.raises(DataUnavailableError, match="could not be downloaded.*RESNET_COURSE_DATA"):
        load_cifar10()
    with pytest.raises(DataUnavailableError, match="not in"):
        load_cifar10(download=False)


def test_data_folder_without_data_says_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="neither an .npz"):
        load_cifar10()


def test_npz_with_pickled_objects_is_refused(tmp_path, monkeypatch):
    objects = np.array([{"not": "an image"}], dtype=object)
    np.savez(tmp_path / "bad.npz", x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    with pytest.raises(
        DataUnavailableError, match="never unpickles"
    ) as error:  # DataUnavailableError is a RuntimeError
        load_cifar10()
    assert "allow_pickle" not in str(error.value)  # no advice to turn the protection off


def test_cifar_batch_files_are_read_without_running_code(tmp_path, monkeypatch):
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    good = {"data": np.zeros((2, 3072), dtype=np.uint8), "labels": [1, 2]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(good))
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    data = load_cifar10()
    assert data.x_train.shape == (10, 3, 32, 32) and data.y_test.tolist() == [1, 2]

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Exploit(), "labels": []}))
    with pytest.raises(DataUnavailableError, match="refusing to load builtins.print"):
        load_cifar10()


def test_pack_subset_round_trips(cifar_available, tmp_path, monkeypatch):
    data = load_cifar10(download=False)
    path = pack_subset(data, tmp_path / "class.npz", train_per_class=5, test_per_class=2)
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    packed = load_cifar10()
    assert len(packed.x_train) == 50 and len(packed.x_test) == 20
    assert torch.bincount(packed.y_train).tolist() == [5] * 10
    with np.load(path, allow_pickle=False) as archive:
        assert archive["x_train"].shape == (50, 32, 32, 3) and archive["x_train"].dtype == np.uint8


def test_random_crop_flip_is_a_shifted_window_of_the_padded_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).reshape(2, 3, 8, 8)
    out = random_crop_flip(images, padding=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, r : r + 8, c : c + 8] for r in range(5) for c in range(5)]
        windows += [w.flip(-1) for w in windows]
        assert any(torch.equal(out[i], w) for w in windows)


def test_batches_cover_the_epoch_and_normalise():
    data = make_spirals(100)
    seen = sum(
        len(y) for _, y in data.train_batches(32, generator=torch.Generator().manual_seed(0))
    )
    assert seen == len(data.x_train) // 32 * 32


@pytest.mark.parametrize("size", [32, 16, 8])
def test_the_cpu_crop_picks_exactly_the_pixels_of_the_gpu_gather(size):
    import torch.nn.functional as F

    from resnet_course.data import _crop_by_gather, _crop_by_slices

    images = torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8)
    padding = max(1, round(4 * size / 32))
    padded = F.pad(images, (padding,) * 4)
    generator = torch.Generator().manual_seed(7)
    offsets = torch.randint(0, 2 * padding + 1, (2, 64), generator=generator)
    flips = torch.rand(64, generator=generator) < 0.5
    assert torch.equal(
        _crop_by_slices(padded, offsets, flips, (size, size)),
        _crop_by_gather(padded, offsets, flips, (size, size)),
    )


@pytest.mark.parametrize(
    "kwargs, name, value",
    [
        (dict(train_size=-3), "train_size", "-3"),
        (dict(train_size=0), "train_size", "0"),
        (dict(test_size=-1), "test_size", "-1"),
        (dict(test_size=0), "test_size", "0"),
        (dict(train_size=2.5), "train_size", "2.5"),
        (dict(train_size=True), "train_size", "True"),
        (dict(image_size=0), "image_size", "0"),
        (dict(image_size=-16), "image_size", "-16"),
    ],
)
def test_a_size_that_is_not_a_positive_whole_number_is_refused_in_one_sentence(
    cifar_available, kwargs, name, value
):
    # A negative train_size once sliced silently: train_size=-3 loaded all but 3 of the images.
    with pytest.raises(ValueError, match=rf"^{name} must be .*got {value}\.$") as error:
        load_cifar10(download=False, **kwargs)
    assert str(error.value).count(". ") == 0  # one sentence


def test_a_subset_of_no_or_negative_examples_is_refused():
    data = make_spirals(50)
    for bad in (0, -3):
        with pytest.raises(ValueError, match=rf"train must be a positive whole number.*got {bad}"):
            data.subset(train=bad)
        with pytest.raises(ValueError, match=rf"test must be a positive whole number.*got {bad}"):
            data.subset(test=bad)
    assert len(data.subset(train=10, test=None).x_train) == 10  # None keeps a split whole


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_per_class=0), "n_per_class must be a positive whole number"),
        (dict(n_per_class=-5), "n_per_class must be a positive whole number"),
        (dict(classes=0), "classes must be a positive whole number"),
        (dict(test_fraction=0.0), "test_fraction must be between 0 and 1"),
        (dict(test_fraction=1.0), "test_fraction must be between 0 and 1"),
        (dict(test_fraction=-0.2), "test_fraction must be between 0 and 1"),
        (dict(n_per_class=1, test_fraction=0.2), "no test points"),
    ],
)
def test_spirals_of_no_points_or_no_test_split_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_spirals(**kwargs)


def test_pack_subset_of_no_images_per_class_is_refused(tmp_path):
    from resnet_course.data import TensorData

    images = torch.zeros(20, 3, 32, 32, dtype=torch.uint8)
    data = TensorData(
        images,
        torch.arange(20) % 10,
        images,
        torch.arange(20) % 10,
        classes=tuple("abcdefghij"),
        name="tiny",
    )
    for bad in (0, -1):
        with pytest.raises(ValueError, match="train_per_class must be a positive whole number"):
            pack_subset(data, tmp_path / "x.npz", train_per_class=bad, test_per_class=1)
        with pytest.raises(ValueError, match="test_per_class must be a positive whole number"):
            pack_subset(data, tmp_path / "x.npz", train_per_class=1, test_per_class=bad)


def test_the_course_data_class_is_not_named_like_torchs_dataset():
    # tools/bench/throughput.py uses both side by side: torch.utils.data.Dataset and the course's own.
    import resnet_course
    import resnet_course.data as data_module

    assert not hasattr(data_module, "Dataset") and not hasattr(resnet_course, "Dataset")
    assert resnet_course.TensorData is data_module.TensorData
    spirals = make_spirals(10)
    assert isinstance(spirals, data_module.TensorData)
    assert repr(spirals).startswith("TensorData('spirals': 16 train / 4 test")
