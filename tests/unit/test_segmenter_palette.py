"""The segmenter decodes colour labels with the data config's nearest rule: void -> ignore index."""

from __future__ import annotations

import numpy as np
import torch

from pairgan.data.palettes import BUILTIN_PALETTES, CITYSCAPES_CLASSES
from pairgan.methods.segmenter import Segmenter, build_segmenter_config
from tests.helpers import tiny_overrides

NEAREST = ["data.palette=cityscapes", "data.palette_match=nearest", "data.label_nc=20"]


def test_segmenter_nearest_decoding_ignores_void(tmp_path):
    cfg = build_segmenter_config(tmp_path, tiny_overrides("segmenter", max_steps=1) + NEAREST)
    seg = Segmenter(cfg.model, cfg.data, training=False)
    # void is the last id: 19 classes predicted, id 19 ignored, the palette's names for the score
    assert seg.n_classes == 19 and cfg.model.ignore_index == 19
    assert cfg.model.class_names == list(CITYSCAPES_CLASSES[:19])
    colours = BUILTIN_PALETTES["cityscapes"].colors
    rgb = np.array([[colours[0] + 6, colours[13], [255, 128, 255], [0, 0, 0]]], np.float32)  # road+noise, car, far, void
    a = torch.from_numpy(rgb / 127.5 - 1).permute(2, 0, 1)[None]
    assert seg.labels_to_ids(a).tolist() == [[[0, 13, 19, 19]]]
    # another ignore index: void and far pixels take it
    cfg2 = build_segmenter_config(tmp_path, tiny_overrides("segmenter", max_steps=1) + NEAREST
                                  + ["model.ignore_index=255"])
    seg2 = Segmenter(cfg2.model, cfg2.data, training=False)
    assert seg2.labels_to_ids(a).tolist() == [[[0, 13, 255, 255]]]
    assert seg2.ids_of({"label": torch.tensor([[[[0, 19]]]])}).tolist() == [[[0, 255]]]
