"""Residual connections beyond ResNets: transformers, highway networks, DenseNet, wide ResNets.

Each piece is small and switchable, so a chapter can train it with and without
its shortcut and compare:

* :class:`PreNormBlock` and :class:`TinyTransformer`: ``x + Sublayer(Norm(x))``, with
  ``residual=False`` for the same block without its two additions.
* :class:`HighwayLayer` and :class:`HighwayMLP`: a learned gate between the layer and
  its input (Srivastava et al. 2015), to set against :class:`~resnet_course.models.MLP`.
* :class:`DenseBlock`: concatenation instead of addition (Huang et al. 2017).
* :func:`matching_width`: the width of a CIFAR ResNet of one depth that has as many
  parameters as another, for the width-against-depth comparison (Zagoruyko and
  Komodakis 2016).
* :func:`make_sequence_task`: copy, reverse or sort short token sequences, a task a
  transformer learns on a CPU in seconds.
"""

from __future__ import annotations

import functools
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .analysis import eval_mode, hooks
from .data import TensorData, check_size
from .models import LayerStack, cifar_resnet

# --- a small sequence task ---------------------------------------------------------------------

SEQUENCE_TASKS = ("copy", "reverse", "sort")


def make_sequence_task(
    task: str = "reverse",
    *,
    length: int = 8,
    vocab: int = 10,
    train_size: int = 4000,
    test_size: int = 1000,
    seed: int = 0,
) -> TensorData:
    """Random token sequences and their copy, reversal or sorted version, one target per position.

    ``x`` and ``y`` are ``N x length`` integer tensors; a model outputs
    ``N x vocab x length`` logits (classes on dimension 1, as ``cross_entropy``
    expects), so :func:`~resnet_course.train.fit` trains it like any classifier and
    reports the accuracy per position.
    """
    if task not in SEQUENCE_TASKS:
        raise ValueError(
            f"unknown sequence task {task!r}; choose one of {', '.join(SEQUENCE_TASKS)}."
        )
    if length < 2 or vocab < 2:
        raise ValueError(
            f"a sequence task needs length >= 2 and vocab >= 2, got length={length}, vocab={vocab}."
        )
    check_size("train_size", train_size, what="sequences")
    check_size("test_size", test_size, what="sequences")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (train_size + test_size, length), generator=generator)
    if task == "copy":
        y = x.clone()
    elif task == "reverse":
        y = x.flip(1)
    else:
        y = x.sort(dim=1).values
    return TensorData(
        x[:train_size],
        y[:train_size],
        x[train_size:],
        y[train_size:],
        classes=tuple(str(token) for token in range(vocab)),
        name=f"{task}-{length}x{vocab}",
        source="generated",
    )


# --- a pre-norm transformer --------------------------------------------------------------------


class PreNormBlock(nn.Module):
    """A pre-norm transformer block: ``x + Attention(LN(x))``, then ``x + MLP(LN(x))``.

    This is the residual block of GPT-2 and most transformers since: the shortcut
    carries ``x`` untouched from block to block, as in a pre-activation ResNet.
    With ``residual=False`` the additions are dropped and nothing else changes, so
    the block computes ``MLP(LN(Attention(LN(x))))``.
    """

    def __init__(self, dim: int, heads: int, *, mlp_ratio: int = 4, residual: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(
                f"the model width {dim} must be divisible by the number of heads {heads}."
            )
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        attended, _ = self.attn(h, h, h, need_weights=False)
        x = x + attended if self.residual else attended
        transformed = self.mlp(self.norm2(x))
        return x + transformed if self.residual else transformed


class TinyTransformer(nn.Module):
    """Token and position embeddings, ``depth`` :class:`PreNormBlock` s, a final LayerNorm, a per-position head.

    Returns ``batch x vocab x length`` logits (see :func:`make_sequence_task`).
    """

    def __init__(
        self,
        vocab: int,
        length: int,
        *,
        dim: int = 32,
        depth: int = 4,
        heads: int = 4,
        residual: bool = True,
    ):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.position_embedding = nn.Parameter(0.02 * torch.randn(length, dim))
        self.blocks = nn.ModuleList(
            PreNormBlock(dim, heads, residual=residual) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.length = length

    def named_blocks(self) -> Iterator[tuple[str, nn.Module]]:
        for index, block in enumerate(self.blocks):
            yield f"blocks.{index}", block

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] != self.length:
            raise ValueError(
                f"this model reads sequences of length {self.length}, got {tokens.shape[1]}."
            )
        x = self.token_embedding(tokens) + self.position_embedding
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)).transpose(1, 2)


@torch.no_grad()
def position_similarity(model: nn.Module, tokens: torch.Tensor) -> list[float]:
    """After each block, how alike the vectors at different positions of a sequence are.

    The mean cosine similarity over all pairs of distinct positions, averaged over
    the batch: 1 means every position holds the same vector, and what was
    *where* in the sequence is lost. Attention averages over positions; without
    the shortcut nothing else carries each position's own vector forward.
    """
    values: list[float] = []

    def measure(_module, _inputs, output):
        unit = F.normalize(output, dim=-1)
        similarity = unit @ unit.transpose(1, 2)  # batch x positions x positions
        length = similarity.shape[-1]
        off_diagonal = similarity.sum((1, 2)) - similarity.diagonal(dim1=1, dim2=2).sum(1)
        values.append((off_diagonal / (length * (length - 1))).mean().item())

    with hooks() as handles, eval_mode(model):
        handles.extend(block.register_forward_hook(measure) for _, block in model.named_blocks())
        model(tokens)
    return values


