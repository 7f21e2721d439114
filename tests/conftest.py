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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import pytest
import torch

from pairgan.config import Config
from tests import helpers
from tests.helpers import SHARED_DATA, pair_image, write_aligned

# Re-exported for the test files still flat in tests/ that import them from here; tiered files import
# tests.helpers. Remove once no file imports tests.conftest.
__all__ = ["SHARED_DATA", "TINY", "pair_image", "write_aligned"]

TIERS = ("unit", "integration", "e2e")
TESTS = Path(__file__).resolve().parent

TINY = helpers.tiny_overrides("pix2pix")


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


@pytest.fixture
def tiny_overrides() -> list[str]:
    """The pix2pix tiny overrides, for the untiered files that still take them as a fixture."""
    return helpers.tiny_overrides("pix2pix")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: tiny convolutions gain nothing from a second thread
    and, on a busy 2-core machine, lose a lot waiting for it (measured: 0.14 s/step with one
    thread, 1-18 s with two under load). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
