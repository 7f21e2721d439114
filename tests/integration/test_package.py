"""`pairgan package` / `pairgan push`: a run's inference model as a folder with a model card. The folder
loads back and translates identically (EMA or raw weights), needs nothing of the run or its data
(label models keep their palette and feature clusters), holds no pickle, discriminator or compiled
graph, and its card's metadata parses with huggingface_hub's own ModelCard. The upload is exercised up
to huggingface_hub's API calls (recorded, not sent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import pytest
from typer.testing import CliRunner

from PIL import Image

from pairgan.cli import app
from pairgan.data.palettes import BUILTIN_PALETTES
from pairgan.errors import CheckpointError, ConfigError, DataError, HubError
from pairgan.evaluate import checkpoint_sha256, evaluate
from pairgan.infer import Translator
from pairgan.metrics.card import load_card
from pairgan.package import package_model, push_model
from pairgan.protocols import Protocol, ResizeRule, file_sha256
from pairgan.data.io import read_image
from tests.helpers import train_tiny, train_tiny_with_clusters, write_colour_label_pairs

huggingface_hub = pytest.importorskip("huggingface_hub")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRGAN_CACHE", str(tmp_path / "cache"))


def _outputs(model: str | Path, inputs: list[Path], out: Path, options: dict[str, Any] | None = None,
             **kw: Any) -> list[np.ndarray]:
    Translator.from_checkpoint(model, device="cpu", backend="torch", **kw).translate_files(inputs, out, options=options)
    return [read_image(out / f"{p.stem}.png") for p in inputs]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_package_loads_back_identically_and_holds_only_inference_files(aligned_data: Path, tmp_path: Path) -> None:
    run = train_tiny(tmp_path / "run", "pix2pix", aligned_data, steps=3, extra=["train.ema=0.5"])
    inputs = sorted((aligned_data / "test").glob("*.png"))[:2]
    Translator.from_checkpoint(run, device="cpu", backend="auto", mode="eval")  # leaves compiled/ nowhere yet
    ema_run = _outputs(run, inputs, tmp_path / "o-run", mode="eval")
    tr = Translator.from_checkpoint(run, device="cpu", backend="auto", mode="eval")
    tr.translate_files(inputs, tmp_path / "o-compiled")
    assert list(run.rglob("compiled/*"))  # the run's checkpoint now holds a compiled graph

    pkg = package_model(run, tmp_path / "pkg", license="mit")
    assert pkg.weights == "ema"
    assert _files(pkg.folder) == ["G.safetensors", "README.md", "config.yaml", "extra_state.json",
                                  "input_profile.json", "package.json"]
    record = json.loads((pkg.folder / "package.json").read_text())
    assert record["format"] == "pairgan-package" and record["weights"] == "ema" and list(record["networks"]) == ["G"]
    assert record["source"]["checkpoint_sha256"] == checkpoint_sha256(run)
    assert record["source"]["train_steps"] == 3
    assert [np.array_equal(a, b) for a, b in zip(_outputs(pkg.folder, inputs, tmp_path / "o-pkg", mode="eval"),
                                                 ema_run)] == [True, True]
    assert Translator.from_checkpoint(pkg.folder, device="cpu", backend="torch").method.weights_source == "ema"
    with pytest.raises(CheckpointError, match="a packaged model with the ema weights only"):
        Translator.from_checkpoint(pkg.folder, device="cpu", weights="raw")

    raw = package_model(run, tmp_path / "pkg-raw", weights="raw")
    assert json.loads((raw.folder / "package.json").read_text())["weights"] == "raw"
    raw_run = _outputs(run, inputs, tmp_path / "o-run-raw", mode="eval", weights="raw")
    assert all(np.array_equal(a, b) for a, b in zip(_outputs(raw.folder, inputs, tmp_path / "o-raw", mode="eval"),
                                                    raw_run))
    assert not all(np.array_equal(a, b) for a, b in zip(raw_run, ema_run))

    # Writing over a package only when asked, and then atomically.
    with pytest.raises(FileExistsError, match="already exists"):
        package_model(run, tmp_path / "pkg")
    package_model(run, tmp_path / "pkg", weights="raw", overwrite=True)
    assert json.loads((tmp_path / "pkg" / "package.json").read_text())["weights"] == "raw"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _tiny_protocol(data: Path) -> Protocol:
    files = sorted((data / "test").glob("*.png"))
    return Protocol(name="tiny-heldout", version=2, split="test", manifest={f.name: file_sha256(f) for f in files},
                    layout="aligned", direction="AtoB", input="image", palette="", resolution=(32, 32),
                    resize_photo=ResizeRule("bicubic", "Pillow"), resize_label=ResizeRule("nearest", "Pillow"),
                    metrics=("l1", "psnr"), weights={}, kid_subset_size=2, kid_subsets=2, bootstrap_resamples=20,
                    fid_resamples=2, segmenter=None)


def test_model_card_metadata_cards_and_terms(tiny_run: Callable[..., Path], aligned_data: Path, tmp_path: Path) -> None:
    run = train_tiny(tmp_path / "run", "pix2pix", aligned_data, steps=2)
    (aligned_data / "SOURCE.md").write_text("# tiny\n\nTerms: research use only, do not redistribute.\n")
    evaluate(Translator.from_checkpoint(run, device="cpu", backend="torch"), aligned_data, "test", run / "eval_tiny",
             metrics=("l1", "psnr"), protocol=_tiny_protocol(aligned_data))
    pkg = package_model(run, tmp_path / "pkg", license="cc-by-nc-4.0", datasets=["me/tiny-pairs"], repo_id="me/tiny")
    assert [p.name for p in pkg.cards] == ["00-tiny-heldout.json"]
    card = load_card(pkg.cards[0])
    assert card.source["checkpoint_sha256"] == checkpoint_sha256(run)
    assert card.metrics == load_card(run / "eval_tiny").metrics

    model_card = huggingface_hub.ModelCard.load(pkg.folder / "README.md")
    meta = model_card.data.to_dict()
    assert meta["library_name"] == "pairgan" and meta["license"] == "cc-by-nc-4.0"
    assert meta["pipeline_tag"] == "image-to-image" and "pix2pix" in meta["tags"]
    assert meta["datasets"] == ["me/tiny-pairs"]
    result = model_card.data.eval_results[0]
    assert result.dataset_name == "tiny-heldout" and result.metric_type in ("l1", "psnr")
    text = model_card.text
    for expected in ("Image-to-Image Translation with Conditional Adversarial Networks", "Steps: 2",
                     "Terms: research use only, do not redistribute.", "protocol `tiny-heldout` v2",
                     card.protocol["fingerprint"], 'pairgan.load("hf://me/tiny")', "pairgan translate hf://me/tiny"):
        assert expected in text, expected

    # No licence given: `other`, and the card says it must be chosen; a card of another checkpoint is refused.
    plain = package_model(tiny_run("pix2pix", steps=2), tmp_path / "plain")
    assert huggingface_hub.ModelCard.load(plain.folder / "README.md").data.license == "other"
    assert "Licence not set" in (plain.folder / "README.md").read_text()
    with pytest.raises(DataError, match="the card scores checkpoint .* not the packaged"):
        package_model(tiny_run("pix2pix", steps=3), tmp_path / "other", cards=[run / "eval_tiny"])
    with pytest.raises(ConfigError, match="--license 'MIT License'"):
        package_model(run, tmp_path / "bad", license="MIT License")
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        package_model(run, tmp_path / "bad", checkpoint="best")


@pytest.mark.slow
def test_label_model_package_needs_nothing_of_the_run_or_its_data(tiny_data: Callable[..., Path], tmp_path: Path) -> None:
    data = tmp_path / "scenes"
    shutil.copytree(tiny_data("scenes"), data)
    run = train_tiny_with_clusters(tmp_path / "run", data)
    inputs = tmp_path / "inputs"
    for kind in ("label", "inst"):  # label maps and their instance maps, in the layout translate reads
        (inputs / f"test_{kind}").mkdir(parents=True)
        for p in sorted((data / f"train_{kind}").glob("*.png"))[:2]:
            shutil.copy(p, inputs / f"test_{kind}" / p.name)
    labels = sorted((inputs / "test_label").glob("*.png"))
    features = {"features": "cluster:0"}  # drawn from the run's feature clusters
    before = _outputs(run, labels, tmp_path / "o-run", features)
    method = Translator.from_checkpoint(run, device="cpu", backend="torch").method
    classes, schema = method.class_info(), method.request_schema()
    assert schema["options"]["clusters"] and classes["palette"]

    pkg = package_model(run, tmp_path / "pkg")
    shutil.rmtree(run)
    shutil.rmtree(data)  # the palette (classes.json), the clusters and the training data are gone
    packaged = Translator.from_checkpoint(pkg.folder, device="cpu", backend="torch")
    assert packaged.method.class_info() == classes
    assert packaged.method.request_schema() == schema
    after = _outputs(pkg.folder, labels, tmp_path / "o-pkg", features)
    assert len(after) == 2 and all(np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.slow
def test_a_palette_file_travels_with_the_package(tmp_path: Path) -> None:
    """Colour label inputs decode through data.palette; a palette *file* is copied into the package."""
    labels = write_colour_label_pairs(tmp_path / "city" / "train", suffix=".png")
    (tmp_path / "inputs").mkdir()
    Image.fromarray(labels[0]).save(tmp_path / "inputs" / "label.png")
    colours = BUILTIN_PALETTES["cityscapes"].colors
    palette = tmp_path / "palettes" / "city.json"
    palette.parent.mkdir()
    palette.write_text(json.dumps({"palette": colours[:19].tolist()}))
    run = train_tiny(tmp_path / "run", "pix2pixhd-512", tmp_path / "city", steps=1, extra=[
        "data.layout=aligned", "data.direction=BtoA", f"data.palette={palette}", "data.palette_match=nearest",
        "data.palette_void_id=19", "data.label_nc=20", "data.instance=false"])
    inputs = [tmp_path / "inputs" / "label.png"]
    before = _outputs(run, inputs, tmp_path / "o-run")
    pkg = package_model(run, tmp_path / "pkg")
    assert json.loads((pkg.folder / "package.json").read_text())["palette"] == "palette.json"
    shutil.rmtree(palette.parent)
    shutil.rmtree(tmp_path / "city")
    assert np.array_equal(_outputs(pkg.folder, inputs, tmp_path / "o-pkg")[0], before[0])


class _RecordingApi:
    """Stands in for huggingface_hub.HfApi: records the calls and what the folder held at upload."""

    calls: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs))

    def create_branch(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://hub.invalid/{repo_id}"

    def upload_folder(self, **kwargs: Any) -> Any:
        self.calls.append(("upload_folder", {**kwargs, "files": _files(Path(kwargs["folder_path"]))}))
        return type("CommitInfo", (), {"commit_url": f"https://hub.invalid/{kwargs['repo_id']}/commit/abc"})()


def test_push_uploads_the_package_and_nothing_else(tiny_run: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    run = tiny_run("pix2pix", steps=2)
    _RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingApi)
    pkg, url = push_model(run, "me/tiny", private=True, license="mit")
    assert url == "https://hub.invalid/me/tiny/commit/abc"
    calls = dict((name, kw) for name, kw in _RecordingApi.calls)
    assert "create_branch" not in calls
    assert calls["create_repo"] == {"repo_id": "me/tiny", "repo_type": "model", "private": True, "exist_ok": True}
    upload = calls["upload_folder"]
    assert upload["repo_id"] == "me/tiny" and upload["repo_type"] == "model" and upload["revision"] is None
    assert upload["files"] == ["G.safetensors", "README.md", "config.yaml", "extra_state.json", "input_profile.json",
                               "package.json"]
    assert not pkg.folder.exists()  # the temporary package is gone

    with pytest.raises(ConfigError, match="--license is required"):
        push_model(run, "me/tiny")
    with pytest.raises(ConfigError, match="repository 'me/ti ny'"):
        push_model(run, "me/ti ny", license="mit")

    class _Refusing(_RecordingApi):
        def upload_folder(self, **kwargs: Any) -> Any:
            response = type("Response", (), {"status_code": 401, "headers": {}, "request": None})()
            raise huggingface_hub.errors.HfHubHTTPError("401 Client Error: Unauthorized", response=response)

    monkeypatch.setattr(huggingface_hub, "HfApi", _Refusing)
    with pytest.raises(HubError, match=r"me/tiny: the Hub refused the upload: HTTP 401 \(log in") as exc:
        push_model(run, "me/tiny", license="mit")
    assert "\n" not in str(exc.value)


def test_cli_package_and_push(tiny_run: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tiny_run("pix2pix", steps=2)
    r = runner.invoke(app, ["package", str(run), str(tmp_path / "pkg"), "--license", "mit"])
    assert r.exit_code == 0, r.output
    assert "packaged" in r.output and "raw weights of G" in r.output and "licence mit" in r.output
    r = runner.invoke(app, ["package", str(run), str(tmp_path / "pkg")])
    assert r.exit_code == 2 and "already exists" in r.output and "Traceback" not in r.output
    _RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingApi)
    r = runner.invoke(app, ["push", str(run), "me/tiny", "--license", "mit", "--private", "--revision", "v2"])
    assert r.exit_code == 0, r.output
    calls = dict(_RecordingApi.calls)
    assert calls["create_branch"] == {"repo_id": "me/tiny", "repo_type": "model", "branch": "v2", "exist_ok": True}
    assert calls["upload_folder"]["revision"] == "v2" and calls["create_repo"]["private"] is True
    assert "pushed me/tiny" in r.output and "hf://me/tiny" in r.output
    r = runner.invoke(app, ["push", str(run), "me/tiny"])
    assert r.exit_code == 2 and "--license is required" in r.output


#: The other methods' shared tiny runs (as their own tests train them): (preset, tiny_run arguments).
OTHER_METHODS = {
    "crn": ("crn-demo", {"data": "scenes", "steps": 2, "log_every": None, "extra": ["model.widths=[8,8,8]"]}),
    "ggb": ("ggb", {"steps": 1, "data": "poses", "log_every": None}),
    "drpan": ("drpan-demo", {"steps": 1, "log_every": None}),
}


@pytest.mark.parametrize("name", sorted(OTHER_METHODS))
def test_every_method_packages_and_loads_back_identically(name: str, tiny_run: Callable[..., Path],
                                                          tmp_path: Path) -> None:
    preset, kwargs = OTHER_METHODS[name]
    run = tiny_run(preset, **kwargs)
    pkg = package_model(run, tmp_path / "pkg")
    assert pkg.method == name and not (pkg.folder / "state.pt").exists()
    a = Translator.from_checkpoint(run, device="cpu", backend="torch")
    b = Translator.from_checkpoint(pkg.folder, device="cpu", backend="torch")
    torch.manual_seed(0)
    batch = a.method.example_batch(2, 32, 32)
    assert torch.equal(a.translate_batch(batch, seed=0), b.translate_batch(batch, seed=0))
    assert type(b.method).paper and type(b.method).paper in (pkg.folder / "README.md").read_text()
