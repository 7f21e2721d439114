"""Translating with a tiny trained pix2pix: ``pairgan.load`` on any input type and size, the paper and
eval modes, files with their gallery, tiled translation, and the checks before anything is written
(inputs and unknown files never replaced, forward passes within the pixel limit)."""

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

import pairgan
from pairgan.data.io import read_image
from pairgan.errors import DataError
from pairgan.infer import IO_BYTES_PER_PIXEL, Translator, expand_inputs


@pytest.fixture
def trained(tiny_run: Callable[..., Path]) -> Path:
    """The shared 2-step tiny pix2pix on the ``aligned`` tiny data (read only)."""
    return tiny_run("pix2pix")


def test_load_translates_any_size_and_type(trained: Path):
    model = pairgan.load(trained)
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    # native: any size runs through the network (padded to its multiple and cropped back)
    out = model.translate(arr, scale="native")
    assert isinstance(out, np.ndarray) and out.shape == (37, 53, 3) and 0 <= out.min() and out.max() <= 1
    pil = model.translate(Image.fromarray(arr), scale="native")
    assert isinstance(pil, Image.Image) and pil.size == (53, 37)
    t = model.translate(torch.rand(3, 40, 70) * 2 - 1, scale="native")
    assert torch.is_tensor(t) and t.shape == (3, 40, 70)
    gray = model.translate(arr[:, :, 0], scale="native")  # 1 channel is replicated to the 3 the model expects
    assert gray.shape == (37, 53, 3)
    # the default: the training scale (resize_and_crop at evaluation: crop_size x crop_size); keep: sized back
    assert model.translate(arr).shape == (32, 32, 3) and model.translate(Image.fromarray(arr)).size == (32, 32)
    assert model.translate(arr, scale="keep").shape == (37, 53, 3)
    assert model.translate(torch.rand(3, 40, 70) * 2 - 1, scale="keep").shape == (3, 40, 70)
    with pytest.raises(ValueError, match="channels"):
        model.translate_tensor(torch.zeros(1, 5, 32, 32))


def test_paper_mode_is_seeded_and_batch_independent(trained: Path):
    model = pairgan.load(trained)
    assert model.mode == "paper"
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    a = model.translate_tensor(x, seed=1)
    b = model.translate_tensor(x, seed=1)
    assert torch.equal(a, b)
    # Batch statistics never mix images: image 0 alone equals image 0 within the batch.
    assert torch.allclose(model.translate_tensor(x[:1], seed=1)[0], a[0], atol=1e-6)
    eval_model = pairgan.load(trained, mode="eval")
    e1, e2 = eval_model.translate_tensor(x, seed=1), eval_model.translate_tensor(x, seed=2)
    assert torch.equal(e1, e2)  # no randomness in eval mode
    assert torch.allclose(eval_model.translate_tensor(x[:1])[0], e1[0], atol=1e-5)


def test_translate_files_writes_outputs_and_gallery(trained: Path, tiny_data: Callable[..., Path], tmp_path: Path):
    model = Translator.from_checkpoint(trained)
    files = expand_inputs([str(tiny_data("aligned") / "test")])  # the run's own test split
    assert len(files) == 3
    out = tmp_path / "out"
    written = model.translate_files(files, out, aligned=True)
    assert [p.name for p in written] == ["000.png", "001.png", "002.png"]
    assert Image.open(written[0]).size == (32, 32)  # the training scale (crop_size at evaluation)
    kept = model.translate_files(files[:1], tmp_path / "kept", aligned=True, gallery=False, scale="keep")
    assert Image.open(kept[0]).size == (40, 40)  # the A half, not the A|B file
    page = (out / "index.html").read_text()
    assert "targets/000.png" in page and "inputs/000.png" in page
    out16 = tmp_path / "out16"
    model.translate_files(files[:1], out16, bit_depth=16, gallery=False)
    assert not (out16 / "index.html").exists()
    assert read_image(out16 / "000.png").dtype == np.uint16


