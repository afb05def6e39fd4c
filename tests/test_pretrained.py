"""Loading torchvision's ImageNet weights into the course's ResNet-50, online, cached and offline."""

import hashlib
import urllib.error

import pytest
import torch
import torchvision

import resnet_course.pretrained as pretrained
from resnet_course.models import create_model


@pytest.fixture(scope="module")
def torchvision_resnet50():
    torch.manual_seed(0)
    return torchvision.models.resnet50().eval()


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and no network: every download fails as it does offline."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(url, destination, *, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(pretrained, "download", no_network)
    return tmp_path / "hub" / "checkpoints"


def test_offline_falls_back_to_random_weights_and_says_so(empty_hub):
    loaded = pretrained.load_resnet50()
    assert loaded.pretrained is False and loaded.weights is None
    assert "RANDOM weights" in loaded.message and "URLError" in loaded.message
    assert loaded.message.count(".") == 1  # one sentence
    with pytest.raises(RuntimeError, match="could not be loaded"):
        pretrained.load_resnet50(pretrained=True)
    assert "as asked" in pretrained.load_resnet50(pretrained=False).message
    with pytest.raises(ValueError, match="'auto', True or False"):
        pretrained.load_resnet50(pretrained="yes")


def test_cached_torchvision_weights_load_strictly_and_give_torchvisions_outputs(
    empty_hub, torchvision_resnet50
):
    empty_hub.mkdir(parents=True)
    # torchvision's own constructor makes the state_dict; the file name is the one its V1 weights use.
    torch.save(torchvision_resnet50.state_dict(), empty_hub / "resnet50-0676ba61.pth")
    loaded = pretrained.load_resnet50()
    assert (
        loaded.pretrained
        and loaded.weights == "IMAGENET1K_V1"
        and "IMAGENET1K_V1" in loaded.message
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (loaded.model.eval()(x) - torchvision_resnet50(x)).abs().max() < 1e-5


def test_strict_load_refuses_a_state_dict_that_does_not_match(torchvision_resnet50):
    state = dict(torchvision_resnet50.state_dict())
    model = create_model("resnet50")
    model.load_state_dict(state, strict=True)
    state["fc.extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="fc.extra"):
        model.load_state_dict(state, strict=True)


def test_download_checks_the_hash_in_torchvisions_file_name(tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(b"not really weights")
    prefix = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    good = tmp_path / "hub" / f"resnet50-{prefix}.pth"
    pretrained.download(source.as_uri(), good, timeout=5)
    assert good.read_bytes() == b"not really weights"
    bad = tmp_path / "hub" / "resnet50-00000000.pth"
    with pytest.raises(OSError, match="corrupt"):
        pretrained.download(source.as_uri(), bad, timeout=5)
    assert sorted(p.name for p in bad.parent.iterdir()) == [good.name]  # nothing half-written left


def test_imagenet_inputs_resize_and_normalise():
    images = torch.full((2, 3, 16, 16), 255, dtype=torch.uint8)
    x = pretrained.imagenet_inputs(images, 32)
    assert x.shape == (2, 3, 32, 32)
    expected = [(1 - m) / s for m, s in zip(pretrained.IMAGENET_MEAN, pretrained.IMAGENET_STD)]
    assert torch.allclose(x[0, :, 5, 5], torch.tensor(expected), atol=1e-5)


def test_split_network_recomposes_to_the_whole():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    bottom = pretrained.stem_and_stages(model, "layer3")
    top = pretrained.head_after(model, "layer3", num_classes=5)
    top[-1].load_state_dict(model.fc.state_dict())
    with torch.no_grad():
        assert torch.allclose(top(bottom(x)), model(x), atol=1e-5)
    assert top[0] is model.layer4  # fine-tuning the top trains the model's own layer4
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    features = pretrained.extract_features(bottom, images, size=64, batch_size=2, progress=False)
    with torch.no_grad():
        assert torch.allclose(features, bottom(pretrained.imagenet_inputs(images, 64)), atol=1e-5)
        assert torch.allclose(
            pretrained.extract_features(top, features, progress=False), top(features), atol=1e-5
        )
    with pytest.raises(ValueError, match="size"):
        pretrained.extract_features(bottom, images)
    with pytest.raises(ValueError, match="layer1, layer2"):
        pretrained.stem_and_stages(model, "layer7")


def test_pca_2d_finds_the_direction_of_largest_spread():
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(200, 5, generator=generator) * torch.tensor([0.1, 5.0, 0.1, 1.0, 0.1])
    projected = pretrained.pca_2d(points)
    assert projected.shape == (200, 2)
    assert projected[:, 0].std().item() == pytest.approx(points[:, 1].std().item(), rel=0.02)
    assert projected[:, 1].std().item() == pytest.approx(points[:, 3].std().item(), rel=0.05)
