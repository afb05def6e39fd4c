"""Exercise 1: the basic block, and the identity term of its input gradient."""

from __future__ import annotations

import torch

from ... import blocks as course_blocks
from ..report import Check, CheckFailed, Report
from .helpers import build, convolutions, copy_weights, expect_close, expect_shape, layer, randomise_batch_norm, same_function

basic_block = Check("basic_block")


@basic_block.item("BasicBlock(16, 16) keeps a (2, 16, 8, 8) input's shape",
                  hint="two 3x3 convolutions with padding=1 and stride 1 keep the height and width.")
def _basic_shape(BasicBlock):
    expect_shape(build(BasicBlock, 16, 16)(torch.randn(2, 16, 8, 8)), (2, 16, 8, 8), "BasicBlock(16, 16)")


@basic_block.item("BasicBlock(16, 32, stride=2) gives (2, 32, 4, 4), with a 1x1 projection shortcut",
                  hint="the stride goes on conv1; `downsample` is None when the shape is kept, else "
                       "nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)).")
def _basic_projection(BasicBlock):
    block = build(BasicBlock, 16, 32, stride=2)
    expect_shape(block(torch.randn(2, 16, 8, 8)), (2, 32, 4, 4), "BasicBlock(16, 32, stride=2)")
    projection = convolutions(layer(block, "downsample"))
    if len(projection) != 1 or projection[0].kernel_size != (1, 1) or projection[0].stride != (2, 2):
        raise CheckFailed("BasicBlock(16, 32, stride=2).downsample should hold one 1x1 convolution with stride 2, and a BN.")
    if layer(build(BasicBlock, 16, 16), "downsample") is not None:
        raise CheckFailed("BasicBlock(16, 16) keeps the shape, so its downsample should be None (a plain identity).")


@basic_block.item("it computes what the course's BasicBlock computes, given the same weights",
                  hint="conv1-bn1-relu-conv2-bn2, add the shortcut, then ReLU; the layers are called conv1, bn1, "
                       "conv2, bn2 and downsample, as in torchvision.")
def _basic_same_function(BasicBlock):
    for in_channels, planes, stride in ((16, 16, 1), (16, 32, 2)):
        student = randomise_batch_norm(build(BasicBlock, in_channels, planes, stride=stride))
        reference = course_blocks.BasicBlock(in_channels, planes, stride, shortcut="B")
        what = f"BasicBlock({in_channels}, {planes}, stride={stride})"
        copy_weights(student, reference, what)
        same_function(student, reference, torch.randn(4, in_channels, 8, 8), what)


@basic_block.item("zero_init_last() makes the block an identity on non-negative inputs",
                  hint="zero_init_last() sets bn2's weight (gamma) to 0, so the branch F(x) is 0 and y = ReLU(0 + x) = x for x >= 0.")
def _basic_zero_init(BasicBlock):
    block = build(BasicBlock, 16, 16)
    block.zero_init_last()
    x = torch.randn(4, 16, 8, 8).relu()  # a block's input comes out of a ReLU
    with torch.no_grad():
        expect_close(block(x.clone()), x, "the zero-initialised block's output", atol=1e-6)


input_gradient = Check("input_gradient")


def _gradient_case():
    block = randomise_batch_norm(course_blocks.BasicBlock(8, 8))
    x = torch.randn(4, 8, 6, 6)
    grad_output = torch.randn(4, 8, 6, 6)
    x_autograd = x.clone().requires_grad_(True)
    y = block(x_autograd)
    (dx,) = torch.autograd.grad(y, x_autograd, grad_output)
    return block, x, grad_output, y.detach(), dx


def _gradient_terms(input_gradient_fn, block, x, grad_output):
    terms = input_gradient_fn(block, x.clone(), grad_output.clone())
    if not isinstance(terms, (tuple, list)) or len(terms) != 2:
        raise CheckFailed("input_gradient should return a pair (identity_term, branch_term).")
    return terms


@input_gradient.item("identity_term + branch_term equals autograd's dL/dx",
                     hint="compute the branch F(x) = bn2(conv2(relu(bn1(conv1(x))))) from a leaf x with "
                          "requires_grad, then torch.autograd.grad(branch, x, upstream) gives the branch term.")
def _gradient_sum(input_gradient):
    block, x, grad_output, _, dx = _gradient_case()
    identity_term, branch_term = _gradient_terms(input_gradient, block, x, grad_output)
    expect_close(identity_term + branch_term, dx, "identity_term + branch_term", atol=1e-4)


@input_gradient.item("identity_term is dL/dy where the block's output is positive, and 0 elsewhere",
                     hint="the final ReLU passes dL/dy where y > 0; the addition then hands it to x unchanged: "
                          "identity_term = grad_output * (y > 0).")
def _gradient_identity(input_gradient):
    block, x, grad_output, y, _ = _gradient_case()
    identity_term, _ = _gradient_terms(input_gradient, block, x, grad_output)
    expect_close(identity_term, grad_output * (y > 0), "identity_term", atol=1e-6)


def check_basic_block(BasicBlock) -> Report:
    """Exercise 1: shapes, the projection shortcut, the function, and the identity at zero-init."""
    return basic_block.run(BasicBlock=BasicBlock)


def check_input_gradient(input_gradient_fn) -> Report:
    """Exercise 1: dL/dx split into the identity term and the branch term, against autograd."""
    return input_gradient.run(input_gradient=input_gradient_fn)
