"""Training extras (issue 16): generator EMA, separate D learning rate, R1, spectral norm."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from pairgan import checkpoint as ckpt
from pairgan.config import build_config
from pairgan.errors import CheckpointError
from pairgan.methods.build import build_method, load_method
from pairgan.methods.ema import GeneratorEMA
from pairgan.methods.regularizers import r1_due, r1_penalty
from pairgan.registry import create

pytestmark = pytest.mark.usefixtures("one_thread")


def _toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def _set_weights(net: nn.Module, value: float, running: float) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
        net[1].running_mean.fill_(running)
        net[1].num_batches_tracked.fill_(int(running))


# ----------------------------------------------------------------------------- EMA


def test_ema_update_matches_the_closed_form():
    """After k steps: ema = d^k w0 + sum_i (1 - d) d^(k-i) w_i; buffers are the last copied."""
    net, d = _toy(), 0.9
    _set_weights(net, 1.0, 0.0)
    ema = GeneratorEMA({"G": net}, d)
    values = [2.0, -1.0, 5.0, 0.5]
    for step, w in enumerate(values, start=1):
        _set_weights(net, w, running=float(step))
        ema.update({"G": net}, step)
    k = len(values)
    expected = d**k * 1.0 + sum((1 - d) * d ** (k - i) * w for i, w in enumerate(values, start=1))
    for p in ema.nets["G"].parameters():
        torch.testing.assert_close(p, torch.full_like(p, expected), rtol=1e-6, atol=1e-6)
        assert not p.requires_grad
    bn = ema.nets["G"][1]
    assert torch.equal(bn.running_mean, torch.full((4,), float(k)))  # copied, not averaged
    assert int(bn.num_batches_tracked) == k


def test_ema_start_tracks_the_network_until_then():
    net, d = _toy(), 0.5
    ema = GeneratorEMA({"G": net}, d, start=2)
    for step, w in enumerate([3.0, 7.0], start=1):
        _set_weights(net, w, 0.0)
        ema.update({"G": net}, step)
        assert all(torch.equal(a, b) for a, b in zip(ema.nets["G"].parameters(), net.parameters()))
    _set_weights(net, 11.0, 0.0)
    ema.update({"G": net}, 3)  # the first averaged step: 0.5 * 7 + 0.5 * 11
    assert all(torch.equal(p, torch.full_like(p, 9.0)) for p in ema.nets["G"].parameters())


def test_ema_rampup_caps_the_half_life_at_a_share_of_the_steps():
    ema = GeneratorEMA({"G": _toy()}, 0.999, rampup=0.05)
    # step 200: half-life at most 10 steps; step 2000: 100; step 20000: 1000 > 693 (0.999's own)
    assert ema.decay_at(200) == pytest.approx(0.5 ** (1 / 10))
    assert ema.decay_at(2000) == pytest.approx(0.5 ** (1 / 100))
    assert ema.decay_at(20000) == 0.999
    assert GeneratorEMA({"G": _toy()}, 0.999).decay_at(200) == 0.999  # off by default
    net = _toy()
    _set_weights(net, 0.0, 0.0)
    ramped = GeneratorEMA({"G": net}, 0.999, rampup=0.5)
    _set_weights(net, 1.0, 0.0)
    ramped.update({"G": net}, 2)  # half-life 1 step: half of the way to the new weights
    assert all(torch.allclose(p, torch.full_like(p, 0.5)) for p in ramped.nets["G"].parameters())
    with pytest.raises(ValueError, match="rampup"):
        GeneratorEMA({"G": _toy()}, 0.9, rampup=-1)


def test_ema_applied_swaps_in_and_restores_bit_for_bit():
    net = _toy()
    ema = GeneratorEMA({"G": net}, 0.9)
    _set_weights(ema.nets["G"], 4.0, 2.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with ema.applied({"G": net}):
        assert all(torch.equal(p, torch.full_like(p, 4.0)) for p in net.parameters())
        assert torch.equal(net[1].running_mean, torch.full((4,), 2.0))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_ema_net_names_are_the_inference_networks(tiny_config):
    assert build_method(tiny_config("pix2pix"), training=True).ema_net_names() == ("G",)
    hd = build_method(tiny_config("pix2pixhd-demo", None, features=True), training=True)
    assert hd.ema_net_names() == ("G", "E")
    assert build_method(tiny_config("drpan"), training=True).ema_net_names() == ("G",)


def _ema_checkpoint(tmp_path: Path, cfg, *, with_ema: bool) -> tuple[Path, nn.Module, nn.Module]:
    """A checkpoint of a built pix2pix with an EMA copy of G whose weights differ from G's."""
    method = build_method(cfg, training=True)
    twin = GeneratorEMA({"G": method.nets["G"]}, 0.9).nets["G"]
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5).add_(0.01)
    folder = ckpt.save_checkpoint(tmp_path / "step_00000001", cfg, dict(method.nets), {"step": 1},
                                  ema={"G": twin} if with_ema else None)
    return folder, method.nets["G"], twin


def test_inference_loads_the_ema_weights_by_default(tmp_path: Path, tiny_config):
    cfg = tiny_config("pix2pix", None, "model.inference_mode=eval")
    folder, raw_g, ema_g = _ema_checkpoint(tmp_path, cfg, with_ema=True)
    assert (folder / "ema" / "G.safetensors").is_file() and ckpt.ema_names(folder) == ("G",)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    loaded = load_method(folder)
    assert loaded.weights_source == "ema"
    raw = load_method(folder, weights="raw")
    assert raw.weights_source == "raw"
    ema_g.eval()
    raw_g.eval()
    with torch.no_grad():
        out, out_raw = loaded.translate({"A": x}), raw.translate({"A": x})
        assert torch.equal(out, ema_g(x)) and torch.equal(out_raw, raw_g(x))
    assert not torch.equal(out, out_raw)


