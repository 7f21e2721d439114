"""The pix2pixhd method: train_step, the niter_fix_global phase, init_from, inference, presets.

A tiny run through the labels data set, the Trainer and the Translator: tests/integration/test_pix2pixhd_training.py;
the Cityscapes sample: tests/e2e/test_pix2pixhd_cityscapes.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F

from pairgan import checkpoint as ckpt
from pairgan.config import Config, DataConfig, TrainConfig, build_config
from pairgan.errors import ConfigError
from pairgan.infer import Translator
from pairgan.methods.base import StepContext
from pairgan.methods.build import build_method
from pairgan.methods.pix2pixhd import Pix2PixHD, Pix2PixHDConfig
from pairgan.nets.labels import one_hot
from pairgan.nets.pix2pixhd import LocalEnhancer
from tests.helpers import tiny_model_options

TINY = tiny_model_options("pix2pixhd", local=True)


def make(**kw: Any) -> Pix2PixHD:
    torch.manual_seed(0)
    data = DataConfig(label_nc=kw.pop("label_nc", 5), instance=kw.pop("instance", True))
    return Pix2PixHD(Pix2PixHDConfig(**{**TINY, **kw}), data)


def tiny_batch(n: int = 2, size: int = 32, label_nc: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    label = torch.zeros(n, 1, size, size, dtype=torch.long)
    label[..., size // 2:, :] = 1
    label[..., 4:12, 4:20] = 3
    label[..., 20:28, 8:30] = label_nc - 1
    inst = label.clone()
    inst[label == 3] = 3000
    inst[..., 4:12, 12:20] = 3001
    inst[label == label_nc - 1] = (label_nc - 1) * 1000
    image = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return {"label": label, "inst": inst, "image": image}


def ctx_for(m: Pix2PixHD, train: TrainConfig | None = None) -> StepContext:
    return StepContext(m.configure_optimizers(train or TrainConfig()), torch.device("cpu"))


def snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def changed(before: list[torch.Tensor], params) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, params))


# --------------------------------------------------------------------------- the step


def test_train_step_updates_G_D_and_E():
    m = make(use_features=True)
    ctx = ctx_for(m)
    before = {k: snapshot(n.parameters()) for k, n in m.nets.items()}
    losses = m.train_step(tiny_batch(), ctx)
    assert set(losses) == {"G_GAN", "G_GAN_Feat", "D_real", "D_fake"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    for k, net in m.nets.items():
        assert changed(before[k], net.parameters()), k
    # D's inputs are one-hot labels + the edge map + the image
    assert m.nets["D"].scales[0].layers[0][0].in_channels == 5 + 1 + 3
    assert m.nets["G"].model[1].in_channels == 5 + 1 + 3  # + E's 3 features


def test_losses_follow_the_reference_formulas():
    """All losses come from the same D (before either update); GAN terms are summed over the
    scales, D's loss is halved, feature matching x lambda_feat."""
    m = make(num_D=2)
    ctx = ctx_for(m)
    batch = tiny_batch()
    G, D = copy.deepcopy(m.nets["G"]), copy.deepcopy(m.nets["D"])
    cond = torch.cat([one_hot(batch["label"], 5), m.condition(batch)[:, 5:]], 1)
    with torch.no_grad():
        fake = G(cond)
        pf, pr = D(torch.cat([cond, fake], 1)), D(torch.cat([cond, batch["image"]], 1))
    g_gan = sum(F.mse_loss(s[-1], torch.ones_like(s[-1])) for s in pf)
    d_fake = sum(F.mse_loss(s[-1], torch.zeros_like(s[-1])) for s in pf)
    d_real = sum(F.mse_loss(s[-1], torch.ones_like(s[-1])) for s in pr)
    fm = sum(4 / 3 / 2 * F.l1_loss(a, b) for sf, sr in zip(pf, pr) for a, b in zip(sf[:-1], sr[:-1])) * 10
    losses = m.train_step(batch, ctx)
    assert losses["G_GAN"] == pytest.approx(float(g_gan), rel=1e-4)
    assert losses["D_fake"] == pytest.approx(float(d_fake), rel=1e-4)
    assert losses["D_real"] == pytest.approx(float(d_real), rel=1e-4)
    assert losses["G_GAN_Feat"] == pytest.approx(float(fm), rel=1e-4)


def test_vgg_loss_is_used_when_selected(random_vgg_weights: Callable[[str], Path]):
    m = make(perceptual="vgg16", vgg_weights=str(random_vgg_weights("vgg16")), lambda_vgg=10.0)
    assert m.vgg_loss is not None and "vgg" not in dict(m.nets)  # not saved with the checkpoints
    losses = m.train_step(tiny_batch(), ctx_for(m))
    assert losses["G_VGG"] > 0
    assert make().vgg_loss is None  # perceptual none: no VGG at all


# --------------------------------------------------------------------------- niter_fix_global


