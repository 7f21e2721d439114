"""GGB pose encodings: PG2's binary disks beside the Gaussian heat maps (issue 17 item 7)."""

from __future__ import annotations

import numpy as np
import pytest

from pairgan.config import DataConfig, build_config
from pairgan.data.poses import disk_maps, heatmaps, pose_maps
from pairgan.errors import ConfigError


def test_disk_on_a_known_keypoint() -> None:
    kp = np.array([[10.0, 12.0], [np.nan, np.nan]], np.float32)
    maps = disk_maps(kp, 32, 32, 4.0)
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    disk = maps[0]
    assert set(np.unique(disk)) == {0.0, 1.0}
    assert disk[10, 12] == 1 and disk[10, 16] == 1 and disk[6, 12] == 1  # distance 4: inside
    assert disk[10, 17] == 0 and disk[13, 15] == 0  # distances 5 and 4.24: outside
    assert disk[13, 14] == 1  # distance 3.6
    assert disk.sum() == 49  # the lattice points within radius 4
    assert maps[1].sum() == 0  # a missing joint: an empty channel


def test_pose_maps_follow_the_data_config() -> None:
    kp = np.array([[8.0, 8.0]], np.float32)
    gauss = pose_maps(kp, 16, 16, DataConfig(pose_sigma=2.0))
    np.testing.assert_array_equal(gauss, heatmaps(kp, 16, 16, 2.0))
    disk = pose_maps(kp, 16, 16, DataConfig(pose_encoding="disk", pose_disk_radius=2.0))
    np.testing.assert_array_equal(disk, disk_maps(kp, 16, 16, 2.0))
    assert disk.sum() == 13


def test_disk_options_are_checked() -> None:
    assert build_config("ggb", ["data.pose_encoding=disk"]).data.pose_disk_radius == 4.0
    with pytest.raises(ConfigError, match="data.pose_disk_radius"):
        build_config("ggb", ["data.pose_encoding=disk", "data.pose_disk_radius=0"])
    with pytest.raises(ConfigError, match="data.pose_encoding"):
        build_config("ggb", ["data.pose_encoding=square"])
