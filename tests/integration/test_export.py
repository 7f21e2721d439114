"""Export round trips of a tiny pix2pix: ONNX (onnxruntime) and TorchScript files agree with eager PyTorch,
carry their metadata, and run with the same pre/post-processing through ``translate --backend``.
The other methods' exports: tests/integration/test_export_methods.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402

from pairgan.cli import app  # noqa: E402
from pairgan.data.io import read_image  # noqa: E402
from pairgan.errors import ExportError, ExportMismatch  # noqa: E402
from pairgan.export import ExportedTranslator, export_checkpoint, parse_size, read_metadata  # noqa: E402
from pairgan.infer import Translator  # noqa: E402
from tests.helpers import train_tiny  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tiny_data: Callable[..., Path]) -> Path:
    """40x40 A|B pairs: train 4, test 2."""
    return tiny_data("aligned", splits={"train": 4, "test": 2})


@pytest.fixture(scope="module")
def run(tiny_run: Callable[..., Path], data: Path) -> Path:
    """A 1-step tiny pix2pix (unet with 5 levels at ngf 8: size multiple 32), shared: exports go elsewhere."""
    return tiny_run("pix2pix", steps=1, data=data)


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


def test_cli_translate_backend_onnxruntime_same_images_as_eval(run: Path, data: Path, dynamic_onnx, tmp_path: Path):
    onnx_file, _ = dynamic_onnx
    test_split = data / "test"
    r1 = CliRunner().invoke(app, ["translate", str(onnx_file), str(test_split), "--out", str(tmp_path / "ort"),
                                  "--backend", "onnxruntime", "--aligned"])
    assert r1.exit_code == 0, r1.output
    r2 = CliRunner().invoke(app, ["translate", str(run), str(test_split), "--out", str(tmp_path / "eager"),
                                  "--mode", "eval", "--aligned"])
    assert r2.exit_code == 0, r2.output
    for name in ("000.png", "001.png"):
        a = read_image(tmp_path / "ort" / name).astype(int)
        b = read_image(tmp_path / "eager" / name).astype(int)
        assert a.shape == (32, 32, 3) and np.abs(a - b).max() <= 1  # both at the training scale
    assert (tmp_path / "ort" / "index.html").is_file()
    bad = CliRunner().invoke(app, ["translate", str(onnx_file), str(test_split), "--out", str(tmp_path / "x"),
                                   "--backend", "onnxruntime", "--mode", "paper"])
    assert bad.exit_code == 2 and "eval-mode" in bad.output
    bad = CliRunner().invoke(app, ["translate", str(run), str(test_split), "--out", str(tmp_path / "x"),
                                   "--backend", "onnxruntime"])
    # a run folder with --backend onnxruntime compiles its graph, but not for paper mode (dropout, batch stats)
    assert bad.exit_code == 2 and "paper mode uses batch statistics or dropout" in bad.output
    bad = CliRunner().invoke(app, ["export", str(run), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "onnx, torchscript" in bad.output


def test_metadata_carries_config_and_palette(run: Path, dynamic_onnx):
    onnx_file, _ = dynamic_onnx
    meta = read_metadata(onnx_file)
    assert meta["config"]["model"]["num_downs"] == 5 and meta["config"]["method"] == "pix2pix"
    assert meta["palette"] is None  # an image model without a classes.json
    json.dumps(meta)  # plain JSON


def test_metadata_records_which_weights(run: Path, data: Path, dynamic_onnx, tmp_path: Path):
    """The file says whether it holds the moving average (train.ema) or the trained weights, and the
    exported-file backend reports it as a checkpoint's Translator does."""
    onnx_file, _ = dynamic_onnx
    assert read_metadata(onnx_file)["weights"] == "raw"  # a run without train.ema
    ema_run = train_tiny(tmp_path / "ema", "pix2pix", data, steps=1, extra=["train.ema=0.5"])
    res = export_checkpoint(ema_run, tmp_path / "ema.pt", fmt="torchscript", size=(32, 32))
    assert res.weights == "ema" and "ema weights" in res.summary()
    assert ExportedTranslator.from_file(tmp_path / "ema.pt").method.weights_source == "ema"
    raw = export_checkpoint(ema_run, tmp_path / "raw.pt", fmt="torchscript", size=(32, 32), weights="raw")
    assert read_metadata(raw.path)["weights"] == "raw"
