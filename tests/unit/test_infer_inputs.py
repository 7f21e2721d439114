"""What inference does to its inputs before any network runs: padding to the size multiple and back,
and expanding the command line's files, folders and globs."""

from pathlib import Path

import pytest
import torch

from pairgan.infer import expand_inputs
from pairgan.padding import pad_to_multiple


def test_pad_to_multiple_crops_back():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    y, (h, w) = pad_to_multiple(x, 4)
    assert y.shape[-2:] == (8, 8) and (h, w) == (5, 7)
    assert torch.equal(y[..., :5, :7], x)


def test_expand_inputs_globs_and_errors(aligned_data: Path):
    assert len(expand_inputs([str(aligned_data / "train" / "*.png")])) == 5
    with pytest.raises(FileNotFoundError, match="no such"):
        expand_inputs([str(aligned_data / "nothing*.png")])
