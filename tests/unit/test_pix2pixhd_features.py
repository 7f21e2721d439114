"""pix2pixHD instance features: k-means, cluster files, `features cluster`, and editing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from pairgan import checkpoint as ckpt
from pairgan.cli import app
from pairgan.config import DataConfig, build_config
from pairgan.data.datasets import build_dataset
from pairgan.data.io import read_image
from pairgan.data.labels import find_partner, read_instance_map, read_label_map
from pairgan.infer import Translator
from pairgan.methods.pix2pixhd import Pix2PixHD, Pix2PixHDConfig
from pairgan.methods.pix2pixhd_features import (
    CLUSTERS_FILE,
    attach_clusters,
    cluster_features,
    edit,
    encode_instances,
    find_clusters_file,
    instance_class,
    instance_features,
    kmeans,
    load_clusters,
    save_clusters,
)
from pairgan.synth.scenes import synth_scenes
from tests.helpers import tiny_model_options, tiny_overrides

# --------------------------------------------------------------------------- k-means


def blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-0.8, -0.8, 0.0], [0.8, 0.0, 0.5], [0.0, 0.8, -0.6]])
    x = torch.cat([c + 0.05 * torch.randn(40 + 10 * i, 3, generator=g) for i, c in enumerate(centres)])
    perm = torch.randperm(x.shape[0], generator=g)
    return x[perm], centres


def test_kmeans_recovers_constructed_clusters():
    x, truth = blobs()
    centres, assign = kmeans(x, 3, seed=0)
    assert centres.shape == (3, 3) and assign.shape == (x.shape[0],)
    # every true centre has a found centre close by, and the assignment is the nearest centre
    d = torch.cdist(truth, centres)
    assert d.min(1).values.max() < 0.05 and len(set(d.argmin(1).tolist())) == 3
    assert torch.equal(assign, torch.cdist(x.double(), centres.double()).argmin(1))
    for c in range(3):
        assert torch.allclose(centres[c], x[assign == c].mean(0), atol=1e-5)
    again, _ = kmeans(x, 3, seed=0)
    assert torch.equal(centres, again)  # deterministic per seed


def test_kmeans_small_inputs():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    centres, assign = kmeans(x, 10)  # k capped at the distinct points
    assert centres.shape == (2, 2) and set(assign.tolist()) == {0, 1}
    assert kmeans(x[:1], 10)[0].shape == (1, 2)
    with pytest.raises(ValueError):
        kmeans(torch.zeros(0, 3), 2)


def test_cluster_file_round_trip(tmp_path: Path):
    centres = {6: torch.randn(4, 3), 0: torch.randn(1, 3)}
    path = save_clusters(tmp_path / CLUSTERS_FILE, centres, {"k": 4})
    back = load_clusters(path)
    assert set(back) == {0, 6} and all(torch.equal(back[c], centres[c]) for c in centres)
    assert json.loads(path.with_suffix(".json").read_text())["k"] == 4
    assert set(load_clusters(tmp_path)) == {0, 6}  # a folder finds its file
    ck = tmp_path / "checkpoints" / "step_1"
    ck.mkdir(parents=True)
    assert find_clusters_file(ck) == path  # a checkpoint finds its run folder's clusters


# --------------------------------------------------------------------------- editing


def tiny_method(G: nn.Module | None = None) -> Pix2PixHD:
    torch.manual_seed(0)
    m = Pix2PixHD(Pix2PixHDConfig(**tiny_model_options("pix2pixhd", features=True)), DataConfig(label_nc=7, instance=True), training=False)
    if G is not None:
        m.nets["G"] = G
    m.set_inference_mode("eval")
    m.clusters = {6: torch.tensor([[0.9, -0.9, 0.9], [-0.9, 0.9, -0.9]]), 1: torch.tensor([[0.3, 0.3, 0.3]])}
    return m


def scene() -> tuple[torch.Tensor, torch.Tensor]:
    label = torch.zeros(32, 32, dtype=torch.long)
    label[16:, :] = 1
    label[18:26, 2:14] = 6
    label[18:26, 18:30] = 6
    inst = label.clone()
    inst[18:26, 2:14] = 6000
    inst[18:26, 18:30] = 6001
    return label, inst


class PerPixel(nn.Module):
    """A 1x1-convolution 'generator': each output pixel depends on its own input pixel only."""

    def __init__(self, in_nc: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_nc, 3, 1)
        self.size_multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x))


def test_edit_restyles_one_instance_only():
    torch.manual_seed(0)
    m = tiny_method(PerPixel(7 + 1 + 3))
    label, inst = scene()
    base = instance_features(m, label, inst, "cluster:0")
    out0 = edit(m, label, inst, {}, base_features=base)
    out1, fmap = edit(m, label, inst, {6001: 1}, base_features=base, return_features=True)
    inside = inst == 6001
    assert (out1 - out0)[0][:, inside].abs().mean() > 0.1
    assert torch.equal(out1[0][:, ~inside], out0[0][:, ~inside])  # nothing else moves
    assert torch.equal(fmap[0][:, inst == 6000], base[0][:, inst == 6000])
    assert torch.allclose(fmap[0][:, inside], m.clusters[6][1][:, None].expand(3, int(inside.sum())))
    chained = edit(m, label, inst, {6000: 1}, base_features=fmap)  # both cars now in cluster 1
    assert torch.equal(chained[0][:, inside], out1[0][:, inside])
    with pytest.raises(ValueError, match="does not occur"):
        edit(m, label, inst, {6005: 0}, base_features=base)
    with pytest.raises(ValueError, match="has 2 clusters"):
        edit(m, label, inst, {6000: 7}, base_features=base)


def test_edit_with_a_real_generator_changes_mostly_the_instance():
    m = tiny_method()
    label, inst = scene()
    out0 = edit(m, label, inst, {6001: 0})
    out1 = edit(m, label, inst, {6001: 1})
    diff = (out1 - out0).abs().mean(1)[0]
    inside = inst == 6001
    far = torch.zeros_like(inside)
    far[:8] = True  # the top rows, away from the edited car
    assert diff[inside].mean() > 3 * diff[far].mean()
    assert out1.shape == (1, 3, 32, 32)


# --------------------------------------------------------------------------- features cluster


def test_cluster_features_on_scenes_and_edit_through_a_translator(tmp_path: Path):
    synth_scenes(tmp_path / "data", n=6, size=32)
    cfg = build_config("pix2pixhd-demo", tiny_overrides("pix2pixhd-demo", features=True, loop=False),
                       data_path=str(tmp_path / "data"))
    torch.manual_seed(0)
    m = Pix2PixHD(cfg.model, cfg.data, training=True)
    ckpt.save_checkpoint(tmp_path / "run" / "checkpoints" / "step_1", cfg, dict(m.nets))
    ckpt.point_latest(tmp_path / "run" / "checkpoints", "step_1")
    path = cluster_features(tmp_path / "run", k=3, min_fraction=1 / 64, device="cpu")
    assert path == tmp_path / "run" / CLUSTERS_FILE
    assert ckpt.resolve_checkpoint(tmp_path / "run").name == "step_1"  # the run folder stays a run folder
    centres = load_clusters(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["k"] == 3 and meta["images"] == 5 and meta["instances"] > 0
    assert all(v.shape[1] == 3 and 1 <= v.shape[0] <= 3 for v in centres.values())
    assert 6 in centres  # cars (class 6) are large enough at this size
    # the same vectors by hand: E on every training image, instances above 1/64 of the image
    ds = build_dataset(cfg.data, "train", train=False, size_multiple=m.size_multiple)
    n_cars = 0
    for i in range(len(ds)):
        item = ds[i]
        _, ids, _, frac = encode_instances(m, {k: v[None] for k, v in item.items() if torch.is_tensor(v)})
        n_cars += int(((instance_class(ids) == 6) & (frac > 1 / 64)).sum())
    assert meta["instances_per_class"]["6"] == n_cars

    tr = Translator.from_checkpoint(tmp_path / "run", device="cpu")
    attach_clusters(tr.method)
    assert set(tr.method.clusters) == set(centres)
    for label_file in sorted((tmp_path / "data" / "train_label").glob("*.png")):  # a scene with a car
        label = read_label_map(label_file, 9)
        inst = read_instance_map(find_partner(label_file, "inst"))
        cars = [int(i) for i in torch.as_tensor(inst).unique() if 6000 <= int(i) < 7000]
        if cars:
            break
    assert cars
    target = max(cars, key=lambda i: int((torch.as_tensor(inst) == i).sum()))
    k = centres[6].shape[0]
    out0 = edit(tr.method, label, inst, {target: 0}, base_features="cluster:0")
    out1 = edit(tr.method, label, inst, {target: k - 1}, base_features="cluster:0")
    assert out0.shape == (1, 3, 32, 32)
    if k > 1:
        inside = torch.as_tensor(inst) == target
        assert (out1 - out0).abs()[0][:, inside].mean() > 0
    written = tr.translate_files([label_file], tmp_path / "out", options={"features": "cluster:1"})
    assert written[0].is_file()
    # Translator.from_checkpoint tells the method its checkpoint folder: the run's clusters are
    # found without attach_clusters
    tr2 = Translator.from_checkpoint(tmp_path / "run", device="cpu")
    assert set(tr2.method.find_clusters()) == set(centres)
    again = tr2.translate_files([label_file], tmp_path / "out2", options={"features": "cluster:1"})
    assert torch.equal(torch.as_tensor(read_image(again[0])), torch.as_tensor(read_image(written[0])))


def test_features_cli(tmp_path: Path):
    result = CliRunner().invoke(app, ["features", "cluster", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "missing" in result.output
    result = CliRunner().invoke(app, ["features", "--help"])
    assert result.exit_code == 0 and "cluster" in result.output
