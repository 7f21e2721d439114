"""Label-map encodings computed on the tensors' device: :func:`one_hot` (class ids -> channels)
and :func:`instance_edges` (the instance boundary map), shared by every label-map network."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["as_nchw_ids", "one_hot", "instance_edges"]


def as_nchw_ids(t: Tensor, name: str) -> Tensor:
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.dim() != 4 or t.shape[1] != 1:
        raise ValueError(f"{name}: expected ids of shape [N, 1, H, W], got {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"{name}: expected an integer tensor, got {t.dtype}")
    return t


def one_hot(label: Tensor, label_nc: int) -> Tensor:
    """Class ids ``[N, 1, H, W]`` (integers ``0 .. label_nc - 1``) -> float ``[N, label_nc, H, W]``.

    Made on ``label``'s device. An id outside the range raises ValueError naming it and
    ``label_nc`` (the reference code crashes inside CUDA's scatter instead).
    """
    label = as_nchw_ids(label, "label")
    if label_nc < 1:
        raise ValueError(f"label_nc must be >= 1, got {label_nc}")
    lo, hi = int(label.min()), int(label.max())
    if lo < 0 or hi >= label_nc:
        bad = hi if hi >= label_nc else lo
        raise ValueError(f"label id {bad} is outside 0..{label_nc - 1} (data.label_nc = {label_nc})")
    n, _, h, w = label.shape
    out = torch.zeros(n, label_nc, h, w, device=label.device)
    return out.scatter_(1, label.long(), 1.0)


def instance_edges(inst: Tensor) -> Tensor:
    """The instance boundary map: float ``[N, 1, H, W]``, 1 where a pixel's instance id differs
    from that of any of its 4 neighbours, else 0 (both pixels of a differing pair are edges)."""
    inst = as_nchw_ids(inst, "inst")
    edge = torch.zeros(inst.shape, dtype=torch.bool, device=inst.device)
    horizontal = inst[..., :, 1:] != inst[..., :, :-1]
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    vertical = inst[..., 1:, :] != inst[..., :-1, :]
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    return edge.float()
