"""A tiny pix2pix run trained on colour-coded label maps (the synthetic scenes' aligned layout) keeps
its inputs' profile in every checkpoint, and translate checks inputs against it (issue 14, item 7):
a 1-channel id map of the same scenes is warned about (refused when strict, nothing written); the
training kind of input is not; a checkpoint without the profile still translates."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

import pairgan
from pairgan import checkpoint as ckpt
from pairgan.data.datasets import split_aligned
from pairgan.data.io import read_image
from pairgan.errors import DataError
from pairgan.infer import Translator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def scenes(tiny_data: Callable[..., Path]) -> Path:
    return tiny_data("scenes")


@pytest.fixture
def colour_run(tiny_run: Callable[..., Path], scenes: Path) -> Path:
    """pix2pix trained on the scenes' colour-coded label | photo pairs (shared: never written)."""
    return tiny_run("pix2pix", data=scenes / "aligned")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_every_checkpoint_keeps_the_profile_of_the_colour_labels(colour_run: Path, scenes: Path):
    folders = [p for p in (colour_run / "checkpoints").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert folders
    colours = set()
    for f in sorted((scenes / "aligned" / "train").glob("*.png")):
        a, _ = split_aligned(read_image(f), f)
        colours |= {tuple(c) for c in a.reshape(-1, 3).tolist()}
    for folder in folders:
        profile = ckpt.load_input_profile(folder)
        assert profile is not None, folder
        assert profile.kind == "colour labels" and profile.channels == 3 and profile.config_kind == "image"
        assert {tuple(c) for c in profile.palette} == colours


def test_id_map_warned_once_naming_the_file(colour_run: Path, scenes: Path, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture):
    ids = sorted((scenes / "train_label").glob("*.png"))[1]
    tr = Translator.from_checkpoint(colour_run, device="cpu")
    with caplog.at_level(logging.WARNING, logger="pairgan"):
        written = tr.translate_files([ids], tmp_path / "out", gallery=False)
    assert [p.name for p in written] == [ids.name]
    (line,) = _warnings(caplog)
    assert str(ids) in line and "a 1-channel image with" in line and "(a label-id map?)" in line
    assert "trained on 3-channel colour labels with" in line and "\n" not in line


def test_strict_refuses_and_writes_nothing(colour_run: Path, scenes: Path, tmp_path: Path):
    colour = sorted((scenes / "aligned" / "val").glob("*.png"))[0]
    ids = sorted((scenes / "train_label").glob("*.png"))[1]
    tr = Translator.from_checkpoint(colour_run, device="cpu")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"train_label/0001\.png: a 1-channel image .*\(--strict\); nothing was "):
        tr.translate_files([colour, ids], out, aligned=True, strict=True)
    assert not out.exists()


def test_training_kind_of_input_gives_no_warning(colour_run: Path, scenes: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture):
    """The held-out colour label maps (the val split's input halves, whole files with --aligned)
    pass under strict: no false alarm."""
    tests = sorted((scenes / "aligned" / "val").glob("*.png"))
    halves = tmp_path / "halves"
    halves.mkdir()
    for f in tests:
        a, _ = split_aligned(read_image(f), f)
        Image.fromarray(a).save(halves / f.name)
    tr = Translator.from_checkpoint(colour_run, device="cpu")
    with caplog.at_level(logging.WARNING, logger="pairgan"):
        tr.translate_files(tests, tmp_path / "aligned", aligned=True, strict=True, gallery=False)
        tr.translate_files(sorted(halves.iterdir()), tmp_path / "single", strict=True, gallery=False)
    assert _warnings(caplog) == []
    assert len(list((tmp_path / "single").glob("*.png"))) == len(tests)


def test_python_api_warns_and_refuses_when_strict(colour_run: Path, scenes: Path, caplog: pytest.LogCaptureFixture):
    tr = pairgan.load(colour_run, device="cpu")
    ids = np.asarray(Image.open(sorted((scenes / "train_label").glob("*.png"))[1]))
    test_file = sorted((scenes / "aligned" / "val").glob("*.png"))[0]
    colour, _ = split_aligned(read_image(test_file), test_file)
    with caplog.at_level(logging.WARNING, logger="pairgan"):
        out = tr.translate(ids)
    assert out.shape[:2] == ids.shape[:2]
    (line,) = _warnings(caplog)
    assert line.startswith("warning: <array>: a 1-channel image")
    with pytest.raises(DataError, match=r"<image>: a 1-channel image .*\(strict=True\)"):
        tr.translate(Image.fromarray(ids), strict=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pairgan"):
        tr.translate(colour, strict=True)
    assert _warnings(caplog) == []


def test_checkpoint_without_profile_still_translates(colour_run: Path, scenes: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture):
    """An older checkpoint (no input_profile.json) translates as before; the config-only check
    (a 1-channel few-values file given to a 3-channel image model) still warns."""
    old = tmp_path / "old"
    shutil.copytree(colour_run, old)
    for f in old.rglob(ckpt.INPUT_PROFILE_FILE):
        f.unlink()
    tr = Translator.from_checkpoint(old, device="cpu")
    assert tr.input_profile is None
    colour = sorted((scenes / "aligned" / "val").glob("*.png"))
    ids = sorted((scenes / "train_label").glob("*.png"))[1]
    with caplog.at_level(logging.WARNING, logger="pairgan"):
        written = tr.translate_files(colour, tmp_path / "out", aligned=True, gallery=False)
    assert len(written) == len(colour) and _warnings(caplog) == []
    with pytest.raises(DataError, match=r"0001\.png: a 1-channel image with \d+ values .*\(--strict\)"):
        tr.translate_files([ids], tmp_path / "out2", strict=True)


def test_serve_answers_with_an_input_warning_header(colour_run: Path, scenes: Path):
    """The server translates a misfit upload (it is a valid image) but says so in a header that
    names the upload, never its path on the server; a fitting upload gets no such header."""
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from pairgan.serve.app import create_app
    from pairgan.serve.limits import Limits
    from pairgan.serve.models import load_models

    ids = sorted((scenes / "train_label").glob("*.png"))[1]
    a, _ = split_aligned(read_image(sorted((scenes / "aligned" / "val").glob("*.png"))[0]), Path("x"))
    colour = io_png(a)
    app = create_app(load_models([f"m={colour_run}"], device="cpu"), Limits())
    with TestClient(app) as client:
        bad = client.post("/v1/translate", files={"image": ("ids.png", ids.read_bytes(), "image/png")})
        good = client.post("/v1/translate", files={"image": ("c.png", colour, "image/png")})
    assert bad.status_code == 200 and good.status_code == 200
    warning = bad.headers.get("X-Pairgan-Input-Warning", "")
    assert "the label map" in warning or "the image" in warning
    assert "1-channel" in warning and "pairgan-serve-" not in warning
    assert "X-Pairgan-Input-Warning" not in good.headers


def io_png(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def test_an_exported_file_carries_the_profile(colour_run: Path, scenes: Path, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture):
    from pairgan.export import ExportedTranslator, export_checkpoint

    out = tmp_path / "m.ts"
    export_checkpoint(colour_run, out, fmt="torchscript")
    tr = ExportedTranslator.from_file(out)
    assert tr.input_profile is not None and tr.input_profile.kind == "colour labels"
    ids = sorted((scenes / "train_label").glob("*.png"))[1]
    assert "(a label-id map?)" in (tr.input_mismatch(ids) or "")
