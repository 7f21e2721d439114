"""pix2pixHD trains on an aligned colour-label JPEG set (photo | label map) with nearest-palette decoding."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import train_tiny, write_colour_label_pairs


def test_pix2pixhd_trains_on_aligned_jpeg_colour_labels(tmp_path: Path):
    write_colour_label_pairs(tmp_path / "city" / "train")
    run = train_tiny(tmp_path / "run", "pix2pixhd-512", tmp_path / "city", steps=2, extra=[
        "data.layout=aligned", "data.direction=BtoA", "data.palette=cityscapes", "data.palette_match=nearest",
        "data.label_nc=20", "data.instance=false"])
    assert (run / "checkpoints").is_dir()
    steps = [json.loads(line)["step"] for line in (run / "history.jsonl").read_text().splitlines()]
    assert steps and steps[-1] == 2
