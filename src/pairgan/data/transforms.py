"""Paired augmentation: one random draw shared by A and B, exact resampling, tensor conversion.

Arrays are float32 ``HxWxC`` in [0, 1]; tensors are float32 ``CxHxW`` in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from pairgan.errors import DataError

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


def round_to_multiple(n: int, m: int) -> int:
    """``n`` rounded to the nearest multiple of ``m`` (halves up), at least ``m``."""
    if m <= 1:
        return max(1, n)
    return max(m, int(math.floor(n / m + 0.5)) * m)


def _scale_width(w: int, h: int, target: int, min_h: int) -> tuple[int, int]:
    # As the pix2pix reference: width -> target, aspect kept, height at least min_h (truncated).
    if w == target and h >= min_h:
        return w, h
    return target, int(max(target * h / w, min_h))


def resize(arr: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an HxWxC float32 array to ``size`` = (width, height).

    Pillow per channel on mode ``F`` (no 8-bit rounding): NEAREST keeps values exactly (label
    maps), BICUBIC for images, clipped to [0, 1].
    """
    h, w = arr.shape[:2]
    if (w, h) == tuple(size):
        return arr
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., c], dtype=np.float32)).resize(
            tuple(size), method))
        for c in range(arr.shape[2])
    ]
    out = np.stack(chans, axis=-1).astype(np.float32, copy=False)
    return out if nearest else np.clip(out, 0.0, 1.0)


