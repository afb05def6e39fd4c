"""Exercise 1: the basic block, and the identity term of its input gradient."""

from __future__ import annotations

import torch

from ... import blocks as course_blocks
from ..probes import Case, call, generator, probe_module, randomise_batch_norm, seeded_input
from ..report import Check, CheckFailed, Report
from .helpers import (
    attribute,
    convolutions,
    expect_close,
    expect_reference,
    expect_shape,
    module_record,
    output,
)

KEEPS = Case("BasicBlock(16, 16)", (16, 16), input_shape=(2, 16, 8, 8))
HALVES = Case("BasicBlock(16, 32, stride=2)", (16, 32), (("stride", 2),), input_shape=(2, 16, 8, 8))
# A block's input comes out of a ReLU, so the identity at zero-init is tested on non-negative inputs.
ZERO_INIT = Case(
    "BasicBlock(16, 16) after zero_init_last()",
    (16, 16),
    input_shape=(4, 16, 8, 8),
    modes=("train",),
    prepare="zero_init_last",
    nonnegative=True,
    randomise=False,
)


def _probe_basic_block(seed, BasicBlock):
    return {case.label: probe_module(BasicBlock, case, seed) for case in (KEEPS, HALVES, ZERO_INIT)}


basic_block = Check("basic_block", _probe_basic_block, own=("BasicBlock",))


@basic_block.item(
    "BasicBlock(16, 16) keeps a (2, 16, 8, 8) input's shape",
    hint="two 3x3 convolutions with padding=1 and stride 1 keep the height and width.",
)
def _basic_shape(record, seed):
    expect_shape(output(module_record(record, KEEPS.label)), (2, 16, 8, 8), KEEPS.label)


@basic_block.item(
    "BasicBlock(16, 32, stride=2) gives (2, 32, 4, 4), with a 1x1 projection shortcut",
    hint="the stride goes on conv1; `downsample` is None when the shape is kept, else "
    "nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)).",
)
def _basic_projection(record, seed):
    halves = module_record(record, HALVES.label)
    expect_shape(output(halves), (2, 32, 4, 4), HALVES.label)
    attribute(halves, "downsample")
    projection = convolutions(halves, "downsample")
    if (
        len(projection) != 1
        or projection[0]["kernel"] != [1, 1]
        or projection[0]["stride"] != [2, 2]
    ):
        raise CheckFailed(
            f"{HALVES.label}.downsample should hold one 1x1 convolution with stride 2, and a BN."
        )
    if attribute(module_record(record, KEEPS.label), "downsample") != "None":
        raise CheckFailed(
            "BasicBlock(16, 16) keeps the shape, so its downsample should be None (a plain identity)."
        )


@basic_block.item(
    "it computes what the course's BasicBlock computes, given the same weights",
    hint="conv1-bn1-relu-conv2-bn2, add the shortcut, then ReLU; the layers are called conv1, bn1, "
    "conv2, bn2 and downsample, as in torchvision.",
)
def _basic_same_function(record, seed):
    for case in (KEEPS, HALVES):
        expect_reference(
            record, case, course_blocks.BasicBlock(*case.args, case.stride, shortcut="B"), seed
        )


@basic_block.item(
    "zero_init_last() makes the block an identity on non-negative inputs",
    hint="zero_init_last() sets bn2's weight (gamma) to 0, so the branch F(x) is 0 and y = ReLU(0 + x) = x for x >= 0.",
)
def _basic_zero_init(record, seed):
    built = module_record(record, ZERO_INIT.label)
    expect_close(
        output(built), ZERO_INIT.input(seed), "the zero-initialised block's output", atol=1e-6
    )


def _gradient_case(seed):
    """The block, input and upstream gradient the student's function is given, drawn from ``seed``."""
    torch.manual_seed(seed % (2**31))
    block = randomise_batch_norm(
        course_blocks.BasicBlock(8, 8), generator(seed, "gradient/weights")
    )
    x = seeded_input(seed, "gradient/x", (4, 8, 6, 6))
    grad_output = seeded_input(seed, "gradient/upstream", (4, 8, 6, 6))
    return block, x, grad_output


def _probe_input_gradient(seed, input_gradient):
    block, x, grad_output = _gradient_case(seed)
    result = call(input_gradient, block, x.clone(), grad_output.clone())
    if "value" in result:
        terms = result["value"]
        if not isinstance(terms, (tuple, list)) or len(terms) != 2:
            result = {"error": "input_gradient should return a pair (identity_term, branch_term)."}
        else:
            result = {
                "value": [t.detach().clone() if isinstance(t, torch.Tensor) else t for t in terms]
            }
    return {"terms": result}


input_gradient = Check("input_gradient", _probe_input_gradient, own=("input_gradient",))


def _terms(record):
    result = record["terms"]
    if "error" in result:
        raise CheckFailed(result["error"])
    return result["value"]


def _reference_gradient(seed):
    """The reference at the points the kernel was given: the grader's record of the kernel's seed
    (``record['probe_seed']``), the same seed in a check cell's own feedback."""
    block, x, grad_output = _gradient_case(seed)
    x = x.clone().requires_grad_(True)
    y = block(x)
    (dx,) = torch.autograd.grad(y, x, grad_output)
    return y.detach(), dx, grad_output


@input_gradient.item(
    "identity_term + branch_term equals autograd's dL/dx",
    hint="compute the branch F(x) = bn2(conv2(relu(bn1(conv1(x))))) from a leaf x with "
    "requires_grad, then torch.autograd.grad(branch, x, upstream) gives the branch term.",
)
def _gradient_sum(record, seed):
    identity_term, branch_term = _terms(record)
    _, dx, _ = _reference_gradient(record.get("probe_seed", seed))
    if not isinstance(identity_term, torch.Tensor) or not isinstance(branch_term, torch.Tensor):
        raise CheckFailed("both terms should be tensors.")
    expect_close(identity_term + branch_term, dx, "identity_term + branch_term", atol=1e-4)


@input_gradient.item(
    "identity_term is dL/dy where the block's output is positive, and 0 elsewhere",
    hint="the final ReLU passes dL/dy where y > 0; the addition then hands it to x unchanged: "
    "identity_term = grad_output * (y > 0).",
)
def _gradient_identity(record, seed):
    identity_term, _ = _terms(record)
    y, _, grad_output = _reference_gradient(record.get("probe_seed", seed))
    expect_close(identity_term, grad_output * (y > 0), "identity_term", atol=1e-6)


def check_basic_block(BasicBlock) -> Report:
    """Exercise 1: shapes, the projection shortcut, the function, and the identity at zero-init."""
    return basic_block.run(BasicBlock=BasicBlock)


def check_input_gradient(input_gradient_fn) -> Report:
    """Exercise 1: dL/dx split into the identity term and the branch term, against autograd."""
    return input_gradient.run(input_gradient=input_gradient_fn)
