"""Nearest-palette decoding on the pix2pix Cityscapes set (skipped when ../shared/data lacks it)."""

from __future__ import annotations

import pytest

from pairgan.data.datasets import split_aligned
from pairgan.data.io import read_image
from pairgan.data.labels import ColourDecoding, decode_colours
from pairgan.data.palettes import BUILTIN_PALETTES, DEFAULT_MAX_DISTANCE
from tests.helpers import SHARED_DATA

CITY = SHARED_DATA / "cityscapes_pix2pix" / "train"


@pytest.mark.skipif(not CITY.is_dir(), reason="pix2pix Cityscapes set not in ../shared/data")
def test_real_label_maps_fit_the_cityscapes_palette():
    pal = BUILTIN_PALETTES["cityscapes"]
    decoding = ColourDecoding(pal, "nearest", DEFAULT_MAX_DISTANCE, pal.void_id)
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        path = CITY / name
        _, label = split_aligned(read_image(path), path)  # photo | label map
        ids, far = decode_colours(label, decoding, path)
        assert ids.shape == (256, 256) and 0 <= ids.min() and ids.max() <= 19
        assert 1 - far / ids.size >= 0.95, f"{path}: only {1 - far / ids.size:.3f} of pixels within distance"
        assert (ids == 0).mean() > 0.1  # road is there in every street scene
