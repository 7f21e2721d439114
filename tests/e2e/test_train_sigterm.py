"""SIGTERM to `pairgan train` (a subprocess): it saves, exits 130 and the run resumes to the end."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pairgan import checkpoint as ckpt
from pairgan.train.trainer import Trainer
from tests.helpers import set_args, tiny_overrides


@pytest.mark.slow
def test_sigterm_saves_then_resume_finishes(aligned_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pairgan.cli", "train", "--data", str(aligned_data), "--out", str(run),
           *set_args(tiny_overrides("pix2pix") + ["train.max_steps=100000"])]
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
