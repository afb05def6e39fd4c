"""Measuring networks: parameters, FLOPs, how gradients flow, lesions, paths, loss landscapes, activation memory."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from .data import TensorData
from .modes import eval_mode, train_mode  # noqa: F401 - analysis's own helpers, re-exported
from .train import evaluate

# --- hooks and modes, always undone ---------------------------------------------------------------


@contextmanager
def hooks() -> Iterator[list[RemovableHandle]]:
    """A list to put hook handles in; every hook in it is removed when the ``with`` ends, however it ends.

    ``with hooks() as handles: handles.append(module.register_forward_hook(f))``
    """
    handles: list[RemovableHandle] = []
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def gradient_spread(norms) -> float:
    """The course's one first-to-last gradient ratio: the first layer's gradient norm over the
    last layer's before the classifier (``norms`` in order from input to output, the classifier
    last, as :func:`gradient_norms` gives them). The classifier is left out because its gradient
    scales with the loss, not with depth."""
    norms = list(norms)
    if len(norms) < 3:
        raise ValueError("the spread needs at least two layers before the classifier.")
    return norms[0] / norms[-2] if norms[-2] else math.inf  # a layer with no gradient at all


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Multiply-accumulates of one forward pass of convolutions and linear layers.

    This is the convention behind torchvision's "GFLOPS" column (ResNet-50: 4.089)
    and the papers' FLOP counts: one multiply-add counts once, and batch norm,
    ReLU, pooling and additions, a fraction of a percent, are left out. Counted
    with forward hooks on a real forward pass, so any architecture works.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal total
        kernel = (
            module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        )
        total += output.numel() * kernel

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    with hooks() as handles, eval_mode(model), torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                handles.append(module.register_forward_hook(conv_hook))
            elif isinstance(module, nn.Linear):
                handles.append(module.register_forward_hook(linear_hook))
        parameter = next(model.parameters())
        model(torch.zeros(input_size, dtype=parameter.dtype, device=parameter.device))
    return total // input_size[0]


def count_layers(model: nn.Module) -> int:
    """Depth as the papers count it: convolutions and linear layers, not counting projection shortcuts.

    ResNet-50 has 50: the stem, 16 bottlenecks of 3 convolutions, the classifier.
    Shortcut projections (``downsample``) sit beside the main path, so they add
    parameters but not depth.
    """
    return sum(
        isinstance(module, (nn.Conv2d, nn.Linear)) and "downsample" not in name.split(".")
        for name, module in model.named_modules()
    )


def _weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def gradient_norms(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> dict[str, float]:
    """The L2 norm of the loss gradient for each convolution and linear layer's weight, input to output.

    One forward and backward pass on one batch; the model's existing ``.grad``
    are left as they were. In training mode, so BN uses batch statistics, as
    during training.
    """
    layers = _weighted_layers(model)
    saved = {name: m.weight.grad for name, m in layers}
    grads = torch.autograd.grad(loss_fn(model(inputs), targets), [m.weight for _, m in layers])
    for name, m in layers:
        m.weight.grad = saved[name]
    return {name: g.norm().item() for (name, _), g in zip(layers, grads)}


def _per_block(model: nn.Module, inputs: torch.Tensor, blocks, measure) -> dict[str, float]:
    """``measure(output)`` of every block's output in one forward pass of ``inputs`` (no gradients)."""
    blocks = blocks if blocks is not None else list(model.named_blocks())
    values: dict[str, float] = {}

    def keep(name: str):
        return lambda _module, _inputs, output: values.__setitem__(name, measure(output.detach()))

    with hooks() as handles, torch.no_grad():
        handles.extend(block.register_forward_hook(keep(name)) for name, block in blocks)
        model(inputs)
    return values


