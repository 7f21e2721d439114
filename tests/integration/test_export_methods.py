"""Export round trips of the other methods' tiny runs: pix2pixHD (label maps, instance edges, feature
clusters), GGB (a source image and a target pose), DRPAN (its pix2pix generator) and CRN (all k
outputs). Each exported file translates like eager PyTorch through ``ExportedTranslator``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from pairgan.data.io import read_image  # noqa: E402
from pairgan.errors import ExportError  # noqa: E402
from pairgan.export import ExportedTranslator, export_checkpoint, read_metadata  # noqa: E402
from pairgan.infer import Translator  # noqa: E402
from pairgan.methods.pix2pixhd_features import attach_clusters  # noqa: E402
from tests.helpers import train_tiny_with_clusters  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _same_files(a: Translator, b: Translator, files, tmp_path: Path, options: dict) -> int:
    ya = a.translate_files(files, tmp_path / "a", options=options, gallery=False, overwrite=True)
    yb = b.translate_files(files, tmp_path / "b", options=options, gallery=False, overwrite=True)
    return max(int(np.abs(read_image(p).astype(int) - read_image(q).astype(int)).max()) for p, q in zip(ya, yb))


@pytest.fixture(scope="module")
def hd_run(tmp_path_factory, tiny_data: Callable[..., Path]) -> Path:
    """A 2-step pix2pixHD with instance maps and the feature encoder, and its feature clusters (written
    into the run: this module's own run, not a shared ``tiny_run``)."""
    return train_tiny_with_clusters(tmp_path_factory.mktemp("hd") / "hd", tiny_data("scenes"))


def test_pix2pixhd_export_inputs_clusters_and_backend(hd_run: Path, tiny_data: Callable[..., Path], tmp_path: Path):
    out = tmp_path / "hd.onnx"
    res = export_checkpoint(hd_run, out, dynamic_size=True, size=(32, 32))
    assert res.max_abs_diff <= 1e-4
    meta = read_metadata(out)
    assert list(meta["inputs"]) == ["label", "edges", "features"]  # one-hot labels, instance edges, feature map
    assert meta["inputs"]["label"] == ["batch", 9, "height", "width"] and meta["clusters"]
    assert len(meta["palette"]) == 9 and meta["classes"][6] == "car" and 6 in meta["thing_ids"]
    eager = Translator.from_checkpoint(hd_run, device="cpu")
    attach_clusters(eager.method)
    ort = ExportedTranslator.from_file(out)
    files = sorted((tiny_data("scenes") / "val_label").glob("*.png"))
    for opts in ({"features": "cluster:1"}, {"features": "random"}):
        assert _same_files(eager, ort, files, tmp_path, opts) <= 1
    with pytest.raises(ExportError, match="encoder E"):
        ort.translate_files(files, tmp_path / "enc", aligned=True)  # encode needs E, not in the file


@pytest.mark.slow
def test_ggb_export_source_and_pose_inputs(tiny_run: Callable[..., Path], tiny_data: Callable[..., Path],
                                           tmp_path: Path):
    poses = tiny_data("poses")
    run = tiny_run("ggb", steps=1, data="poses", log_every=None)
    out = tmp_path / "ggb.onnx"
    res = export_checkpoint(run, out, dynamic_size=True)
    assert res.max_abs_diff <= 1e-4
    assert list(read_metadata(out)["inputs"]) == ["source", "target_pose"]
    assert read_metadata(out)["inputs"]["target_pose"] == ["batch", 18, "height", "width"]
    name = (poses / "annotations.csv").read_text().splitlines()[1].split(":")[0]
    files = sorted((poses / "images").glob("*.png"))[:2]
    eager = Translator.from_checkpoint(run, device="cpu")
    assert _same_files(eager, ExportedTranslator.from_file(out), files, tmp_path, {"pose": name}) <= 1


def test_drpan_exports_its_pix2pix_generator(tiny_run: Callable[..., Path], tiny_data: Callable[..., Path],
                                             tmp_path: Path):
    data = tiny_data("aligned", splits={"train": 4, "test": 2})
    run = tiny_run("drpan-demo", steps=1, data=data, log_every=None)
    out = tmp_path / "drpan.onnx"
    res = export_checkpoint(run, out, dynamic_size=True)
    assert res.max_abs_diff <= 1e-4 and read_metadata(out)["method"] == "drpan"
    eager = Translator.from_checkpoint(run, device="cpu", mode="eval")
    assert _same_files(eager, ExportedTranslator.from_file(out), sorted((data / "test").glob("*.png")), tmp_path,
                       {}) <= 1


def test_crn_exports_all_k_outputs(tiny_run: Callable[..., Path], tmp_path: Path):
    # A 2-step CRN with k = 3 on 9-class synthetic label maps (random VGG: a shape test, not a loss).
    run = tiny_run("crn-demo", data="scenes", steps=2, log_every=None, extra=["model.widths=[8,8,8]"])
    out = tmp_path / "crn.onnx"
    res = export_checkpoint(run, out)  # fixed size (32x32)
    assert res.max_abs_diff <= 1e-4 and res.outputs == ["v0", "v1", "v2"]
    assert list(res.inputs) == ["label"]  # one-hot labels (crn-demo has no instance maps)
    eager = Translator.from_checkpoint(run, device="cpu")
    ort = ExportedTranslator.from_file(out)
    labels = {"label": torch.randint(0, 9, (2, 1, 32, 32))}
    for variant in ("all", 2, None):  # all k images (3k channels) or the chosen one (default 0)
        a, b = eager.translate_batch({**labels, "variant": variant}), ort.translate_batch({**labels, "variant": variant})
        assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-4
    assert ort.translate_batch({**labels, "variant": "all"}).shape == (2, 9, 32, 32)
    # --dynamic-size works for CRN too: tests/integration/test_export_crn.py
