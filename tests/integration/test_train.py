"""The training loop on tiny pix2pix runs: what a run folder holds, mixed precision, other networks."""

import json
from pathlib import Path
from typing import Callable

import pytest
import torch

from pairgan import checkpoint as ckpt


def test_run_folder_contents(tiny_run: Callable[..., Path]):
    run = tiny_run("pix2pix", steps=4, extra=["train.sample_every=2", "train.save_every=2"])
    summary = json.loads((run / "train_summary.json").read_text())  # what fit() returned
    assert summary["steps"] == 4
    for name in ("config.yaml", "history.jsonl", "losses.png", "train_summary.json", "samples/index.html",
                 "samples/step_00000002.png", "checkpoints/latest"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").iterdir())
    hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [1, 2, 3, 4]
    assert {"G_GAN", "G_L1", "D_real", "D_fake", "lr"} <= set(hist[0])
    latest = ckpt.resolve_checkpoint(run)
    assert latest.name == "step_00000004"
    assert {p.name for p in latest.iterdir()} == {"config.yaml", "input_profile.json", "G.safetensors",
                                                 "D.safetensors", "state.pt"}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step(tiny_run: Callable[..., Path], precision):
    run = tiny_run("pix2pix", steps=2, extra=[f"train.precision={precision}"])
    hist = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(h["G_L1"])) for h in hist)
    if precision == "fp16":
        assert ckpt.load_state(ckpt.resolve_checkpoint(run))["scaler"]


def test_resnet_generator_and_pixelgan_train(tiny_run: Callable[..., Path]):
    run = tiny_run("pix2pix", steps=2, extra=["model.generator=resnet", "model.n_blocks=2", "model.discriminator=pixel",
                                              "model.gan_mode=lsgan", "model.norm=instance"])
    assert (run / "checkpoints" / "latest").exists()
