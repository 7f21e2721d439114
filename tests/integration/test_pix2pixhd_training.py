"""pix2pixHD end to end on the synthetic scenes: the labels data set, the Trainer and the Translator."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from pairgan.config import build_config
from pairgan.data.datasets import build_dataset
from pairgan.data.io import read_image
from pairgan.data.labels import colorize
from pairgan.infer import Translator
from pairgan.train.trainer import Trainer
from tests.helpers import tiny_overrides


def test_end_to_end_scenes_trainer_and_translator(tmp_path: Path, tiny_data: Callable[..., Path]):
    data = tiny_data("scenes")
    cfg = build_config("pix2pixhd-demo", tiny_overrides("pix2pixhd-demo", local=True, features=True, max_steps=3),
                       data_path=str(data))
    summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert summary["steps"] == 3
    tr = Translator.from_checkpoint(tmp_path / "run", device="cpu")
    assert set(tr.method.nets) == {"G", "E"}
    files = sorted((data / "val_label").glob("*.png"))
    assert files
    written = tr.translate_files(files, tmp_path / "out", aligned=True)
    assert (tmp_path / "out" / "targets").is_dir() and written[0].is_file()
    photo = sorted((data / "val_img").glob("*.png"))[0]
    a = tr.translate_files(files, tmp_path / "enc", options={"features": f"encode:{photo}"})
    r = tr.translate_files(files, tmp_path / "rnd", options={"features": "random"})
    assert read_image(a[0]).shape == read_image(r[0]).shape == (32, 32, 3)
    item, target = tr.method.load_inference_input(files[0], aligned=True)
    assert set(item) == {"label", "inst", "image"} and torch.equal(item["image"], target)
    shown = tr.method.display_input({"label": item["label"][None]})
    assert torch.equal(shown, colorize(item["label"][None]))
    # the sample-grid path of the Trainer
    ds = build_dataset(cfg.data, "val", train=False, size_multiple=tr.method.size_multiple)
    batch = torch.utils.data.default_collate([ds[0]])
    cols = tr.method.visuals({k: v for k, v in batch.items()})
    assert cols["output"].shape == cols["target"].shape == cols["input"].shape
