"""pairgan.fsutil: the one atomic writer. A failed write leaves the destination as it was and no
temporary behind; a finished one replaces it whole."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pairgan import fsutil


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_text_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.txt"
    fsutil.atomic_write_text(path, "old")
    fsutil.atomic_write_text(path, "new content")
    assert path.read_text() == "new content"
    assert _hidden(path.parent) == []


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    fsutil.atomic_write_bytes(path, b"kept")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_bytes(b"torn")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        fsutil.atomic_write(path, half_then_crash)
    assert path.read_bytes() == b"kept"
    assert _hidden(tmp_path) == []


def test_a_crash_at_the_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.txt"
    fsutil.atomic_write_text(path, "kept")

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash at the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        fsutil.atomic_write_text(path, "lost")
    assert path.read_text() == "kept"
    assert _hidden(tmp_path) == []


def test_the_temporary_keeps_the_extension_for_format_picking_writers(tmp_path: Path) -> None:
    # np.save appends ".npy" to a name without it: the temporary must already end in .npy.
    path = tmp_path / "features.npy"
    fsutil.atomic_write(path, lambda tmp: np.save(tmp, np.arange(3)))
    assert np.load(path).tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.npy"]


def test_a_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no file"):
        fsutil.atomic_write(tmp_path / "x.txt", lambda tmp: None)
    assert not (tmp_path / "x.txt").exists()


def test_atomic_folder_swaps_in_a_complete_folder(tmp_path: Path) -> None:
    final = tmp_path / "ckpt"
    with fsutil.atomic_folder(final) as tmp:
        (tmp / "a").write_text("1")
    with fsutil.atomic_folder(final) as tmp:
        assert not (final / "b").exists()  # the new folder is not visible while it is built
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert _hidden(tmp_path) == []


def test_atomic_folder_keeps_the_old_folder_when_the_block_fails(tmp_path: Path) -> None:
    final = tmp_path / "ckpt"
    with fsutil.atomic_folder(final) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with fsutil.atomic_folder(final, temp_prefix=".tmp-") as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed mid-save")
    assert (final / "a").read_text() == "1" and not (final / "half").exists()
    assert _hidden(tmp_path) == []


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    path = fsutil.atomic_write_text(tmp_path / "p.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_full_disk_is_recognised_whichever_writer_reports_it() -> None:
    assert fsutil.is_disk_full(OSError(28, "No space left on device"))
    assert fsutil.is_disk_full(RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"))
    assert not fsutil.is_disk_full(OSError(13, "Permission denied"))
    assert not fsutil.is_disk_full(RuntimeError("unexpected pos 123"))  # checkpoint.py asks the disk for that one
