"""The segmentation score (pix2pix's "FCN-score", pix2pixHD's segmentation accuracy): scores from a
confusion matrix, and colour-coded label maps -> class ids.

A segmenter trained on REAL photos -> labels (``pairgan segmenter train``) labels the generated
images; the better they look like the real thing, the closer its output is to the input label
map. Scores follow the pix2pix / FCN evaluation code (``get_scores``): one confusion matrix
accumulated over all pixels of the split (rows: ground truth, columns: prediction), then

* per-pixel accuracy ``sum(diag) / sum(all)``,
* per-class accuracy ``mean_c diag_c / rowsum_c`` over classes present in the ground truth,
* mean IoU ``mean_c diag_c / (rowsum_c + colsum_c - diag_c)`` over classes present in the ground
  truth or the prediction (a class predicted but absent counts as IoU 0).

Pixels whose ground truth is ``ignore_index`` (or outside ``0..n_classes-1``) are left out.

Colour-coded label images (facades, the synthetic scenes' aligned halves) are mapped to ids by
the **nearest palette colour** (Euclidean in RGB): JPEG compression and resampling blend the
colours at region borders, and nearest-colour assignment maps every pixel to some class
instead of failing. Palettes: a JSON file (``{"palette": [[r, g, b], ...]}`` or a list, as
``data.palette``), the built-in ``facades`` palette, or ``kmeans:K`` (K colours fitted to the
training label images, deterministic).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from pairgan.data.labels import load_palette
from pairgan.data.palettes import BUILTIN_PALETTES, builtin_palette

__all__ = [
    "FACADES_CLASSES",
    "FACADES_PALETTE",
    "colours_to_ids",
    "confusion_matrix",
    "kmeans_palette",
    "resolve_palette",
    "scores_from_confusion",
]

#: The facades label colours (CMP Facade Database as released with pix2pix), measured on the
#: flat regions of the 400 training label maps (JPEG) and ordered along the jet colour map.
FACADES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 222), (0, 48, 255), (0, 128, 255), (0, 207, 255), (32, 255, 224), (112, 255, 144),
    (192, 255, 64), (255, 240, 0), (255, 160, 0), (255, 80, 0), (255, 0, 0), (174, 0, 0),
)
#: CMP's 12 classes in label order (assumed to follow the colour order above; names are for
#: display only, the scores do not depend on them).
FACADES_CLASSES: tuple[str, ...] = (
    "background", "facade", "window", "door", "cornice", "sill", "balcony", "blind", "deco", "molding",
    "pillar", "shop",
)


def confusion_matrix(target: torch.Tensor, pred: torch.Tensor, n_classes: int, ignore_index: int = -1) -> torch.Tensor:
    """``[n, n]`` int64 counts, rows = ground truth, columns = prediction (any matching shapes)."""
    t = torch.as_tensor(target).long().flatten()
    p = torch.as_tensor(pred).long().flatten()
    if t.shape != p.shape:
        raise ValueError(f"target and prediction have {t.numel()} and {p.numel()} pixels")
    keep = (t >= 0) & (t < n_classes) & (t != ignore_index) & (p >= 0) & (p < n_classes)
    idx = t[keep] * n_classes + p[keep]
    return torch.bincount(idx, minlength=n_classes * n_classes).view(n_classes, n_classes).cpu()


def scores_from_confusion(hist: torch.Tensor | np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-pixel accuracy, mean per-class accuracy, mean IoU (see the module docstring), plus
    the per-class values (``None`` where undefined)."""
    h = np.asarray(hist, dtype=np.float64)
    diag = np.diag(h)
    rows, cols = h.sum(1), h.sum(0)
    total = h.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = diag.sum() / total if total > 0 else float("nan")
        cls_acc = np.where(rows > 0, diag / rows, np.nan)
        union = rows + cols - diag
        iou = np.where(union > 0, diag / union, np.nan)
    n = h.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]

    def clean(v: float) -> float | None:
        return None if np.isnan(v) else float(v)

    return {
        "pixel_acc": clean(acc),
        "class_acc": clean(np.nanmean(cls_acc)) if np.isfinite(cls_acc).any() else None,
        "mean_iou": clean(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "per_class": {names[i] if i < len(names) else str(i): {"acc": clean(cls_acc[i]), "iou": clean(iou[i]),
                                                                "pixels": int(rows[i])}
                      for i in range(n)},
        "pixels": int(total),
    }


def colours_to_ids(image: torch.Tensor, palette: torch.Tensor | np.ndarray | Sequence[Sequence[int]]) -> torch.Tensor:
    """Colour-coded label images ``[N, 3, H, W]`` (or ``[3, H, W]``) in [-1, 1] -> ids ``[N, H, W]``
    (or ``[H, W]``) of the nearest palette colour (Euclidean RGB, on the 0..255 scale)."""
    squeeze = image.dim() == 3
    x = image.unsqueeze(0) if squeeze else image
    if x.shape[1] != 3:
        raise ValueError(f"colour-coded labels need 3 channels, got {x.shape[1]}")
    pal = torch.as_tensor(np.asarray(palette, dtype=np.float32), device=x.device).view(-1, 3)
    v = ((x.float() + 1) * 127.5).clamp(0, 255)
    flat = v.permute(0, 2, 3, 1).reshape(-1, 3)
    ids = torch.empty(flat.shape[0], dtype=torch.long, device=x.device)
    for s in range(0, flat.shape[0], 1 << 18):  # bounded memory for large images
        d = torch.cdist(flat[s : s + (1 << 18)], pal)
        ids[s : s + (1 << 18)] = d.argmin(1)
    out = ids.view(x.shape[0], x.shape[2], x.shape[3])
    return out[0] if squeeze else out


def kmeans_palette(pixels: np.ndarray, k: int, iters: int = 30, seed: int = 0) -> list[list[int]]:
    """``k`` colours fitted to ``[M, 3]`` RGB pixels (0..255) by k-means with k-means++ seeding
    (deterministic for a seed); sorted by frequency, most frequent first."""
    x = np.asarray(pixels, dtype=np.float64).reshape(-1, 3)
    if len(x) < k:
        raise ValueError(f"{len(x)} pixels for k-means with k={k}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
        centres.append(x[rng.choice(len(x), p=probs)])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iters):
        assign = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    counts = np.bincount(assign, minlength=k)
    order = np.argsort(-counts, kind="stable")
    return [[int(round(v)) for v in c[j]] for j in order]


def _load_palette_file(path: Path) -> list[list[int]]:
    return [[int(v) for v in c] for c in load_palette(path).tolist()]


def resolve_palette(spec: str, data_root: str | Path | None = None,
                    sample_images: Iterable[np.ndarray] | None = None) -> list[list[int]]:
    """A palette spec -> a list of ``[r, g, b]``: ``facades``, a built-in data palette
    (``cityscapes``, ``cityscapes-35``: the display colour of each id), ``kmeans:K`` (fitted to
    ``sample_images``, HxWx3 uint8 arrays), or a JSON palette file (as given, else relative to
    ``data_root`` or its parent)."""
    spec = spec.strip()
    if spec == "facades":
        return [list(c) for c in FACADES_PALETTE]
    builtin = builtin_palette(spec)
    if builtin is not None:
        return [[int(v) for v in c] for c in builtin.colors.tolist()]
    if spec.startswith("kmeans:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"palette {spec!r}: expected kmeans:K with an integer K") from None
        if sample_images is None:
            raise ValueError(f"palette {spec!r} needs label images to fit the colours to")
        pix = [np.asarray(a)[::2, ::2, :3].reshape(-1, 3) for a in sample_images]
        allpix = np.concatenate(pix)
        if len(allpix) > 200_000:
            allpix = allpix[np.random.default_rng(0).choice(len(allpix), 200_000, replace=False)]
        return kmeans_palette(allpix, k)
    p = Path(spec).expanduser()
    candidates = [p]
    if data_root is not None and not p.is_absolute():
        candidates += [Path(data_root) / p, Path(data_root).parent / p]
    for c in candidates:
        if c.is_file():
            return _load_palette_file(c)
    raise FileNotFoundError(f"palette {spec!r}: not 'facades', {', '.join(map(repr, BUILTIN_PALETTES))}, "
                            "'kmeans:K' or an existing JSON palette file "
                            f"(looked at {', '.join(str(c) for c in candidates)})")


def palette_json(palette: Sequence[Sequence[int]]) -> str:
    return json.dumps({"palette": [list(map(int, c)) for c in palette]})
