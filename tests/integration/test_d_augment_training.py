"""pix2pix through the Trainer with the feature discriminator and adaptive DiffAugment: the
checkpoint holds D's heads and the augmentation's p (not the frozen backbone), and a resumed run
continues with exactly the p (and weights) of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file

from pairgan import checkpoint as ckpt
from tests.helpers import checkpoint_tensors, tiny_config, train_whole_and_resumed

pytestmark = pytest.mark.usefixtures("one_thread")


def _extra(vgg16: Path) -> list[str]:
    # Adaptive p updated every step by (batch) / 20: it moves visibly within 4 steps.
    return ["model.discriminator=features", f"model.d_backbone_weights={vgg16}", "model.d_augment=diffaug",
            "model.d_augment_p=0.5", "model.d_augment_target=0.01", "model.d_augment_interval=1",
            "model.d_augment_ada_images=20", "train.deterministic=true"]


@pytest.mark.slow
def test_features_d_with_adaptive_diffaug_trains_and_resumes_exactly(
        aligned_data: Path, tmp_path: Path, random_vgg_weights: Callable[[str], Path]):
    cfg = tiny_config("pix2pix", aligned_data, "train.max_steps=4", *_extra(random_vgg_weights("vgg16")))
    one, two = train_whole_and_resumed(cfg, tmp_path, stop_at=2)
    latest = ckpt.resolve_checkpoint(one)
    d_keys = load_file(str(latest / "D.safetensors")).keys()
    assert d_keys and all(k.startswith("heads.") for k in d_keys)  # the frozen backbone is not saved
    p = load_file(str(latest / "D_augment.safetensors"))["p"]
    assert float(p) != 0.5  # the adaptive rule moved it
    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
