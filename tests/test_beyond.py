"""Transformer blocks, highway layers, dense blocks, width matching, and fit() on sequence targets."""

import pytest
import torch
from torch import nn

from resnet_course.analysis import count_parameters, saved_activation_bytes
from resnet_course.beyond import (
    DenseBlock,
    HighwayLayer,
    HighwayMLP,
    PreNormBlock,
    TinyTransformer,
    cifar_parameter_count,
    make_sequence_task,
    matching_width,
    position_similarity,
)
from resnet_course.blocks import PreActBlock
from resnet_course.models import cifar_resnet, make_stage
from resnet_course.train import fit


def test_sequence_tasks_have_the_right_targets():
    data = make_sequence_task("reverse", length=5, vocab=7, train_size=20, test_size=10)
    assert data.x_train.shape == (20, 5) and torch.equal(data.y_train, data.x_train.flip(1))
    sorted_data = make_sequence_task("sort", length=6, train_size=8, test_size=2)
    assert torch.equal(sorted_data.y_test, sorted_data.x_test.sort(1).values)
    assert int(data.x_train.max()) < 7 and data.num_classes == 7
    with pytest.raises(ValueError, match="copy, reverse, sort"):
        make_sequence_task("shuffle")


def test_pre_norm_block_adds_its_sublayers_only_when_residual():
    torch.manual_seed(0)
    block = PreNormBlock(8, 2).eval()
    x = torch.randn(3, 5, 8)
    h = block.norm1(x)
    after_attention = x + block.attn(h, h, h)[0]
    expected = after_attention + block.mlp(block.norm2(after_attention))
    assert torch.allclose(block(x), expected, atol=1e-6)
    block.residual = False
    attended = block.attn(h, h, h)[0]
    assert torch.allclose(block(x), block.mlp(block.norm2(attended)), atol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        PreNormBlock(10, 3)


def test_transformer_trains_with_fit_and_reports_accuracy_per_position():
    torch.manual_seed(0)
    data = make_sequence_task("copy", length=4, vocab=5, train_size=256, test_size=64)
    model = TinyTransformer(5, 4, dim=16, depth=1, heads=2)
    assert model(data.x_test).shape == (64, 5, 4)
    history = fit(model, data, epochs=3, lr=3e-3, optimizer="adam", batch_size=64, progress=False)
    model.eval()
    with torch.no_grad():
        per_position = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert history.test_acc[-1] == pytest.approx(per_position)
    assert all(0.0 <= a <= 1.0 for a in history.train_acc)
    with pytest.raises(ValueError, match="length 4"):
        model(torch.zeros(2, 6, dtype=torch.long))


def test_highway_gate_chooses_between_carrying_and_transforming():
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    carry = HighwayLayer(6, gate_bias=-50.0)
    nn.init.zeros_(carry.gate.weight)
    assert torch.allclose(carry(x), x, atol=1e-6) and carry.last_gate < 1e-6
    transform = HighwayLayer(6, gate_bias=50.0)
    nn.init.zeros_(transform.gate.weight)
    assert torch.allclose(transform(x), torch.relu(transform.transform(x)), atol=1e-6)
    model = HighwayMLP(6, 8)
    model(torch.randn(5, 2))
    assert len(model.gate_means()) == 4 and all(
        0 < g < 0.5 for g in model.gate_means()
    )  # bias -2: mostly carry


def test_dense_block_concatenates_and_grows_quadratically():
    block = DenseBlock(6, 4, 3)
    assert block(torch.randn(2, 6, 8, 8)).shape == (2, 6 + 3 * 4, 8, 8) and block.out_channels == 18
    assert [layer.conv.in_channels for layer in block] == [6, 10, 14]
    # Each layer: BN (2 per input channel) and a 3x3 conv from its inputs to 4 channels.
    assert count_parameters(block) == sum(2 * c + 9 * c * 4 for c in (6, 10, 14))
    x = torch.randn(2, 8, 8, 8)
    dense = [saved_activation_bytes(DenseBlock(8, 8, layers), x) for layers in (4, 8)]
    residual = [
        saved_activation_bytes(make_stage(PreActBlock, 8, 8, layers // 2, 1)[0], x)
        for layers in (4, 8)
    ]
    assert dense[1] > 2.5 * dense[0]  # concatenation: what is kept grows faster than the depth
    assert residual[1] < 2.1 * residual[0]  # addition: it grows with the depth
    with pytest.raises(ValueError, match="at least one layer"):
        DenseBlock(4, 4, 0)


def test_matching_width_finds_equal_parameter_networks():
    for depth, width, block in ((20, 16, "basic"), (56, 11, "plain"), (29, 5, "bottleneck")):
        assert cifar_parameter_count(depth, width, block=block) == count_parameters(
            cifar_resnet(depth, width=width, block=block)
        )
    assert matching_width(20, cifar_parameter_count(20, 16)) == 16
    target = cifar_parameter_count(110, 16)
    width = matching_width(20, target)
    # The count grows with the width, so the closest width beats both its neighbours.
    gaps = {w: abs(cifar_parameter_count(20, w) - target) for w in (width - 1, width, width + 1)}
    assert gaps[width] <= min(gaps.values()) and width > 16
    with pytest.raises(ValueError, match="width 1"):
        matching_width(110, 10)


def test_position_similarity_is_one_when_every_position_holds_the_same_vector():
    torch.manual_seed(0)
    data = make_sequence_task("sort", length=6, vocab=8, train_size=16, test_size=4)
    model = TinyTransformer(8, 6, dim=16, depth=2, heads=2)
    with_shortcuts = position_similarity(model, data.x_train)
    assert len(with_shortcuts) == 2 and all(-1 <= v < 0.99 for v in with_shortcuts)
    for block in model.blocks:  # an MLP that ignores its input outputs the same vector everywhere
        block.residual = False
        torch.nn.init.zeros_(block.mlp[2].weight)
    assert position_similarity(model, data.x_train) == pytest.approx([1.0, 1.0], abs=1e-5)


@pytest.mark.parametrize("sizes", [dict(train_size=-1), dict(test_size=0), dict(train_size=0)])
def test_a_sequence_task_of_no_examples_is_refused(sizes):
    name = next(iter(sizes))
    with pytest.raises(ValueError, match=f"{name} must be a positive whole number"):
        make_sequence_task("copy", **sizes)
