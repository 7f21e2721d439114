"""How sure a score is: bootstrap intervals over the evaluated images.

* Per-image metrics (L1, PSNR, SSIM, LPIPS, ...): the mean over images, and the percentile
  interval of that mean over ``n_resamples`` resamples of the images with replacement
  (:func:`bootstrap_interval`).
* FID (:func:`fid_bootstrap`): the value is the FID of all images; its spread is the standard
  deviation (and percentile interval) of the FIDs of resampled generated AND real sets. FID is
  biased upwards on small sets and a resample holds about 63% distinct images, so the resampled
  FIDs sit above the plain value: read the std as the noise, not the interval as bounds.
* Segmentation (:func:`segmentation_bootstrap`): images are resampled, their confusion matrices
  summed and scored as the full set is (:func:`pairgan.metrics.segmentation.scores_from_confusion`).

Every draw comes from a NumPy generator seeded with ``seed``: the same inputs give the same
interval.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from pairgan.metrics.card import MetricValue
from pairgan.metrics.fid import fid_from_features
from pairgan.metrics.segmentation import scores_from_confusion

__all__ = ["SEG_SCORES", "bootstrap_interval", "fid_bootstrap", "segmentation_bootstrap"]

#: segmentation_bootstrap's keys -> the keys of scores_from_confusion.
SEG_SCORES = {"pixel_acc": "pixel_acc", "class_acc": "class_acc", "class_iou": "mean_iou"}

_CHUNK = 64  # resamples drawn at once: bounded memory for large sets


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def _check(n_resamples: int, level: float) -> None:
    if n_resamples < 2:
        raise ValueError(f"n_resamples={n_resamples}: a bootstrap needs at least 2 resamples")
    if not 0 < level < 1:
        raise ValueError(f"level={level}: expected a probability between 0 and 1, e.g. 0.95")


def bootstrap_interval(values: Sequence[float] | np.ndarray, *, n_resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> MetricValue:
    """The mean of ``values`` (one per image) with the ``level`` percentile bootstrap interval of
    the mean and the bootstrap standard error (``std``). With fewer than 2 values, or any
    non-finite one (e.g. PSNR of an exact copy), only the mean is given and ``method`` says why."""
    _check(n_resamples, level)
    x = np.asarray(values, dtype=np.float64).ravel()
    method = f"bootstrap {level:.0%} ({n_resamples} resamples of {x.size} images)"
    if x.size == 0:
        return MetricValue(None, method="no images")
    mean = float(x.mean())
    if x.size < 2:
        return MetricValue(mean, method=f"{x.size} image: no interval")
    if not np.isfinite(x).all():
        return MetricValue(mean, method="no interval: some per-image values are not finite")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for s in range(0, n_resamples, _CHUNK):
        k = min(_CHUNK, n_resamples - s)
        means[s:s + k] = x[rng.integers(0, x.size, size=(k, x.size))].mean(1)
    lo, hi = _percentiles(means, level)
    return MetricValue(mean, lo, hi, float(means.std(ddof=1)), method)


def fid_bootstrap(real_feats: torch.Tensor, fake_feats: torch.Tensor, *, n_resamples: int = 20,
                  level: float = 0.95, seed: int = 0) -> MetricValue:
    """FID of all images as the value; ``std`` and the ``level`` percentile interval over
    ``n_resamples`` FIDs of the generated and real features both resampled with replacement
    (see the module docstring on the upward bias of the resampled values)."""
    _check(n_resamples, level)
    real = torch.as_tensor(real_feats).double()
    fake = torch.as_tensor(fake_feats).double()
    value = fid_from_features(real, fake)
    rng = np.random.default_rng(seed)
    fids = np.empty(n_resamples)
    for i in range(n_resamples):
        ir = torch.from_numpy(rng.integers(0, real.shape[0], size=real.shape[0]))
        i_f = torch.from_numpy(rng.integers(0, fake.shape[0], size=fake.shape[0]))
        fids[i] = fid_from_features(real[ir], fake[i_f])
    lo, hi = _percentiles(fids, level)
    method = (f"bootstrap {level:.0%} ({n_resamples} resamples of {fake.shape[0]} generated and "
              f"{real.shape[0]} real images; resampled FIDs are biased upwards)")
    return MetricValue(value, lo, hi, float(fids.std(ddof=1)), method)


def segmentation_bootstrap(confusions: Sequence[np.ndarray | torch.Tensor], *, n_resamples: int = 1000,
                           level: float = 0.95, seed: int = 0) -> dict[str, MetricValue]:
    """Per-image confusion matrices -> ``pixel_acc``, ``class_acc`` and ``class_iou`` (mean IoU):
    the value scores the sum of all matrices; the interval scores sums over resampled images."""
    _check(n_resamples, level)
    if len(confusions) == 0:
        return {k: MetricValue(None, method="no images") for k in SEG_SCORES}
    stack = np.stack([np.asarray(torch.as_tensor(c).cpu(), dtype=np.float64) for c in confusions])
    n = stack.shape[0]
    full = scores_from_confusion(stack.sum(0))
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in SEG_SCORES}
    flat = stack.reshape(n, -1)
    for _ in range(n_resamples):
        # a resample's sum = the images' matrices weighted by how often each was drawn
        counts = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        s = scores_from_confusion((counts @ flat).reshape(stack.shape[1:]))
        for k, src in SEG_SCORES.items():
            if s[src] is not None:
                draws[k].append(s[src])
    method = f"bootstrap {level:.0%} ({n_resamples} resamples of {n} images' confusion matrices)"
    out: dict[str, MetricValue] = {}
    for k, src in SEG_SCORES.items():
        d = np.asarray(draws[k])
        if full[src] is None or n < 2 or d.size < 2:
            out[k] = MetricValue(full[src], method="no interval" if n >= 2 else f"{n} image: no interval")
            continue
        lo, hi = _percentiles(d, level)
        out[k] = MetricValue(full[src], lo, hi, float(d.std(ddof=1)), method)
    return out


def subsets_interval(mean: float | None, std: float | None, subsets: int, subset_size: int) -> MetricValue:
    """A score averaged over random subsets (KID): mean ± std, ``low``/``high`` one std away."""
    if mean is None or std is None:
        return MetricValue(mean, std=std, method=f"{subsets} subsets of {subset_size}")
    return MetricValue(mean, mean - std, mean + std, std, f"mean ± std over {subsets} subsets of {subset_size}")
