import pytest
import torch
from torch import nn

from resnet_course.analysis import (
    activation_norms,
    count_macs,
    eval_mode,
    gradient_norms,
    hooks,
    input_gradient_norms,
)
from resnet_course.models import MLP, cifar_resnet


def test_gradient_norms_match_autograd_and_leave_grads_alone():
    torch.manual_seed(0)
    model = MLP(5, 8)
    x, y = torch.randn(16, 2), torch.randint(0, 2, (16,))
    norms = gradient_norms(model, x, y)
    assert list(norms) == [
        "stem.0",
        "layers.0.linear",
        "layers.1.linear",
        "layers.2.linear",
        "head",
    ]
    assert all(p.grad is None for p in model.parameters())
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert abs(norms["head"] - model.head.weight.grad.norm().item()) < 1e-6


def test_deep_plain_stack_loses_gradient_that_a_residual_stack_keeps():
    torch.manual_seed(0)
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    plain = gradient_norms(MLP(40, 16, activation="tanh"), x, y)
    torch.manual_seed(0)
    residual = gradient_norms(MLP(40, 16, residual=True, activation="tanh"), x, y)
    assert plain["stem.0"] < 0.1 * residual["stem.0"]


def test_block_signal_measurements_have_one_value_per_block():
    model = cifar_resnet(20, width=4)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    assert len(activation_norms(model, x)) == 9
    grads = input_gradient_norms(model, x, y)
    assert len(grads) == 9 and all(v > 0 for v in grads.values())


def test_count_layers_counts_the_main_path_as_the_papers_do():
    from resnet_course.analysis import count_layers
    from resnet_course.models import create_model

    # Option C puts a projection on every block; projections add parameters, not depth.
    assert count_layers(cifar_resnet(20, width=4, shortcut="C")) == 20
    assert count_layers(cifar_resnet(29, block="bottleneck", width=4)) == 29
    assert count_layers(create_model("resnet18")) == 18
    assert count_layers(create_model("resnet50")) == 50


def test_eval_mode_gives_every_submodule_its_own_mode_back():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a frozen part, as in a fine-tuned network
    with eval_mode(model):
        assert not any(module.training for module in model.modules())
    assert [module.training for module in model.modules()] == [True, True, False, True]
    with pytest.raises(RuntimeError, match="inside"):
        with eval_mode(model):
            raise RuntimeError("inside")
    assert [module.training for module in model.modules()] == [True, True, False, True]


def test_count_macs_leaves_a_frozen_part_frozen():
    model = cifar_resnet(8, width=4)
    model.train()
    model.layer1.eval()
    count_macs(model, (1, 3, 8, 8))
    assert model.training and model.layer2[0].bn1.training
    assert not model.layer1.training and not model.layer1[0].bn1.training


def test_hooks_are_removed_even_when_the_body_raises():
    layer = nn.Linear(2, 2)
    calls = []
    with pytest.raises(RuntimeError, match="inside"):
        with hooks() as handles:
            handles.append(layer.register_forward_hook(lambda *_: calls.append("forward")))
            handles.append(layer.register_forward_pre_hook(lambda *_: calls.append("pre")))
            layer(torch.zeros(1, 2))
            raise RuntimeError("inside")
    assert calls == ["pre", "forward"]
    layer(torch.zeros(1, 2))
    assert calls == ["pre", "forward"] and not layer._forward_hooks and not layer._forward_pre_hooks


def test_the_gradient_spread_leaves_the_classifier_out():
    from resnet_course.analysis import gradient_spread

    assert gradient_spread([8.0, 4.0, 2.0, 100.0]) == 4.0  # first over the last before the output
    with pytest.raises(ValueError, match="two layers before the classifier"):
        gradient_spread([1.0, 2.0])
