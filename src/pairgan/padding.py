"""Padding and fitting of NCHW batches: the one place inference and export make inputs the size a
network needs. Float tensors are reflect-padded; integer tensors (label and instance ids) take
exactly the same reflection by indexing, so ids are never blended."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["pad_to", "pad_to_multiple", "pad_batch", "fit_batch", "resize_to"]


def _reflect_index(n: int, total: int, mode: str, device: torch.device) -> torch.Tensor:
    idx = torch.arange(total, device=device)
    if mode == "replicate" or n == 1:
        return idx.clamp(max=n - 1)
    period = 2 * (n - 1)
    idx = idx % period
    return torch.where(idx < n, idx, period - idx)


def pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Reflect-pad NCHW ``x`` on the bottom/right to exactly (h, w); replicate where the input is
    too small to reflect (reflection needs pad < size)."""
    ih, iw = x.shape[-2:]
    ph, pw = h - ih, w - iw
    if not (ph or pw):
        return x
    mode = "reflect" if ph < ih and pw < iw else "replicate"
    if x.dtype.is_floating_point:
        return F.pad(x, (0, pw, 0, ph), mode=mode)
    rows = _reflect_index(ih, h, mode, x.device)
    cols = _reflect_index(iw, w, mode, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad NCHW ``x`` on the bottom/right to multiples of ``multiple``; returns (x, (h, w))
    with the original size."""
    h, w = x.shape[-2:]
    return pad_to(x, h + (-h) % multiple, w + (-w) % multiple), (h, w)


def pad_batch(batch: dict[str, Any], multiple: int) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """Pad every NCHW tensor of ``batch`` to ``multiple``; returns the batch and the original size."""
    out: dict[str, Any] = {}
    size = None
    for k, v in batch.items():
        if torch.is_tensor(v) and v.dim() == 4:
            out[k], hw = pad_to_multiple(v, multiple)
            size = size or hw
        else:
            out[k] = v
    return out, size


def resize_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resize NCHW ``x`` to (h, w): antialiased bilinear for images, nearest for integer ids."""
    if x.dtype.is_floating_point:
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    rows = (torch.arange(h, device=x.device) * x.shape[-2] // h).clamp(max=x.shape[-2] - 1)
    cols = (torch.arange(w, device=x.device) * x.shape[-1] // w).clamp(max=x.shape[-1] - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def fit_batch(batch: dict[str, Any], size: tuple[int, int]) -> tuple[dict[str, Any], tuple[int, int], tuple[int, int]]:
    """Fit every NCHW tensor of ``batch`` to a fixed size (height, width): scale down (aspect kept)
    when larger, then reflect-pad to it. Returns (batch, original hw, scaled hw)."""
    H, W = size
    hw = next(tuple(v.shape[-2:]) for v in batch.values() if torch.is_tensor(v) and v.dim() == 4)
    h, w = int(hw[0]), int(hw[1])
    sh, sw = h, w
    if h > H or w > W:
        s = min(H / h, W / w)
        sh, sw = max(1, min(H, int(h * s))), max(1, min(W, int(w * s)))
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v) and v.dim() == 4:
            if (sh, sw) != (h, w):
                v = resize_to(v, sh, sw)
            v = pad_to(v, H, W)
        out[k] = v
    return out, (h, w), (sh, sw)
