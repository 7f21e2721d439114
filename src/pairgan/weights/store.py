"""The weights store: pinned sources, the places searched, hash checks, :func:`resolve`.

A :class:`WeightSource` names one pretrained file, its pinned sha256 (and size) and how to get it
(``kind``: a key of :data:`FETCHERS`). The module that owns a network registers its sources with
:func:`register_source` when it is imported (``pairgan.nets.vgg`` the VGGs,
``pairgan.metrics.inception`` the FID Inception, ``pairgan.metrics.lpips`` the LPIPS heads), so
:data:`SOURCES` holds the sources of the modules imported so far. Nothing here downloads:
:func:`resolve` finds and verifies a file or raises :class:`WeightsNotFound`; getting files is
:mod:`pairgan.weights.fetch`. Also here: the deterministic safetensors writer and the
NumPy-only unpickler the converters use.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pairgan.errors import WeightsError, WeightsNotFound

__all__ = [
    "DEFAULT_DIR",
    "ENV_VAR",
    "FETCHERS",
    "SOURCES",
    "Fetcher",
    "WeightSource",
    "find",
    "get_source",
    "load_numpy_pickle",
    "matches_pin",
    "register_fetcher",
    "register_source",
    "remember_verified",
    "resolve",
    "search_places",
    "sha256_file",
    "torch_hub_checkpoints",
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


#: ``fetcher(source, workdir) -> path of the fetched (raw) file``.
Fetcher = Callable[[WeightSource, Path], Path]
#: Every way of getting a file, by ``kind``; :mod:`pairgan.weights.fetch` registers the built-in ones.
FETCHERS: dict[str, Fetcher] = {}


def register_fetcher(kind: str) -> Callable[[Fetcher], Fetcher]:
    """Decorator: ``fetcher(source, workdir) -> path of the fetched (raw) file`` for ``kind``."""

    def deco(fn: Fetcher) -> Fetcher:
        FETCHERS[kind] = fn
        return fn

    return deco


#: Every registered source by name: those of the modules imported so far.
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


def torch_hub_checkpoints() -> Path:
    """torch.hub's folder of downloaded checkpoints (where torchvision's files land)."""
    import torch.hub  # torch only when a torchvision source is looked up: the store itself needs no torch

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
    """The hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_VERIFIED: dict[tuple[str, int, int, str], bool] = {}


def matches_pin(source: WeightSource, digest: str, size: int) -> bool:
    """Whether a file of ``size`` bytes with sha256 ``digest`` is the pinned file of ``source``."""
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
    if not matches_pin(source, digest, st.st_size):
        pin = source.sha256 + ("" if source.full_hash else "... (prefix)")
        raise WeightsError(
            f"{path}: sha256 {digest}, expected {pin} for {source.name} ({source.file}); "
            f"the file is damaged or another file. Replace it: pairgan weights fetch {source.name} --force"
        )
    _VERIFIED[key] = True
    return path


def remember_verified(path: Path, source: WeightSource) -> None:
    """Record that ``path`` (as it is now) matched the pin of ``source``: a freshly fetched file
    is not hashed a second time."""
    st = path.stat()
    _VERIFIED[(str(path.resolve()), st.st_size, st.st_mtime_ns, source.sha256)] = True


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


# --------------------------------------------------------------------------- file formats for converters


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


