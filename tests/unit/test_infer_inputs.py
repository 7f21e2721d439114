"""What inference does to its inputs before any network runs: padding to the size multiple and back,
expanding the command line's files, folders and globs, and gallery links for any file name."""

import os
from pathlib import Path

import pytest
import torch

from pairgan.infer import expand_inputs
from pairgan.padding import pad_to_multiple
from pairgan.visual import printable, write_gallery


def test_pad_to_multiple_crops_back():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    y, (h, w) = pad_to_multiple(x, 4)
    assert y.shape[-2:] == (8, 8) and (h, w) == (5, 7)
    assert torch.equal(y[..., :5, :7], x)


def test_expand_inputs_globs_and_errors(aligned_data: Path):
    assert len(expand_inputs([str(aligned_data / "train" / "*.png")])) == 5
    with pytest.raises(FileNotFoundError, match="no such"):
        expand_inputs([str(aligned_data / "nothing*.png")])


def test_gallery_links_and_labels_survive_names_that_are_not_utf8(tmp_path: Path):
    odd = os.fsdecode(b"\xff\xfeshot")
    assert printable(odd) == "\\xff\\xfeshot" and printable("plain é") == "plain é"
    page = write_gallery(tmp_path, [{"name": odd, "output": f"{odd}.png"}], ["output"]).read_text(encoding="utf-8")
    assert 'href="%FF%FEshot.png"' in page and "\\xff\\xfeshot" in page
