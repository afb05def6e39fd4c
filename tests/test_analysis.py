import torch

from resnet_course.analysis import activation_norms, gradient_norms, input_gradient_norms
from resnet_course.models import MLP, cifar_resnet


def test_gradient_norms_match_autograd_and_leave_grads_alone():
    torch.manual_seed(0)
    model = MLP(5, 8)
    x, y = torch.randn(16, 2), torch.randint(0, 2, (16,))
    norms = gradient_norms(model, x, y)
    assert list(norms) == ["stem.0", "layers.0.linear", "layers.1.linear", "layers.2.linear", "head"]
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
