"""DRPAN through the Trainer: exact resume with the reviser, and an end-to-end CLI run on the
synthetic scenes (synth -> train -> translate), in process."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from pairgan import checkpoint as ckpt
from pairgan.cli import app
from pairgan.config import build_config
from tests.helpers import checkpoint_tensors, set_args, tiny_overrides, train_whole_and_resumed


def test_exact_resume_with_the_reviser(aligned_data: Path, tmp_path: Path):
    """4 steps in one go == 2 steps, stop, resume, 2 steps (R's weights and Adam state included)."""
    cfg = build_config("drpan", tiny_overrides("drpan", max_steps=4, deterministic=True) + ["model.ngf=4", "model.ndf=4"],
                       data_path=str(aligned_data))
    one, two = train_whole_and_resumed(cfg, tmp_path, stop_at=2)
    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    assert a.keys() == b.keys() and any(k.startswith("R.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = ckpt.load_state(ckpt.resolve_checkpoint(tmp_path / "one"))
    assert set(state["optimizers"]) == {"G", "D", "R"}


def test_cli_synth_train_translate(tmp_path: Path):
    runner = CliRunner()
    data = tmp_path / "scenes"
    r = runner.invoke(app, ["data", "synth", "scenes", str(data), "--n", "10", "--size", "32", "--seed", "1"])
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    sets = tiny_overrides("drpan-demo", max_steps=2, sample_every=2, save_every=0)
    args = ["train", "--preset", "drpan-demo", "--data", str(data / "aligned"), "--out", str(run)] + set_args(sets)
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    history = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2]
    assert {"G_R", "G_region", "R_real", "R_fake", "G_GAN", "D_real"} <= set(history[-1])
    assert (run / "samples" / "step_00000002.png").exists()
    assert "fake-mask real" in (run / "samples" / "index.html").read_text()
    latest = (run / "checkpoints" / "latest").read_text().strip()
    assert (run / "checkpoints" / latest / "R.safetensors").exists()
    out = tmp_path / "translated"
    r = runner.invoke(app, ["translate", str(run), str(data / "aligned" / "test"), "--out", str(out), "--aligned"])
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("*.png"))) == len(list((data / "aligned" / "test").iterdir())) >= 1