@dataclass
class PairedTransform:
    """Resize / crop / flip a pair with one random draw (pix2pix reference semantics).

    Training (``train=True``), as junyanz/pytorch-CycleGAN-and-pix2pix:

    * ``resize_and_crop``: resize to ``load_size`` x ``load_size``, random ``crop_size`` crop.
    * ``crop``: random ``crop_size`` crop of the full image (no resize).
    * ``scale_width``: width to ``load_size``, aspect kept, height at least ``crop_size``.
    * ``scale_width_and_crop``: ``scale_width``, then a random ``crop_size`` square crop.
    * ``none``: no resize.

    Evaluation (``train=False``): no flip, no random crop. ``resize_and_crop`` resizes to
    ``crop_size`` x ``crop_size``; ``scale_width_and_crop`` scales the width to ``crop_size``
    (height at least ``crop_size``); ``scale_width`` scales the width to ``load_size`` as in
    training; ``crop`` and ``none`` keep the full image.

    In every mode each side of the result is finally rounded to the nearest multiple of
    ``size_multiple`` (at least ``size_multiple``) by resizing, as the reference's
    ``make_power_2`` does with its base (a no-op when the size already fits, e.g. crops).

    With ``flip`` (training only) the pair is mirrored horizontally with probability 0.5. The draw
    is always crop x, crop y, flip, in that order, from the ``rng`` passed in; A and B share it.
    Label sides (``nearest_a``/``nearest_b``) are resampled with nearest neighbour, others bicubic.
    A crop larger than the (resized) image raises DataError (a ValueError) naming both sizes.
    """

    preprocess: str
    load_size: int
    crop_size: int
    flip: bool
    train: bool = True
    size_multiple: int = 1

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess {self.preprocess!r}, expected one of {', '.join(PREPROCESS_MODES)}")
        if self.load_size < 1 or self.crop_size < 1 or self.size_multiple < 1:
            raise ValueError(
                f"load_size {self.load_size}, crop_size {self.crop_size}, size_multiple "
                f"{self.size_multiple}: expected all >= 1"
            )

    def plan(self, width: int, height: int) -> tuple[tuple[int, int], int | None, tuple[int, int]]:
        """The size chain for an input of ``width`` x ``height``: (resized (w, h), crop or None,
        final (w, h)). Raises DataError when the crop does not fit."""
        p, L, cs = self.preprocess, self.load_size, self.crop_size
        size = (width, height)
        crop = None
        if self.train:
            if p == "resize_and_crop":
                size, crop = (L, L), cs
            elif p == "crop":
                crop = cs
            elif p == "scale_width":
                size = _scale_width(width, height, L, cs)
            elif p == "scale_width_and_crop":
                size, crop = _scale_width(width, height, L, cs), cs
        else:
            if p == "resize_and_crop":
                size = (cs, cs)
            elif p == "scale_width_and_crop":
                size = _scale_width(width, height, cs, cs)
            elif p == "scale_width":
                size = _scale_width(width, height, L, cs)
        if crop is not None and (size[0] < crop or size[1] < crop):
            what = "the image" if size == (width, height) else f"the image resized from {width}x{height}"
            raise DataError(
                f"crop_size {crop} is larger than {what} ({size[0]}x{size[1]}) with preprocess "
                f"{p!r}; expected images of at least {crop}x{crop} or a smaller data.crop_size"
            )
        cw, ch = (crop, crop) if crop is not None else size
        final = (round_to_multiple(cw, self.size_multiple), round_to_multiple(ch, self.size_multiple))
        return size, crop, final

    def __call__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        rng: np.random.Generator,
        nearest_a: bool = False,
        nearest_b: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        if a.shape[:2] != b.shape[:2]:
            raise DataError(
                f"A is {a.shape[1]}x{a.shape[0]} but B is {b.shape[1]}x{b.shape[0]}; "
                "expected A and B of the same size"
            )
        h, w = a.shape[:2]
        size, crop, final = self.plan(w, h)
        x = y = 0
        flip = False
        if self.train:
            x = int(rng.integers(0, max(size[0] - (crop or 0), 0) + 1))
            y = int(rng.integers(0, max(size[1] - (crop or 0), 0) + 1))
            flip = bool(rng.random() < 0.5) and self.flip
        out = []
        for arr, nearest in ((a, nearest_a), (b, nearest_b)):
            arr = resize(arr, size, nearest)
            if crop is not None:
                arr = arr[y:y + crop, x:x + crop]
            if flip:
                arr = arr[:, ::-1]
            arr = resize(arr, final, nearest)
            out.append(np.ascontiguousarray(arr, dtype=np.float32))
        return out[0], out[1]


    def describe(self) -> str:
        """The geometry in words, for logs: ``preprocess scale_width (load 1024, crop 512)``."""
        what = f"preprocess {self.preprocess} (load {self.load_size}, crop {self.crop_size})"
        if self.size_multiple > 1:
            what += f", sides rounded to multiples of {self.size_multiple}"
        return what

    def fit_array(self, arr: np.ndarray, nearest: bool = False) -> np.ndarray:
        """One HxWxC array through the evaluation geometry (``train=False``): exactly what
        :meth:`__call__` does to each side of an evaluated pair (resize, then round to the size
        multiple), so an input translated alone is read as an evaluated split reads it."""
        if self.train:
            raise ValueError("fit_array applies the evaluation geometry; expected train=False")
        h, w = arr.shape[:2]
        size, _, final = self.plan(w, h)
        return np.ascontiguousarray(resize(resize(arr, size, nearest), final, nearest), dtype=np.float32)

    def fit_tensor(self, t: torch.Tensor, nearest: bool = False) -> torch.Tensor:
        """:meth:`fit_array` for a CxHxW tensor: integer tensors (label and instance ids) are
        resampled with nearest neighbour and stay exact integers; float tensors are images in
        [-1, 1], bicubic unless ``nearest`` (colour-coded label maps)."""
        h, w = t.shape[-2:]
        _, _, final = self.plan(int(w), int(h))
        if final == (int(w), int(h)) and self.plan(int(w), int(h))[0] == final:
            return t
        if not t.is_floating_point():
            # float32 holds every id below 2**24 exactly (instance ids are class * 1000 + index)
            arr = t.detach().cpu().to(torch.float32).permute(1, 2, 0).numpy()
            out = self.fit_array(arr, nearest=True)
            return torch.from_numpy(np.rint(out).transpose(2, 0, 1).copy()).to(t.dtype)
        return to_tensor(self.fit_array(to_array(t), nearest)).to(t.dtype)


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """HxWxC (or HxW) float array in [0, 1] -> CxHxW float32 tensor in [-1, 1]."""
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"array of shape {arr.shape}, expected HxWxC")
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return t * 2.0 - 1.0


def to_array(t: torch.Tensor) -> np.ndarray:
    """CxHxW tensor in [-1, 1] (a batch of one is accepted) -> HxWxC float32 array in [0, 1]."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"tensor of shape {tuple(t.shape)}, expected CxHxW")
    t = ((t.detach().to("cpu", torch.float32) + 1.0) / 2.0).clamp(0.0, 1.0)
    return np.ascontiguousarray(t.permute(1, 2, 0).numpy())
