"""torchvision's ImageNet weights in the course's ResNet-50, and the few tools to reuse them.

``load_resnet50()`` builds ``create_model("resnet50")`` and loads torchvision's
ImageNet weights into it with ``strict=True`` (the parameter names are the same).
The weights come from the torch hub cache when they are there, else from a
download; with no network the model keeps random weights, and the returned
``message`` says so in one sentence, so a page built offline never passes random
features off as ImageNet features.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .analysis import eval_mode
from .models import ResNet, create_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Newest first: V2 (80.9% top-1 in torchvision's table) was trained with a longer, stronger recipe than V1 (76.1%).
WEIGHT_VERSIONS = ("IMAGENET1K_V2", "IMAGENET1K_V1")


@dataclass
class LoadedModel:
    model: ResNet
    pretrained: bool  # True when ImageNet weights were loaded
    weights: str | None  # e.g. "IMAGENET1K_V2"
    message: str  # one sentence for the reader


def _weights_enum(version: str):
    from torchvision.models import ResNet50_Weights

    try:
        return ResNet50_Weights[version]
    except KeyError:
        raise ValueError(
            f"unknown weights {version!r}; torchvision has {', '.join(w.name for w in ResNet50_Weights)}."
        ) from None


def checkpoint_path(url: str) -> Path:
    """Where torch hub keeps (and torchvision looks for) the file behind ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def download(url: str, destination: Path, *, timeout: float) -> None:
    """Fetch ``url`` into ``destination``, giving up after ``timeout`` seconds without data.

    torchvision names its files ``<name>-<first 8 hex digits of the SHA-256>.pth``;
    the download is checked against that prefix before it is moved into place.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(destination.suffix + ".partial")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        expected = destination.stem.rsplit("-", 1)[-1]
        if not digest.hexdigest().startswith(expected):
            raise OSError(
                f"the download of {url} is corrupt (SHA-256 {digest.hexdigest()[:8]}..., expected {expected}...)"
            )
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)


def fetch_state_dict(
    version: str = "IMAGENET1K_V2", *, timeout: float = 10.0
) -> dict[str, torch.Tensor]:
    """torchvision's ResNet-50 ``state_dict`` for ``version``, from the hub cache or a download."""
    url = _weights_enum(version).url
    path = checkpoint_path(url)
    if not path.exists():
        download(url, path, timeout=timeout)
    # weights_only: a checkpoint holds tensors, and nothing in it should run code.
    return torch.load(path, map_location="cpu", weights_only=True)


def load_resnet50(
    pretrained: bool | str = "auto",
    *,
    versions: tuple[str, ...] = WEIGHT_VERSIONS,
    timeout: float = 10.0,
) -> LoadedModel:
    """The course's ResNet-50 with torchvision's ImageNet weights where they can be had.

    ``pretrained="auto"`` takes the first of ``versions`` found in the hub cache,
    else downloads the first of them (giving up after ``timeout`` seconds without
    data), and falls back to random weights; ``True`` raises instead of
    falling back; ``False`` skips the weights. The load is ``strict=True``: every
    parameter and buffer name must match, which the course's ResNet guarantees.
    """
    if pretrained not in ("auto", True, False):
        raise ValueError(f"pretrained must be 'auto', True or False, got {pretrained!r}.")
    model = create_model("resnet50")
    if pretrained is False:
        return LoadedModel(
            model, False, None, "This ResNet-50 has random weights, as asked (pretrained=False)."
        )
    errors: list[Exception] = []
    # Any version already on disk first; then one download, of the preferred version
    # (if that fails for want of a network, the others would fail the same way).
    cached = [v for v in versions if checkpoint_path(_weights_enum(v).url).exists()]
    for version in cached or versions[:1]:
        try:
            state_dict = fetch_state_dict(version, timeout=timeout)
        except Exception as error:  # no network, a proxy, a corrupt file: all mean "no weights"
            errors.append(error)
            continue
        model.load_state_dict(state_dict, strict=True)
        return LoadedModel(
            model,
            True,
            version,
            f"Loaded torchvision's ImageNet weights ({version}) into the course's ResNet-50.",
        )
    reason = (
        f"{type(errors[0]).__name__}: {errors[0]}" if errors else "no weight versions were given"
    )
    if pretrained is True:
        raise RuntimeError(
            f"torchvision's ImageNet weights could not be loaded ({reason}); connect to the internet, "
            f"or put torchvision's file in {checkpoint_path('x').parent}."
        )
    return LoadedModel(
        model,
        False,
        None,
        f"torchvision's ImageNet weights could not be downloaded ({reason.split(':')[0]}), so this ResNet-50 "
        f"has RANDOM weights and every result below shows an untrained network, not ImageNet features.",
    )


# --- reusing the network -------------------------------------------------------------------------


def imagenet_inputs(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``N x 3 x H x W`` images, resized to ``size`` and normalised as the ImageNet weights expect."""
    x = images.float().div(255)
    if x.shape[-1] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size
        )
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def stem_and_stages(model: ResNet, last_stage: str) -> nn.Sequential:
    """The network from its input up to and including stage ``last_stage`` (e.g. ``"layer3"``)."""
    if last_stage not in model.stage_names:
        raise ValueError(f"no stage {last_stage!r}; the stages are {', '.join(model.stage_names)}.")
    if model.bn1 is None:
        raise ValueError(
            "stem_and_stages splits post-activation ResNets, whose stem ends in BN and ReLU."
        )
    stages = model.stage_names[: model.stage_names.index(last_stage) + 1]
    return nn.Sequential(
        model.conv1,
        model.bn1,
        model.relu,
        model.maxpool,
        *(getattr(model, name) for name in stages),
    )


def head_after(model: ResNet, last_stage: str, num_classes: int) -> nn.Sequential:
    """The stages after ``last_stage``, pooling, and a new linear head with ``num_classes`` outputs.

    The stages are the model's own modules (trained further if the head is), the
    head is new: this is what fine-tuning the top of a network trains.
    """
    stages = model.stage_names[model.stage_names.index(last_stage) + 1 :]
    return nn.Sequential(
        *(getattr(model, name) for name in stages),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(model.num_features, num_classes),
    )


@torch.no_grad()
def extract_features(
    network: nn.Module,
    inputs: torch.Tensor,
    *,
    size: int | None = None,
    batch_size: int = 100,
    progress: bool = True,
) -> torch.Tensor:
    """``network``'s output on ``inputs`` in eval mode, batch by batch: a frozen network's features.

    uint8 images are first resized to ``size`` and normalised as the ImageNet weights
    expect; float tensors (features from an earlier part of a network) go in as they are.
    """
    if inputs.dtype == torch.uint8 and size is None:
        raise ValueError(
            "give the size to resize the images to, e.g. size=64; the network expects ImageNet-normalised floats."
        )
    batches = range(0, len(inputs), batch_size)
    if progress:
        from .progress import progress_bar

        batches = progress_bar(batches, label="features", unit="batch")
    with eval_mode(network):
        outputs = []
        for start in batches:
            batch = inputs[start : start + batch_size]
            outputs.append(
                network(imagenet_inputs(batch, size) if batch.dtype == torch.uint8 else batch)
            )
        return torch.cat(outputs)


def pca_2d(features: torch.Tensor) -> torch.Tensor:
    """The features projected on their first two principal components (exact SVD of the centred features)."""
    features = features.flatten(1).float()
    centred = features - features.mean(0)
    # An exact SVD, not torch.pca_lowrank's randomised one, so the figure is the same on every run.
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return centred @ vh[:2].T
