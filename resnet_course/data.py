"""Data: 2-D toys, CIFAR-10, and batching that keeps the whole set in one tensor.

CIFAR-10 is found, in this order:

1. in ``$RESNET_COURSE_DATA``: an ``.npz`` with ``x_train, y_train, x_test, y_test``
   (uint8 NHWC images, int labels), or torchvision's ``cifar-10-batches-py`` folder;
2. in the cache (``$RESNET_COURSE_CACHE``, else ``~/.cache/resnet_course``);
3. downloaded once into that cache through torchvision.

Files from a user's folder are never unpickled with the general unpickler: the
``.npz`` is read with ``allow_pickle=False`` and CIFAR's own batch files with an
unpickler that only rebuilds NumPy arrays, lists, dicts and strings.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# Per-channel mean and standard deviation of CIFAR-10's training images, in [0, 1] units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataUnavailableError(RuntimeError):
    """The data set is neither on disk nor downloadable; the message says what to do."""


def check_size(name: str, value, *, what: str = "examples", optional: bool = False) -> None:
    """Refuse, in one sentence, a size that is not a positive whole number (``None`` too, unless ``optional``).

    Without it a negative size slices from the end: ``train_size=-3`` kept all but 3 images.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        everything = " (or None for all of them)" if optional else ""
        raise ValueError(
            f"{name} must be a positive whole number of {what}{everything}, got {value!r}."
        )


