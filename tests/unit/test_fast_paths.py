"""The fast paths keep the numerics: fused Adam, the allocator setting, and the speed baseline."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pairgan.config import TrainConfig, build_config
from pairgan.methods.base import StepContext
from pairgan.methods.optim import adam
from pairgan.methods.build import build_method

REPO = Path(__file__).resolve().parents[1]


def _reference_module():
    spec = importlib.util.spec_from_file_location("reference_pix2pix", REPO / "benchmarks" / "reference_pix2pix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _train_with(train: TrainConfig, steps: int = 4) -> list[torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = adam(net.parameters(), train)
    x, y = torch.randn(32, 8), torch.randn(32, 4)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


def test_fused_adam_is_adam_to_float_rounding():
    fused_cfg, plain_cfg = TrainConfig(lr=1e-2, beta1=0.5), TrainConfig(lr=1e-2, beta1=0.5, fused_optimizer=False)
    opt = adam([nn.Parameter(torch.zeros(3))], fused_cfg)
    assert opt.defaults["lr"] == 1e-2 and opt.defaults["betas"] == (0.5, 0.999)
    assert opt.defaults.get("fused") is True  # torch 2.13 has fused CPU Adam
    assert not adam([nn.Parameter(torch.zeros(3))], plain_cfg).defaults.get("fused")
    a, b = _train_with(fused_cfg), _train_with(plain_cfg)
    moved = max((p - q).abs().max().item() for p, q in zip(a, _train_with(fused_cfg, steps=0)))
    assert moved > 1e-3  # the steps did something...
    assert max((p - q).abs().max().item() for p, q in zip(a, b)) < 1e-6  # ...and the same thing


def test_adam_overrides_and_param_groups():
    train = TrainConfig(lr=2e-4)
    w1, w2 = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = adam([{"params": [w1]}, {"params": [w2]}], train, lr=1e-3, betas=(0.9, 0.99))
    assert len(opt.param_groups) == 2
    assert all(g["lr"] == 1e-3 and g["betas"] == (0.9, 0.99) for g in opt.param_groups)


def test_every_method_builds_fused_optimizers(random_vgg_weights):
    # crn-demo's VGG16 loss reads pretrained weights: a local file of the right format stands in.
    overrides = {"crn-demo": [f"model.vgg_weights={random_vgg_weights('vgg16')}"]}
    for preset in ("demo", "pix2pixhd-demo", "crn-demo", "drpan-demo", "ggb-demo"):
        cfg = build_config(preset, overrides.get(preset, []))
        opts = build_method(cfg, training=True).configure_optimizers(cfg.train)
        assert opts and all(o.defaults.get("fused") is True for o in opts.values()), preset


@pytest.mark.parametrize("setting, expected", [("1", "True"), ("0", "False")])
def test_tune_host_allocator_switch(setting: str, expected: str):
    code = "from pairgan.runtime import tune_host_allocator as t; a = t(); b = t(); assert a == b; print(a)"
    env = os.environ | {"PAIRGAN_MALLOC_TUNING": setting}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    want = expected if sys.platform.startswith("linux") else "False"
    assert out.stdout.strip() == want


def test_reference_baseline_is_the_same_model_and_step():
    """The speed benchmark's baseline must compute what pairgan computes: same weights, same
    outputs, same losses step by step (fused vs default Adam differ by rounding only)."""
    ref = _reference_module()
    cfg = build_config("pix2pix", ["model.num_downs=6", "model.ngf=8", "model.ndf=8"])
    torch.manual_seed(0)
    method = build_method(cfg, training=True)
    G, D = ref.reference_unet(num_downs=6, ngf=8), ref.reference_patchgan(ndf=8)
    ref.copy_weights(method.nets["G"], G)
    ref.copy_weights(method.nets["D"], D)
    assert sum(p.numel() for p in G.parameters()) == sum(p.numel() for p in method.nets["G"].parameters())
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(2, 3, 64, 64, generator=g) * 2 - 1 for _ in range(2))

    method.nets.eval()
    G.eval()
    with torch.no_grad():
        assert torch.equal(method.nets["G"](a), G(a))

    method.nets.train()
    G.train()
    baseline = ref.ReferencePix2Pix(G, D)
    ctx = StepContext(method.configure_optimizers(cfg.train), torch.device("cpu"))
    torch.manual_seed(5)
    ours = [method.train_step({"A": a, "B": b}, ctx) for _ in range(3)]
    torch.manual_seed(5)
    theirs = [baseline.optimize_parameters(a, b) for _ in range(3)]
    for o, t in zip(ours, theirs):
        assert o.keys() == t.keys()
        for k in o:
            assert abs(o[k] - t[k]) < 1e-5, (k, o[k], t[k])
    assert ours[0] != ours[2]  # it trains


def test_copy_weights_refuses_a_different_layout():
    ref = _reference_module()
    with pytest.raises(ValueError, match="shape"):
        ref.copy_weights(nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 5))


# --------------------------------------------------------------------------- activation checkpointing
def _saved_bytes(net: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Bytes autograd keeps for backward during ``net(x)`` (what checkpointing should cut)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = net(x)
    return total, y


@pytest.mark.parametrize("name", ["global", "local", "resnet"])
def test_grad_checkpointing_same_results_less_saved_memory(name: str):
    from pairgan.nets.blocks import set_grad_checkpointing
    from pairgan.nets.pix2pixhd import GlobalGenerator, LocalEnhancer
    from pairgan.nets.resnet import ResnetGenerator

    torch.manual_seed(0)
    make = {
        "global": lambda: GlobalGenerator(4, 3, ngf=8, n_downsampling=3, n_blocks=4),
        "local": lambda: LocalEnhancer(4, 3, ngf=8, n_downsample_global=2, n_blocks_global=3),
        "resnet": lambda: ResnetGenerator(4, 3, ngf=8, n_blocks=4, norm="instance", dropout=True),
    }[name]
    plain = make()
    ckpt = make()
    ckpt.load_state_dict(plain.state_dict())
    assert set_grad_checkpointing(ckpt) == 1
    x = torch.randn(2, 4, 64, 64)
    grads = []
    saved = []
    for net in (plain, ckpt):
        torch.manual_seed(1)  # dropout draws: the recomputation must replay them
        nbytes, y = _saved_bytes(net, x)
        y.square().mean().backward()
        saved.append(nbytes)
        grads.append((y.detach(), [p.grad.clone() for p in net.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1]))
    assert saved[1] < 0.7 * saved[0], saved  # at least 30% less kept for backward
    plain.eval()
    ckpt.eval()
    with torch.no_grad():  # inference is untouched
        assert torch.equal(plain(x), ckpt(x))


def test_grad_checkpoint_config():
    from pairgan.errors import ConfigError

    cfg = build_config("pix2pixhd-demo", ["train.grad_checkpoint=true"])
    method = build_method(cfg, training=True)
    assert method.nets["G"].grad_checkpointing
    with pytest.raises(ConfigError, match="none of pix2pix's networks"):
        build_method(build_config("pix2pix", ["train.grad_checkpoint=true"]), training=True)
    with pytest.raises(ConfigError, match="running statistics"):
        build_method(build_config("pix2pix", ["train.grad_checkpoint=true", "model.generator=resnet"]), training=True)
    # Inference never checkpoints (and needs no training-only settings).
    assert not build_method(cfg, training=False).nets["G"].grad_checkpointing


def test_grad_checkpoint_pix2pixhd_step_is_unchanged(random_vgg_weights):
    """A whole pix2pixHD step (multi-scale D with feature matching, VGG loss) gives the same
    losses and weights with and without checkpointing."""
    from pairgan.nets.vgg import VGGFeatures

    # Random VGG weights in a local file, as the perceptual loss reads real ones.
    weights = random_vgg_weights("vgg16")
    over = ["model.ngf=8", "model.ndf=8", "model.n_downsample_global=2", "model.n_blocks_global=2",
            "data.label_nc=0", "data.instance=false", "model.perceptual=vgg16", f"model.vgg_weights={weights}"]
    results = []
    for gc in ("false", "true"):
        cfg = build_config("pix2pixhd-demo", over + [f"train.grad_checkpoint={gc}"])
        torch.manual_seed(0)
        method = build_method(cfg, training=True)
        vggs = [m for m in method.vgg_loss.modules() if isinstance(m, VGGFeatures)]
        assert vggs and all(v.grad_checkpointing == (gc == "true") for v in vggs)
        ctx = StepContext(method.configure_optimizers(cfg.train), torch.device("cpu"))
        g = torch.Generator().manual_seed(3)
        batch = {"A": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1}
        losses = [method.train_step(batch, ctx) for _ in range(2)]
        results.append((losses, [p.detach().clone() for p in method.nets.parameters()]))
    (l0, p0), (l1, p1) = results
    assert l0 == l1
    assert all(torch.equal(a, b) for a, b in zip(p0, p1))


def test_tf32_switch_and_determinism_wins():
    from pairgan.runtime import set_determinism

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        set_determinism(False, tf32=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        set_determinism(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert TrainConfig().tf32 is False  # true fp32 unless asked
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before
