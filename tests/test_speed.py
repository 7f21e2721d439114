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
from pairgan.train.optim import adam
from pairgan.train.trainer import build_method

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


def test_every_method_builds_fused_optimizers():
    for preset in ("demo", "pix2pixhd-demo", "crn-demo", "drpan-demo", "ggb-demo"):
        cfg = build_config(preset)
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
