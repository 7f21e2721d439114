"""pairgan.padding: one reflect padding for images and ids, and fitting to a fixed size."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pairgan.padding import fit_batch, pad_batch, pad_to, pad_to_multiple


def test_float_padding_is_reflection_and_ids_get_the_same_pixels() -> None:
    ids = torch.arange(5 * 7).reshape(1, 1, 5, 7)
    img = ids.float()
    padded_img = pad_to(img, 8, 9)
    padded_ids = pad_to(ids, 8, 9)
    assert torch.equal(padded_img, F.pad(img, (0, 2, 0, 3), mode="reflect"))
    assert padded_ids.dtype == ids.dtype and torch.equal(padded_ids.float(), padded_img)


def test_tiny_inputs_replicate_instead_of_reflecting() -> None:
    x = torch.arange(2.0).reshape(1, 1, 1, 2)
    assert torch.equal(pad_to(x, 3, 4), F.pad(x, (0, 2, 0, 2), mode="replicate"))


def test_pad_to_multiple_and_pad_batch_report_the_original_size() -> None:
    x, hw = pad_to_multiple(torch.zeros(1, 3, 30, 17), 8)
    assert x.shape[-2:] == (32, 24) and hw == (30, 17)
    batch, size = pad_batch({"A": torch.zeros(2, 1, 9, 9), "mode": "eval"}, 4)
    assert batch["A"].shape[-2:] == (12, 12) and batch["mode"] == "eval" and size == (9, 9)


def test_fit_batch_scales_down_keeping_the_aspect_then_pads() -> None:
    batch = {"label": torch.zeros(1, 1, 100, 50, dtype=torch.long), "A": torch.rand(1, 3, 100, 50)}
    out, hw, scaled = fit_batch(batch, (64, 64))
    assert hw == (100, 50) and scaled == (64, 32)
    assert out["label"].shape[-2:] == (64, 64) and out["label"].dtype == torch.long
    assert out["A"].shape[-2:] == (64, 64)