def test_tiled_translation_matches_whole_away_from_seams(trained: Path):
    model = pairgan.load(trained, mode="eval")
    torch.manual_seed(0)
    # A purely local network (receptive field 7 px) stands in for G, so that "agrees away from
    # tile borders" has a sharp meaning: every tile sees the full context of its central pixels.
    local = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(),
                                torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Tanh(),
                                torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Tanh())
    model.method.nets["G"] = local
    model.method.set_inference_mode("eval")
    x = torch.rand(1, 3, 70, 90) * 2 - 1
    whole = model.translate_tensor(x)
    tiled = model.translate_tiled({"A": x}, tile=32, overlap=16)
    assert tiled.shape == whole.shape
    diff = (tiled - whole).abs()
    assert diff.mean() < 0.01
    # Only pixels within 3 px of a tile's cut edge can differ, and there the ramp weights are small.
    assert diff.max() < 0.15
    # With no overlap at all the seams are hard: far larger errors, which the blending removes.
    hard = (model.translate_tiled({"A": x}, tile=32, overlap=0) - whole).abs()
    assert hard.max() > diff.max()


def test_translate_files_tiled_keeps_size(trained: Path, tmp_path: Path):
    model = pairgan.load(trained, mode="eval")
    src = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(src)
    out = model.translate_files([src], tmp_path / "o", tile=32, overlap=8, gallery=False, scale="native")
    assert Image.open(out[0]).size == (100, 80)
    with pytest.raises(ValueError, match="overlap"):
        model.translate_tiled({"A": torch.zeros(1, 3, 64, 64)}, tile=32, overlap=40)


def test_translate_files_never_replaces_inputs_or_unknown_files(trained: Path, tmp_path: Path):
    model = pairgan.load(trained)
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(src)
    before = src.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(DataError, match="would replace the input"):
            model.translate_files([src], src.parent, overwrite=overwrite)
    assert src.read_bytes() == before and sorted(p.name for p in src.parent.iterdir()) == ["a.png"]
    out = tmp_path / "out"
    model.translate_files([src], out)
    with pytest.raises(DataError, match=r"a\.png exists and this run did not write it; --overwrite"):
        model.translate_files([src], out)  # a second run: its files are not this run's
    assert model.translate_files([src], out, overwrite=True) == [out / "a.png"]


def test_translate_files_checks_pixels_before_decoding(trained: Path, tmp_path: Path, monkeypatch):
    model = pairgan.load(trained, mode="eval")
    src = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 130, 3), dtype=np.uint8)).save(src)
    decoded = []
    real = model.method.load_inference_input
    monkeypatch.setattr(model.method, "load_inference_input", lambda *a, **k: decoded.append(a) or real(*a, **k))
    with pytest.raises(DataError, match=r"130x90 pixels in one forward pass .* --tile 512"):
        model.translate_files([src], tmp_path / "o", max_pixels=1000, scale="native")
    assert not decoded and not (tmp_path / "o").exists()  # refused from the header, nothing written
    written = model.translate_files([src], tmp_path / "o", tile="auto", overlap=4, max_pixels=48 * 48, gallery=False,
                                    scale="native")
    assert Image.open(written[0]).size == (130, 90)
    whole = model.translate_files([src], tmp_path / "w", gallery=False, scale="native")  # far below the derived limit
    assert Image.open(whole[0]).size == (130, 90)
    # at the training scale the forward pass is 32x32, within the limit that refused 130x90
    fitted = model.translate_files([src], tmp_path / "f", max_pixels=1100, gallery=False)
    assert Image.open(fitted[0]).size == (32, 32)


def test_measured_bytes_per_pixel_is_conservative(trained: Path):
    model = pairgan.load(trained)
    per_pixel = model.measure_bytes_per_pixel()
    # at least the input's and output's float32 channels, and the whole-image buffers
    assert per_pixel > IO_BYTES_PER_PIXEL + 2 * 3 * 4
    buffers = {k: v.clone() for k, v in model.method.nets.state_dict().items()}
    model.measure_bytes_per_pixel()
    assert all(torch.equal(v, model.method.nets.state_dict()[k]) for k, v in buffers.items())  # the probe left no trace
