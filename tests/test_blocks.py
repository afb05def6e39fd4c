import re

import pytest
import torch

from resnet_course.blocks import (
    BasicBlock,
    Bottleneck,
    PlainBlock,
    PreActBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    residual_add,
)
from resnet_course.models import cifar_resnet, create_model

ALL_BLOCKS = [PlainBlock, BasicBlock, Bottleneck, PreActBlock, PreActBottleneck]
RESIDUAL_BLOCKS = [BasicBlock, Bottleneck, PreActBlock, PreActBottleneck]


@pytest.mark.parametrize("block", ALL_BLOCKS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_output_shape(block, stride, shortcut):
    in_channels, planes = 8, 16
    layer = (
        block(in_channels, planes, stride)
        if block is PlainBlock
        else block(in_channels, planes, stride, shortcut=shortcut)
    )
    y = layer(torch.randn(2, in_channels, 8, 8))
    assert y.shape == (2, planes * block.expansion, 8 // stride, 8 // stride)


@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_option_a_has_no_shortcut_parameters(block):
    layer = block(16, 32, 2, shortcut="A")
    assert isinstance(layer.downsample, ZeroPadShortcut)
    assert list(layer.downsample.parameters()) == []
    with_b = block(16, 32, 2, shortcut="B")
    shortcut_params = sum(p.numel() for p in with_b.downsample.parameters())
    assert shortcut_params == 16 * 32 + 2 * 32  # 1x1 conv + BN gamma and beta
    assert (
        sum(p.numel() for p in with_b.parameters()) - sum(p.numel() for p in layer.parameters())
        == shortcut_params
    )


def test_option_a_pads_with_zeros_and_subsamples():
    x = torch.randn(1, 4, 6, 6)
    y = ZeroPadShortcut(4, 8, 2)(x)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 4:]) == 0


def test_option_b_projects_only_where_shape_changes_and_c_everywhere():
    assert BasicBlock(16, 16, 1, shortcut="B").downsample is None
    assert BasicBlock(16, 32, 2, shortcut="B").downsample is not None
    assert BasicBlock(16, 16, 1, shortcut="C").downsample is not None


@pytest.mark.parametrize("block", RESIDUAL_BLOCKS)
def test_zero_init_last_makes_the_block_an_identity(block):
    channels = 8 * block.expansion
    layer = block(channels, 8, 1)
    layer.zero_init_last()
    layer.eval()
    x = torch.randn(2, channels, 6, 6)
    expected = x if block.preact else torch.relu(x)
    torch.testing.assert_close(layer(x), expected)


def test_residual_block_input_gradient_contains_the_identity_term():
    # dL/dx = dL/dy (1 + dF/dx): with F's last BN at zero, dF/dx = 0 and the gradient passes unchanged.
    torch.manual_seed(0)
    block = PreActBlock(4, 4)
    block.zero_init_last()
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    upstream = torch.randn(2, 4, 5, 5)
    (block(x) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, upstream)

    # With a live branch, the residual gradient equals the plain branch's gradient plus the upstream gradient.
    block = BasicBlock(4, 4)
    block.eval()
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    y = block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))) + x)
    mask = (y > 0).float()
    grad_total = torch.autograd.grad((block(x) * upstream).sum(), x)[0]
    branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    grad_branch = torch.autograd.grad((branch * upstream * mask).sum(), x)[0]
    torch.testing.assert_close(grad_total, grad_branch + upstream * mask)


def mismatch_message(call) -> str:
    """The ValueError ``call`` raises, on one line (the explanation is wrapped for notebooks)."""
    with pytest.raises(ValueError) as error:
        call()
    return " ".join(str(error.value).split())


def test_mismatched_residual_add_names_both_shapes_and_the_fix():
    message = mismatch_message(
        lambda: residual_add(torch.zeros(2, 8, 4, 4), torch.zeros(2, 4, 8, 8))
    )
    assert re.search(r"\(2, 8, 4, 4\).*\(2, 4, 8, 8\).*projection", message)


