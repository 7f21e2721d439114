"""pix2pixHD trains on an aligned colour-label JPEG set (photo | label map) with nearest-palette decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pairgan.data.palettes import BUILTIN_PALETTES
from tests.helpers import train_tiny


def test_pix2pixhd_trains_on_aligned_jpeg_colour_labels(tmp_path: Path):
    colours = BUILTIN_PALETTES["cityscapes"].colors
    rng = np.random.default_rng(0)
    (tmp_path / "city" / "train").mkdir(parents=True)
    for i in range(3):
        ids = np.repeat(rng.permutation(19)[:4], 8)[None].repeat(32, 0)
        label = np.clip(colours[ids] + rng.normal(0, 3, (32, 32, 3)), 0, 255).astype(np.uint8)
        photo = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([photo, label], 1)).save(tmp_path / "city" / "train" / f"{i + 1}.jpg")
    run = train_tiny(tmp_path / "run", "pix2pixhd-512", tmp_path / "city", steps=2, extra=[
        "data.layout=aligned", "data.direction=BtoA", "data.palette=cityscapes", "data.palette_match=nearest",
        "data.label_nc=20", "data.instance=false"])
    assert (run / "checkpoints").is_dir()
    steps = [json.loads(line)["step"] for line in (run / "history.jsonl").read_text().splitlines()]
    assert steps and steps[-1] == 2