def activation_norms(
    model: nn.Module, inputs: torch.Tensor, blocks: list[tuple[str, nn.Module]] | None = None
) -> dict[str, float]:
    """The RMS of each block's output on ``inputs``: how the forward signal grows or fades with depth."""
    return _per_block(model, inputs, blocks, lambda out: out.pow(2).mean().sqrt().item())


def _input_dependent_share(output: torch.Tensor) -> float:
    flat = output.flatten(1).double()
    energy = flat.pow(2).mean()
    return (flat.var(0, unbiased=False).mean() / energy).item() if energy > 0 else 0.0


def input_dependence(
    model: nn.Module, inputs: torch.Tensor, blocks: list[tuple[str, nn.Module]] | None = None
) -> dict[str, float]:
    """For each block's output, the share of its energy that changes from one input to the next.

    With outputs ``h`` over a batch, that is ``mean(var over the batch) / mean(h ** 2)``: 1 when the
    output has no common part, 0 when every input gives the same output, so nothing of the input
    can be read there any more. The RMS of :func:`activation_norms` cannot tell these apart: biases
    keep it up even when every input is mapped to the same vector.
    """
    return _per_block(model, inputs, blocks, _input_dependent_share)


def input_gradient_norms(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> dict[str, float]:
    """The norm of dL/dx at the input of each block: the backward signal, block by block."""
    blocks = list(model.named_blocks())
    block_inputs: dict[str, torch.Tensor] = {}

    def keep_input(name):
        def hook(_module, args):
            args[0].retain_grad()
            block_inputs[name] = args[0]

        return hook

    with hooks() as handles:
        handles.extend(block.register_forward_pre_hook(keep_input(name)) for name, block in blocks)
        loss = loss_fn(model(inputs), targets)
        grads = torch.autograd.grad(loss, [block_inputs[name] for name, _ in blocks])
    return {name: g.norm().item() for (name, _), g in zip(blocks, grads)}


# --- lesion study (Veit et al. 2016) --------------------------------------------------------------


def _branch_end(block: nn.Module) -> nn.Module | None:
    """The block's ``branch_end`` (see :mod:`resnet_course.blocks`): None for a block without a shortcut."""
    if not hasattr(block, "branch_end"):
        raise ValueError(
            f"cannot delete a block of type {type(block).__name__}: the lesion study needs blocks that name "
            f"their branch's last layer (branch_end), as the course's residual and plain blocks do."
        )
    return block.branch_end


def _plain_block_stand_in(block: nn.Module) -> nn.Module:
    """What a deleted plain block becomes: the identity, or option A's subsample-and-zero-pad where the shape changes."""
    from .blocks import ZeroPadShortcut

    if not is_downsampling(block):
        return nn.Identity()
    return ZeroPadShortcut(block.in_channels, block.out_channels, block.stride)


@contextmanager
def blocks_deleted(model: nn.Module, names: Sequence[str]):
    """Inside the ``with``, the named blocks of ``model`` are deleted; outside, the model is whole again.

    A residual block loses its residual branch and becomes its shortcut (the
    branch's last layer outputs zeros, so the block computes ``ReLU(shortcut(x))``,
    or ``shortcut(x)`` for a pre-activation block). A plain block has no shortcut,
    so deleting it would break the chain; it is replaced by the same
    parameter-free map a residual block's option-A shortcut computes: the identity,
    or, where the block changes the shape, subsampling plus zero-padded channels.
    Weights are never touched (forward hooks do the work).
    """
    blocks = dict(model.named_blocks())
    unknown = [name for name in names if name not in blocks]
    if unknown:
        raise ValueError(
            f"no block named {', '.join(unknown)}; the model's blocks are {', '.join(blocks)}."
        )
    with hooks() as handles:
        for name in names:
            block = blocks[name]
            branch_end = _branch_end(block)
            if branch_end is not None:
                handles.append(
                    branch_end.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
                )
            else:
                stand_in = _plain_block_stand_in(block)
                handles.append(
                    block.register_forward_hook(lambda _m, args, _out, f=stand_in: f(args[0]))
                )
        yield model


def evaluate_accuracy(model: nn.Module, data: TensorData) -> float:
    """Accuracy on ``data``'s test split, in eval mode: :func:`~resnet_course.train.evaluate`'s."""
    return evaluate(model, data)[1]


def is_downsampling(block: nn.Module) -> bool:
    """Whether ``block`` changes the shape (stride or channels) of what it is given."""
    return block.stride != 1 or block.in_channels != block.out_channels


@dataclass
class LesionStudy:
    """Test accuracy of the whole network and with each single block deleted, in block order."""

    baseline: float
    deleted: dict[str, float]  # block name -> test accuracy with only that block deleted
    downsampling: list[str]  # the blocks that change the shape

    def drops_points(self) -> list[float]:
        """Test accuracy lost (percentage points) by deleting each block that keeps the shape, in block order.

        The downsampling blocks are left out: deleting one drops half the features at that resolution,
        which is a different experiment (Veit et al. 2016 leave them out too).
        """
        return [
            100 * (self.baseline - accuracy)
            for name, accuracy in self.deleted.items()
            if name not in self.downsampling
        ]

    def mean_drop_points(self) -> float:
        drops = self.drops_points()
        return sum(drops) / len(drops)


def lesion_study(model: nn.Module, data: TensorData) -> LesionStudy:
    """Delete each block of ``model`` in turn (see :func:`blocks_deleted`) and measure the test accuracy."""
    names = [name for name, _ in model.named_blocks()]
    deleted = {}
    for name in names:
        with blocks_deleted(model, [name]):
            deleted[name] = evaluate_accuracy(model, data)
    downsampling = [name for name, block in model.named_blocks() if is_downsampling(block)]
    return LesionStudy(
        baseline=evaluate_accuracy(model, data), deleted=deleted, downsampling=downsampling
    )


def random_lesions(
    model: nn.Module,
    data: TensorData,
    counts: Sequence[int],
    *,
    trials: int = 5,
    seed: int = 0,
    keep_downsampling: bool = True,
) -> dict[int, list[float]]:
    """Test accuracy after deleting ``k`` blocks at random, ``trials`` times for each ``k`` in ``counts``.

    Veit et al. 2016 (Fig. 5a) delete several blocks at once and find the error grows
    smoothly. ``keep_downsampling`` leaves the shape-changing blocks alone, as their
    deletion does something different (it drops half the resolution's features).
    """
    generator = torch.Generator().manual_seed(seed)
    candidates = [
        name
        for name, block in model.named_blocks()
        if not (keep_downsampling and is_downsampling(block))
    ]
    if max(counts) > len(candidates):
        raise ValueError(
            f"cannot delete {max(counts)} blocks: only {len(candidates)} can be deleted."
        )
    results: dict[int, list[float]] = {}
    for count in counts:
        results[count] = []
        for _ in range(trials):
            chosen = [
                candidates[i]
                for i in torch.randperm(len(candidates), generator=generator)[:count].tolist()
            ]
            with blocks_deleted(model, chosen):
                results[count].append(evaluate_accuracy(model, data))
    return results


# --- paths through a residual network (Veit et al. 2016) ------------------------------------------


def path_length_counts(blocks: int) -> list[int]:
    """How many paths of each length 0..n run through ``n`` residual blocks: C(n, k).

    Unrolled, ``n`` blocks give ``2**n`` paths, one for each choice of "through the
    branch" or "along the shortcut" at every block; a path through ``k`` branches
    has length ``k``, and there are C(n, k) of them.
    """
    if not isinstance(blocks, int) or blocks < 0:
        raise ValueError(f"the number of blocks must be a non-negative integer, got {blocks!r}.")
    return [math.comb(blocks, k) for k in range(blocks + 1)]


def _add_path_hooks(
    handles: list, blocks: list[nn.Module], through_branch: set[int], first_input: dict
) -> None:
    """Add to ``handles`` hooks that let the backward pass through block i's branch only if i is in ``through_branch``, else only its shortcut.

    The forward values are unchanged (``detach`` keeps the value and drops the
    gradient), so every block still sees what it saw in the whole network.
    """
    for index, block in enumerate(blocks):
        if index == 0:
            # The first block's input becomes a leaf: the gradient is measured there.
            def make_leaf(_m, args):
                leaf = args[0].detach().requires_grad_()
                first_input["x"] = leaf
                return (leaf,)

            handles.append(block.register_forward_pre_hook(make_leaf))
        if index not in through_branch:
            handles.append(block.branch_end.register_forward_hook(lambda _m, _i, out: out.detach()))
        elif block.downsample is not None:
            handles.append(block.downsample.register_forward_hook(lambda _m, _i, out: out.detach()))
        else:
            # An identity shortcut is the block's input itself: the block gets a detached
            # copy (for the shortcut) and the branch's first layer gets the original back.
            saved = {}

            def detach_input(_m, args, saved=saved):
                saved["x"] = args[0]
                return (args[0].detach(),)

            def restore_input(_m, _args, saved=saved):
                return (saved["x"],)

            handles.append(block.register_forward_pre_hook(detach_input))
            handles.append(block.conv1.register_forward_pre_hook(restore_input))


def _post_activation_blocks(model: nn.Module) -> list[nn.Module]:
    blocks = [block for _, block in model.named_blocks()]
    # Post-activation (preact False) and residual (a branch_end to detach): BasicBlock, Bottleneck.
    wrong = {
        type(b).__name__
        for b in blocks
        if getattr(b, "preact", True) or getattr(b, "branch_end", None) is None
    }
    if wrong:
        raise ValueError(
            f"path gradients need post-activation residual blocks (BasicBlock, Bottleneck), not {', '.join(sorted(wrong))}."
        )
    return blocks


def path_gradient(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    through_branch: set[int],
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> torch.Tensor:
    """The loss gradient at the first block's input carried only by the paths through the branches of blocks ``through_branch``.

    Blocks are numbered 0..n-1 in order. The forward pass is the whole network's;
    in the backward pass block ``i`` lets the gradient through its branch only if
    ``i`` is in ``through_branch``, and through its shortcut only if not. Summed
    over all ``2**n`` choices this gives the whole gradient (in eval mode, where
    the backward pass is linear). Works for post-activation residual blocks
    (``BasicBlock``, ``Bottleneck``), whose branch starts with ``conv1``.
    """
    blocks = _post_activation_blocks(model)
    first_input: dict = {}
    with hooks() as handles:
        _add_path_hooks(handles, blocks, set(through_branch), first_input)
        loss = loss_fn(model(inputs), targets)
        (grad,) = torch.autograd.grad(loss, first_input["x"])
    return grad


def path_gradient_norms(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    samples: int = 10,
    seed: int = 0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> dict[int, float]:
    """The gradient norm one path of each length ``k = 0..n`` carries (Veit et al. 2016, section 6).

    Their method: run the batch forward through the whole network; in the backward
    pass, pick ``k`` blocks at random and let the gradient through only their
    branches, and through only the shortcuts of the other ``n - k``
    (:func:`path_gradient`). The norm of the gradient at the first block's input,
    averaged over ``samples`` random choices of the ``k`` blocks, is what a path of
    length ``k`` carries. In eval mode, so BN is a fixed affine map.
    """
    blocks = _post_activation_blocks(model)
    generator = torch.Generator().manual_seed(seed)
    norms: dict[int, float] = {}
    with eval_mode(model):
        for length in range(len(blocks) + 1):
            # Only one choice exists for k = 0 and k = n; sample the rest.
            draws = 1 if length in (0, len(blocks)) else samples
            total = 0.0
            for _ in range(draws):
                chosen = set(torch.randperm(len(blocks), generator=generator)[:length].tolist())
                total += (
                    path_gradient(model, inputs, targets, chosen, loss_fn=loss_fn).norm().item()
                )
            norms[length] = total / draws
    return norms


# --- loss landscapes (Li et al. 2018) -------------------------------------------------------------


def filter_normalized_direction(
    model: nn.Module, *, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """A random direction in weight space, scaled filter by filter to the weights (Li et al. 2018, section 4).

    Each filter of a convolution or linear layer (a slice along the output
    dimension) gets a Gaussian direction rescaled to that filter's norm, so a step
    of 1 changes every filter by as much as the filter is large, whatever the
    layer's scale. One-dimensional parameters (BN scales and shifts, biases) get a
    zero direction, as in the paper's code (``--xignore biasbn``).
    """
    direction = {}
    for name, weight in model.named_parameters():
        if weight.dim() <= 1:
            direction[name] = torch.zeros_like(weight)
            continue
        noise = torch.randn(weight.shape, generator=generator).to(weight)
        filter_norms = weight.detach().flatten(1).norm(dim=1)
        noise_norms = noise.flatten(1).norm(dim=1)
        scale = (filter_norms / (noise_norms + 1e-10)).view(-1, *[1] * (weight.dim() - 1))
        direction[name] = noise * scale
    return direction


@torch.no_grad()
def _loss_at(
    model: nn.Module,
    weights: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn,
) -> float:
    return loss_fn(torch.func.functional_call(model, weights, (inputs,)), targets).item()


def loss_slice(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    directions: Sequence[dict[str, torch.Tensor]],
    coordinates: Sequence[Sequence[float]],
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    progress: bool = False,
) -> torch.Tensor:
    """The loss at ``weights + a d1 (+ b d2)`` on a fixed batch, for every grid point.

    ``directions`` holds one direction (a 1-D slice over ``coordinates[0]``) or two
    (a 2-D slice; the result has shape ``len(coordinates[1]) x len(coordinates[0])``,
    rows for the second direction, ready for ``contour(a, b, loss)``). BN is in
    eval mode with the trained running statistics, as in the paper's code. The
    model's own weights are never changed (``torch.func.functional_call``).
    """
    if len(directions) not in (1, 2) or len(directions) != len(coordinates):
        raise ValueError(
            f"give one or two directions, each with its coordinates; got {len(directions)} direction(s) and {len(coordinates)} coordinate list(s)."
        )
    base = {name: p.detach() for name, p in model.named_parameters()}
    # Grid points as step tuples, the first direction varying fastest (row-major for a contour plot).
    points = (
        [(a,) for a in coordinates[0]]
        if len(coordinates) == 1
        else [(a, b) for b in coordinates[1] for a in coordinates[0]]
    )
    bar = None
    if progress:
        from .progress import progress_bar

        bar = progress_bar(total=len(points), label="loss landscape", unit="point", leave=False)
    losses = []
    try:
        with eval_mode(model):
            for steps in points:
                weights = {
                    name: w + sum(float(t) * d[name] for t, d in zip(steps, directions))
                    for name, w in base.items()
                }
                losses.append(_loss_at(model, weights, inputs, targets, loss_fn))
                if bar is not None:
                    bar.update()
    finally:
        if bar is not None:
            bar.close()
    shape = [len(c) for c in reversed(coordinates)]
    return torch.tensor(losses).view(*shape)


# --- activation memory -----------------------------------------------------------------------------


def saved_activation_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of the tensors a training-mode forward pass keeps for the backward pass, weights excluded.

    This is the activation memory training needs (on any device: it is counted, not
    measured on a GPU). Tensors are counted once per storage, so a view saved twice
    counts once; parameters, which exist anyway, are left out.
    """
    parameter_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with train_mode(model), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(inputs)
        del output
    return sum(storages.values())
