"""Translate reads inputs at the scale the model was trained at (issue 17 item 1): the data config's
evaluation geometry, nearest for ids and colour labels, bicubic for photos; ``keep`` resizes the
output back to the input's size; ``native`` is the old behaviour (the input's own size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pairgan.cli import app
from pairgan.data.io import read_image
from pairgan.data.labels import read_label_input
from pairgan.data.transforms import PairedTransform
from pairgan.infer import Translator
from pairgan.methods.build import build_method
from tests.helpers import tiny_config

# scale_width 32: a 64x48 label map is read as 32x24, a 32x24 one as it is
SCALE_WIDTH = ["data.preprocess=scale_width", "data.load_size=32", "data.crop_size=16", "data.instance=false"]


def _label_model(preset: str = "pix2pixhd-demo") -> Translator:
    torch.manual_seed(0)
    cfg = tiny_config(preset, None, *SCALE_WIDTH)
    method = build_method(cfg, training=False)
    method.set_inference_mode("eval")
    return Translator(cfg, method, torch.device("cpu"))


def _write_ids(path: Path, ids: np.ndarray) -> Path:
    Image.fromarray(ids.astype(np.uint8), "L").save(path)
    return path


def _blocky_ids(h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.kron(rng.integers(0, 9, (h // 4, w // 4)), np.ones((4, 4), dtype=np.int64))


@pytest.mark.parametrize("preset", ["pix2pixhd-demo", "crn-demo"])
def test_oversized_label_map_is_translated_at_the_training_scale(tmp_path: Path, preset: str) -> None:
    tr = _label_model(preset)
    ids = _blocky_ids()
    small = _write_ids(tmp_path / "small.png", ids)
    big = _write_ids(tmp_path / "big.png", ids.repeat(2, 0).repeat(2, 1))  # the same scene at twice the scale
    opts = {"variant": 0} if preset.startswith("crn") else {}

    right = tr.translate_files([small], tmp_path / "right", gallery=False, options=opts)
    fitted = tr.translate_files([big], tmp_path / "fitted", gallery=False, options=opts)
    right_px, fitted_px = read_image(right[0]), read_image(fitted[0])
    assert fitted_px.shape[:2] == (24, 32)  # the training scale, not the file's 48x64
    # nearest keeps every id: the oversized map is fitted to the very same input, exactly ...
    small_item, _ = tr.method.load_inference_input(small)
    big_item, _ = tr.method.to_training_scale(tr.method.load_inference_input(big)[0], None,
                                              size_multiple=tr.size_multiple)
    assert small_item.keys() == big_item.keys()
    assert all(torch.equal(small_item[k], big_item[k]) for k in small_item if torch.is_tensor(small_item[k]))
    # ... so the outputs agree (up to float reductions that may differ between runs: 1 grey level)
    assert np.abs(fitted_px.astype(int) - right_px.astype(int)).max() <= 1

    kept = tr.translate_files([big], tmp_path / "kept", gallery=False, options=opts, scale="keep")
    assert read_image(kept[0]).shape[:2] == (48, 64)

    native = tr.translate_files([big], tmp_path / "native", gallery=False, options=opts, scale="native")
    native_px = read_image(native[0])
    assert native_px.shape[:2] == (48, 64)
    # today's behaviour: the label map at its own size through the network
    item = read_label_input(big, tr.method.label_nc, tr.method.data)
    expected = tr.translate_batch({k: v[None] for k, v in item.items()} | opts)[0]
    as_written = np.rint(((expected.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1) * 255)
    assert np.abs(native_px.astype(np.float64) - as_written).max() <= 1


def test_fit_keeps_ids_exact_and_resizes_photos_bicubic() -> None:
    geometry = PairedTransform("scale_width", 32, 16, flip=True, train=False, size_multiple=4)
    inst = torch.from_numpy(np.kron(np.arange(12).reshape(3, 4) * 1000 + 26001, np.ones((16, 16))).astype(np.int64))
    fitted = geometry.fit_tensor(inst[None])
    assert fitted.dtype == torch.int64 and tuple(fitted.shape) == (1, 24, 32)
    assert set(fitted.unique().tolist()) == set(inst.unique().tolist())
    photo = torch.linspace(-1, 1, 48 * 64).reshape(1, 48, 64)
    out = geometry.fit_tensor(photo)
    assert tuple(out.shape) == (1, 24, 32) and out.dtype == torch.float32
    assert not set(out.flatten().tolist()) <= set(photo.flatten().tolist())  # interpolated, not picked


def test_python_api_scales(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_config("pix2pix", None)  # resize_and_crop: evaluation resizes to crop_size x crop_size (32)
    method = build_method(cfg, training=False)
    tr = Translator(cfg, method, torch.device("cpu"))
    arr = np.random.default_rng(1).random((37, 53, 3)).astype(np.float32)
    assert tr.translate(arr).shape == (32, 32, 3)
    assert tr.translate(arr, scale="keep").shape == (37, 53, 3)
    assert tr.translate(arr, scale="native").shape == (37, 53, 3)
    assert tuple(tr.translate(torch.rand(3, 40, 70) * 2 - 1).shape) == (3, 32, 32)
    with pytest.raises(ValueError, match="scale 'huge'"):
        tr.translate(arr, scale="huge")


def test_cli_refuses_keep_and_native_together(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["translate", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "o"),
                                   "--keep-size", "--native-size"])
    assert res.exit_code == 2 and "choose one" in res.output
