"""GGB: network shapes per level, the guiding blocks' inputs, ablation switches, the training
order of section 2.3, learning on synthetic poses, masked SSIM, the export graph. The CLI end to end
and exact resume: tests/integration/test_ggb_training.py; a real-data smoke run:
tests/e2e/test_ggb_deepfashion.py."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from pairgan.config import build_config
from pairgan.data.datasets import build_dataset
from pairgan.errors import ConfigError
from pairgan.methods.base import StepContext
from pairgan.methods.build import build_method
from pairgan.metrics.masked import mask_ssim
from pairgan.nets.ggb import GGBGenerator, GuidingBlock, ImageDiscriminator
from tests.helpers import tiny_overrides

TINY_GGB = tiny_overrides("ggb", batch_size=4)
PRESETS = ["ggb", "ggb-no-ggb", "ggb-no-rapd", "ggb-no-nvtd", "ggb-1", "ggb-2"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def poses_data(tiny_data: Callable[..., Path]) -> Path:
    """10 synthetic people x 3 poses of 32 px, shared by the session."""
    return tiny_data("poses")


def _method(preset: str, data: Path, extra: list[str] = ()):
    cfg = build_config(preset, TINY_GGB + list(extra), data_path=str(data))
    torch.manual_seed(0)
    return cfg, build_method(cfg, training=True)


def _batch(cfg, method, n: int = 4, start: int = 0):
    ds = build_dataset(cfg.data, "train", train=True, size_multiple=method.size_multiple, seed=0)
    return torch.utils.data.default_collate([ds[(0, start + i)] for i in range(n)])


class RecordingContext(StepContext):
    """Records the order of updates and, for each, which watched parameters it changed."""

    def __init__(self, optimizers, watch: dict[str, torch.nn.Parameter]):
        super().__init__(optimizers, torch.device("cpu"))
        self.watch = watch
        self.calls: list[tuple[str, set[str]]] = []

    def optimize(self, name, loss):
        before = {k: p.detach().clone() for k, p in self.watch.items()}
        super().optimize(name, loss)
        changed = {k for k, p in self.watch.items() if not torch.equal(before[k], p.detach())}
        self.calls.append((name, changed))


# --------------------------------------------------------------------------- networks


def test_generator_every_level_shape():
    G = GGBGenerator(3 + 18, 3, ngf=8, num_downs=6, levels=(32, 16, 8, 4, 2))
    assert G.size_multiple == 64
    for h, w in ((64, 64), (128, 64)):
        out, levels = G(torch.randn(2, 21, h, w), levels=True)
        assert out.shape == (2, 3, h, w)
        assert sorted(levels) == [2, 4, 8, 16, 32]
        for f, img in levels.items():
            assert img.shape == (2, 3, h // f, w // f) and img.abs().max() <= 1
    assert G(torch.randn(1, 21, 64, 64)).shape == (1, 3, 64, 64)
    # the paper's setting: 7 levels, heads at 32, 64, 128 for a 256 input
    G7 = GGBGenerator(21, 3, ngf=4, num_downs=7, levels=(8, 4, 2))
    _, lv = G7(torch.randn(1, 21, 256, 256), levels=True)
    assert {f: tuple(t.shape[-2:]) for f, t in lv.items()} == {8: (32, 32), 4: (64, 64), 2: (128, 128)}
    with pytest.raises(ValueError, match="decoder levels"):
        GGBGenerator(21, 3, num_downs=5, levels=(32,))


def test_discriminator_and_guiding_block_shapes():
    D = ImageDiscriminator(3, ndf=8, n_layers=5)
    assert D(torch.randn(2, 3, 256, 256)).shape == (2, 1, 8, 8)
    assert sum(isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) for m in D.modules()) == 5
    blk = GuidingBlock(3, nef=8, ndf=8)
    convs = [m for m in blk.encoder if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 and all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in blk.rapd) == 3 == sum(isinstance(m, torch.nn.Conv2d) for m in blk.nvtd)
    for size in (8, 32, 128):
        e = blk.encode(torch.randn(2, 3, size, size))
        assert e.shape == (2, 16, size // 4, size // 4)
        assert blk.rapd_logits(e, e).shape == (2, 1, size // 4, size // 4)
        assert blk.nvtd_logits(e, e).shape == (2, 1, size // 4, size // 4)


def test_nvtd_judges_residuals_and_rapd_the_features(poses_data):
    cfg, m = _method("ggb-1", poses_data)
    blk = m.nets["GGB2"]
    encoded, nvtd_in, rapd_in = [], [], []
    blk.encoder.register_forward_hook(lambda mod, i, o: encoded.append(o.detach().clone()))
    blk.nvtd.register_forward_pre_hook(lambda mod, i: nvtd_in.append(i[0].detach().clone()))
    blk.rapd.register_forward_pre_hook(lambda mod, i: rapd_in.append(i[0].detach().clone()))
    batch = _batch(cfg, m)
    ctx = StepContext(m.configure_optimizers(cfg.train), torch.device("cpu"))
    m.train_step(batch, ctx)
    e_src, e_real, e_fake = encoded[:3]  # the block's discriminator step encodes source, target, generated
    src_2 = torch.nn.functional.avg_pool2d(batch["source"], 2)
    assert e_src.shape[-1] == 32 // 2 // 4
    torch.testing.assert_close(nvtd_in[0], e_real - e_src)
    torch.testing.assert_close(nvtd_in[1], e_fake - e_src)
    torch.testing.assert_close(rapd_in[0], e_real)
    torch.testing.assert_close(rapd_in[1], e_fake)
    # in G's step NVTD sees E(generated) - E(source) again (both through the just-updated E)
    torch.testing.assert_close(nvtd_in[2], encoded[4] - encoded[3])
    torch.testing.assert_close(encoded[3], blk.encode(src_2).detach())
    # conditioned RAPD sees cat(E(source), E(image))
    cfg, m = _method("ggb-1", poses_data, ["model.rapd_condition=source"])
    got = []
    m.nets["GGB2"].rapd.register_forward_pre_hook(lambda mod, i: got.append(i[0].shape[1]))
    m.train_step(_batch(cfg, m), StepContext(m.configure_optimizers(cfg.train), torch.device("cpu")))
    assert got[0] == 2 * 16


# --------------------------------------------------------------------------- ablations


@pytest.mark.parametrize("preset", PRESETS)
def test_ablation_switches_remove_parameters_optimisers_and_losses(preset, poses_data):
    cfg, m = _method(preset, poses_data)
    levels = {"ggb": [8, 4, 2], "ggb-no-ggb": [], "ggb-no-rapd": [8, 4, 2], "ggb-no-nvtd": [8, 4, 2],
              "ggb-1": [2], "ggb-2": [4, 2]}[preset]
    rapd, nvtd = preset != "ggb-no-rapd", preset != "ggb-no-nvtd"
    assert sorted(k for k in m.nets if k.startswith("GGB")) == sorted(f"GGB{f}" for f in levels)
    names = [n for k, net in m.nets.items() for n, _ in net.named_parameters(prefix=k)]
    assert any(".rapd." in n for n in names) == (rapd and bool(levels))
    assert any(".nvtd." in n for n in names) == (nvtd and bool(levels))
    assert any(".encoder." in n and n.startswith("GGB") for n in names) == bool(levels)
    opts = m.configure_optimizers(cfg.train)
    assert set(opts) == {"G", "D", "G_GGB"} | {f"GGB{f}" for f in levels}
    logs = m.train_step(_batch(cfg, m), StepContext(opts, torch.device("cpu")))
    for f in (8, 4, 2):
        on = f in levels
        assert (f"G_RAPD{f}" in logs) == (on and rapd) == (f"RAPD{f}_real" in logs)
        assert (f"G_NVTD{f}" in logs) == (on and nvtd) == (f"NVTD{f}_fake" in logs)
        assert f"G_L1_x{f}" in logs  # multi-level L1 stays in every ablation
    assert {"G_real", "G_L1", "D_real", "D_fake"} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())


def test_rapd_off_removes_exactly_the_rapd_parameters(poses_data):
    count = {p: sum(x.numel() for x in _method(p, poses_data)[1].nets.parameters()) for p in PRESETS}
    _, full = _method("ggb", poses_data)
    rapd = sum(x.numel() for f in (8, 4, 2) for x in full.nets[f"GGB{f}"].rapd.parameters())
    nvtd = sum(x.numel() for f in (8, 4, 2) for x in full.nets[f"GGB{f}"].nvtd.parameters())
    ggbs = sum(x.numel() for f in (8, 4, 2) for x in full.nets[f"GGB{f}"].parameters())
    assert count["ggb"] - count["ggb-no-rapd"] == rapd
    assert count["ggb"] - count["ggb-no-nvtd"] == nvtd
    assert count["ggb"] - count["ggb-no-ggb"] == ggbs
    assert count["ggb-no-ggb"] < count["ggb-1"] < count["ggb-2"] < count["ggb"]
    with pytest.raises(ConfigError, match="rapd and model.nvtd are both false"):
        build_config("ggb", ["model.rapd=false", "model.nvtd=false"])
        _method("ggb", poses_data, ["model.rapd=false", "model.nvtd=false"])


def test_bad_levels_are_config_errors(poses_data):
    with pytest.raises(ConfigError, match="model.ggb_levels"):
        _method("ggb", poses_data, ["model.ggb_levels=[3]"])
    with pytest.raises(ConfigError, match="model.rec_levels"):
        _method("ggb", poses_data, ["model.rec_levels=[32]"])  # num_downs 5: levels 2..16


# --------------------------------------------------------------------------- section 2.3


def _watch(m) -> dict[str, torch.nn.Parameter]:
    G = m.nets["G"]
    w = {"G.first": G.encoder[0].weight, "G.last": G.decoder[-1][1].weight, "G.head2": G.heads["2"][1].weight,
         "D": next(m.nets["D"].parameters())}
    for f in (8, 4, 2):
        if f"GGB{f}" in m.nets:
            blk = m.nets[f"GGB{f}"]
            w[f"E{f}"] = blk.encoder[0].weight
            w[f"RAPD{f}"] = blk.rapd[0].weight
            w[f"NVTD{f}"] = blk.nvtd[0].weight
    return w


def test_training_order_and_what_each_update_touches(poses_data):
    cfg, m = _method("ggb", poses_data)
    ctx = RecordingContext(m.configure_optimizers(cfg.train), _watch(m))
    m.train_step(_batch(cfg, m), ctx)
    order = [n for n, _ in ctx.calls]
    assert order == ["D", "GGB8", "GGB4", "GGB2", "G_GGB", "G"]
    touched = dict(ctx.calls)
    assert touched["D"] == {"D"}
    assert touched["GGB4"] == {"E4", "RAPD4", "NVTD4"}  # E_n is trained with its discriminators
    # Eq. 9: the GGB-attached part of G (encoder, heads) but not the layers after the finest level
    assert {"G.first", "G.head2"} <= touched["G_GGB"] and "G.last" not in touched["G_GGB"]
    assert not touched["G_GGB"] & {"D", "E2", "RAPD2", "NVTD2"}
    # Eq. 4: G as a whole; the heads get no gradient from it; nothing outside G moves
    assert {"G.first", "G.last"} <= touched["G"] and "G.head2" not in touched["G"]
    assert touched["G"] <= {"G.first", "G.last", "G.head2"}
    # parameters needing no grad again afterwards, ready for the next step
    assert all(p.requires_grad for p in m.nets["D"].parameters())

    cfg, m = _method("ggb", poses_data, ["model.g_update=joint", "model.encoder_training=frozen"])
    ctx = RecordingContext(m.configure_optimizers(cfg.train), _watch(m))
    assert "G_GGB" not in ctx.optimizers
    m.train_step(_batch(cfg, m), ctx)
    assert [n for n, _ in ctx.calls] == ["D", "GGB8", "GGB4", "GGB2", "G"]
    assert dict(ctx.calls)["GGB2"] == {"RAPD2", "NVTD2"}  # a frozen encoder never moves
    assert {"G.first", "G.last", "G.head2"} <= dict(ctx.calls)["G"]

    cfg, m = _method("ggb", poses_data, ["model.g_update=two_step_shared"])
    ctx = RecordingContext(m.configure_optimizers(cfg.train), _watch(m))
    m.train_step(_batch(cfg, m), ctx)
    assert [n for n, _ in ctx.calls] == ["D", "GGB8", "GGB4", "GGB2", "G", "G"]


@pytest.mark.slow  # 32 steps
def test_a_few_steps_lower_the_losses(poses_data):
    """30 steps of a tiny GGB on 32x32 synthetic poses: the reconstruction terms fall."""
    cfg, m = _method("ggb", poses_data, ["model.ngf=16"])
    ctx = StepContext(m.configure_optimizers(cfg.train), torch.device("cpu"))
    batches = [_batch(cfg, m, 4, start) for start in (0, 4, 8, 12)]
    hist = [m.train_step(batches[i % 4], ctx) for i in range(32)]

    def window(key, sl):
        return float(np.mean([h[key] for h in hist[sl]]))

    # measured over 4 seeds: G_L1 0.63-0.67 -> 0.43-0.49, G_L1_x8 0.36-0.47 -> 0.08, G_L1_x2 0.57-0.64 -> 0.21-0.29
    for key, ratio in (("G_L1", 0.85), ("G_L1_x8", 0.5), ("G_L1_x2", 0.6)):
        first, last = window(key, slice(0, 4)), window(key, slice(-4, None))
        assert last < ratio * first, (key, first, last)


# --------------------------------------------------------------------------- masked SSIM, the export graph


def test_mask_ssim():
    a = torch.rand(2, 3, 32, 32)
    b = a.clone()
    b[:, :, 8:20, 8:20] = 1 - b[:, :, 8:20, 8:20]
    inside = torch.zeros(2, 32, 32, dtype=torch.bool)
    inside[:, 6:22, 6:22] = True
    outside = ~inside
    assert torch.allclose(mask_ssim(a, a, inside), torch.ones(2), atol=1e-6)
    assert (mask_ssim(a, b, inside) < 0.9).all()
    assert torch.allclose(mask_ssim(a, b, torch.zeros_like(inside)), torch.ones(2), atol=1e-6)
    assert (mask_ssim(a, b, outside) > mask_ssim(a, b, inside)).all()


def test_example_batch_trains_and_export_graph_matches_translate(poses_data):
    cfg, m = _method("ggb", poses_data)
    batch = m.example_batch(2, 32, 32)
    assert batch["target_pose"].shape == (2, 18, 32, 32) and batch["target_pose"].max() <= 1
    logs = m.train_step(batch, StepContext(m.configure_optimizers(cfg.train), torch.device("cpu")))
    assert np.isfinite(logs["G_L1"])  # what `pairgan bench --mode train` runs
    m.nets.eval()
    graph = m.export_module(batch)
    assert list(graph.inputs) == ["source", "target_pose"]
    torch.testing.assert_close(graph.module(*graph.inputs.values()), m.translate(batch))
    with pytest.raises(ValueError, match="target pose"):
        m.translate({"A": batch["source"]})
