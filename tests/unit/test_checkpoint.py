"""The run-folder checkpoint format: weights + state + config, the `latest` pointer, RNG capture,
atomic saves, pruning and the errors."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pairgan import checkpoint as ckpt
from pairgan.config import build_config


def _nets(seed: int = 0) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {"G": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), "D": nn.Linear(5, 2)}


def test_roundtrip_weights_state_and_pointer(tmp_path: Path):
    cfg = build_config("pix2pix")
    nets = _nets(0)
    state = {"step": 7, "epoch": 1, "optimizers": {}, "rng": ckpt.rng_state()}
    path = ckpt.save_checkpoint(tmp_path / "checkpoints" / "step_7", cfg, nets, state)
    ckpt.point_latest(tmp_path / "checkpoints", "step_7")
    assert ckpt.resolve_checkpoint(tmp_path) == path
    assert ckpt.resolve_checkpoint(tmp_path / "checkpoints") == path
    assert ckpt.resolve_checkpoint(path) == path
    other = _nets(1)
    ckpt.load_weights(path, other)
    for name in nets:
        for (k, a), (_, b) in zip(nets[name].state_dict().items(), other[name].state_dict().items()):
            assert torch.equal(a, b), k
    loaded = ckpt.load_state(path)
    assert loaded["step"] == 7
    assert ckpt.load_checkpoint_config(path) == cfg
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_rng_state_restores_all_generators():
    state = ckpt.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_failed_save_leaves_previous_intact(tmp_path: Path, monkeypatch):
    cfg = build_config("pix2pix")
    d = tmp_path / "checkpoints"
    ckpt.save_checkpoint(d / "step_1", cfg, _nets(0), {"step": 1})
    ckpt.point_latest(d, "step_1")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(d / "step_1", cfg, _nets(1), {"step": 2})  # overwrite attempt
    with pytest.raises(OSError):
        ckpt.save_checkpoint(d / "step_2", cfg, _nets(1), {"step": 2})
    assert sorted(p.name for p in d.iterdir()) == ["latest", "step_1"]
    nets = _nets(5)
    ckpt.load_weights(ckpt.resolve_checkpoint(tmp_path), nets)
    assert torch.equal(nets["D"].weight, _nets(0)["D"].weight)
    assert ckpt.load_state(d / "step_1")["step"] == 1


def test_prune_keeps_newest_and_latest(tmp_path: Path):
    cfg = build_config("pix2pix")
    d = tmp_path / "checkpoints"
    for s in (1, 2, 3, 4, 5):
        ckpt.save_checkpoint(d / f"step_{s:08d}", cfg, {"D": nn.Linear(2, 2)})
    ckpt.save_checkpoint(d / "epoch_0001", cfg, {"D": nn.Linear(2, 2)})
    ckpt.point_latest(d, "step_00000001")  # an old one can be "latest" (e.g. after a manual rollback)
    ckpt.prune_step_checkpoints(d, keep_last=2)
    assert sorted(p.name for p in d.iterdir() if p.is_dir()) == [
        "epoch_0001", "step_00000001", "step_00000004", "step_00000005"]


def test_errors_name_the_path(tmp_path: Path):
    with pytest.raises(ckpt.CheckpointError, match="no such"):
        ckpt.resolve_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint"):
        ckpt.resolve_checkpoint(tmp_path / "empty")
    cfg = build_config("pix2pix")
    path = ckpt.save_checkpoint(tmp_path / "c", cfg, {"D": nn.Linear(2, 2)})
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        ckpt.load_weights(path, {"D": nn.Linear(3, 2)})
    with pytest.raises(ckpt.CheckpointError, match="missing weights"):
        ckpt.load_weights(path, {"G": nn.Linear(3, 2)})
