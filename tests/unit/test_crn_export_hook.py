"""CRN's export hook: the module sizes are integer arithmetic on the input's (symbolic) size, and the
export hooks live in the methods. The ONNX exports themselves: tests/integration/test_export_crn.py."""

from __future__ import annotations

import math

import torch

from pairgan.config import build_config
from pairgan.methods.base import Method
from pairgan.methods.build import build_method
from pairgan.methods.crn import CRN
from pairgan.methods.pix2pixhd import Pix2PixHD
from pairgan.nets.crn import module_sizes
from tests.helpers import tiny_overrides


def test_module_sizes_are_the_recursive_ceil_halvings():
    """The integer-arithmetic sizes equal the former recursive max(1, ceil(h / 2)) for any size."""
    def recursive(h: int, w: int, n: int) -> list[tuple[int, int]]:
        sizes = [(h, w)]
        for _ in range(n - 1):
            sizes.insert(0, (max(1, math.ceil(sizes[0][0] / 2)), max(1, math.ceil(sizes[0][1] / 2))))
        return sizes

    for n in range(1, 9):
        for h in range(0, 140):
            for w in (1, 5, 64, 129):
                assert module_sizes(h, w, n) == recursive(h, w, n), (h, w, n)


def test_export_hooks_live_in_the_methods():
    assert CRN.export_module is not Method.export_module
    assert Pix2PixHD.export_module is not Method.export_module
    cfg = build_config("crn-demo", tiny_overrides("crn", loop=False)
                       + ["model.widths=[4,4,4]", "model.k=2", "data.instance=true"])
    torch.manual_seed(0)
    m = build_method(cfg, training=False)
    g = m.export_module()  # an example batch of 2
    assert list(g.inputs) == ["label", "edges"] and g.output_names == ("v0", "v1")
    with torch.no_grad():
        outs = g.module(*g.inputs.values())
        eager = m.translate({**m.example_batch(2, 16, 16), "variant": "all"})
    assert len(outs) == 2 and outs[0].shape == (2, 3, 16, 16) and eager.shape == (2, 6, 16, 16)
