"""The default inference backend (``--backend auto``): a compiled graph where it is exact for the
mode, equal to eager PyTorch within 1e-4 for every method, cached beside the checkpoint, rebuilt
when the checkpoint changes, dropped when it disagrees with eager; eager PyTorch where only it is
exact (pix2pix's paper mode with dropout and batch statistics)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import pairgan
from pairgan.checkpoint import resolve_checkpoint
from pairgan.cli import app
from pairgan import infer
from pairgan.compiled import CACHE_DIR, KINDS, TOLERANCE, GraphCache, onnxruntime_missing
from pairgan.infer import Translator

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(run: Path, mode: str | None = None, backend: str = "auto") -> tuple[Translator, Translator]:
    auto = Translator.from_checkpoint(run, device="cpu", mode=mode, backend=backend)
    eager = Translator.from_checkpoint(run, device="cpu", mode=mode, backend="torch")
    return auto, eager


def _own_run(src: Path, dest: Path) -> Path:
    """A writable copy of a shared tiny run (tests that change it or its cache)."""
    shutil.copytree(src, dest)
    return dest


def _needs(kind: str) -> None:
    if kind == "onnxruntime" and onnxruntime_missing():
        pytest.skip(onnxruntime_missing())


def test_auto_picks_onnxruntime_on_the_cpu_when_installed_else_torchscript(tiny_run, monkeypatch):
    run = tiny_run("pix2pix")
    monkeypatch.setattr(infer, "onnxruntime_missing", lambda: None)
    assert Translator.from_checkpoint(run, device="cpu", mode="eval").backend == "onnxruntime"
    monkeypatch.setattr(infer, "onnxruntime_missing", lambda: "onnxruntime is not installed (pip install ...)")
    assert Translator.from_checkpoint(run, device="cpu", mode="eval").backend == "torchscript"
    with pytest.raises(ValueError, match="--backend onnxruntime: onnxruntime is not installed"):
        Translator.from_checkpoint(run, device="cpu", mode="eval", backend="onnxruntime")


@pytest.mark.parametrize("kind", KINDS)
def test_eval_mode_compiles_equals_eager_and_is_cached_beside_the_checkpoint(tiny_run, tmp_path: Path, kind: str):
    _needs(kind)
    run = _own_run(tiny_run("pix2pix"), tmp_path / "run")
    auto, eager = _pair(run, "eval", kind)
    assert auto.backend == kind and eager.backend == "torch"
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    a, e = auto.translate_tensor(x), eager.translate_tensor(x)
    assert float((a - e).abs().max()) <= 1e-4
    (entry,) = auto.graphs.values()
    assert entry is not None and not entry.cached and entry.max_abs_diff <= TOLERANCE
    ckpt = resolve_checkpoint(run)
    assert entry.path is not None and entry.path.parent == ckpt / CACHE_DIR and entry.path.is_file()
    assert auto.describe_backend().startswith(kind) and "1 compiled" in auto.describe_backend()
    # Another batch size reuses the graph; a second translator loads it from the cache.
    assert torch.allclose(auto.translate_tensor(x[:1]), e[:1], atol=1e-4) and len(auto.graphs) == 1
    again = Translator.from_checkpoint(run, device="cpu", mode="eval", backend=kind)
    assert torch.allclose(again.translate_tensor(x), e, atol=1e-4)
    assert next(iter(again.graphs.values())).cached
    # Another input size is another graph.
    y = torch.rand(1, 3, 64, 32) * 2 - 1
    assert torch.allclose(auto.translate_tensor(y), eager.translate_tensor(y), atol=1e-4) and len(auto.graphs) == 2


def test_paper_mode_with_dropout_and_batch_norm_stays_eager(tiny_run):
    run = tiny_run("pix2pix")
    model = pairgan.load(run)
    assert model.mode == "paper" and model.backend == "torch"
    assert "batch statistics or dropout" in model.describe_backend()
    for kind in KINDS:
        with pytest.raises(ValueError, match=f"--backend {kind}: paper mode"):
            Translator.from_checkpoint(run, device="cpu", backend=kind)


def test_paper_mode_without_dropout_or_batch_norm_compiles(tiny_run, tmp_path: Path):
    """Instance norm and no dropout: paper and eval mode give the same outputs, so the graph is exact."""
    run = _own_run(tiny_run("pix2pix", extra=["model.norm=instance", "model.dropout=false"]), tmp_path / "run")
    auto, eager = _pair(run)
    assert auto.mode == "paper" and auto.backend in KINDS
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert float((auto.translate_tensor(x) - eager.translate_tensor(x)).abs().max()) <= 1e-4


def test_a_changed_checkpoint_gets_a_new_graph(tiny_run, tmp_path: Path):
    run = _own_run(tiny_run("pix2pix"), tmp_path / "run")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    first = Translator.from_checkpoint(run, device="cpu", mode="eval")
    before = first.translate_tensor(x)
    old_key = next(iter(first.graphs.values())).key
    ckpt = resolve_checkpoint(run)
    weights = load_file(ckpt / "G.safetensors")
    name = next(k for k, v in weights.items() if v.dim() == 4)
    weights[name] = weights[name] * 1.5
    save_file(weights, ckpt / "G.safetensors")
    auto, eager = _pair(run, "eval")
    after = auto.translate_tensor(x)
    entry = next(iter(auto.graphs.values()))
    assert entry.key != old_key and not entry.cached
    assert float((after - eager.translate_tensor(x)).abs().max()) <= 1e-4
    assert float((after - before).abs().max()) > 1e-3  # the old graph's outputs are not what came back


def test_a_cached_graph_that_disagrees_with_eager_is_dropped(tiny_run, tmp_path: Path, caplog):
    run = _own_run(tiny_run("pix2pix"), tmp_path / "run")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    probe = Translator.from_checkpoint(run, device="cpu", mode="eval")
    probe.translate_tensor(x)
    entry = next(iter(probe.graphs.values()))
    # Put a graph of other weights under this key: the first use must catch it.
    G = probe.method.nets["G"]
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(0.5)
    g = entry.graph
    GraphCache([entry.path.parent]).build(entry.key, g.kind, G, {"A": x}, ("output",), g.device, g.memory_format)
    auto, eager = _pair(run, "eval")
    out = auto.translate_tensor(x)
    assert float((out - eager.translate_tensor(x)).abs().max()) == 0.0  # eager ran
    assert list(auto.graphs.values()) == [None] and not entry.path.exists()
    assert "differs from eager PyTorch" in auto.describe_backend()
    assert "eager PyTorch runs instead" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("preset, data, extra, options", [
    ("pix2pixhd-demo", "scenes", [], {}),
    ("crn-demo", "scenes", ["model.widths=[8,8,8]"], {"variant": "all"}),
    ("drpan-demo", "aligned", [], {}),
])
def test_other_methods_compile_and_equal_eager(tiny_run, tiny_data, tmp_path: Path, preset, data, extra, options):
    run = _own_run(tiny_run(preset, steps=1, data=data, log_every=None, extra=extra), tmp_path / "run")
    auto, eager = _pair(run, "eval")
    assert auto.backend in KINDS
    batch = auto.method.example_batch(2, 32, 32) | options
    a, e = auto.translate_batch(batch), eager.translate_batch(batch)
    assert a.shape == e.shape and float((a - e).abs().max()) <= 1e-4
    assert list(auto.graphs.values())[0] is not None


@pytest.mark.slow
def test_ggb_compiles_and_equals_eager(tiny_run, tmp_path: Path):
    run = _own_run(tiny_run("ggb", steps=1, data="poses", log_every=None), tmp_path / "run")
    auto, eager = _pair(run)
    assert auto.backend in KINDS
    batch = auto.method.example_batch(2, 32, 32)
    a, e = auto.translate_batch(batch), eager.translate_batch(batch)
    assert a.shape == e.shape and float((a - e).abs().max()) <= 1e-4


def test_translate_and_evaluate_say_which_backend_ran(tiny_run, tiny_data, tmp_path: Path):
    run = _own_run(tiny_run("pix2pix"), tmp_path / "run")
    data = tiny_data("aligned")
    runner = CliRunner()
    r = runner.invoke(app, ["translate", str(run), str(data / "test"), "--out", str(tmp_path / "out"),
                            "--aligned", "--mode", "eval"])
    assert r.exit_code == 0, r.output
    kind = "torchscript" if onnxruntime_missing() else "onnxruntime"
    assert f"backend: {kind} (compiled graph" in r.output
    assert f"backend: {kind}" in (tmp_path / "out" / "index.html").read_text()
    r = runner.invoke(app, ["translate", str(run), str(data / "test"), "--out", str(tmp_path / "out2"),
                            "--aligned", "--backend", "torch"])
    assert r.exit_code == 0 and "backend: torch" in r.output
    r = runner.invoke(app, ["evaluate", str(run), "--data", str(data), "--split", "test", "--out",
                            str(tmp_path / "eval"), "--metrics", "l1", "--mode", "eval"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["backend"].startswith(kind)