@dataclass
class TensorData:
    """Train and test tensors, kept whole so batches are slices, not worker processes.

    Images are uint8 ``N x C x H x W`` (converted to normalised floats batch by
    batch on the training device); points are float32 ``N x 2``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    name: str
    source: str = ""
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    @property
    def is_image(self) -> bool:
        return self.x_train.dtype == torch.uint8

    @property
    def is_vectors(self) -> bool:
        """Whether each example is one vector of floats, as in the 2-D toys (spirals)."""
        return self.x_train.is_floating_point() and self.x_train.dim() == 2

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def description(self) -> str:
        """What the data is, without where it came from: records and run keys carry no machine path."""
        return (
            f"TensorData({self.name!r}: {len(self.x_train)} train / {len(self.x_test)} test, "
            f"inputs {self.input_shape}, {self.num_classes} classes)"
        )

    def __repr__(self) -> str:
        return f"{self.description[:-1]}, from {self.source or 'memory'})"

    def to(self, device: torch.device | str) -> "TensorData":
        """The same data set with its tensors on ``device`` (a no-op when already there)."""
        moved = {key: getattr(self, key).to(device, non_blocking=True) for key in NPZ_KEYS}
        return TensorData(
            **moved,
            classes=self.classes,
            name=self.name,
            source=self.source,
            mean=self.mean,
            std=self.std,
        )

    def subset(
        self, train: int | None = None, test: int | None = None, seed: int = 0
    ) -> "TensorData":
        """The first ``train``/``test`` examples after a seeded shuffle (class balance kept on average)."""
        check_size("train", train, optional=True)
        check_size("test", test, optional=True)
        generator = torch.Generator().manual_seed(seed)
        pieces = {}
        for split, count in (("train", train), ("test", test)):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if count is not None and count < len(x):
                keep = torch.randperm(len(x), generator=generator)[:count].to(x.device)
                x, y = x[keep], y[keep]
            pieces[f"x_{split}"], pieces[f"y_{split}"] = x, y
        return TensorData(
            **pieces,
            classes=self.classes,
            name=self.name,
            source=self.source,
            mean=self.mean,
            std=self.std,
        )

    def downscale(self, size: int) -> "TensorData":
        """Images shrunk to ``size x size`` by area averaging, done once, kept as uint8."""
        if not self.is_image or self.x_train.shape[-1] == size:
            return self

        def shrink(x: torch.Tensor) -> torch.Tensor:
            small = F.interpolate(x.float(), size=(size, size), mode="area")
            return small.round_().clamp_(0, 255).to(torch.uint8)

        return TensorData(
            shrink(self.x_train),
            self.y_train,
            shrink(self.x_test),
            self.y_test,
            classes=self.classes,
            name=f"{self.name}@{size}px",
            source=self.source,
            mean=self.mean,
            std=self.std,
        )

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images to normalised floats; points pass through."""
        if x.dtype != torch.uint8:
            return x
        mean, std = to_device(torch.tensor([self.mean, self.std]) * 255, x.device).view(
            2, 1, -1, 1, 1
        )
        return (x.float() - mean) / std

    def train_batches(
        self,
        batch_size: int,
        *,
        augment: bool = True,
        generator: torch.Generator | None = None,
        drop_last: bool = True,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled epoch of ``(inputs, labels)``, augmented on whole batches where ``augment``.

        The last, short batch is dropped by default: a tiny final batch makes
        BatchNorm's statistics noisy and costs a step for little data.
        """
        n = len(self.x_train)
        order = to_device(torch.randperm(n, generator=generator), self.x_train.device)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            x, y = self.x_train[index], self.y_train[index]
            if augment and self.is_image:
                x = random_crop_flip(x, generator=generator)
            yield self.normalise(x), y

    def test_batches(self, batch_size: int = 1000) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.x_test), batch_size):
            yield (
                self.normalise(self.x_test[start : start + batch_size]),
                self.y_test[start : start + batch_size],
            )


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``, without making the host wait for the GPU's queued work.

    A copy from ordinary (pageable) host memory to a CUDA device synchronises the
    stream, every step; staged in pinned memory, the copy is queued like a kernel.
    """
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def random_crop_flip(
    images: torch.Tensor, *, padding: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The paper's augmentation on a whole batch: zero-pad, random crop back to size, random flip.

    ``padding`` defaults to 4 pixels at 32x32 and scales with the image size.
    Offsets are drawn on the CPU (so a seeded generator gives the same crops on
    any device). On the CPU each crop is one slice; on a GPU one gather builds them all.
    """
    batch = images.shape[0]
    if padding is None:
        padding = max(1, round(4 * images.shape[-1] / 32))
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    crop = _crop_by_slices if images.device.type == "cpu" else _crop_by_gather
    return crop(padded, offsets, flips, images.shape[-2:])


def _crop_by_slices(
    padded: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, size
) -> torch.Tensor:
    # On the CPU a slice per image is several times faster than a gather, whose four index
    # tensors are each as large as the batch.
    height, width = size
    crops = torch.stack(
        [
            padded[i, :, r : r + height, c : c + width]
            for i, (r, c) in enumerate(zip(offsets[0].tolist(), offsets[1].tolist()))
        ]
    )
    return torch.where(flips[:, None, None, None], crops.flip(3), crops)


def _crop_by_gather(
    padded: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, size
) -> torch.Tensor:
    # On a GPU a Python loop would launch a kernel per image; one gather does them all, and
    # the offsets reach the device in one copy, without making the host wait.
    height, width = size
    device = padded.device
    row_offsets, col_offsets, flip = to_device(torch.cat([offsets, flips.long()[None]]), device)
    rows = (row_offsets[:, None] + torch.arange(height, device=device))[:, None, :, None]
    cols = col_offsets[:, None] + torch.arange(width, device=device)
    cols = torch.where(flip.bool()[:, None], cols.flip(1), cols)[
        :, None, None, :
    ]  # flipped: right to left
    batch_index = torch.arange(padded.shape[0], device=device)[:, None, None, None]
    channel_index = torch.arange(padded.shape[1], device=device)[None, :, None, None]
    return padded[batch_index, channel_index, rows, cols]


# --- 2-D toys ----------------------------------------------------------------------------------


def make_spirals(
    n_per_class: int = 500,
    *,
    classes: int = 2,
    turns: float = 1.5,
    noise: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> TensorData:
    """Interleaved spirals in the plane, one arm per class: a small, non-linear problem."""
    check_size("n_per_class", n_per_class, what="points")
    check_size("classes", classes, what="arms")
    if not (isinstance(test_fraction, numbers.Real) and 0 < test_fraction < 1):
        raise ValueError(
            f"test_fraction must be between 0 and 1 (the share of points kept for testing), "
            f"got {test_fraction!r}."
        )
    generator = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for label in range(classes):
        radius = torch.linspace(0.1, 1.0, n_per_class)
        angle = radius * turns * 2 * math.pi + label * 2 * math.pi / classes
        angle = angle + noise * torch.randn(n_per_class, generator=generator)
        xs.append(torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1))
        ys.append(torch.full((n_per_class,), label, dtype=torch.long))
    x, y = torch.cat(xs), torch.cat(ys)
    order = torch.randperm(len(x), generator=generator)
    x, y = x[order], y[order]
    n_test = int(len(x) * test_fraction)
    if n_test == 0:
        raise ValueError(
            f"{len(x)} points with test_fraction={test_fraction:g} leave no test points; "
            f"ask for more points per class or a larger test_fraction."
        )
    return TensorData(
        x[n_test:],
        y[n_test:],
        x[:n_test],
        y[:n_test],
        classes=tuple(f"arm {i}" for i in range(classes)),
        name="spirals",
        source="generated",
    )


# --- CIFAR-10 ----------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("RESNET_COURSE_CACHE") or Path.home() / ".cache" / "resnet_course")


def load_cifar10(
    *,
    image_size: int = 32,
    train_size: int | None = None,
    test_size: int | None = None,
    download: bool = True,
    seed: int = 0,
) -> TensorData:
    """CIFAR-10 as a :class:`TensorData`, from ``$RESNET_COURSE_DATA``, the cache, or a download.

    ``image_size=16`` shrinks the images once for fast CPU runs; ``train_size`` and
    ``test_size`` take seeded random subsets.
    """
    check_size("image_size", image_size, what="pixels a side")
    check_size("train_size", train_size, optional=True)
    check_size("test_size", test_size, optional=True)
    arrays, source = _find_cifar10(download)
    data = TensorData(
        *(_to_tensor(arrays[key]) for key in NPZ_KEYS),
        classes=CIFAR10_CLASSES,
        name="cifar10",
        source=source,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
    )
    return data.subset(train_size, test_size, seed=seed).downscale(image_size)


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 4:  # NHWC uint8 images -> NCHW, contiguous for fast slicing
        return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
    return torch.from_numpy(np.asarray(array, dtype=np.int64))


def _find_cifar10(download: bool) -> tuple[dict[str, np.ndarray], str]:
    user_dir = os.environ.get("RESNET_COURSE_DATA")
    if user_dir:
        found = _read_folder(Path(user_dir).expanduser())
        if found is not None:
            return found
        where = (
            ""
            if Path(user_dir).is_absolute()
            else f" (read from {Path.cwd()}, where this kernel runs)"
        )
        raise DataUnavailableError(
            f"RESNET_COURSE_DATA is set to {user_dir}{where}, but that folder holds neither an .npz with "
            f"x_train, y_train, x_test, y_test nor torchvision's cifar-10-batches-py folder; point it "
            f"at one of those, or unset it to download CIFAR-10."
        )
    found = _read_folder(cache_dir())
    if found is not None:
        return found
    if not download:
        raise DataUnavailableError(
            f"CIFAR-10 is not in {cache_dir()}; call load_cifar10(download=True) with a network connection, "
            f"or set RESNET_COURSE_DATA to a folder holding cifar-10-batches-py or a .npz made by pack_subset."
        )
    _download_cifar10(cache_dir())
    found = _read_folder(cache_dir())
    assert found is not None, "the download finished but left no readable CIFAR-10 behind"
    return found


def _read_folder(folder: Path) -> tuple[dict[str, np.ndarray], str] | None:
    if folder.is_file() and folder.suffix == ".npz":
        return read_npz(folder), str(folder)
    if not folder.is_dir():
        return None
    batches = folder / "cifar-10-batches-py"
    if (batches / "data_batch_1").exists():
        return read_cifar_batches(batches), str(batches)
    npz_files = sorted(folder.glob("*.npz"))
    if npz_files:
        return read_npz(npz_files[0]), str(npz_files[0])
    return None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an offline ``.npz``, checked; a damaged or wrong file gets one sentence naming it."""
    if not zipfile.is_zipfile(
        path
    ):  # np.load would otherwise try it as a pickle (and refuse with advice to allow that)
        raise DataUnavailableError(
            f"{path} could not be read as an .npz archive (it is not a zip file); it may be truncated or not an .npz "
            f"at all. Download or copy it again."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive]
            if missing:
                raise DataUnavailableError(
                    f"{path} lacks the array(s) {', '.join(missing)}; it needs x_train, y_train, x_test, y_test."
                )
            arrays = {key: archive[key] for key in NPZ_KEYS}
    except DataUnavailableError:
        raise
    except (
        ValueError
    ):  # numpy refuses object arrays (its advice, allow_pickle=True, is not taken here)
        raise DataUnavailableError(
            f"{path} holds pickled objects, not plain arrays; the course never unpickles a data file, so "
            f"write it again with numpy.savez from uint8 and integer arrays (or with resnet_course.data.pack_subset)."
        ) from None
    except (
        Exception
    ) as error:  # zipfile.BadZipFile, EOFError, OSError: truncated or not an .npz at all
        raise DataUnavailableError(
            f"{path} could not be read as an .npz archive ({type(error).__name__}: {error}); it may be truncated "
            f"or not an .npz at all. Download or copy it again."
        ) from None
    check_arrays(arrays, str(path))
    return arrays


def check_arrays(arrays: dict[str, np.ndarray], source: str) -> None:
    """Refuse, in one sentence naming ``source``, images and labels the course could not train on."""
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise DataUnavailableError(
                f"{source}: x_{split} should be uint8 images of shape N x 32 x 32 x 3, got {images.dtype} {images.shape}."
            )
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataUnavailableError(
                f"{source}: y_{split} should be a 1-D array of integer class labels, got {labels.dtype} {labels.shape}."
            )
        if len(labels) != len(images):
            raise DataUnavailableError(
                f"{source}: x_{split} holds {len(images)} images but y_{split} {len(labels)} labels; they must match one to one."
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
            raise DataUnavailableError(
                f"{source}: y_{split} holds labels from {labels.min()} to {labels.max()}; CIFAR-10's are 0 to {len(CIFAR10_CLASSES) - 1}."
            )


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays and plain containers, and refuses every other class.

    CIFAR's python batches are pickles; this keeps a crafted file in a user's folder
    from running code (see the "Restricting Globals" recipe in the pickle docs).
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        # Protocol 5 (Python 3.14's default) stores an array's bytes in a buffer and rebuilds it with
        # _frombuffer(buffer, dtype, shape, order): a view of bytes, no code of the file's choosing.
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        # Protocol 2 written by Python 3 stores bytes as _codecs.encode(text, 'latin1'): text to bytes, nothing more.
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        entry = _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        images = (
            np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        )
        labels = np.asarray(entry["labels"])
    except pickle.UnpicklingError as error:
        raise DataUnavailableError(
            f"{path} was refused: {error}; a CIFAR-10 batch file holds only arrays and lists."
        ) from None
    except Exception as error:  # truncated, not a pickle, or a pickle of something else
        raise DataUnavailableError(
            f"{path} could not be read as a CIFAR-10 batch file ({type(error).__name__}: {error}); download it again."
        ) from None
    return images, labels


def read_cifar_batches(folder: Path) -> dict[str, np.ndarray]:
    train = [_load_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _load_batch(folder / "test_batch")
    arrays = {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }
    check_arrays(arrays, str(folder))
    return arrays


def _download_cifar10(root: Path) -> None:
    from torchvision.datasets import CIFAR10  # only needed for the download

    root.mkdir(parents=True, exist_ok=True)
    try:
        # download_and_extract_archive checks the archive's MD5 before unpacking it.
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(
            CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
        )
    except Exception as error:  # URLError, socket errors, HTTP errors: all mean "no data"
        raise DataUnavailableError(
            f"CIFAR-10 could not be downloaded into {root} ({type(error).__name__}: {error}); connect to the "
            f"internet and try again, or set RESNET_COURSE_DATA to a folder holding cifar-10-batches-py or a "
            f".npz made by resnet_course.data.pack_subset."
        ) from None


def pack_subset(
    data: TensorData,
    path: str | os.PathLike,
    *,
    train_per_class: int,
    test_per_class: int,
    seed: int = 0,
) -> Path:
    """Write a class-balanced subset as an offline ``.npz`` (uint8 NHWC, the four arrays).

    An instructor packs one once and hands it to a class; ``RESNET_COURSE_DATA``
    pointing at its folder then replaces the download.
    """
    if not data.is_image:
        raise ValueError("pack_subset writes image data sets; this one holds points.")
    check_size("train_per_class", train_per_class, what="images")
    check_size("test_per_class", test_per_class, what="images")
    generator = torch.Generator().manual_seed(seed)
    arrays = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        x, y = getattr(data, f"x_{split}").cpu(), getattr(data, f"y_{split}").cpu()
        keep = []
        for label in range(data.num_classes):
            where = torch.nonzero(y == label).flatten()
            if len(where) < per_class:
                raise ValueError(
                    f"class {data.classes[label]!r} has only {len(where)} {split} images, fewer than {per_class}."
                )
            keep.append(where[torch.randperm(len(where), generator=generator)[:per_class]])
        index = torch.cat(keep).sort().values
        arrays[f"x_{split}"] = x[index].permute(0, 2, 3, 1).contiguous().numpy()
        arrays[f"y_{split}"] = y[index].numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path