def _run(m: Pix2PixHD, ctx: StepContext, epochs: list[int]) -> None:
    for step, epoch in enumerate(epochs, start=ctx.step):
        ctx.step, ctx.epoch = step, epoch
        m.train_step(tiny_batch(seed=step), ctx)
    ctx.step += 0


def test_niter_fix_global_trains_only_the_local_enhancer_first():
    m = make(netG="local", use_features=True, niter_fix_global=2)
    G = m.nets["G"]
    assert isinstance(G, LocalEnhancer)
    ctx = ctx_for(m)
    assert [len(g["params"]) for g in ctx.optimizers["G"].param_groups] == [
        len(list(G.finest_parameters())) + len(list(m.nets["E"].parameters())), len(list(G.fixed_parameters()))]
    fixed0, finest0, e0 = snapshot(G.fixed_parameters()), snapshot(G.finest_parameters()), snapshot(m.nets["E"].parameters())
    _run(m, ctx, [0, 0, 1])  # the reference's epochs 1 and 2: global fixed
    assert not changed(fixed0, G.fixed_parameters())
    assert changed(finest0, G.finest_parameters()) and changed(e0, m.nets["E"].parameters())
    state = ctx.optimizers["G"].state
    assert not any(p in state for p in G.fixed_parameters())
    ctx.step = 3
    _run(m, ctx, [2])  # phase over: everything trains
    assert changed(fixed0, G.fixed_parameters())
    steps = {int(state[p]["step"]) for p in G.parameters()}
    assert steps == {1}  # a fresh Adam over all of G at the switch, as the reference


@pytest.mark.slow  # 18 steps in all
def test_niter_fix_global_is_exact_across_a_resume():
    epochs = [0, 0, 1, 1, 2, 2]
    full = make(netG="local", niter_fix_global=2)
    ctx = ctx_for(full)
    _run(full, ctx, epochs)

    for cut in (2, 4):  # resume inside the fixed phase and right at the switch
        first = make(netG="local", niter_fix_global=2)
        c1 = ctx_for(first)
        _run(first, c1, epochs[:cut])
        saved_nets = {k: copy.deepcopy(v.state_dict()) for k, v in first.nets.items()}
        saved_opt = {k: copy.deepcopy(o.state_dict()) for k, o in c1.optimizers.items()}
        second = make(netG="local", niter_fix_global=2)  # a fresh process: rebuilt from config
        c2 = ctx_for(second)
        for k, net in second.nets.items():
            net.load_state_dict(saved_nets[k])
        for k, o in c2.optimizers.items():
            o.load_state_dict(saved_opt[k])
        c2.step = cut
        _run(second, c2, epochs[cut:])
        for k in full.nets:
            for a, b in zip(full.nets[k].parameters(), second.nets[k].parameters()):
                assert torch.equal(a, b), (cut, k)


def test_niter_fix_global_needs_the_local_enhancer():
    with pytest.raises(ConfigError, match="netG=local"):
        make(niter_fix_global=3)


def test_init_from_a_global_checkpoint(tmp_path: Path):
    low = make(ngf=8, num_D=2, use_features=True)
    cfg = Config(method="pix2pixhd", data=low.data, model=low.cfg)
    ckpt.save_checkpoint(tmp_path / "run" / "checkpoints" / "step_1", cfg, dict(low.nets))
    ckpt.point_latest(tmp_path / "run" / "checkpoints", "step_1")
    high = make(netG="local", ngf=4, num_D=3, use_features=True, init_from=str(tmp_path / "run"))
    ctx = ctx_for(high)
    G_high, G_low = high.nets["G"], low.nets["G"]
    assert not torch.equal(G_high.model[1].weight, G_low.model[1].weight)
    copied = high.initialize_from(tmp_path / "run")
    assert copied["G"] == len(G_high.model.state_dict()) and copied["E"] == len(low.nets["E"].state_dict())
    for k, v in G_high.model.state_dict().items():
        assert torch.equal(v, G_low.model.state_dict()[k]), k
    # D: the 2-scale D's scales (full, half resolution) become the 3-scale D's scales 0 and 1
    # (quarter and half of the higher resolution): the same absolute resolutions.
    for k in (0, 1):
        for a, b in zip(high.nets["D"].scales[k].parameters(), low.nets["D"].scales[k].parameters()):
            assert torch.equal(a, b)
    # applied by the first training step of a fresh run only
    fresh = make(netG="local", ngf=4, num_D=3, use_features=True, init_from=str(tmp_path / "run"))
    c = ctx_for(fresh)
    w_before = fresh.nets["G"].model[1].weight.detach().clone()
    fresh.train_step(tiny_batch(), c)
    assert not torch.equal(fresh.nets["G"].model[1].weight, w_before)
    assert (fresh.nets["G"].model[1].weight - G_low.model[1].weight).abs().max() < 1e-2
    resumed = make(netG="local", ngf=4, num_D=3, use_features=True, init_from=str(tmp_path / "nowhere"))
    c = ctx_for(resumed)
    c.step = 5  # a resumed run never reads init_from again
    resumed.train_step(tiny_batch(), c)
    del ctx
    bad = make(netG="local", ngf=8, init_from=str(tmp_path / "run"))  # global width 16 != 8
    with pytest.raises(ConfigError, match="no generator tensor"):
        bad.initialize_from(tmp_path / "run")


