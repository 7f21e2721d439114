"""The real DeepFashion pose pairs (../shared/data; skipped where absent): layout, check, heat maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pairgan.config import build_config
from pairgan.data.datasets import build_dataset, detect_layout
from pairgan.data.poses import PosePairDataset, keypoints_from_heatmaps, read_annotations
from tests.helpers import SHARED_DATA

REAL = SHARED_DATA / "deepfashion_pose"


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real DeepFashion pose pairs not found at {REAL}")
def test_real_deepfashion_pose_layout_reads_and_checks():
    cfg = build_config("ggb", data_path=str(REAL)).data
    assert detect_layout(REAL, "train") == "poses"
    row, problems = PosePairDataset.check_split(cfg, REAL, "all", 128)
    assert problems == [] and row["n_pairs"] == 100 and row["max_size"] == (256, 256)
    ds = build_dataset(cfg, "test", train=False, size_multiple=128)
    it = ds[0]
    assert it["source"].shape == (3, 256, 256) and it["target_pose"].shape == (18, 256, 256)
    kp = read_annotations(REAL / "annotations.csv")[Path(it["B_path"]).name]
    ok = np.isfinite(kp).all(axis=1)
    est = keypoints_from_heatmaps(it["target_pose"][None])[0].numpy()
    np.testing.assert_allclose(est[ok], kp[ok], atol=0.51)
