"""Segmentation scores against hand-made confusion matrices; colour-coded labels -> ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pairgan.metrics.segmentation import (
    FACADES_PALETTE,
    colours_to_ids,
    confusion_matrix,
    kmeans_palette,
    resolve_palette,
    scores_from_confusion,
)


def test_confusion_matrix_counts_and_ignores() -> None:
    gt = torch.tensor([[0, 0, 1], [1, 2, 255]])
    pred = torch.tensor([[0, 1, 1], [1, 0, 2]])
    h = confusion_matrix(gt, pred, 3, ignore_index=255)
    assert h.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert confusion_matrix(gt, pred, 3).sum() == 5  # ids >= n_classes are left out anyway
    with pytest.raises(ValueError, match="pixels"):
        confusion_matrix(gt, pred[:, :2], 3)


def test_scores_from_a_hand_made_confusion_matrix() -> None:
    # rows: ground truth, columns: prediction
    h = np.array([[50, 10, 0, 0],
                  [5, 30, 5, 0],
                  [0, 0, 0, 0],   # class 2: never in the ground truth, predicted 5 times
                  [0, 0, 0, 0]])  # class 3: absent everywhere
    s = scores_from_confusion(h, ["a", "b", "c", "d"])
    assert s["pixel_acc"] == pytest.approx(80 / 100)
    # class accuracy over classes present in the ground truth: (50/60 + 30/40) / 2
    assert s["class_acc"] == pytest.approx((50 / 60 + 30 / 40) / 2)
    # IoU: a 50/(60+55-50), b 30/(40+40-30), c 0/(0+5-0) = 0, d undefined (left out)
    ious = [50 / 65, 30 / 50, 0.0]
    assert s["mean_iou"] == pytest.approx(sum(ious) / 3)
    assert s["per_class"]["c"] == {"acc": None, "iou": 0.0, "pixels": 0}
    assert s["per_class"]["d"]["iou"] is None and s["pixels"] == 100
    perfect = scores_from_confusion(np.diag([3, 4]))
    assert perfect["pixel_acc"] == perfect["class_acc"] == perfect["mean_iou"] == 1.0
    empty = scores_from_confusion(np.zeros((2, 2)))
    assert empty["pixel_acc"] is None and empty["mean_iou"] is None


def test_colours_to_ids_takes_the_nearest_palette_colour() -> None:
    pal = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    rgb = torch.tensor([[[0, 0, 0], [250, 10, 5]], [[20, 10, 230], [130, 0, 0]]], dtype=torch.float32)  # HxWx3
    img = rgb.permute(2, 0, 1) / 127.5 - 1
    assert colours_to_ids(img, pal).tolist() == [[0, 1], [2, 1]]
    assert colours_to_ids(img.unsqueeze(0), pal).shape == (1, 2, 2)
    with pytest.raises(ValueError, match="3 channels"):
        colours_to_ids(img[:1], pal)


def test_kmeans_recovers_a_palette_from_noisy_pixels() -> None:
    rng = np.random.default_rng(0)
    true = np.array(FACADES_PALETTE[:5], dtype=np.float64)
    pix = np.concatenate([c + rng.normal(0, 6, (400 * (i + 1), 3)) for i, c in enumerate(true)]).clip(0, 255)
    found = np.array(kmeans_palette(pix, 5))
    for c in true:
        assert np.abs(found - c).sum(1).min() < 6
    assert kmeans_palette(pix, 5) == kmeans_palette(pix, 5)  # deterministic


def test_resolve_palette(tmp_path: Path) -> None:
    assert resolve_palette("facades") == [list(c) for c in FACADES_PALETTE]
    root = tmp_path / "scenes" / "aligned"
    root.mkdir(parents=True)
    (tmp_path / "scenes" / "classes.json").write_text(json.dumps({"palette": [[1, 2, 3], [4, 5, 6]]}))
    assert resolve_palette("classes.json", root) == [[1, 2, 3], [4, 5, 6]]  # found in the parent
    imgs = [np.full((4, 4, 3), c, np.uint8) for c in ((10, 10, 10), (200, 0, 0))]
    assert sorted(resolve_palette("kmeans:2", None, imgs)) == [[10, 10, 10], [200, 0, 0]]
    with pytest.raises(FileNotFoundError, match="nope.json"):
        resolve_palette("nope.json", root)
    with pytest.raises(ValueError, match="kmeans"):
        resolve_palette("kmeans:x")
