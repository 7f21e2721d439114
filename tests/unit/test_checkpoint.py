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
    with pytest.raises(ckpt.CheckpointError, match=r"step_1: could not write the checkpoint: no space left on "
                                                   r"device \(ENOSPC\)"):
        ckpt.save_checkpoint(d / "step_1", cfg, _nets(1), {"step": 2})  # overwrite attempt
    with pytest.raises(ckpt.CheckpointError, match="ENOSPC"):
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


def _run_with_steps(tmp_path: Path, *steps: int) -> Path:
    cfg = build_config("pix2pix")
    d = tmp_path / "checkpoints"
    for s in steps:
        ckpt.save_checkpoint(d / f"step_{s:08d}", cfg, _nets(s), {"step": s})
        ckpt.point_latest(d, f"step_{s:08d}")
    return d


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_damaged_files_are_named_with_the_older_checkpoint(tmp_path: Path):
    d = _run_with_steps(tmp_path, 1, 2, 3)
    g = d / "step_00000003" / "G.safetensors"
    g.write_bytes(g.read_bytes()[:100])
    with pytest.raises(ckpt.CorruptCheckpoint, match=r"G\.safetensors: not a readable safetensors file.*newest "
                                                     r"complete older checkpoint is \S*step_00000002") as info:
        ckpt.read_weights(d / "step_00000003", "G")
    assert info.value.fallback == d / "step_00000002" and info.value.path == g
    assert ckpt.damage(d / "step_00000003")[0] == g
    assert ckpt.newest_complete(d) == d / "step_00000002"

    state = d / "step_00000002" / "state.pt"
    torch.save({"x": _Payload(tmp_path / "PWNED")}, state)
    with pytest.raises(ckpt.CorruptCheckpoint, match=r"state\.pt: not a plain-tensor checkpoint .* must not be "
                                                     r"loaded with pickle; .*step_00000001") as info:
        ckpt.load_state(d / "step_00000002")
    assert "weights_only" not in str(info.value) and not (tmp_path / "PWNED").exists()
    assert ckpt.newest_complete(d) == d / "step_00000001"

    (d / "step_00000001" / "state.pt").write_bytes(b"")
    with pytest.raises(ckpt.CorruptCheckpoint, match=r"state\.pt: truncated or damaged .*no complete older"):
        ckpt.load_state(d / "step_00000001")


def test_latest_naming_a_missing_folder_falls_back(tmp_path: Path, caplog):
    d = _run_with_steps(tmp_path, 1, 2)
    ckpt.point_latest(d, "step_00000007")
    assert ckpt.resolve_checkpoint(tmp_path) == d / "step_00000002"
    assert "names 'step_00000007', which is not a complete checkpoint; using the newest complete one" in caplog.text


def test_run_without_a_checkpoint_says_how_to_start_over(tmp_path: Path):
    (tmp_path / "checkpoints").mkdir()
    assert not ckpt.has_checkpoints(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="no complete checkpoint .*start it over with pairgan train --out"):
        ckpt.resolve_checkpoint(tmp_path)


def test_clean_leftovers(tmp_path: Path):
    d = _run_with_steps(tmp_path, 1, 2)
    (d / ".tmp-step_00000003-99").mkdir()
    (d / ".latest.abcdef012345.tmp").write_text("x")
    (d / "step_00000002").rename(d / ".old-step_00000002-99")
    (d / ".old-step_00000001-98").mkdir()  # moved aside, then replaced: only the leftover remains
    done = ckpt.clean_leftovers(d)
    assert len(done) == 4
    assert sorted(p.name for p in d.iterdir()) == ["latest", "step_00000001", "step_00000002"]
    assert ckpt.load_state(ckpt.resolve_checkpoint(tmp_path))["step"] == 2


def test_clean_leftovers_in_several_ranks_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Under torchrun every rank tidies a run before resuming it: when another rank puts a folder
    back between this rank's check and its rename, there is nothing left to do, not an error."""
    d = _run_with_steps(tmp_path, 1, 2)
    (d / "step_00000002").rename(d / ".old-step_00000002-99")
    real_replace = ckpt.os.replace

    def other_rank_first(src, dst):
        real_replace(src, dst)  # the other rank's rename lands first
        real_replace(src, dst)  # then this rank's: FileNotFoundError, as in the race

    monkeypatch.setattr(ckpt.os, "replace", other_rank_first)
    assert ckpt.clean_leftovers(d) == []
    assert sorted(p.name for p in d.iterdir()) == ["latest", "step_00000001", "step_00000002"]
    assert ckpt.load_state(ckpt.resolve_checkpoint(tmp_path))["step"] == 2


def test_run_of(tmp_path: Path):
    d = _run_with_steps(tmp_path, 1)
    assert ckpt.run_of(d / "step_00000001") == tmp_path.absolute()
    loose = ckpt.save_checkpoint(tmp_path / "loose", build_config("pix2pix"), _nets(0))
    assert ckpt.run_of(loose) is None
