"""THE atomic writer: every file and folder pairgan writes appears whole or not at all.

A reader (or a process started after a kill, a crash or a full disk) sees either the old file or
the new one, never a torn one: the content goes to a hidden temporary beside the destination
(same file system, so the rename is atomic), is fsync'ed, and is then renamed over the
destination; the folder is fsync'ed too so that the rename itself survives a power cut. A failure
at any point removes the temporary and leaves the destination as it was.

This is the only module of pairgan that renames files into place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterator

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_folder",
    "fsync_dir",
    "fsync_file",
    "is_disk_full",
    "publish",
    "temp_name",
]


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make renames inside ``folder`` durable (best effort: not every platform can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush ``path``'s content to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full: an OSError with ENOSPC, or a writer that reports it in
    its own words (safetensors' ``StorageFull``, an I/O error with code 28)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc)
    return "No space left" in text or "StorageFull" in text or "code: 28" in text


def temp_name(path: str | os.PathLike) -> Path:
    """A hidden, unique temporary path beside ``path`` that keeps its extension (writers such as
    ``np.save`` or PIL pick a format from it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


def usual_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename a finished temporary file ``tmp`` over ``path`` durably (fsync the file, rename,
    fsync the folder). ``tmp`` must live in ``path``'s folder; on failure it is removed."""
    tmp, path = Path(tmp), Path(path)
    try:
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to produce the file at a temporary path, then :func:`publish` it as
    ``path``. Parent folders are created. The temporary never outlives a failure of ``write``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        write(tmp)
        if not tmp.exists():
            raise FileNotFoundError(f"{path}: the writer produced no file")
        os.chmod(tmp, usual_mode())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return publish(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, temp_prefix: str = ".tmp-") -> Iterator[Path]:
    """Build a folder in a hidden temporary beside ``path`` (yielded), then swap it in.

    Every file in it is fsync'ed before the rename. An existing ``path`` is moved aside first and
    removed only after the new folder is in place, so a kill at any moment leaves a complete old
    or new folder under the real name (plus, at worst, a hidden leftover the next writer of the
    same name removes) — except between the two renames, when the complete old folder is under its
    hidden ``.old-`` name (pairgan.checkpoint.clean_leftovers puts it back). An exception inside
    the block removes the temporary and keeps ``path``.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{temp_prefix}{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                fsync_file(p)
        fsync_dir(tmp)
        old = None
        if final.exists():
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
