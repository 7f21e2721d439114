"""Instance maps derived from class ids (what a label-map model does with a served upload that has none):
connected components per class, numbered by the Cityscapes convention."""

from __future__ import annotations

import numpy as np

from pairgan.data.labels import connected_components, derive_instances


def test_derived_instances_follow_the_cityscapes_convention():
    ids = np.array([[0, 0, 1, 1],
                    [6, 0, 1, 6],
                    [6, 6, 0, 6],
                    [0, 0, 0, 6]])
    roots = connected_components(ids)
    assert len(np.unique(roots)) == 5  # 0 (two regions: the 0 at (2,2) joins the bottom ones), 1, 6 (two)
    inst = derive_instances(ids, thing_ids=[6])
    assert set(np.unique(inst[ids == 6])) == {6000, 6001} and set(np.unique(inst[ids == 1])) == {1}
    assert (inst[ids == 0] == 0).all()  # class 0 never carries instances (ids < 1000 are class ids)
    everything = derive_instances(ids)
    assert set(np.unique(everything[ids == 1])) == {1000}
    big = np.random.default_rng(0).integers(0, 3, (60, 70))
    assert derive_instances(big).shape == (60, 70)