# --------------------------------------------------------------------------- inference


def test_translate_feature_modes():
    m = make(use_features=True)
    m.set_inference_mode("eval")
    b = tiny_batch(n=1)
    cond = {"label": b["label"], "inst": b["inst"]}
    out = m.translate(dict(b))  # default with the real image: encode it
    assert out.shape == (1, 3, 32, 32)
    enc = m.instance_features(dict(b), "encode")
    with torch.no_grad():
        assert torch.allclose(enc, m.nets["E"](b["image"], b["inst"]))
    torch.manual_seed(1)
    r1 = m.instance_features(dict(cond), None)  # no image: random
    torch.manual_seed(1)
    r2 = m.instance_features(dict(cond), "random")
    assert torch.equal(r1, r2) and r1.abs().max() <= 1
    # one vector per instance
    for i in b["inst"].unique():
        v = r1[0][:, b["inst"][0, 0] == i]
        assert torch.equal(v, v[:, :1].expand_as(v))
    with pytest.raises(ValueError, match="features cluster"):
        m.instance_features(dict(cond), "cluster:0")
    m.clusters = {3: torch.tensor([[0.1, 0.2, 0.3], [-0.5, -0.5, -0.5]]), 4: torch.tensor([[0.9, 0.9, 0.9]])}
    fm = m.instance_features(dict(cond), "cluster:1")
    inst = b["inst"][0, 0]
    assert torch.allclose(fm[0][:, inst == 3000], torch.tensor([-0.5, -0.5, -0.5])[:, None])
    assert torch.allclose(fm[0][:, inst == 3001], torch.tensor([-0.5, -0.5, -0.5])[:, None])
    assert torch.allclose(fm[0][:, inst == 4000], torch.tensor([0.9, 0.9, 0.9])[:, None])  # 1 mod 1 = 0
    assert torch.equal(fm[0][:, inst == 0], torch.zeros(3, int((inst == 0).sum())))  # no clusters: zeros
    out_c = m.translate({**cond, "features": "cluster:1"})
    assert not torch.equal(out_c, m.translate({**cond, "features": "cluster:0"}))
    with pytest.raises(ValueError, match="expected 'encode'"):
        m.translate({**cond, "features": "bogus"})


def test_example_batch_trains():
    m = make(use_features=True)
    batch = m.example_batch(2, 32, 48)
    assert batch["label"].shape == batch["inst"].shape == (2, 1, 32, 48) and int(batch["label"].max()) < 5
    assert batch["image"].shape == (2, 3, 32, 48)
    m.train_step(batch, ctx_for(m))


def test_image_inputs_without_labels():
    torch.manual_seed(0)
    m = Pix2PixHD(Pix2PixHDConfig(**TINY), DataConfig(label_nc=0, input_nc=3))
    assert m.target_key == "B"
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    m.train_step(batch, ctx_for(m))
    assert m.translate(batch).shape == (1, 3, 32, 32)
    with pytest.raises(ConfigError, match="label_nc"):
        Pix2PixHD(Pix2PixHDConfig(**TINY), DataConfig(label_nc=0, instance=True))


def test_presets():
    p512 = build_config("pix2pixhd-512")
    assert (p512.model.netG, p512.model.num_D, p512.data.label_nc, p512.data.load_size) == ("global", 2, 35, 1024)
    assert p512.data.preprocess == "scale_width" and p512.model.perceptual == "vgg19"
    assert (p512.train.n_epochs, p512.train.n_epochs_decay, p512.train.lr, p512.train.beta1) == (100, 100, 2e-4, 0.5)
    p1024 = build_config("pix2pixhd-1024", ["model.init_from=runs/x"])
    assert (p1024.model.netG, p1024.model.ngf, p1024.model.num_D, p1024.model.niter_fix_global) == ("local", 32, 3, 10)
    assert p1024.data.load_size == 2048 and p1024.model.init_from == "runs/x"
    demo = build_config("pix2pixhd-demo")
    assert demo.data.label_nc == 9 and demo.data.instance and demo.model.perceptual == "none"
    m = build_method(demo, training=True)
    assert m.size_multiple == 8 and demo.data.crop_size % m.size_multiple == 0


def test_random_features_do_not_depend_on_the_batch():
    m = make(use_features=True)
    m.set_inference_mode("eval")
    tr = Translator(None, m, torch.device("cpu"))
    b = tiny_batch(n=2)
    b["label"][1] = b["label"][1].flip(-1)
    b["inst"][1] = b["inst"][1].flip(-1)
    both = tr.translate_batch({"label": b["label"], "inst": b["inst"], "features": "random"}, seed=3)
    first = tr.translate_batch({"label": b["label"][:1], "inst": b["inst"][:1], "features": "random"}, seed=3)
    assert torch.equal(both[:1], first)
