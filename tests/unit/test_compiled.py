"""The pieces of compiled inference graphs (pairgan.compiled): batch-norm folding, the checks for
stochastic modules, weight fingerprints, cache keys and the on-disk cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pairgan.compiled import (
    KINDS,
    GraphCache,
    compile_graph,
    fold_batch_norms,
    graph_key,
    onnxruntime_missing,
    preferred_memory_format,
    run_graph,
    stochastic_modules,
    weights_fingerprint,
)


def _randomise_norms(net: nn.Module) -> nn.Module:
    torch.manual_seed(3)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.3, 3)
            if m.affine:
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_fold_batch_norms_keeps_the_outputs_of_convs_and_transposed_convs(groups: int, affine: bool):
    torch.manual_seed(0)
    net = _randomise_norms(nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1, bias=False, groups=groups), nn.BatchNorm2d(6, affine=affine), nn.ReLU(),
        nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=groups), nn.BatchNorm2d(4, affine=affine),
        nn.Sequential(nn.ConvTranspose2d(4, 2, 4, 2, 1, bias=False), nn.BatchNorm2d(2)),
    ))
    x = torch.randn(2, 4, 8, 8)
    folded = fold_batch_norms(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is untouched
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)


def test_fold_batch_norms_leaves_norms_it_cannot_fold():
    net = _randomise_norms(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4),
                                         nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)))
    kinds = [type(m).__name__ for m in fold_batch_norms(net)]
    assert kinds == ["Conv2d", "ReLU", "BatchNorm2d", "Conv2d", "BatchNorm2d"]


def test_stochastic_modules_finds_batch_norms_and_active_dropout():
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.InstanceNorm2d(3), nn.Dropout(0.0),
                        nn.Sequential(nn.BatchNorm2d(3), nn.Dropout2d(0.5)))
    assert stochastic_modules(net) == ["3.0", "3.1"]
    assert stochastic_modules(nn.Sequential(nn.Conv2d(3, 3, 1), nn.InstanceNorm2d(3), nn.Dropout(0.0))) == []


def test_weights_fingerprint_follows_every_value():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    b.load_state_dict(a.state_dict())
    assert weights_fingerprint(a) == weights_fingerprint(b)
    with torch.no_grad():
        b[0].weight[0, 0, 0, 0] += 1e-6
    assert weights_fingerprint(a) != weights_fingerprint(b)
    b.load_state_dict(a.state_dict())
    b[1].running_mean.add_(1)  # buffers count too
    assert weights_fingerprint(a) != weights_fingerprint(b)
    assert weights_fingerprint(a.to(torch.bfloat16)) != weights_fingerprint(a.float())


def test_graph_key_ignores_the_batch_but_not_shapes_dtypes_devices_or_torch(monkeypatch: pytest.MonkeyPatch):
    cpu = torch.device("cpu")
    fmt = torch.contiguous_format
    key = graph_key("f", {"A": torch.zeros(1, 3, 32, 32)}, cpu, fmt)
    assert key == graph_key("f", {"A": torch.zeros(8, 3, 32, 32)}, cpu, fmt)
    assert key != graph_key("g", {"A": torch.zeros(1, 3, 32, 32)}, cpu, fmt)
    assert key != graph_key("f", {"A": torch.zeros(1, 3, 32, 64)}, cpu, fmt)
    assert key != graph_key("f", {"A": torch.zeros(1, 3, 32, 32, dtype=torch.float64)}, cpu, fmt)
    assert key != graph_key("f", {"A": torch.zeros(1, 3, 32, 32)}, cpu, torch.channels_last)
    assert key != graph_key("f", {"B": torch.zeros(1, 3, 32, 32)}, cpu, fmt)
    assert key != graph_key("f", {"A": torch.zeros(1, 3, 32, 32)}, cpu, fmt, "onnxruntime")
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert key != graph_key("f", {"A": torch.zeros(1, 3, 32, 32)}, cpu, fmt)


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return _randomise_norms(nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2),
                                          nn.ConvTranspose2d(8, 3, 4, 2, 1), nn.Tanh()))


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_compile_graph_equals_eager_at_any_batch_size(fmt: torch.memory_format):
    net = _small_net()
    x = torch.randn(2, 3, 16, 16)
    graph = compile_graph(net, {"A": x}, fmt)
    (out,) = run_graph(graph, {"A": torch.randn(5, 3, 16, 16)}, fmt)
    assert out.shape == (5, 3, 16, 16) and out.is_contiguous()
    with torch.no_grad():
        assert torch.allclose(run_graph(graph, {"A": x}, fmt)[0], net(x), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_graph_cache_builds_loads_and_removes_each_kind(tmp_path: Path, kind: str):
    if kind == "onnxruntime" and onnxruntime_missing():
        pytest.skip(onnxruntime_missing())
    net = _small_net()
    x1 = torch.randn(1, 3, 16, 16)  # a batch of one: the ONNX graph must still take any batch
    cpu = torch.device("cpu")
    fmt = preferred_memory_format(cpu, kind)
    cache = GraphCache([tmp_path / "ckpt" / "compiled"])
    graph = cache.build("k1", kind, net, {"A": x1}, ("output",), cpu, fmt)
    assert graph.path == tmp_path / "ckpt" / "compiled" / ("k1.onnx" if kind == "onnxruntime" else "k1.pt")
    assert graph.path.is_file() and not [p for p in graph.path.parent.iterdir() if p.name.startswith(".")]
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = net(x)
    assert torch.allclose(graph({"A": x})[0], expected, atol=1e-5)
    loaded = cache.load("k1", kind, cpu, fmt)
    assert loaded is not None and torch.allclose(loaded({"A": x})[0], expected, atol=1e-5)
    assert cache.load("other", kind, cpu, fmt) is None
    cache.remove("k1", kind)
    assert not graph.path.exists()


def test_cache_falls_back_to_a_writable_folder_and_replaces_damaged_files(tmp_path: Path):
    cpu = torch.device("cpu")
    fmt = torch.contiguous_format
    # A folder that cannot be created (its parent is a file), as a read-only checkpoint folder fails.
    (tmp_path / "ckpt").write_text("a file")
    blocked = tmp_path / "ckpt" / "compiled"
    net = nn.Conv2d(3, 3, 1)
    x = torch.zeros(1, 3, 4, 4)
    cache = GraphCache([blocked, tmp_path / "user" / "compiled"])
    graph = cache.build("k", "torchscript", net, {"A": x}, ("output",), cpu, fmt)
    assert graph.path == tmp_path / "user" / "compiled" / "k.pt"
    # No writable folder at all: the graph is built in a temporary folder and still runs.
    nowhere = GraphCache([blocked]).build("k", "torchscript", net, {"A": x}, ("output",), cpu, fmt)
    assert not nowhere.path.exists() and nowhere({"A": x})[0].shape == (1, 3, 4, 4)
    graph.path.write_bytes(b"not a graph")
    assert cache.load("k", "torchscript", cpu, fmt) is None
    assert not graph.path.exists()