def test_asking_for_ema_weights_a_run_lacks_is_one_clear_error(tmp_path: Path, tiny_config):
    folder, _, _ = _ema_checkpoint(tmp_path, tiny_config("pix2pix"), with_ema=False)
    assert load_method(folder).weights_source == "raw"
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_method(folder, weights="ema")


def test_a_garbled_ema_file_is_named(tmp_path: Path, tiny_config):
    folder, _, _ = _ema_checkpoint(tmp_path, tiny_config("pix2pix"), with_ema=True)
    (folder / "ema" / "G.safetensors").write_bytes(b"garbage")
    bad = ckpt.damage(folder, need_state=False)
    assert bad is not None and bad[0] == folder / "ema" / "G.safetensors"


# ----------------------------------------------------------------------------- lr_D


def _lrs(cfg) -> dict[str, float]:
    opts = build_method(cfg, training=True).configure_optimizers(cfg.train)
    return {k: o.param_groups[0]["lr"] for k, o in opts.items()}


def test_lr_d_is_the_discriminators_learning_rate(tiny_config):
    assert _lrs(tiny_config("pix2pix", None, "train.lr=0.0002")) == {"G": 0.0002, "D": 0.0002}
    assert _lrs(tiny_config("pix2pix", None, "train.lr=0.0002", "train.lr_D=0.0008")) == {"G": 0.0002, "D": 0.0008}
    assert _lrs(tiny_config("drpan", None, "train.lr=0.0001", "train.lr_D=0.0004")) == {
        "G": 0.0001, "D": 0.0004, "R": 0.0004}
    hd = _lrs(tiny_config("pix2pixhd-demo", None, "train.lr_D=0.0004"))
    assert hd["D"] == 0.0004 and hd["G"] == 0.0002


# ----------------------------------------------------------------------------- R1, spectral norm


def _d_in(D: nn.Module) -> int:
    """D's input channels (condition + image), read from its first convolution."""
    return next(m for m in D.modules() if isinstance(m, nn.Conv2d)).in_channels


@pytest.mark.parametrize("preset", ["pix2pix", "pix2pixhd-demo"])
def test_r1_is_positive_and_its_gradient_reaches_d_only(preset, tiny_config):
    cfg = tiny_config(preset)
    method = build_method(cfg, training=True)
    G, D = method.nets["G"], method.nets["D"]
    torch.manual_seed(1)
    cond = torch.rand(2, _d_in(D) - 3, 32, 32) * 2 - 1
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    penalty = r1_penalty(lambda b: D(torch.cat([cond, b], 1)), real, gamma=10.0, every=4)
    assert penalty.item() > 0
    d_grads = torch.autograd.grad(penalty, list(D.parameters()), retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in d_grads)
    g_grads = torch.autograd.grad(penalty, list(G.parameters()), allow_unused=True)
    assert all(g is None for g in g_grads)
    # lazy: the interval scales it
    once = r1_penalty(lambda b: D(torch.cat([cond, b], 1)), real, gamma=10.0, every=1)
    torch.testing.assert_close(penalty, once * 4)


def test_r1_is_due_every_interval_and_never_when_off():
    assert [s for s in range(10) if r1_due(1.0, 4, s)] == [0, 4, 8]
    assert not any(r1_due(0.0, 1, s) for s in range(5))


def _parametrized_convs(net: nn.Module) -> list[bool]:
    return [parametrize.is_parametrized(m, "weight") for m in net.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("preset", ["pix2pix", "pix2pixhd-demo", "drpan"])
def test_spectral_norm_wraps_every_conv_of_d(preset, tiny_config):
    method = build_method(tiny_config(preset, None, "model.spectral_norm=true"), training=True)
    flags = _parametrized_convs(method.nets["D"])
    assert flags and all(flags)
    assert not any(_parametrized_convs(method.nets["G"]))
    method.nets["D"].train()
    x = torch.rand(1, _d_in(method.nets["D"]), 32, 32)
    method.nets["D"](x)  # runs (and its power-iteration vectors are state)
    assert any(k.endswith("_u") for k in method.nets["D"].state_dict())


def test_presets_are_unchanged_with_the_defaults(tiny_config):
    for preset in ("pix2pix", "pix2pixhd-512"):
        full = build_config(preset)
        assert full.train.ema == 0 and full.train.lr_D == 0
        assert full.model.r1_gamma == 0 and full.model.spectral_norm is False
    cfg = tiny_config("pix2pix")
    method = build_method(cfg, training=True)
    m = cfg.model
    plain = create("discriminator", m.discriminator, input_nc=6, ndf=m.ndf, n_layers=m.n_layers_D, norm=m.norm)
    assert [(k, v.shape) for k, v in method.nets["D"].state_dict().items()] == [
        (k, v.shape) for k, v in plain.state_dict().items()]
    assert not any(_parametrized_convs(method.nets["D"]))
    assert set(_lrs(cfg).values()) == {cfg.train.lr}
    hd_cfg = tiny_config("pix2pixhd-512")
    hd = build_method(hd_cfg, training=True)
    assert not any(_parametrized_convs(hd.nets["D"]))
    assert set(_lrs(hd_cfg).values()) == {hd_cfg.train.lr}
