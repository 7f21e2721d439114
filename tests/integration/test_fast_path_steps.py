"""Whole training steps through the fast paths: the speed benchmark's hand-written baseline computes what
pairgan computes, and activation checkpointing leaves a pix2pixHD step unchanged."""

from __future__ import annotations

import torch

from benchmarks import reference_pix2pix
from pairgan.config import build_config
from pairgan.methods.base import StepContext
from pairgan.methods.build import build_method
from pairgan.nets.vgg import VGGFeatures


def test_reference_baseline_is_the_same_model_and_step():
    """The speed benchmark's baseline must compute what pairgan computes: same weights, same
    outputs, same losses step by step (fused vs default Adam differ by rounding only)."""
    ref = reference_pix2pix
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


def test_grad_checkpoint_pix2pixhd_step_is_unchanged(random_vgg_weights):
    """A whole pix2pixHD step (multi-scale D with feature matching, VGG loss) gives the same
    losses and weights with and without checkpointing."""
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
