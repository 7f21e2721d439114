"""Translate a data split through a trained model and score it against the targets."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from pairgan.config import atomic_write_text
from pairgan.infer import Translator
from pairgan.metrics import compute_metrics
from pairgan.visual import write_gallery


def evaluate_split(
    translator: Translator,
    data_path: str | os.PathLike,
    split: str,
    out_dir: str | os.PathLike,
    *,
    max_items: int = 0,
    metrics: tuple[str, ...] = ("l1", "psnr", "ssim"),
    seed: int = 0,
) -> dict[str, Any]:
    """Translate ``split`` of the data set at ``data_path`` (read as the model was trained, without
    augmentation: see :class:`pairgan.data.transforms.PairedTransform` with ``train=False``),
    write outputs, a gallery (input | output | target) and ``metrics.json`` into ``out_dir``."""
    from pairgan.data.datasets import build_dataset
    from pairgan.data.io import write_image
    from pairgan.data.transforms import to_array

    out_dir = Path(out_dir)
    data_cfg = dataclasses.replace(translator.cfg.data, path=str(data_path), max_items=max_items)
    ds = build_dataset(data_cfg, split, train=False, size_multiple=translator.method.size_multiple, seed=seed)
    fakes, reals, rows = [], [], []
    for sub in ("inputs", "outputs", "targets"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    method = translator.method
    for i in range(len(ds)):
        item = ds[i]
        batch = {k: v.unsqueeze(0) for k, v in item.items() if torch.is_tensor(v)}
        fake = translator.translate_batch(batch, seed=seed)[0].cpu()
        target = item[method.target_key]
        name = Path(item.get("A_path", f"{i:05d}")).stem
        shown = method.display_input(batch)[0]
        for sub, t in (("inputs", shown), ("outputs", fake), ("targets", target)):
            write_image(out_dir / sub / f"{name}.png", to_array(t))
        rows.append({"name": name, **{c: f"{c}s/{name}.png" for c in ("input", "output", "target")}})
        fakes.append(fake)
        reals.append(target)
    scores = compute_metrics(fakes, reals, metrics)
    result = {
        "split": split,
        "data": str(data_path),
        "checkpoint": str(translator.checkpoint),
        "mode": translator.mode,
        "metrics": scores,
        "protocol": "images in [0,1]; L1 mean abs error; PSNR data range 1; SSIM 11x11 Gaussian sigma 1.5",
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    notes = " · ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "count")
    write_gallery(out_dir, rows, ["input", "output", "target"], title=f"pairgan — {split} split", notes=notes)
    return result


@torch.no_grad()
def heldout_l1(translator: Translator, data_path: str | os.PathLike, split: str, max_items: int = 0) -> float:
    """Mean L1 (in [0, 1] units) of the model on a split, without writing anything."""
    from pairgan.data.datasets import build_dataset

    data_cfg = dataclasses.replace(translator.cfg.data, path=str(data_path), max_items=max_items)
    ds = build_dataset(data_cfg, split, train=False, size_multiple=translator.method.size_multiple)
    key = translator.method.target_key
    fakes, reals = [], []
    for i in range(len(ds)):
        item = ds[i]
        batch = {k: v.unsqueeze(0) for k, v in item.items() if torch.is_tensor(v)}
        fakes.append(translator.translate_batch(batch)[0].cpu())
        reals.append(item[key])
    return compute_metrics(fakes, reals, ("l1",))["l1"]
