"""pix2pixHD on the real Cityscapes sample (../shared/data/cityscapes_sample), at reduced size."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairgan.config import build_config
from pairgan.infer import Translator
from pairgan.train.trainer import Trainer
from tests.helpers import SHARED_DATA, tiny_overrides

CITYSCAPES = SHARED_DATA / "cityscapes_sample"


@pytest.mark.slow
@pytest.mark.skipif(not (CITYSCAPES / "train_label").is_dir(), reason=f"Cityscapes sample not found at {CITYSCAPES}")
def test_end_to_end_cityscapes_sample_at_reduced_size(tmp_path: Path):
    """Real Cityscapes (2048x1024, 35 labelIds, instanceIds) scaled to 128x64, a few steps with
    the reference's encoder features, then a test label map (its instance map found in test_inst/)."""
    overrides = tiny_overrides("pix2pixhd-512", local=True, features=True, data=False, batch_size=1, max_steps=2)
    cfg = build_config("pix2pixhd-512", overrides + ["data.load_size=128", "data.max_items=2"],
                       data_path=str(CITYSCAPES))
    summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert summary["steps"] == 2
    tr = Translator.from_checkpoint(tmp_path / "run", device="cpu")
    label = sorted((CITYSCAPES / "test_label").glob("*.png"))[0]
    item, _ = tr.method.load_inference_input(label)
    assert item["label"].shape == item["inst"].shape == (1, 1024, 2048)
    assert int(item["inst"].max()) >= 1000  # Cityscapes instance ids (class * 1000 + k)
    batch = {k: v[None, :, ::8, ::8].contiguous() for k, v in item.items()}  # 256x128 keeps the test light
    out = tr.translate_batch(batch)
    assert out.shape == (1, 3, 128, 256) and out.abs().max() <= 1
