"""Exercise 5: the pre-activation block and its clean identity path."""

from __future__ import annotations

from ... import blocks as course_blocks
from ..probes import Case, probe_module
from ..report import Check, CheckFailed, Report
from .helpers import expect_close, expect_reference, expect_shape, module_record, output

KEEPS = Case("PreActBlock(16, 16)", (16, 16), input_shape=(4, 16, 8, 8))
HALVES = Case(
    "PreActBlock(16, 32, stride=2)", (16, 32), (("stride", 2),), input_shape=(4, 16, 8, 8)
)
ZEROED = Case(
    "PreActBlock(16, 16) with its convolutions zeroed",
    (16, 16),
    input_shape=(4, 16, 8, 8),
    modes=("train",),
    prepare="zero_convs",
)
# Eval mode on x and on relu(x): with BN in eval mode a positive scaling that commutes with ReLU,
# a branch that begins with BN-ReLU sees the same thing in both; one that begins with a conv does not.
ORDER = Case(
    "PreActBlock(16, 16) in eval mode",
    (16, 16),
    input_shape=(4, 16, 8, 8),
    modes=("eval",),
    also_positive_part=True,
    randomise=False,
)


def _probe_preact_block(seed, PreActBlock):
    return {
        case.label: probe_module(PreActBlock, case, seed) for case in (KEEPS, HALVES, ZEROED, ORDER)
    }


preact_block = Check("preact_block", _probe_preact_block, own=("PreActBlock",))


@preact_block.item(
    "PreActBlock(16, 16) keeps (4, 16, 8, 8); PreActBlock(16, 32, stride=2) gives (4, 32, 4, 4)",
    hint="the stride goes on conv1; where the shape changes the shortcut is a 1x1 projection (downsample).",
)
def _preact_shapes(record, seed):
    expect_shape(output(module_record(record, KEEPS.label)), (4, 16, 8, 8), KEEPS.label)
    expect_shape(output(module_record(record, HALVES.label)), (4, 32, 4, 4), HALVES.label)


@preact_block.item(
    "the identity path is clean: with the branch zeroed, the block returns its input, negatives included",
    hint="nothing may follow the addition: return out + identity, with no BN or ReLU after it and "
    "none on the identity path.",
)
def _preact_clean_identity(record, seed):
    expect_close(
        output(module_record(record, ZEROED.label)),
        ZEROED.input(seed),
        "the output with the branch zeroed",
        atol=1e-6,
    )


@preact_block.item(
    "the block leaves its input tensor unchanged (no in-place ReLU on x)",
    hint="x is the identity term: use nn.ReLU(inplace=False), or apply an in-place ReLU only to a new tensor.",
)
def _preact_not_in_place(record, seed):
    for case in (KEEPS, ORDER):
        built = module_record(record, case.label)
        output(built, case.modes[0])
        if any(built["input_changed"].values()):
            raise CheckFailed(f"{case.label} changed its input tensor during the forward pass.")


@preact_block.item(
    "the branch starts with BN and ReLU: it sees only the positive part of its normalised input",
    hint="pre-activation order: bn1-relu-conv1, bn2-relu-conv2 (He et al. 2016, Fig. 1b).",
)
def _preact_order(record, seed):
    built = module_record(record, ORDER.label)
    x = ORDER.input(seed)
    branch = output(built, "eval") - x
    branch_of_positive_part = output(built, "eval_positive_part") - x.relu()
    expect_close(branch, branch_of_positive_part, "F(x) against F(relu(x))", atol=1e-5)


@preact_block.item(
    "it computes what the course's PreActBlock computes, given the same weights",
    hint="layers bn1, conv1, bn2, conv2 and downsample; the projection reads the pre-activated input "
    "relu(bn1(x)), as in the paper's code.",
)
def _preact_same_function(record, seed):
    for case in (KEEPS, HALVES):
        expect_reference(
            record, case, course_blocks.PreActBlock(*case.args, case.stride, shortcut="B"), seed
        )


def check_preact_block(PreActBlock) -> Report:
    """Exercise 5: the pre-activation block and its clean identity path."""
    return preact_block.run(PreActBlock=PreActBlock)