def test_mismatch_message_is_in_short_lines_with_both_shapes_on_one():
    # "ValueError: " prefixes the first line; a notebook's traceback does not wrap long lines.
    with pytest.raises(ValueError) as error:
        residual_add(torch.zeros(1, 32, 16, 16), torch.zeros(1, 16, 32, 32))
    lines = str(error.value).splitlines()
    assert len(lines) >= 3 and all(len(line) <= 72 for line in lines)
    assert any("(1, 32, 16, 16)" in line and "(1, 16, 32, 32)" in line for line in lines)


def test_block_with_a_forgotten_projection_raises_a_clear_error():
    layer = BasicBlock(16, 32, 2, shortcut="B")
    layer.downsample = None  # the classic bug: no projection where the shape changes
    with pytest.raises(ValueError, match="projection"):
        layer(torch.randn(1, 16, 8, 8))


def test_projection_without_the_blocks_stride_names_the_missing_stride():
    # The stride-mismatch bug: a 1x1 projection fixes the channels but forgets to subsample.
    layer = BasicBlock(16, 32, 2, shortcut="B")
    layer.downsample = torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 1, bias=False), torch.nn.BatchNorm2d(32)
    )
    message = mismatch_message(lambda: layer(torch.randn(1, 16, 8, 8)))
    assert re.search(r"branch is 4x4 pixels, the shortcut 8x8.*stride 2", message)


@pytest.mark.parametrize(
    "branch, shortcut, expected",
    [
        # Channels and size both change: a strided projection, or option A.
        (
            (1, 32, 4, 4),
            (1, 16, 8, 8),
            r"32 channels at 4x4.*16 at 8x8.*projection with stride 2.*shortcut='A'",
        ),
        # Only channels grow: a projection or zero-padding.
        (
            (1, 32, 8, 8),
            (1, 16, 8, 8),
            r"32 channels, the shortcut 16.*projection \(shortcut='B' or 'C'\) or zero-padding",
        ),
        # Fewer channels: option A cannot drop channels, so it is not offered.
        (
            (1, 16, 8, 8),
            (1, 32, 8, 8),
            r"16 channels, the shortcut 32, so the shortcut needs a projection \(shortcut='B' or 'C'\)\.$",
        ),
        # An odd size (7 -> 4 with padding) still reads as stride 2.
        ((1, 8, 4, 4), (1, 8, 7, 7), r"stride 2 but the shortcut does not"),
        # The shortcut subsamples, the branch does not.
        ((1, 8, 8, 8), (1, 8, 4, 4), r"shortcut subsamples but the branch does not"),
        # Not images at all: no advice about channels.
        ((3,), (4,), r"needs two tensors of the same shape\.$"),
    ],
)
def test_shape_mismatch_message_gives_the_fix_for_each_mismatch(branch, shortcut, expected):
    message = mismatch_message(lambda: residual_add(torch.zeros(branch), torch.zeros(shortcut)))
    assert re.search(expected, message), message


def test_unknown_shortcut_option():
    with pytest.raises(ValueError, match="'A', 'B', 'C'"):
        BasicBlock(16, 16, shortcut="D")


def test_grouped_bottleneck_equals_split_transform_merge():
    # ResNeXt: one grouped 3x3 convolution == 4 separate paths whose outputs are concatenated.
    torch.manual_seed(0)
    block = Bottleneck(64, 16, groups=4, width_per_group=64).eval()
    x = torch.randn(2, 64, 6, 6)
    conv = block.conv2
    assert conv.groups == 4 and conv.in_channels == 64
    mid = block.relu(block.bn1(block.conv1(x)))
    per_group = conv.in_channels // 4
    paths = [
        torch.nn.functional.conv2d(
            mid[:, g * per_group : (g + 1) * per_group],
            conv.weight[g * per_group : (g + 1) * per_group],
            padding=1,
        )
        for g in range(4)
    ]
    torch.testing.assert_close(torch.cat(paths, 1), conv(mid), atol=1e-5, rtol=1e-5)


