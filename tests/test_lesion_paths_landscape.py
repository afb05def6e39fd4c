"""The lesion study, path gradients, loss-landscape slices and activation memory of resnet_course.analysis."""

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_course.analysis import (
    blocks_deleted,
    evaluate_accuracy,
    filter_normalized_direction,
    lesion_study,
    loss_slice,
    path_gradient,
    path_gradient_norms,
    path_length_counts,
    random_lesions,
    saved_activation_bytes,
)
from resnet_course.blocks import ZeroPadShortcut
from resnet_course.data import TensorData
from resnet_course.models import cifar_resnet


def _trained_looking(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and scales, so a deleted branch really changes the output."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.normal_(0, 0.1, generator=generator)
    return model.eval()


def _images(n=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=generator), torch.randint(
        0, 10, (n,), generator=generator
    )


@pytest.mark.parametrize(
    "block, name, stand_in",
    [
        ("basic", "layer1.1", nn.Identity()),
        (
            "basic",
            "layer2.0",
            ZeroPadShortcut(4, 8, 2),
        ),  # option A: the shortcut subsamples and pads
        ("plain", "layer1.1", nn.Identity()),
        ("plain", "layer3.0", ZeroPadShortcut(8, 16, 2)),
    ],
)
def test_a_deleted_block_computes_its_shortcut_and_comes_back_afterwards(block, name, stand_in):
    torch.manual_seed(0)
    model = _trained_looking(cifar_resnet(20, block=block, width=4))
    x, _ = _images()
    whole = model(x)
    # The oracle: the same network with the block swapped for what its deletion should leave.
    expected_model = copy.deepcopy(model)
    stage, index = name.split(".")
    getattr(expected_model, stage)[int(index)] = stand_in
    with blocks_deleted(model, [name]):
        deleted = model(x)
    assert torch.allclose(deleted, expected_model(x), atol=1e-5)
    assert not torch.allclose(deleted, whole, atol=1e-3)
    assert torch.equal(model(x), whole)


def test_blocks_deleted_names_the_blocks_it_knows():
    with pytest.raises(ValueError, match="layer1.0"):
        with blocks_deleted(cifar_resnet(20, width=4), ["layer9.9"]):
            pass


def _tiny_cifar(n_test=64) -> TensorData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_test, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n_test,), generator=generator)
    return TensorData(
        images,
        labels,
        images,
        labels,
        classes=tuple("abcdefghij"),
        name="tiny",
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
    )


def test_lesion_study_deletes_every_block_once():
    torch.manual_seed(0)
    model = _trained_looking(cifar_resnet(20, width=4))
    data = _tiny_cifar()
    study = lesion_study(model, data)
    assert list(study.deleted) == [name for name, _ in model.named_blocks()]
    assert study.downsampling == ["layer2.0", "layer3.0"]
    assert study.baseline == evaluate_accuracy(model, data)
    with blocks_deleted(model, ["layer3.2"]):
        assert study.deleted["layer3.2"] == evaluate_accuracy(model, data)
    lesions = random_lesions(model, data, [1, 3], trials=2)
    assert [len(v) for v in lesions.values()] == [2, 2]
    with pytest.raises(ValueError, match="only 7"):
        random_lesions(model, data, [8])


def test_path_counts_are_binomial():
    assert path_length_counts(4) == [1, 4, 6, 4, 1]
    assert sum(path_length_counts(54)) == 2**54
    with pytest.raises(ValueError):
        path_length_counts(-1)


def test_path_gradients_add_up_to_the_whole_gradient():
    # Depth 8 = 6n+2 with n = 1: three blocks, so 2**3 = 8 sets of branches to go through.
    torch.manual_seed(0)
    model = _trained_looking(cifar_resnet(8, width=4))
    x, y = _images(8)
    leaf = {}

    def make_leaf(_module, args):
        leaf["x"] = args[0].detach().requires_grad_()
        return (leaf["x"],)

    handle = model.layer1[0].register_forward_pre_hook(make_leaf)
    loss = F.cross_entropy(model(x), y)
    handle.remove()
    (whole,) = torch.autograd.grad(loss, leaf["x"])
    parts = [
        path_gradient(model, x, y, set(chosen))
        for k in range(4)
        for chosen in itertools.combinations(range(3), k)
    ]
    assert len(parts) == 8
    assert torch.allclose(sum(parts), whole, atol=1e-6)
    assert all(part.norm() > 0 for part in parts)
    assert not torch.allclose(parts[0], whole, atol=1e-4)


def test_path_gradient_norms_cover_every_length_and_refuse_plain_blocks():
    torch.manual_seed(0)
    model = _trained_looking(cifar_resnet(20, width=4))
    x, y = _images(8)
    norms = path_gradient_norms(model, x, y, samples=2)
    assert list(norms) == list(range(10)) and all(v > 0 for v in norms.values())
    with pytest.raises(ValueError, match="PlainBlock"):
        path_gradient_norms(cifar_resnet(20, block="plain", width=4), x, y)


def test_filter_normalized_direction_matches_each_filter_norm():
    torch.manual_seed(0)
    model = cifar_resnet(20, width=4)
    direction = filter_normalized_direction(model, generator=torch.Generator().manual_seed(0))
    weight = model.layer2[0].conv1.weight
    d = direction["layer2.0.conv1.weight"]
    assert torch.allclose(d.flatten(1).norm(dim=1), weight.flatten(1).norm(dim=1), rtol=1e-4)
    assert not torch.allclose(d, weight)
    assert (
        torch.count_nonzero(direction["layer2.0.bn1.weight"]) == 0
        and torch.count_nonzero(direction["fc.bias"]) == 0
    )


def test_loss_slice_matches_moved_weights_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = _trained_looking(cifar_resnet(8, width=4)).train()
    x, y = _images(8)
    before = copy.deepcopy(model.state_dict())
    d1 = filter_normalized_direction(model, generator=torch.Generator().manual_seed(1))
    d2 = filter_normalized_direction(model, generator=torch.Generator().manual_seed(2))
    surface = loss_slice(model, x, y, [d1, d2], [[-1.0, 0.0, 0.5], [0.0, 1.0]])
    assert surface.shape == (2, 3)
    moved = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, p in moved.named_parameters():
            p.add_(0.5 * d1[name] + 1.0 * d2[name])
        expected = F.cross_entropy(moved(x), y).item()
    assert surface[1, 2].item() == pytest.approx(expected, rel=1e-5)
    model.eval()
    with torch.no_grad():
        assert surface[0, 1].item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-5)
    line = loss_slice(model, x, y, [d1], [[0.0, 0.5]])
    assert line.shape == (2,) and line[0].item() == pytest.approx(surface[0, 1].item(), rel=1e-6)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="one or two directions"):
        loss_slice(model, x, y, [d1, d2], [[0.0]])


def test_saved_activation_bytes_counts_what_backward_keeps():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    x = torch.randn(4, 16)
    # The first linear layer keeps its input; the ReLU keeps its output, which the second
    # linear layer keeps too (one tensor, counted once). Weights are not activations.
    assert saved_activation_bytes(model, x) == 4 * 16 * 4 + 4 * 32 * 4
    assert saved_activation_bytes(model, torch.randn(8, 16)) == 2 * (4 * 16 * 4 + 4 * 32 * 4)
