"""benchmarks/quality_at_budget.py: every recipe it runs is a valid configuration, and its table
reports means, the spread between seeds and the change against the reference honestly."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.quality_at_budget import ARMS, CHAIN, DATASETS, table, train_command
from pairgan.config import build_config
from pairgan.protocols import load_protocol


def _overrides(cmd: list[str]) -> tuple[str, list[str]]:
    preset = cmd[cmd.index("--preset") + 1]
    return preset, [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("arm", list(ARMS))
def test_every_recipe_builds(dataset: str, arm: str) -> None:
    preset, overrides = _overrides(train_command(dataset, arm, 8, 1))
    cfg = build_config(preset, overrides, data_path="/nowhere")
    assert cfg.train.max_minutes == 8 and cfg.seed == 1
    assert cfg.data.crop_size == 128 and cfg.model.num_downs == 7 and cfg.data.direction == "BtoA"
    # the held-out pairs are never trained on
    assert cfg.data.train_split == DATASETS[dataset][1] and cfg.data.val_split == DATASETS[dataset][2]
    if arm == "reference":
        assert cfg.train.lr_policy == "constant" and cfg.train.batch_size == 1 and cfg.model.discriminator == "patch"


def test_ablation_adds_one_lever_at_a_time() -> None:
    names = CHAIN[1:]  # the reference is another preset
    assert set(CHAIN) <= set(ARMS)
    for before, after in zip(names, names[1:]):
        assert set(ARMS[before][1]) < set(ARMS[after][1]), (before, after)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_protocols_hold_out_the_training_tail(dataset: str) -> None:
    protocol = load_protocol(DATASETS[dataset][3])
    assert protocol.split == DATASETS[dataset][2] and tuple(protocol.resolution) == (128, 128)


def _run(arm: str, seed: int, fid: float, ssim: float) -> dict:
    return {"dataset": "facades", "arm": arm, "minutes": 8.0, "seed": seed, "steps": 100 + seed,
            "metrics": {"fid": fid, "kid": fid / 1000, "ssim": ssim}, "kid_std": 0.01}


def test_table_means_spread_and_change() -> None:
    runs = [_run("reference", 0, 300, 0.20), _run("reference", 1, 320, 0.22), _run("plus", 0, 200, 0.25),
            _run("plus", 1, 220, 0.23)]
    lines = table(runs, "facades", 8.0, ["reference", "plus"])
    ref, plus = lines[2], lines[3]
    assert "| reference | 2 | 100/101 |" in ref and "310.0 ± 10.0" in ref and "%" not in ref
    assert "210.0 ± 10.0 (-32%)" in plus and "0.2400 ± 0.0100 (+14%)" in plus
    assert "SSIM ↑" in lines[0] and "FID ↓" in lines[0] and "seg" not in lines[0]


def test_the_preset_is_the_last_row_of_the_ablation() -> None:
    """pix2pix-plus is exactly the configuration the ablation measured last (same data, seed)."""
    def resolved(arm: str) -> dict:
        preset, overrides = _overrides(train_command("facades", arm, 8, 0))
        return dataclasses.asdict(build_config(preset, overrides, data_path="/nowhere"))

    assert resolved("plus") == resolved(CHAIN[-1])
    assert resolved("plus") != resolved(CHAIN[-2])
