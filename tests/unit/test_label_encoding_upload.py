"""A painted 1-channel label map uploaded to a model trained with data.label_encoding=cityscapes-train
is encoded as training encoded its labels (labelIds -> trainIds + void)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pairgan.config import build_config
from pairgan.methods.build import build_method
from tests.helpers import tiny_overrides


def test_painted_label_ids_are_encoded_like_training(tmp_path):
    cfg = build_config("crn-demo", tiny_overrides("crn-demo") + ["data.label_encoding=cityscapes-train",
                                                                  "data.label_nc=20"])
    method = build_method(cfg, training=False)
    ids = np.array([[7, 7, 26, 26], [0, 0, 11, 11]], np.uint8)  # road, car, unlabeled, building
    path = tmp_path / "painted.png"
    Image.fromarray(ids, "L").save(path)
    label = method.item_from_upload({"image": path}, {})["label"][0].numpy()
    assert label.tolist() == [[0, 0, 13, 13], [19, 19, 2, 2]]
