"""CRN's label encoding: Cityscapes labelIds -> the 19 training classes + void (issue 17 item 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pairgan.config import DataConfig, build_config
from pairgan.data.io import write_image
from pairgan.data.labels import LabelMapDataset, label_ids
from pairgan.data.palettes import (
    CITYSCAPES_LABELIDS,
    CITYSCAPES_TRAIN_VOID,
    builtin_palette,
    cityscapes_train_ids,
)
from pairgan.errors import ConfigError
from pairgan.methods.crn import CRN


def test_mapping_table() -> None:
    ids = np.array([7, 26, 0, 34, -1, 33, 24, 18, 8, 23])
    assert cityscapes_train_ids(ids).tolist() == [0, 13, 19, 19, 19, 18, 11, 19, 1, 10]
    assert CITYSCAPES_TRAIN_VOID == 19


def test_mapping_agrees_with_the_cityscapes_palette() -> None:
    """One class table: labelId l's colour is the colour of class cityscapes_train_ids(l)."""
    pal = builtin_palette("cityscapes")
    for label_id, name, colour, train_id in CITYSCAPES_LABELIDS:
        mapped = int(cityscapes_train_ids(np.array([label_id]))[0])
        assert pal.class_names[mapped] == (name if train_id is not None else "void")
        if train_id is not None:
            assert tuple(pal.colors[mapped]) == colour


def test_label_ids_encoding_by_source() -> None:
    grey = np.array([[7, 26], [0, 33]], np.uint8)
    assert label_ids(grey, "g.png", 20, encoding="cityscapes-train").tolist() == [[0, 13], [19, 18]]
    assert label_ids(grey, "g.png", 35).tolist() == [[7, 26], [0, 33]]
    road, car = (128, 64, 128), (0, 0, 142)
    rgb = np.array([[road, car]], np.uint8)
    # the cityscapes palette decodes to trainIds already; cityscapes-35's labelIds are mapped
    assert label_ids(rgb, "c.png", 20, builtin_palette("cityscapes"), encoding="cityscapes-train").tolist() == [[0, 13]]
    assert label_ids(rgb, "c.png", 20, builtin_palette("cityscapes-35"),
                     encoding="cityscapes-train").tolist() == [[0, 13]]


def test_dataset_reads_label_ids_as_train_ids(tmp_path: Path) -> None:
    (tmp_path / "train_label").mkdir()
    (tmp_path / "train_img").mkdir()
    label = np.full((16, 16), 7, np.uint8)
    label[8:, :] = 26
    label[:, :4] = 4  # static: void
    write_image(tmp_path / "train_label" / "a.png", label)
    write_image(tmp_path / "train_img" / "a.png", np.full((16, 16, 3), 0.5, np.float32))
    cfg = DataConfig(path=str(tmp_path), layout="labels", input_kind="label", label_nc=20,
                     label_encoding="cityscapes-train", preprocess="none", flip=False)
    item = LabelMapDataset(tmp_path, "train", cfg, train=True)[0]
    got = item["label"][0].numpy()
    assert set(np.unique(got)) == {0, 13, 19}
    assert got[0, 8] == 0 and got[12, 8] == 13 and got[0, 0] == 19


def test_crn_presets_feed_20_channels() -> None:
    cfg = build_config("crn-256", ["model.widths=[8,8]", "model.vgg_pretrained=false"])
    assert (cfg.data.label_nc, cfg.data.label_encoding, cfg.data.target_transform) == (20, "cityscapes-train", "none")
    G = CRN(cfg.model, cfg.data, training=False).nets["G"]
    assert G.input_nc == 20
    for name in ("crn-512", "crn-1024"):
        data = build_config(name).data
        assert (data.label_nc, data.label_encoding, data.target_transform) == (20, "cityscapes-train", "vivid")
    demo = build_config("crn-demo").data
    assert (demo.label_nc, demo.label_encoding, demo.target_transform) == (9, "ids", "none")
    ids35 = build_config("crn-256", ["data.label_encoding=ids", "data.label_nc=35"]).data
    assert ids35.label_nc == 35


def test_cityscapes_train_needs_20_classes() -> None:
    with pytest.raises(ConfigError, match="label_nc=20"):
        build_config("crn-256", ["data.label_nc=35"])
