"""Shared fixtures: tiny data sets written on the fly and a tiny, fast pix2pix config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Small enough that a training step takes milliseconds on a 2-core CPU.
TINY = [
    "model.num_downs=5",
    "model.ngf=8",
    "model.ndf=8",
    "model.n_layers_D=2",
    "data.load_size=36",
    "data.crop_size=32",
    "train.batch_size=2",
    "train.num_workers=0",
    "train.log_every=1",
    "train.sample_every=0",
    "train.save_epoch_every=0",
]


def pair_image(rng: np.random.Generator, h: int = 40, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A blocky 'label map' A and a 'photo' B that is a fixed function of A (learnable)."""
    a = np.zeros((h, w, 3), np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        a[y : y + rng.integers(4, 16), x : x + rng.integers(4, 16)] = rng.integers(0, 256, 3)
    b = (255 - a) // 2 + 40
    return a, b.astype(np.uint8)


def write_aligned(root: Path, splits: dict[str, int], seed: int = 0, h: int = 40, w: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a, b = pair_image(rng, h, w)
            Image.fromarray(np.concatenate([a, b], axis=1)).save(root / split / f"{i:03d}.png")
    return root


@pytest.fixture
def aligned_data(tmp_path: Path) -> Path:
    """train 5 / val 2 / test 3 aligned A|B PNGs, 40x40 each half."""
    return write_aligned(tmp_path / "data", {"train": 5, "val": 2, "test": 3})


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: tiny convolutions gain nothing from a second thread
    and, on a busy 2-core machine, lose a lot waiting for it (measured: 0.14 s/step with one
    thread, 1-18 s with two under load). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
