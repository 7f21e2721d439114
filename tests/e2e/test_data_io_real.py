"""Image I/O on a file of the real facades set (../shared/data; skipped where absent)."""

from __future__ import annotations

import numpy as np
import pytest

from pairgan.data.io import image_size, read_image
from tests.helpers import SHARED_DATA


def test_real_facades_sample() -> None:
    path = SHARED_DATA / "facades" / "train" / "1.jpg"
    if not path.is_file():
        pytest.skip(f"shared data set not present ({path})")
    arr = read_image(path)
    assert arr.dtype == np.uint8 and arr.shape == (256, 512, 3)
    assert image_size(path) == (512, 256)
