"""The segmenter's config: it needs to know its classes. Training it: tests/integration/test_segmenter.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairgan.errors import ConfigError
from pairgan.methods.segmenter import Segmenter, build_segmenter_config
from tests.helpers import tiny_overrides

TINY_SEG = tiny_overrides("segmenter", max_steps=4)


def test_needs_classes(tmp_path: Path, aligned_data: Path) -> None:
    cfg = build_segmenter_config(aligned_data, TINY_SEG)
    with pytest.raises(ConfigError, match="number of classes"):
        Segmenter(cfg.model, cfg.data)
