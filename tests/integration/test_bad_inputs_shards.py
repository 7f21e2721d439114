"""The bad-input suite, WebDataset shards (issue 19, part 3): `pairgan data pack` with a missing
folder, a bad size or name, an existing pack; training from a manifest that names missing shards,
a shard cut short, a damaged tar, a file that is not a manifest, a pattern naming a missing shard
and a URL scheme WebDataset cannot open. Each case is a ``pairgan`` command line with its exit
status and message (:mod:`tests.badinput`); the data and the packs it reads must never change.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pairgan.data.shards import pack_shards
from tests.badinput import Case, check_case
from tests.helpers import set_args, tiny_overrides, write_aligned

pytest.importorskip("webdataset")
pytestmark = pytest.mark.usefixtures("one_thread")

TINY = set_args(tiny_overrides("pix2pix") + ["train.max_steps=2"])


def _train(data: str) -> list[str]:
    return ["train", "--data", data, "--out", "{tmp}/r", *TINY]


def _case(*args, **kwargs) -> pytest.param:  # type: ignore[valid-type]
    case = Case(*args, **kwargs)
    return pytest.param(case, id=case.id)


CASES = [
    _case("pack-missing-root", ["data", "pack", "{tmp}/no-such-data", "{tmp}/out"], 2,
          r"no-such-data: data set folder not found"),
    _case("pack-shard-size-unit", ["data", "pack", "{data}", "{tmp}/out", "--shard-size", "1XB"], 2,
          r"--shard-size '1XB': expected a size such as 1GB, 500MB", unchanged=["{data}"]),
    _case("pack-shard-size-tiny", ["data", "pack", "{data}", "{tmp}/out", "--shard-size", "100"], 2,
          r"--shard-size '100': 100 bytes; expected at least 4096 bytes", unchanged=["{data}"]),
    _case("pack-bad-name", ["data", "pack", "{data}", "{tmp}/out", "--name", "../x"], 2,
          r"--name '\.\./x': expected letters, digits", unchanged=["{data}"]),
    _case("pack-bad-layout", ["data", "pack", "{data}", "{tmp}/out", "--layout", "zip"], 2,
          r"--layout 'zip': expected auto, aligned, folders, labels or poses", unchanged=["{data}"]),
    _case("pack-over-existing-pack", ["data", "pack", "{data}", "{pack}"], 2,
          r"train\.json: already exists; expected a new output \(pass --overwrite", unchanged=["{data}", "{pack}"]),
    _case("pack-empty-slice", ["data", "pack", "{data}", "{tmp}/out", "--split", "train[50:]"], 2,
          r"split 'train\[50:\]' selects none of its 5 items", unchanged=["{data}"]),
    _case("train-manifest-missing-shards", _train("{missing_shards}/train.json"), 2,
          r"train\.json: names missing shards: .*train-000001\.tar; expected every shard",
          unchanged=["{missing_shards}"]),
    _case("train-shard-cut-short", _train("{short_shard}/train.json"), 2,
          r"train-000000\.tar: \d+ bytes, the manifest says \d+; the shard is damaged", unchanged=["{short_shard}"]),
    # met while training reads it (the data check at the start would list it as a problem: next case)
    _case("train-damaged-tar", _train("{damaged}/train.json") + ["--set", "train.check_data=false"], 2,
          r"train-000000\.tar: not a readable tar shard \(ReadError: bad checksum\)", unchanged=["{damaged}"]),
    _case("check-damaged-tar", ["data", "check", "{damaged}/train.json"], 1,
          r"train-000000\.tar: not a readable tar shard", unchanged=["{damaged}"]),
    _case("check-manifest-missing-shards", ["data", "check", "{missing_shards}/train.json"], 2,
          r"names missing shards", unchanged=["{missing_shards}"]),
    _case("train-not-a-manifest", _train("{not_manifest}"), 2,
          r"config\.json: not a shard manifest \(expected format 'pairgan-shards'", unchanged=["{not_manifest}"]),
    _case("train-manifest-not-found", _train("{tmp}/nothing/train.json"), 2,
          r"train\.json: manifest not found; expected the NAME\.json that `pairgan data pack` wrote"),
    _case("train-pattern-missing-shard", _train("{pack}/train-{{000000..000009}}.tar"), 2,
          r"train-000002\.tar: shard not found \(from data\.path", unchanged=["{pack}"]),
    _case("train-s3-without-handler", _train("s3://bucket/train-{{000000..000001}}.tar"), 2,
          r"s3://bucket/train-000000\.tar: WebDataset cannot open this URL scheme here; read it through a pipe"),
    _case("train-shards-other-layout", _train("{pack}/train.json") + ["--set", "data.label_nc=3",
                                                                           "--set", "data.input_kind=label",
                                                                           "--set", "data.layout=labels"], 2,
          r"data\.layout: 'labels', but the shards of .* hold the aligned layout; expected auto or aligned",
          unchanged=["{pack}"]),
]


@pytest.fixture(scope="module")
def shared_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny aligned data set, its pack in 2 shards, and damaged copies of the pack."""
    root = tmp_path_factory.mktemp("bad-shards")
    data = write_aligned(root / "data", {"train": 5})
    pack = root / "pack"
    pack_shards(data, pack, shard_size=10240)
    assert len(json.loads((pack / "train.json").read_text())["shards"]) == 2
    paths = {"data": data, "pack": pack}
    for name in ("missing_shards", "short_shard", "damaged"):
        paths[name] = root / name
        shutil.copytree(pack, paths[name])
    (paths["missing_shards"] / "train-000001.tar").unlink()
    first = paths["short_shard"] / "train-000000.tar"
    first.write_bytes(first.read_bytes()[:-10240])
    tar = paths["damaged"] / "train-000000.tar"
    raw = bytearray(tar.read_bytes())
    raw[100:400] = b"\xff" * 300  # the first member's header: mode, sizes and checksum no longer parse
    tar.write_bytes(bytes(raw))
    paths["not_manifest"] = root / "config.json"
    paths["not_manifest"].write_text('{"method": "pix2pix"}')
    return paths


@pytest.mark.parametrize("case", CASES)
def test_bad_shard_input(case: Case, shared_files: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a command that wrongly went ahead writes only here
    check_case(case, dict(shared_files, tmp=tmp_path))


def test_the_table_ids_are_unique() -> None:
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 12