def test_blocks_refuse_options_they_cannot_honour():
    from resnet_course.models import cifar_resnet

    with pytest.raises(TypeError):
        PlainBlock(8, 8, 1, shortcut="B")  # a plain block has no shortcut to choose
    with pytest.raises(TypeError):
        BasicBlock(8, 8, 1, groups=4)  # no grouped convolution in a basic block
    with pytest.raises(TypeError):
        BasicBlock(8, 8, 1, shortcutt="A")  # a typo is an error, not silently ignored
    with pytest.raises(ValueError, match="no grouped convolution"):
        cifar_resnet(20, groups=4)
    with pytest.raises(ValueError, match="plain network has no shortcuts"):
        cifar_resnet(20, block="plain", shortcut="B")
    grouped = cifar_resnet(29, block="bottleneck", groups=4, width_per_group=32)
    assert any(m.groups == 4 for m in grouped.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("width", [0, -8, 2.5, "16", True])
def test_a_width_that_is_not_a_positive_whole_number_gets_one_sentence(width):
    from resnet_course.models import create_model

    with pytest.raises(ValueError, match="width must be a positive whole number"):
        create_model("resnet20", width=width)


@pytest.mark.parametrize("depth", ["20", 20.0])
def test_a_depth_that_is_not_an_integer_says_so(depth):
    from resnet_course.models import cifar_resnet

    with pytest.raises(ValueError, match="depth must be a whole number"):
        cifar_resnet(depth)


def _randomise_batch_norms(layer: torch.nn.Module) -> None:
    """Scales, shifts and running statistics away from their initial 1 and 0, so a BN's zero input gives a non-zero output."""
    generator = torch.Generator().manual_seed(0)
    for module in layer.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(generator=generator)
                module.running_mean.normal_(generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)


@pytest.mark.parametrize("block", RESIDUAL_BLOCKS)
@pytest.mark.parametrize(
    "in_channels, stride", [(None, 1), (8, 2)]
)  # an identity shortcut, and a projection
def test_zeroing_the_branch_end_leaves_only_the_shortcut(block, in_channels, stride):
    planes = 8
    in_channels = in_channels or planes * block.expansion
    layer = block(in_channels, planes, stride, shortcut="B")
    _randomise_batch_norms(layer)
    layer.eval()
    x = torch.randn(2, in_channels, 6, 6)
    shortcut_input = (
        layer.relu(layer.bn1(x)) if block.preact else x
    )  # a v2 projection reads the pre-activated input
    identity = x if layer.downsample is None else layer.downsample(shortcut_input)
    expected = identity if block.preact else torch.relu(identity)
    assert not torch.allclose(layer(x), expected)  # the branch does contribute
    handle = layer.branch_end.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    try:
        silenced = layer(x)
    finally:
        handle.remove()
    torch.testing.assert_close(silenced, expected)
    assert (layer.in_channels, layer.out_channels, layer.stride) == (
        in_channels,
        planes * block.expansion,
        stride,
    )
    assert silenced.shape[1] == layer.out_channels


def test_a_plain_block_has_no_branch_end_and_names_its_shape():
    layer = PlainBlock(8, 16, 2)
    assert layer.branch_end is None
    assert (layer.in_channels, layer.out_channels, layer.stride) == (8, 16, 2)
    assert layer(torch.randn(1, 8, 6, 6)).shape[1] == layer.out_channels


def test_a_plain_block_refuses_to_zero_its_last_bn_and_says_why():
    # With no identity path, a zeroed bn2 makes the block output zeros: the network a constant.
    block = PlainBlock(8, 8)
    with pytest.raises(ValueError, match=r"no identity path.*constant") as error:
        block.zero_init_last()
    assert "block='basic'" in str(error.value)
    assert torch.equal(block.bn2.weight, torch.ones(8))  # nothing was zeroed


@pytest.mark.parametrize(
    "build",
    [
        lambda: cifar_resnet(20, block="plain", width=4, zero_init_last=True),
        lambda: create_model("plain20", width=4, zero_init_last=True),
    ],
)
def test_a_plain_network_with_zero_init_last_is_refused_before_it_is_built(build, monkeypatch):
    from resnet_course import models

    built = []
    monkeypatch.setattr(models, "make_stage", lambda *a, **kw: built.append(a) or 1 / 0)
    with pytest.raises(ValueError, match=r"no identity path.*constant"):
        build()
    assert built == []
