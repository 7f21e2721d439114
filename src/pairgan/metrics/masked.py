"""Masked SSIM for person images (PG2's mask-SSIM): SSIM of the images with the background zeroed.

Not in the ``METRICS`` registry: registered metrics take ``(fake, real)`` only, and this one also
needs a mask (:func:`pairgan.data.poses.person_mask` derives it from the target's keypoints).
"""

from __future__ import annotations

import torch

from pairgan.metrics.basic import ssim


def mask_ssim(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of ``fake * mask`` and ``real * mask`` (NCHW in [0, 1]; ``mask`` N1HW or NHW,
    bool or float in [0, 1]), as PG2 and Deformable GAN report it: the background, zeroed in both,
    counts as matching."""
    m = mask.to(fake.dtype)
    if m.dim() == 3:
        m = m[:, None]
    return ssim(fake * m, real * m)


__all__ = ["mask_ssim"]
