"""Export round trips: ONNX (onnxruntime) and TorchScript files agree with eager PyTorch, carry their
metadata, and run with the same pre/post-processing through ``translate --backend``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from pairgan.cli import app  # noqa: E402
from pairgan.config import build_config  # noqa: E402
from pairgan.export import ExportedTranslator, export_checkpoint, parse_size, read_metadata
from pairgan.errors import ExportError, ExportMismatch
from pairgan.infer import Translator  # noqa: E402
from pairgan.train.trainer import Trainer  # noqa: E402
from tests.conftest import TINY, write_aligned  # noqa: E402


def train_tiny(root: Path, preset: str = "pix2pix", extra: list[str] | None = None, data: Path | None = None) -> Path:
    """A 1-step pix2pix run on 40x40 A|B pairs (unet with 5 levels at ngf 8: size multiple 32)."""
    data = data or write_aligned(root / "data", {"train": 4, "test": 2})
    cfg = build_config(preset, TINY + ["train.max_steps=1"] + (extra or []), data_path=str(data))
    run = root / "run"
    Trainer(cfg, run, progress=False).fit()
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def dynamic_onnx(run: Path, tmp_path_factory) -> tuple[Path, str]:
    """`pairgan export --dynamic-size` through the CLI (also checks what it prints)."""
    out = tmp_path_factory.mktemp("onnx") / "g.onnx"
    res = CliRunner().invoke(app, ["export", str(run), "--format", "onnx", "--out", str(out), "--dynamic-size"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_cli_export_prints_agreement_and_writes_one_file(dynamic_onnx):
    out, text = dynamic_onnx
    assert "max abs diff" in text and "onnxruntime (CPU) vs eager PyTorch" in text
    assert "another batch and size" in text  # a second size checks the symbolic height/width
    assert "paper" in text and "not exported" in text  # pix2pix's default mode is documented as not exported
    diffs = [float(line.rsplit("max abs diff ", 1)[1].split()[0]) for line in text.splitlines() if "check " in line]
    assert diffs and max(diffs) <= 1e-4
    assert [p.name for p in out.parent.iterdir()] == ["g.onnx"]  # self-contained: no external data, no temp left
    meta = read_metadata(out)
    assert meta["method"] == "pix2pix" and meta["dynamic_size"] and meta["mode"] == "eval"
    assert meta["inputs"] == {"A": ["batch", 3, "height", "width"]} and meta["size_multiple"] == 32


def test_onnxruntime_backend_matches_eager_eval_at_any_size(run: Path, dynamic_onnx):
    onnx_file, _ = dynamic_onnx
    eager = Translator.from_checkpoint(run, device="cpu", mode="eval")
    ort = ExportedTranslator.from_file(onnx_file)
    assert ort.backend == "onnxruntime" and ort.mode == "eval"
    for shape in [(1, 3, 32, 32), (2, 3, 37, 53), (1, 3, 20, 70)]:
        x = torch.rand(*shape) * 2 - 1
        a, b = eager.translate_tensor(x), ort.translate_tensor(x)
        assert b.shape == x.shape
        assert float((a - b).abs().max()) <= 1e-4
    with pytest.raises(ExportError, match="eval-mode"):
        ExportedTranslator.from_file(onnx_file, mode="paper")
    with pytest.raises(ExportError, match="torchscript"):
        ExportedTranslator.from_file(onnx_file, backend="torchscript")


def test_fixed_size_export_opset17_pads_and_resizes(run: Path, tmp_path: Path):
    out = tmp_path / "fixed.onnx"
    res = export_checkpoint(run, out, fmt="onnx", opset=17, size=parse_size("64x32"))
    assert res.max_abs_diff <= 1e-4 and res.size == (32, 64) and not res.dynamic_size
    import onnx

    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ["batch", 3, 32, 64]
    eager = Translator.from_checkpoint(run, device="cpu", mode="eval")
    ort = ExportedTranslator.from_file(out)
    x = torch.rand(1, 3, 30, 50) * 2 - 1  # smaller: reflect-padded to 32x64 and cropped back
    y = ort.translate_tensor(x)
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x, (0, 14, 0, 2), mode="reflect")
    ref = eager.translate_tensor(padded)[..., :30, :50]
    assert float((y - ref).abs().max()) <= 1e-4
    big = ort.translate_tensor(torch.rand(1, 3, 70, 90) * 2 - 1)  # larger: scaled into 32x64 and back
    assert big.shape == (1, 3, 70, 90) and big.abs().max() <= 1
    with pytest.raises(ExportError, match="multiples of 32"):
        export_checkpoint(run, tmp_path / "bad.onnx", size=(40, 40))


def test_torchscript_export_and_mismatch_keeps_no_file(run: Path, tmp_path: Path):
    out = tmp_path / "g.pt"
    res = export_checkpoint(run, out, fmt="torchscript", dynamic_size=True)
    assert res.max_abs_diff <= 1e-4 and len(res.checks) == 2
    assert read_metadata(out)["format"] == "torchscript"
    ts = ExportedTranslator.from_file(out, backend="torchscript")
    eager = Translator.from_checkpoint(run, device="cpu", mode="eval")
    x = torch.rand(2, 3, 45, 33) * 2 - 1
    assert float((ts.translate_tensor(x) - eager.translate_tensor(x)).abs().max()) <= 1e-4
    with pytest.raises(ExportMismatch, match="not kept"):
        export_checkpoint(run, tmp_path / "never.pt", fmt="torchscript", tolerance=-1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pt"]


def test_cli_translate_backend_onnxruntime_same_images_as_eval(run: Path, dynamic_onnx, tmp_path: Path):
    from pairgan.data.io import read_image

    onnx_file, _ = dynamic_onnx
    data = run.parent / "data" / "test"
    r1 = CliRunner().invoke(app, ["translate", str(onnx_file), str(data), "--out", str(tmp_path / "ort"),
                                  "--backend", "onnxruntime", "--aligned"])
    assert r1.exit_code == 0, r1.output
    r2 = CliRunner().invoke(app, ["translate", str(run), str(data), "--out", str(tmp_path / "eager"),
                                  "--mode", "eval", "--aligned"])
    assert r2.exit_code == 0, r2.output
    for name in ("000.png", "001.png"):
        a = read_image(tmp_path / "ort" / name).astype(int)
        b = read_image(tmp_path / "eager" / name).astype(int)
        assert a.shape == (40, 40, 3) and np.abs(a - b).max() <= 1
    assert (tmp_path / "ort" / "index.html").is_file()
    bad = CliRunner().invoke(app, ["translate", str(onnx_file), str(data), "--out", str(tmp_path / "x"),
                                   "--backend", "onnxruntime", "--mode", "paper"])
    assert bad.exit_code == 2 and "eval-mode" in bad.output
    bad = CliRunner().invoke(app, ["translate", str(run), str(data), "--out", str(tmp_path / "x"),
                                   "--backend", "onnxruntime"])
    assert bad.exit_code == 2 and "exported file" in bad.output
    bad = CliRunner().invoke(app, ["export", str(run), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "onnx, torchscript" in bad.output


def test_metadata_carries_config_and_palette(run: Path, dynamic_onnx):
    onnx_file, _ = dynamic_onnx
    meta = read_metadata(onnx_file)
    assert meta["config"]["model"]["num_downs"] == 5 and meta["config"]["method"] == "pix2pix"
    assert meta["palette"] is None  # an image model without a classes.json
    json.dumps(meta)  # plain JSON


# --------------------------------------------------------------------------- the other methods


pytestmark = pytest.mark.usefixtures("one_thread")


def _same_files(a: Translator, b: Translator, files, tmp_path: Path, options: dict) -> int:
    from pairgan.data.io import read_image

    ya = a.translate_files(files, tmp_path / "a", options=options, gallery=False)
    yb = b.translate_files(files, tmp_path / "b", options=options, gallery=False)
    return max(int(np.abs(read_image(p).astype(int) - read_image(q).astype(int)).max()) for p, q in zip(ya, yb))


HD_TINY = ["model.ngf=4", "model.n_downsample_global=2", "model.n_blocks_global=1", "model.ndf=4", "model.n_layers_D=2",
           "model.perceptual=none", "model.nef=4", "model.n_downsample_E=2", "data.preprocess=none",
           "train.batch_size=2", "train.num_workers=0", "train.log_every=1", "train.sample_every=0",
           "train.save_epoch_every=0"]


@pytest.fixture(scope="module")
def hd_run(tmp_path_factory) -> Path:
    """A 2-step pix2pixHD with instance maps and the feature encoder, and its feature clusters."""
    from pairgan.synth.scenes import synth_scenes

    root = tmp_path_factory.mktemp("hd")
    synth_scenes(root / "scenes", n=6, size=32, seed=0)
    cfg = build_config("pix2pixhd-demo", HD_TINY + ["model.use_features=true", "train.max_steps=2"],
                       data_path=str(root / "scenes"))
    Trainer(cfg, root / "hd", progress=False).fit()
    res = CliRunner().invoke(app, ["features", "cluster", str(root / "hd")])
    assert res.exit_code == 0, res.output
    return root / "hd"


def test_pix2pixhd_export_inputs_clusters_and_backend(hd_run: Path, tmp_path: Path):
    from pairgan.methods.pix2pixhd_features import attach_clusters

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
    files = sorted((hd_run.parent / "scenes" / "val_label").glob("*.png"))
    for opts in ({"features": "cluster:1"}, {"features": "random"}):
        assert _same_files(eager, ort, files, tmp_path, opts) <= 1
    with pytest.raises(ExportError, match="encoder E"):
        ort.translate_files(files, tmp_path / "enc", aligned=True)  # encode needs E, not in the file


def test_ggb_export_source_and_pose_inputs(tmp_path: Path):
    from pairgan.synth.poses import synth_poses

    synth_poses(tmp_path / "poses", n=10, poses=3, size=32, seed=0)
    tiny = ["model.num_downs=5", "model.ngf=8", "model.ndf=8", "model.ggb_nef=8", "model.ggb_ndf=8",
            "data.load_size=32", "data.crop_size=32", "data.pose_sigma=1.5", "train.batch_size=2",
            "train.num_workers=0", "train.sample_every=0", "train.save_epoch_every=0", "train.max_steps=1"]
    Trainer(build_config("ggb", tiny, data_path=str(tmp_path / "poses")), tmp_path / "ggb", progress=False).fit()
    out = tmp_path / "ggb.onnx"
    res = export_checkpoint(tmp_path / "ggb", out, dynamic_size=True)
    assert res.max_abs_diff <= 1e-4
    assert list(read_metadata(out)["inputs"]) == ["source", "target_pose"]
    assert read_metadata(out)["inputs"]["target_pose"] == ["batch", 18, "height", "width"]
    name = (tmp_path / "poses" / "annotations.csv").read_text().splitlines()[1].split(":")[0]
    files = sorted((tmp_path / "poses" / "images").glob("*.png"))[:2]
    eager = Translator.from_checkpoint(tmp_path / "ggb", device="cpu")
    assert _same_files(eager, ExportedTranslator.from_file(out), files, tmp_path, {"pose": name}) <= 1


def test_drpan_exports_its_pix2pix_generator(tmp_path: Path):
    data = write_aligned(tmp_path / "data", {"train": 4, "test": 2})
    tiny = ["model.generator=unet", "model.num_downs=5", "model.ngf=8", "model.ndf=8", "model.n_layers_D=2",
            "model.n_layers_R=3", "data.load_size=36", "data.crop_size=32", "train.batch_size=2",
            "train.num_workers=0", "train.sample_every=0", "train.save_epoch_every=0", "train.max_steps=1"]
    Trainer(build_config("drpan-demo", tiny, data_path=str(data)), tmp_path / "drpan", progress=False).fit()
    out = tmp_path / "drpan.onnx"
    res = export_checkpoint(tmp_path / "drpan", out, dynamic_size=True)
    assert res.max_abs_diff <= 1e-4 and read_metadata(out)["method"] == "drpan"
    eager = Translator.from_checkpoint(tmp_path / "drpan", device="cpu", mode="eval")
    assert _same_files(eager, ExportedTranslator.from_file(out), sorted((data / "test").glob("*.png")), tmp_path,
                       {}) <= 1


CRN_TINY = ["model.widths=[8,8,8]", "model.vgg_pretrained=false", "data.load_size=32", "data.crop_size=32",
            "train.num_workers=0", "train.sample_every=0", "train.save_epoch_every=0", "train.max_steps=2"]


def train_crn(root: Path) -> Path:
    """A 2-step CRN with k = 3 on 9-class synthetic label maps (random VGG: a shape test, not a loss)."""
    from pairgan.synth.scenes import synth_scenes

    if not (root / "scenes").exists():
        synth_scenes(root / "scenes", n=6, size=32, seed=0)
    Trainer(build_config("crn-demo", CRN_TINY, data_path=str(root / "scenes")), root / "crn", progress=False).fit()
    return root / "crn"


def test_crn_exports_all_k_outputs(tmp_path: Path):
    run = train_crn(tmp_path)
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
    # --dynamic-size works for CRN too: tests/test_export_crn.py
