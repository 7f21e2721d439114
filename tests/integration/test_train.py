import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pairgan.config import build_config
from pairgan import checkpoint as ckpt
from pairgan.train.sampler import EpochBatchSampler
from pairgan.train.trainer import Trainer


def _cfg(data: Path, overrides: list[str], *extra: str):
    return build_config("pix2pix", overrides + list(extra), data_path=str(data))


def test_sampler_order_is_a_function_of_seed_and_epoch():
    s = EpochBatchSampler(7, 3, seed=1)
    s.set_position(2, 0)
    full = list(s)
    assert len(full) == 3 and sorted(i for b in full for _, i in b) == list(range(7))
    assert all(e == 2 for b in full for e, _ in b)
    s.set_position(2, 1)
    assert list(s) == full[1:]
    s.set_position(3, 0)
    assert list(s) != [[(3, i) for _, i in b] for b in full]  # a new epoch, a new order


def test_run_folder_contents(aligned_data: Path, tmp_path: Path, tiny_overrides):
    cfg = _cfg(aligned_data, tiny_overrides, "train.max_steps=4", "train.sample_every=2", "train.save_every=2")
    run = tmp_path / "run"
    summary = Trainer(cfg, run, progress=False).fit()
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
    assert {p.name for p in latest.iterdir()} == {"config.yaml", "G.safetensors", "D.safetensors", "state.pt"}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    latest = ckpt.resolve_checkpoint(run)
    out = {}
    for f in sorted(latest.glob("*.safetensors")):
        out |= {f"{f.stem}.{k}": v for k, v in load_file(str(f)).items()}
    return out


def test_resume_is_bitwise_identical(aligned_data: Path, tmp_path: Path, tiny_overrides, caplog):
    """N steps in one go == N/2 steps, stop, resume, N/2 steps (deterministic CPU).

    5 items at batch 2 = 3 batches per epoch, so N = 8 crosses epoch boundaries and the split at 4
    falls mid-epoch. The resumed half even uses data-loader worker processes: samples depend only
    on (seed, epoch, index), never on workers.
    """
    base = tiny_overrides + ["train.deterministic=true", "train.lr_policy=linear", "train.n_epochs=1",
                             "train.n_epochs_decay=2"]
    one = tmp_path / "one"
    Trainer(_cfg(aligned_data, base, "train.max_steps=8"), one, progress=False).fit()

    two = tmp_path / "two"
    Trainer(_cfg(aligned_data, base, "train.max_steps=8"), two, progress=False).fit(until_step=4)
    state = ckpt.load_state(ckpt.resolve_checkpoint(two))
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 1)
    resumed = _cfg(aligned_data, base, "train.max_steps=8", "train.num_workers=2")
    with caplog.at_level(logging.INFO, logger="pairgan"):
        Trainer(resumed, two, resume=True, progress=False).fit()
    # Without a progress bar the trainer logs where it resumed and a plain progress line.
    assert "resumed from" in caplog.text and "at step 4 (epoch 1, batch 1)" in caplog.text
    assert "epoch 2 step 8/8" in caplog.text

    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = ckpt.load_state(ckpt.resolve_checkpoint(one))
    sb = ckpt.load_state(ckpt.resolve_checkpoint(two))
    for name in ("G", "D"):
        for pid, st in sa["optimizers"][name]["state"].items():
            assert torch.equal(st["exp_avg_sq"], sb["optimizers"][name]["state"][pid]["exp_avg_sq"])
    ha = (one / "history.jsonl").read_text().splitlines()
    hb = (two / "history.jsonl").read_text().splitlines()
    assert ha == hb  # losses logged by the resumed run are the uninterrupted run's


def test_sigterm_saves_then_resume_finishes(aligned_data: Path, tmp_path: Path, tiny_overrides):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pairgan.cli", "train", "--data", str(aligned_data), "--out", str(run)]
    for o in tiny_overrides + ["train.max_steps=100000"]:
        cmd += ["--set", o]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hist = run / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (hist.exists() and len(hist.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume" in err
    state = ckpt.load_state(ckpt.resolve_checkpoint(run))
    assert state["step"] >= 3
    cfg = ckpt.load_checkpoint_config(ckpt.resolve_checkpoint(run))
    cfg.train.max_steps = state["step"] + 2
    Trainer(cfg, run, resume=True, progress=False).fit()
    assert ckpt.load_state(ckpt.resolve_checkpoint(run))["step"] == state["step"] + 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step(aligned_data: Path, tmp_path: Path, tiny_overrides, precision):
    cfg = _cfg(aligned_data, tiny_overrides, "train.max_steps=2", f"train.precision={precision}")
    Trainer(cfg, tmp_path / precision, progress=False).fit()
    hist = [json.loads(x) for x in (tmp_path / precision / "history.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(h["G_L1"])) for h in hist)
    if precision == "fp16":
        assert ckpt.load_state(ckpt.resolve_checkpoint(tmp_path / precision))["scaler"]


def test_resnet_generator_and_pixelgan_train(aligned_data: Path, tmp_path: Path, tiny_overrides):
    cfg = _cfg(aligned_data, tiny_overrides, "train.max_steps=2", "model.generator=resnet", "model.n_blocks=2",
               "model.discriminator=pixel", "model.gan_mode=lsgan", "model.norm=instance")
    Trainer(cfg, tmp_path / "r", progress=False).fit()
    assert (tmp_path / "r" / "checkpoints" / "latest").exists()
