"""Shared test set-up: the offline CIFAR-10 slice and the book's preset (cpu)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests read CIFAR-10 from the shared offline slice (never downloaded) and train at the book's preset, cpu.
if "RESNET_COURSE_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["RESNET_COURSE_DATA"] = str(SHARED_DATA)
os.environ.setdefault("RESNET_COURSE_PRESET", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def cifar_available():
    from resnet_course.data import DataUnavailableError, load_cifar10

    try:
        return load_cifar10(image_size=16, train_size=512, test_size=256, download=False)
    except DataUnavailableError as error:
        pytest.skip(f"no offline CIFAR-10: {error}")


def _torch_threads(count: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny networks on a shared CPU, where threads wait on each other."""
    yield from _torch_threads(1)


@pytest.fixture
def two_threads():
    """Two torch threads for the test, so that code which picks one is told apart on any machine."""
    yield from _torch_threads(2)