# --- highway networks (Srivastava et al. 2015) -----------------------------------------------


class HighwayLayer(nn.Module):
    """``y = T(x) * H(x) + (1 - T(x)) * x``, with a learned gate ``T(x) = sigmoid(W_T x + b_T)``.

    The gate's bias starts negative (the paper suggests -1 to -3), so at first
    the layer mostly carries its input: a data-dependent, learned version of the
    residual network's fixed ``x + F(x)``. It keeps the mean gate value of its last
    forward pass in ``last_gate``, to see what the training made of it.
    """

    def __init__(self, width: int, *, gate_bias: float = -2.0, activation: str = "relu"):
        super().__init__()
        self.transform = nn.Linear(width, width)
        self.gate = nn.Linear(width, width)
        nn.init.constant_(self.gate.bias, gate_bias)
        self.act = nn.ReLU() if activation == "relu" else nn.Tanh()
        self.last_gate = float("nan")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.gate(x))
        self.last_gate = gate.detach().mean().item()
        return gate * self.act(self.transform(x)) + (1 - gate) * x


class HighwayMLP(LayerStack):
    """The toy MLP of :class:`~resnet_course.models.MLP` with every hidden layer a :class:`HighwayLayer`."""

    def __init__(
        self,
        depth: int,
        width: int = 32,
        *,
        gate_bias: float = -2.0,
        activation: str = "relu",
        in_features: int = 2,
        num_classes: int = 2,
    ):
        super().__init__(
            depth,
            width,
            lambda: HighwayLayer(width, gate_bias=gate_bias, activation=activation),
            activation=activation,
            in_features=in_features,
            num_classes=num_classes,
        )

    def gate_means(self) -> list[float]:
        """Each layer's mean gate value on the last batch it saw: near 0 carries the input, near 1 transforms it."""
        return [layer.last_gate for layer in self.layers]


# --- DenseNet's concatenation (Huang et al. 2017) --------------------------------------------


class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3 making ``growth_rate`` new channels, concatenated to everything before them."""

    def __init__(self, in_channels: int, growth_rate: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_channels, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.relu(self.bn(x)))], dim=1)


class DenseBlock(nn.Sequential):
    """``layers`` :class:`DenseLayer` s: layer ``i`` reads ``in_channels + i * growth_rate`` channels.

    Where a residual block adds its output to its input, a dense layer appends it,
    so every later layer sees every earlier one's features directly. The output has
    ``in_channels + layers * growth_rate`` channels.
    """

    def __init__(self, in_channels: int, growth_rate: int, layers: int):
        if layers < 1 or growth_rate < 1:
            raise ValueError(
                f"a dense block needs at least one layer and a positive growth rate, got layers={layers}, growth_rate={growth_rate}."
            )
        super().__init__(
            *(DenseLayer(in_channels + i * growth_rate, growth_rate) for i in range(layers))
        )
        self.out_channels = in_channels + layers * growth_rate


# --- width against depth (Zagoruyko and Komodakis 2016) --------------------------------------


@functools.lru_cache(maxsize=None)
def _parameter_polynomial(depth: int, block: str) -> tuple[int, int, int]:
    """``(a, b, c)`` with ``parameters(width) == a width**2 + b width + c`` for a CIFAR ResNet of ``depth``.

    Every weight of a CIFAR ResNet scales exactly so: convolutions (and projections)
    with the square of the width, batch norms and the classifier linearly, and the
    classifier's bias not at all. Three small networks pin the polynomial down.
    """
    n1, n2, n3 = (
        sum(p.numel() for p in cifar_resnet(depth, width=w, block=block).parameters())
        for w in (1, 2, 3)
    )
    a = (n3 - 2 * n2 + n1) // 2
    b = n2 - n1 - 3 * a
    return a, b, n1 - a - b


def cifar_parameter_count(depth: int, width: int, *, block: str = "basic") -> int:
    """Parameters of ``cifar_resnet(depth, width=width, block=block)``, without building it at that width."""
    a, b, c = _parameter_polynomial(depth, block)
    return a * width * width + b * width + c


def matching_width(depth: int, parameters: int, *, block: str = "basic") -> int:
    """The width at which a CIFAR ResNet of ``depth`` has the parameter count closest to ``parameters``."""
    if parameters < cifar_parameter_count(depth, 1, block=block):
        raise ValueError(
            f"even width 1 gives a depth-{depth} network more than {parameters:,} parameters."
        )
    a, b, c = _parameter_polynomial(depth, block)
    root = (-b + math.sqrt(b * b - 4 * a * (c - parameters))) / (
        2 * a
    )  # the positive root of the quadratic
    candidates = {max(1, math.floor(root)), math.floor(root) + 1}
    return min(
        sorted(candidates),
        key=lambda w: abs(cifar_parameter_count(depth, w, block=block) - parameters),
    )
