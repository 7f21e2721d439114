"""The segmenter: a pairgan method trained on real photos -> label ids, on the three kinds of data.
Its config errors: tests/unit/test_segmenter_config.py."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import pairgan
from pairgan.cli import app
from pairgan.data.labels import read_label_map
from pairgan.evaluate import score_real
from pairgan.methods.segmenter import Segmenter, build_segmenter_config, load_segmenter
from pairgan.train.trainer import Trainer
from tests.helpers import set_args, tiny_overrides

TINY_SEG = tiny_overrides("segmenter", max_steps=4)


@pytest.fixture
def scenes(tiny_data: Callable[..., Path]) -> Path:
    """20 synthetic scenes of 32 px (train 16 / val 2 / test 2), shared by the session."""
    return tiny_data("scenes", n=20, workers=1)


def test_labels_layout_train_load_predict_score(scenes: Path, tmp_path: Path) -> None:
    cfg = build_segmenter_config(scenes, TINY_SEG + ["data.label_nc=9"])
    assert cfg.method == "segmenter" and cfg.train.beta1 == 0.9
    Trainer(cfg, tmp_path / "seg", progress=False).fit()
    seg = load_segmenter(tmp_path / "seg")
    assert isinstance(seg, Segmenter) and seg.n_classes == 9
    photo = torch.rand(2, 3, 40, 52) * 2 - 1  # any size: padded to the multiple and cropped back
    ids = seg.predict(photo)
    assert ids.shape == (2, 40, 52) and ids.dtype == torch.long and int(ids.max()) < 9
    # a pairgan checkpoint like any other: pairgan.load + translate give the coloured prediction
    model = pairgan.load(tmp_path / "seg", device="cpu")
    out = model.translate(photo[0], scale="native")
    assert out.shape == (3, 40, 52) and float(out.min()) >= -1 and float(out.max()) <= 1
    # at the training scale, sized back (keep) with nearest neighbour: only the prediction's own colours
    fitted, kept = model.translate(photo[0]), model.translate(photo[0], scale="keep")
    assert kept.shape == (3, 40, 52) and fitted.shape[-2:] != kept.shape[-2:]
    colours = {tuple(c) for c in fitted.flatten(1).T.mul(1000).round().tolist()}
    assert {tuple(c) for c in kept.flatten(1).T.mul(1000).round().tolist()} <= colours
    s = score_real(tmp_path / "seg", scenes, "test", device="cpu")
    assert s["images"] == 2 and 0 <= s["pixel_acc"] <= 1 and 0 <= s["mean_iou"] <= 1


def test_aligned_colour_coded_labels_with_a_palette_file(scenes: Path, tmp_path: Path) -> None:
    aligned = scenes / "aligned"
    cfg = build_segmenter_config(aligned, TINY_SEG + ["model.palette=classes.json"])
    seg = Segmenter(cfg.model, cfg.data, training=True)
    assert seg.n_classes == 9 and len(cfg.model.palette_colors) == 9  # resolved into the config
    Trainer(cfg, tmp_path / "seg", progress=False).fit()
    loaded = load_segmenter(tmp_path / "seg")
    assert loaded.cfg.palette_colors == cfg.model.palette_colors
    # the colour-coded label half maps back to the scene's ids exactly
    f = sorted((aligned / "test").glob("*.png"))[0]
    both = np.asarray(Image.open(f).convert("RGB"))
    left = torch.from_numpy(both[:, : both.shape[1] // 2].copy()).permute(2, 0, 1).float() / 127.5 - 1
    ids = loaded.labels_to_ids(left.unsqueeze(0))[0]
    truth = read_label_map(sorted((scenes / "test_label").glob("*.png"))[0], 9)
    assert np.array_equal(ids.numpy(), truth)


def test_kmeans_palette_and_cli(tmp_path: Path) -> None:
    """Colour-coded labels of unknown colours (facades-like): k-means, through the CLI."""
    rng = np.random.default_rng(0)
    colours = np.array([[0, 0, 200], [255, 80, 0], [0, 200, 255]], np.uint8)
    for split, n in (("train", 4), ("test", 2)):
        (tmp_path / "d" / split).mkdir(parents=True)
        for i in range(n):
            ids = np.zeros((40, 40), np.int64)
            ids[5:20, 5:30] = 1
            ids[25:35, rng.integers(0, 20):] = 2
            lab = colours[ids]
            photo = (lab.astype(np.float64) * 0.5 + rng.normal(0, 10, lab.shape) + 40).clip(0, 255).astype(np.uint8)
            Image.fromarray(np.concatenate([photo, lab], 1)).save(tmp_path / "d" / split / f"{i}.png")
    res = CliRunner().invoke(app, ["segmenter", "train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "s"),
                                   "--set", "data.direction=BtoA", "--set", "model.palette=kmeans:3",
                                   *set_args(TINY_SEG)])
    assert res.exit_code == 0, res.output
    seg = load_segmenter(tmp_path / "s")
    assert sorted(map(tuple, seg.cfg.palette_colors)) == sorted(map(tuple, colours.tolist()))
    res = CliRunner().invoke(app, ["segmenter", "score", str(tmp_path / "s"), "--data", str(tmp_path / "d"),
                                   "--device", "cpu"])
    assert res.exit_code == 0 and "mean IoU" in res.output, res.output
