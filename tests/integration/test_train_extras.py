"""Training extras in tiny runs: the generator EMA resumed bit for bit and used by inference, R1
and spectral norm in real steps."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from pairgan import checkpoint as ckpt
from pairgan.config import build_config
from pairgan.infer import Translator
from pairgan.methods.build import build_method, load_method
from pairgan.train.trainer import Trainer
from tests.helpers import checkpoint_tensors, tiny_overrides, train_whole_and_resumed


def _pix2pix(data: Path, *extra: str, steps: int = 4):
    sets = tiny_overrides("pix2pix", max_steps=steps, deterministic=True, sample_every=2, save_every=0)
    return build_config("pix2pix", sets + list(extra), data_path=str(data))


@pytest.mark.slow
def test_exact_resume_with_ema(aligned_data: Path, tmp_path: Path):
    """4 steps == 2 steps, stop, resume, 2 steps, the EMA tensors included (samples on the way
    are drawn with the EMA weights swapped in and must leave training untouched)."""
    cfg = _pix2pix(aligned_data, "train.ema=0.9", "train.ema_rampup=0.5")
    one, two = train_whole_and_resumed(cfg, tmp_path, stop_at=2)
    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    assert a.keys() == b.keys()
    ema_keys = [k for k in a if k.startswith("ema/G.")]
    assert ema_keys and not any(k.startswith("ema/D.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], a[k[len("ema/"):]]) for k in ema_keys)  # averaged, not a copy


def test_ema_start_at_the_end_keeps_a_copy(aligned_data: Path, tmp_path: Path):
    Trainer(_pix2pix(aligned_data, "train.ema=0.9", "train.ema_start=3", steps=3), tmp_path / "run",
            progress=False).fit()
    t = checkpoint_tensors(tmp_path / "run")
    ema_keys = [k for k in t if k.startswith("ema/")]
    assert ema_keys and all(torch.equal(t[k], t[k[len("ema/"):]]) for k in ema_keys)


def test_inference_uses_the_ema_weights_and_says_so(aligned_data: Path, tmp_path: Path, caplog):
    run = tmp_path / "run"
    Trainer(_pix2pix(aligned_data, "train.ema=0.5", "model.inference_mode=eval", steps=3), run, progress=False).fit()
    with caplog.at_level(logging.INFO, logger="pairgan"):
        translator = Translator.from_checkpoint(run, device="cpu")
    assert translator.method.weights_source == "ema" and "EMA weights of G" in caplog.text
    folder = ckpt.resolve_checkpoint(run)
    manual = build_method(ckpt.load_checkpoint_config(folder), training=False)
    ckpt.load_weights(folder, dict(manual.nets), ("G",), ema=True)
    manual.set_inference_mode("eval")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    raw = load_method(run, weights="raw")
    out = translator.translate_batch({"A": x})
    to_ema = float((out - manual.translate({"A": x})).abs().max())
    assert to_ema <= 1e-5  # a compiled graph: equal to round-off
    assert float((out - raw.translate({"A": x})).abs().max()) > 10 * to_ema


def test_r1_and_spectral_norm_train(aligned_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    cfg = _pix2pix(aligned_data, "model.r1_gamma=1.0", "model.r1_every=2", "model.spectral_norm=true",
                   "train.lr_D=0.0004", "train.log_every=1", steps=3)
    trainer = Trainer(cfg, run, progress=False)
    trainer.fit()
    history = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    r1 = [h.get("D_R1") for h in history]
    assert r1[0] is not None and r1[0] > 0 and r1[1] is None and r1[2] is not None  # steps 0 and 2 of 0..2
    assert any(k.startswith("D.") and k.endswith("parametrizations.weight.original") for k in checkpoint_tensors(run))
    state = ckpt.load_state(ckpt.resolve_checkpoint(run))
    assert state["optimizers"]["D"]["param_groups"][0]["lr"] != state["optimizers"]["G"]["param_groups"][0]["lr"]


@pytest.mark.slow
def test_pix2pixhd_with_ema_r1_and_spectral_norm(tiny_data, tmp_path: Path):
    run = tmp_path / "run"
    sets = tiny_overrides("pix2pixhd-demo", features=True, max_steps=2, sample_every=0, save_every=0)
    cfg = build_config("pix2pixhd-demo", sets + ["train.ema=0.9", "model.r1_gamma=1", "model.r1_every=1",
                                                 "model.spectral_norm=true"], data_path=str(tiny_data("scenes")))
    Trainer(cfg, run, progress=False).fit()
    assert ckpt.ema_names(ckpt.resolve_checkpoint(run)) == ("E", "G")
    assert load_method(run).weights_source == "ema"


def test_pix2pix_plus_preset_trains_and_translates_with_its_average(aligned_data: Path, tmp_path: Path,
                                                                     random_vgg_weights, caplog):
    """The preset the quality benchmark recommends: its parts are on, it trains end to end (tiny
    sizes, a random VGG16 file) and inference uses the moving average."""
    preset = build_config("pix2pix-plus", [], data_path=str(aligned_data))
    assert (preset.model.discriminator, preset.model.gan_mode, preset.model.d_augment) == ("features", "hinge", "diffaug")
    assert preset.train.ema > 0 and preset.train.ema_rampup > 0 and preset.train.lr_policy == "linear"
    assert preset.model.norm == "instance" and not preset.model.dropout
    sets = tiny_overrides("pix2pix-plus", max_steps=3, deterministic=True, sample_every=0, save_every=0)
    cfg = build_config("pix2pix-plus", sets + [f"model.d_backbone_weights={random_vgg_weights('vgg16')}"],
                       data_path=str(aligned_data))
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="pairgan"):
        Trainer(cfg, run, progress=False).fit()
    assert "ema: averaging G with decay 0.999 from step 200 (half-life at most 0.05 of the steps done)" in caplog.text
    assert any(k.startswith("ema/G.") for k in checkpoint_tensors(run))
    translator = Translator.from_checkpoint(run, device="cpu")
    assert translator.method.weights_source == "ema"
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert translator.translate_batch({"A": x}).shape == (1, 3, 32, 32)
