"""The fast paths keep the numerics: fused Adam, activation checkpointing, TF32 off unless asked, and the
speed benchmark's baseline refusing a different layout. Whole training steps through these paths:
tests/integration/test_fast_path_steps.py; the host allocator switch: tests/e2e/test_host_allocator.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks import reference_pix2pix
from pairgan.config import TrainConfig, build_config
from pairgan.errors import ConfigError
from pairgan.methods.build import build_method
from pairgan.methods.optim import adam
from pairgan.nets.blocks import set_grad_checkpointing
from pairgan.nets.pix2pixhd import GlobalGenerator, LocalEnhancer
from pairgan.nets.resnet import ResnetGenerator
from pairgan.runtime import set_determinism


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


def test_copy_weights_refuses_a_different_layout():
    with pytest.raises(ValueError, match="shape"):
        reference_pix2pix.copy_weights(nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 5))


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
    cfg = build_config("pix2pixhd-demo", ["train.grad_checkpoint=true"])
    method = build_method(cfg, training=True)
    assert method.nets["G"].grad_checkpointing
    with pytest.raises(ConfigError, match="none of pix2pix's networks"):
        build_method(build_config("pix2pix", ["train.grad_checkpoint=true"]), training=True)
    with pytest.raises(ConfigError, match="running statistics"):
        build_method(build_config("pix2pix", ["train.grad_checkpoint=true", "model.generator=resnet"]), training=True)
    # Inference never checkpoints (and needs no training-only settings).
    assert not build_method(cfg, training=False).nets["G"].grad_checkpointing


def test_tf32_switch_and_determinism_wins():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        set_determinism(False, tf32=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        set_determinism(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert TrainConfig().tf32 is False  # true fp32 unless asked
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before
