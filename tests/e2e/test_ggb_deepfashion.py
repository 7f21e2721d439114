"""GGB on real DeepFashion pose pairs (../shared/data/deepfashion_pose): a short smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pairgan.config import build_config
from pairgan.evaluate import score_pose_split
from pairgan.infer import Translator
from pairgan.train.trainer import Trainer
from tests.helpers import SHARED_DATA, tiny_overrides

REAL = SHARED_DATA / "deepfashion_pose"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real DeepFashion pose pairs not found at {REAL}")
def test_deepfashion_smoke_run(tmp_path: Path):
    cfg = build_config("ggb", tiny_overrides("ggb", batch_size=4) + [
        "data.load_size=64", "data.crop_size=64", "model.num_downs=6", "train.max_steps=2", "data.pose_sigma=2"],
        data_path=str(REAL))
    summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert summary["steps"] == 2
    tr = Translator.from_checkpoint(tmp_path / "run")
    scores = score_pose_split(tr, REAL, "test", max_items=2)
    assert scores["count"] == 2 and np.isfinite(scores["ssim"])
    out = tr.translate_files([REAL / "images" / "fashionMENJackets_Vestsid0000401403_4full.png"], tmp_path / "t",
                             options={"pose": "fashionMENJackets_Vestsid0000401403_3back.png"})
    assert len(out) == 1
